"""Where the shop's recommendations and search results come from.

A real shop asks Synerise's recommendation and search APIs; their answers
carry the items and a ``correlationId`` (in ``extras``), which the templates
put on the frame so that ``beacon.js`` can report views and clicks. This shop
picks products from its own table and makes up the correlation id, which is
all the beacons need.
"""

import uuid
from dataclasses import dataclass

from django.db.models import Q

from .models import Product

#: The recommendation campaign the product page's frame stands for.
SIMILAR_PRODUCTS_CAMPAIGN = "similar-products"


@dataclass(frozen=True)
class Recommendation:
    correlation_id: str
    campaign_id: str
    products: list[Product]


@dataclass(frozen=True)
class SearchResults:
    query: str
    correlation_id: str
    products: list[Product]


def similar_products(product: Product, limit: int = 4) -> Recommendation:
    """Products of the same category first, then others, never ``product`` itself."""
    others = Product.objects.exclude(pk=product.pk)
    picked = list(others.filter(category=product.category)[:limit])
    if len(picked) < limit:
        picked += others.exclude(pk__in=[p.pk for p in picked])[: limit - len(picked)]
    return Recommendation(str(uuid.uuid4()), SIMILAR_PRODUCTS_CAMPAIGN, picked)


def search(query: str, limit: int = 20) -> SearchResults:
    """Products whose name, category or description contains ``query``."""
    matches = Product.objects.filter(
        Q(name__icontains=query) | Q(category__icontains=query) | Q(description__icontains=query)
    )
    return SearchResults(query, str(uuid.uuid4()), list(matches[:limit]))
