"""The pages the latency benchmark requests: a small template page and a JSON endpoint."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path

PRODUCTS = [{"name": f"Product {n}", "price": f"{n * 3 + 9}.99"} for n in range(12)]


def page(request: HttpRequest) -> HttpResponse:
    """A simple HTML page rendered from a template: what a page visit is."""
    return render(request, "bench/page.html", {"products": PRODUCTS})


def api(request: HttpRequest) -> JsonResponse:
    """A JSON endpoint: the middleware looks at it and tracks nothing."""
    return JsonResponse({"products": PRODUCTS})


urlpatterns = [
    path("page/", page),
    path("api/products/", api),
]
