"""Everything the shop tells Synerise about its models, in one place.

* a line added to a cart → the dedicated ``added-to-cart`` event (``product.addToCart``);
* an order placed → a Synerise transaction (``/v4/transactions``), from which
  Synerise derives one ``product.buy`` event per product;
* a product saved → an item of the ``SHOP_CATALOG`` catalog
  (``/catalogs/bags/{id}/items/batch``); ``manage.py synerise_catalog_load``
  sends them all the first time.

The customers' profiles follow from ``SYNERISE["USER_PROFILES"]`` (settings),
and a login or sign-up merges the shopper's anonymous profile into theirs.

Both are written to the outbox in the same database transaction as the row
that caused them. Page visits come from ``PageVisitMiddleware``, logins and
logouts from django-synerise's auth hooks, ``registered`` from the sign-up
view, recommendation views and clicks from ``beacon.js`` (see the templates).
"""

import copy
from decimal import Decimal
from typing import Any

from django.conf import settings

from django_synerise import track_catalog, track_model
from django_synerise.events import Event
from django_synerise.identity import user_client

from .models import CartLine, Order, Product


def _client(user: Any, visitor_uuid: str, email: str = "") -> dict[str, Any]:
    """The Synerise identifiers we know for a cart or an order."""
    client: dict[str, Any] = {}
    if visitor_uuid:
        client["uuid"] = visitor_uuid
    if email:
        client["email"] = email
    client.update(user_client(user) or {})
    return client


def cart_line_client(line: CartLine) -> dict[str, Any]:
    return _client(line.cart.user, line.cart.visitor_uuid)


def cart_line_params(line: CartLine) -> dict[str, Any]:
    # Decimal(): a line just created holds the value it was given, possibly a string.
    price = {"amount": Decimal(line.unit_price), "currency": settings.SHOP_CURRENCY}
    return {
        "sku": line.product.sku,
        "name": line.product.name,
        "category": line.product.category,
        "quantity": line.quantity,
        "finalUnitPrice": price,
        "regularUnitPrice": price,
        "url": line.product.get_absolute_url(),
        "source": "WEB_DESKTOP",
    }


def order_client(order: Order) -> dict[str, Any]:
    return _client(order.user, order.visitor_uuid, order.email)


def order_transaction(order: Order) -> dict[str, Any]:
    """Keyword arguments of ``django_synerise.events.Transaction`` for a placed order."""
    return {
        "order_id": str(order.pk),
        "currency": order.currency,
        "revenue": order.total,
        "products": [
            {
                "sku": line.product.sku,
                "name": line.product.name,
                "quantity": line.quantity,
                "finalUnitPrice": line.unit_price,
            }
            for line in order.cart.lines.select_related("product")
        ],
        "payment_info": {"method": "CASH_ON_DELIVERY"},
    }


def product_item(product: Product) -> dict[str, Any]:
    """A product as an item of the shop's Synerise catalog (AI recommendations use it)."""
    return {
        "title": product.name,
        "category": product.category,
        "price": product.price,
        "currency": settings.SHOP_CURRENCY,
        "link": product.get_absolute_url(),
    }


def track_shop_models() -> None:
    """Connect the model hooks; called from ``ShopConfig.ready()``."""
    track_catalog(Product, catalog=settings.SHOP_CATALOG, key="sku", value=product_item)
    track_model(
        CartLine,
        event_type="added-to-cart",
        client=cart_line_client,
        params=cart_line_params,
    )
    track_model(
        Order,
        event_type="transaction",
        client=order_client,
        transaction=order_transaction,
    )


def before_write(record: Event, request: Any) -> Event | None:
    """``SYNERISE["BEFORE_WRITE"]``: staff browsing the shop are not customers; e-mails in
    params are masked (the profile's own ``client.email`` identifies it already)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return None
    params = getattr(record, "params", None)
    if params and "email" in params:
        record = copy.copy(record)
        record.params = {**params, "email": "[masked]"}  # type: ignore[attr-defined]
    return record
