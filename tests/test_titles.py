"""A page visit's title from the HTML response's <title>: HTML only, a bounded scan."""

from __future__ import annotations

import pytest
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from django_synerise.titles import MAX_TITLE_CHARS, SCAN_BYTES, title_from_response


def html(body: str | bytes, content_type: str = "text/html; charset=utf-8") -> HttpResponse:
    return HttpResponse(body, content_type=content_type)


@pytest.mark.parametrize(
    ("body", "title"),
    [
        ("<!doctype html><html><head><title>Mugs</title></head></html>", "Mugs"),
        ("<TITLE lang='en'>Mugs &amp; cups</TITLE>", "Mugs & cups"),
        ("<title>\n   Mugs\n\t| Shop  </title >", "Mugs | Shop"),
        ("<title></title><p>x</p>", None),
        ("<title>   </title>", None),
        ("<h1>No title</h1>", None),
        ("<title>unclosed", None),
        ("<titles>not one</titles>", None),
    ],
)
def test_the_title_is_read_from_the_html(body, title):
    assert title_from_response(html(body)) == title


def test_only_html_responses_are_read():
    assert title_from_response(JsonResponse({"title": "<title>x</title>"})) is None
    assert title_from_response(html("<title>x</title>", "text/plain")) is None
    streaming = StreamingHttpResponse(iter([b"<title>x</title>"]), content_type="text/html")
    assert title_from_response(streaming) is None
    # Reading it would consume the stream the client is owed.
    assert b"".join(streaming.streaming_content) == b"<title>x</title>"


def test_the_scan_is_bounded():
    late = "<!doctype html>" + " " * SCAN_BYTES + "<title>Too late</title>"
    assert title_from_response(html(late)) is None
    assert title_from_response(html(f"<title>{'x' * 2000}</title>")) == "x" * MAX_TITLE_CHARS


def test_the_response_charset_is_used():
    body = "<title>Zażółć</title>".encode("iso-8859-2")
    assert title_from_response(html(body, "text/html; charset=iso-8859-2")) == "Zażółć"
    assert title_from_response(html(body, "text/html; charset=no-such-codec")) is not None


def test_a_page_visit_takes_the_title_and_set_page_title_wins(client, settings):
    """Through the middleware: the plain page says <title>Test</title>; the titled view sets one."""
    import json

    from django_synerise.models import OutboxEvent

    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django_synerise.middleware.PageVisitMiddleware"]
    client.cookies["_snrs_uuid"] = "e0097757-d1e2-44ac-ba3c-d97979a354c1"
    client.get("/producers/pages/plain/")
    client.get("/producers/pages/titled/")
    titles = [
        json.loads(row.payload)["params"].get("title") for row in OutboxEvent.objects.order_by("id")
    ]
    assert titles[0] == "Test"
    assert titles[1] not in (None, "Test")


pytestmark = pytest.mark.django_db
