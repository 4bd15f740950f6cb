"""Pages for the template-tag and browser tests of the recommendation beacons."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

#: The recommendation frame and search results every beacon page shows.
CORRELATION_ID = "corr-7f3a"
CAMPAIGN_ID = "camp-42"
SEARCH_CORRELATION_ID = "search-91"
ITEMS = ["sku-1", "sku-2", "sku-3"]
SEARCH_HITS = ["hit-a", "hit-b"]
CSP_NONCE = "bmV2ZXItcmV1c2UtbWU"


def recommendations(request: HttpRequest) -> HttpResponse:
    """A long page: a spacer, a recommendation frame of three items, search results, a spacer."""
    return render(
        request,
        "beacon/recommendations.html",
        {
            "correlation_id": CORRELATION_ID,
            "campaign_id": CAMPAIGN_ID,
            "items": ITEMS,
            "search_correlation_id": SEARCH_CORRELATION_ID,
            "hits": SEARCH_HITS,
        },
    )


def strict_csp(request: HttpRequest) -> HttpResponse:
    """The tracking code and beacon script under a nonce-only policy, as django-csp sets it."""
    request.csp_nonce = CSP_NONCE  # type: ignore[attr-defined]
    response = render(request, "beacon/strict_csp.html")
    response["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'nonce-{CSP_NONCE}'; connect-src 'self'"
    )
    return response


def landing(request: HttpRequest, item_id: str) -> HttpResponse:
    """Where an item link leads."""
    return render(request, "beacon/landing.html", {"item_id": item_id})
