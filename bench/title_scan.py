"""The cost of reading a page visit's title from the response: ``python -m bench.title_scan``.

Times :func:`django_synerise.titles.title_from_response` on HTML responses of several
sizes (title in the ``<head>``, as pages have it) and on a page without a title, where
the whole bounded scan is searched in vain. Prints one line per case, microseconds per
call (the median of 7 runs).
"""

from __future__ import annotations

import statistics
import timeit

import django
from django.conf import settings


def _page(body_bytes: int, title: bool = True) -> bytes:
    head = "<!doctype html><html><head><meta charset='utf-8'>"
    head += "<title>Mug &amp; saucer — Kitchen | Shop</title>" if title else ""
    head += "<link rel='stylesheet' href='/static/shop.css'></head><body>"
    filler = "<p>" + "x" * 70 + "</p>\n"
    return (head + filler * (body_bytes // len(filler)) + "</body></html>").encode()


def main() -> None:
    if not settings.configured:
        settings.configure(DEFAULT_CHARSET="utf-8")
        django.setup()
    from django.http import HttpResponse

    from django_synerise.titles import title_from_response

    cases = [
        ("2 KB page", _page(2_000)),
        ("100 KB page", _page(100_000)),
        ("1 MB page", _page(1_000_000)),
        ("100 KB page, no <title>", _page(100_000, title=False)),
    ]
    for name, body in cases:
        response = HttpResponse(body, content_type="text/html; charset=utf-8")
        number = 20_000
        runs = timeit.repeat(lambda r=response: title_from_response(r), number=number, repeat=7)
        print(f"{name:28s} {statistics.median(runs) / number * 1e6:6.2f} us per page visit")


if __name__ == "__main__":
    main()
