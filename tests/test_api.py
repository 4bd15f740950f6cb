"""The beacon endpoint: every rule of its contract, and a property test of random bodies."""

from __future__ import annotations

import io
import json
import logging
import unicodedata
from typing import Any

import pytest
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError
from django.test import Client, override_settings
from django.urls import reverse
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from django_synerise import outbox
from django_synerise.api.serializers import MAX_ID_LENGTH, MAX_POSITION
from django_synerise.api.throttling import BeaconRateThrottle
from django_synerise.api.views import BeaconView, normalize_origin
from django_synerise.exceptions import SyneriseConfigurationError
from django_synerise.models import OutboxEvent

pytestmark = pytest.mark.django_db

VISITOR = "0b6f1c1e-3d1a-4b8e-9f2a-7c5d4e3b2a10"
OTHER_VISITOR = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
ORIGIN = "http://testserver"
URL = "/synerise/beacon/"

VIEW = {
    "type": "recommendation.view",
    "correlationId": "corr-1",
    "campaignId": "camp-1",
    "items": ["sku-1", "sku-2", "sku-3"],
}
CLICK = {"type": "recommendation.click", "correlationId": "corr-1", "items": ["sku-2"]}
SEARCH_CLICK = {
    "type": "item.search.click",
    "correlationId": "s-1",
    "items": ["hit-b"],
    "position": 2,
}


def synerise(**overrides: Any) -> dict[str, Any]:
    from django.conf import settings as django_settings

    return {**django_settings.SYNERISE, **overrides}


@pytest.fixture(autouse=True)
def _fresh_throttle() -> None:
    cache.clear()


@pytest.fixture
def visitor() -> Client:
    """A browser of this site whose Synerise tracker has set the profile cookie."""
    client = Client()
    client.cookies["_snrs_uuid"] = VISITOR
    return client


def post(
    client: Client,
    body: Any,
    *,
    content_type: str = "text/plain;charset=UTF-8",
    origin: str | None = ORIGIN,
    **headers: str,
) -> Any:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    if origin is not None:
        headers.setdefault("HTTP_ORIGIN", origin)
    return client.post(URL, data=data, content_type=content_type, **headers)


def rows() -> list[OutboxEvent]:
    """The AI events in the outbox (a login in a test writes its own client.login row)."""
    return list(OutboxEvent.objects.filter(kind="ai").order_by("id"))


def test_route_name() -> None:
    assert reverse("django_synerise:beacon") == URL


# -- what gets written ----------------------------------------------------------------


def test_view_beacon_writes_one_ai_event_attributed_to_the_cookie(visitor: Client) -> None:
    response = post(visitor, VIEW)
    assert response.status_code == 204
    assert response.content == b""
    [row] = rows()
    assert (row.kind, row.batch_type, row.status) == ("ai", "recommendation.view", "pending")
    body = row.body
    assert body["clientUUID"] == VISITOR
    assert body["correlationId"] == "corr-1"
    assert body["campaignId"] == "camp-1"
    assert body["items"] == ["sku-1", "sku-2", "sku-3"]
    assert isinstance(body["eventTimestamp"], str)  # stored neutral, shaped when sent


def test_json_content_type_is_accepted_too(visitor: Client) -> None:
    assert post(visitor, CLICK, content_type="application/json").status_code == 204
    [row] = rows()
    assert row.batch_type == "recommendation.click"
    assert row.body["items"] == ["sku-2"]


def test_a_body_without_content_type_is_read_as_json(visitor: Client) -> None:
    response = visitor.generic(
        "POST", URL, json.dumps(CLICK).encode(), content_type="", HTTP_ORIGIN=ORIGIN
    )
    assert response.status_code == 204
    assert len(rows()) == 1


def test_search_click_keeps_its_position_where_the_api_has_one(visitor: Client) -> None:
    with override_settings(SYNERISE=synerise(AI_EVENTS_API="ai-compat")):
        assert post(visitor, SEARCH_CLICK).status_code == 204
    [row] = rows()
    assert row.batch_type == "item.search.click"
    assert row.body["items"] == ["hit-b"]
    assert row.body["position"] == 2
    assert row.body["searchType"] == "full-text-search"


def test_integer_ids_are_stored_as_strings(visitor: Client) -> None:
    body = {"type": "recommendation.view", "correlationId": 77, "items": [1, 2]}
    assert post(visitor, body).status_code == 204
    [row] = rows()
    assert row.body["correlationId"] == "77"
    assert row.body["items"] == ["1", "2"]


def test_a_view_may_have_no_items(visitor: Client) -> None:
    assert post(visitor, {"type": "recommendation.view", "correlationId": "c"}).status_code == 204
    assert rows()[0].body["items"] == []


def test_client_uuid_in_the_body_is_ignored(visitor: Client) -> None:
    spoofed = {**VIEW, "clientUUID": OTHER_VISITOR, "client": {"uuid": OTHER_VISITOR}}
    assert post(visitor, spoofed).status_code == 204
    [row] = rows()
    assert row.body["clientUUID"] == VISITOR
    assert OTHER_VISITOR not in row.payload
    assert row.client_key == f"uuid:{VISITOR}"


def test_client_uuid_in_the_body_does_not_stand_in_for_a_missing_cookie() -> None:
    response = post(Client(), {**VIEW, "clientUUID": OTHER_VISITOR})
    assert response.status_code == 204
    assert rows() == []


def test_no_cookie_means_no_row_and_a_debug_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="django_synerise.api"):
        response = post(Client(), VIEW)
    assert response.status_code == 204
    assert rows() == []
    assert any("no _snrs_uuid cookie" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "cookie",
    ["not-a-uuid", f"{VISITOR}<script>alert(1)</script>", f"{VISITOR} OR 1=1", f"{VISITOR}x"],
)
def test_a_malformed_cookie_counts_as_no_cookie(cookie: str) -> None:
    client = Client()
    client.cookies["_snrs_uuid"] = cookie
    assert post(client, VIEW).status_code == 204
    assert rows() == []


def test_nothing_is_written_when_synerise_is_disabled(visitor: Client) -> None:
    with override_settings(SYNERISE=synerise(ENABLED=False)):
        assert post(visitor, VIEW).status_code == 204
    assert rows() == []


# -- origin -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_ORIGIN": "http://testserver.evil.example"},
        {"HTTP_ORIGIN": "https://testserver"},  # another scheme is another origin
        {"HTTP_ORIGIN": "http://testserver:8080"},
        {"HTTP_ORIGIN": "null"},
        {"HTTP_ORIGIN": ""},
        {"HTTP_REFERER": "https://evil.example/page"},
        # Origin wins over a same-site Referer.
        {"HTTP_ORIGIN": "https://evil.example", "HTTP_REFERER": "http://testserver/page"},
        {},  # neither header
    ],
)
def test_cross_origin_beacons_are_refused(visitor: Client, headers: dict[str, str]) -> None:
    response = post(visitor, VIEW, origin=None, **headers)
    assert response.status_code == 403
    assert "Cross-origin" in response.json()["detail"]
    assert rows() == []


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ORIGIN": "http://testserver"},
        {"HTTP_ORIGIN": "HTTP://TestServer:80"},
        {"HTTP_REFERER": "http://testserver/shop/item/?q=1"},
    ],
)
def test_same_origin_beacons_are_accepted(visitor: Client, headers: dict[str, str]) -> None:
    assert post(visitor, VIEW, origin=None, **headers).status_code == 204
    assert len(rows()) == 1


def test_allowed_origins_are_accepted(visitor: Client) -> None:
    with override_settings(
        SYNERISE=synerise(
            BEACON_ALLOWED_ORIGINS=["https://shop.example/", "https://m.shop.example"]
        )
    ):
        assert post(visitor, VIEW, origin="https://shop.example").status_code == 204
        assert post(visitor, VIEW, origin="https://m.shop.example:443").status_code == 204
        assert post(visitor, VIEW, origin="https://other.example").status_code == 403
    assert len(rows()) == 2


@pytest.fixture
def refusal_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal log that has not reported yet in this process."""
    from django_synerise.api import views

    monkeypatch.setattr(views, "_refusals", views._RefusalLog())


def test_the_refusal_is_logged_with_the_origin(
    visitor: Client, caplog: pytest.LogCaptureFixture, refusal_log: None
) -> None:
    with caplog.at_level(logging.WARNING, logger="django_synerise.api"):
        post(visitor, VIEW, origin="https://evil.example")
    assert any("https://evil.example" in r.getMessage() for r in caplog.records)


def test_refused_beacons_are_throttled_and_logged_once_a_minute(
    visitor: Client, caplog: pytest.LogCaptureFixture, refusal_log: None
) -> None:
    """Before: no throttle for cross-origin posts, and one WARNING each (a log flood)."""
    with (
        override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE="5/min")),
        caplog.at_level(logging.WARNING, logger="django_synerise.api"),
    ):
        codes = [post(visitor, VIEW, origin="https://evil.example").status_code for _ in range(20)]
        # The refusals used the address's budget: its own pages are throttled too.
        assert post(visitor, VIEW).status_code == 429
    assert codes == [403] * 5 + [429] * 15
    warnings = [r for r in caplog.records if r.name == "django_synerise.api"]
    assert len(warnings) == 1
    assert rows() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Shop.Example", "https://shop.example"),
        ("https://shop.example:443/x?y", "https://shop.example"),
        ("http://shop.example:8000", "http://shop.example:8000"),
        ("http://user:pw@shop.example", "http://shop.example"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("ftp://shop.example", None),
        ("null", None),
        ("http://shop.example:99999", None),
        ("", None),
    ],
)
def test_normalize_origin(value: str, expected: str | None) -> None:
    assert normalize_origin(value) == expected


def test_no_csrf_token_is_needed_even_for_a_logged_in_user(django_user_model: Any) -> None:
    # sendBeacon cannot send a CSRF token; the same-origin check stands in for it.
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user("ann", password="pw"))
    client.cookies["_snrs_uuid"] = VISITOR
    assert post(client, VIEW).status_code == 204
    assert len(rows()) == 1


# -- size -------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_with_413(visitor: Client) -> None:
    body = {**VIEW, "items": ["x" * 200] * 90}
    assert len(json.dumps(body)) > 16384
    response = post(visitor, body)
    assert response.status_code == 413
    assert rows() == []


def test_the_limit_is_a_setting(visitor: Client) -> None:
    body = json.dumps({**VIEW, "items": [f"sku-{n}" for n in range(60)]})
    assert len(body) > 256
    with override_settings(SYNERISE=synerise(BEACON_MAX_BYTES=len(body))):
        assert post(visitor, body).status_code == 204
    with override_settings(SYNERISE=synerise(BEACON_MAX_BYTES=len(body) - 1)):
        assert post(visitor, body).status_code == 413
    assert len(rows()) == 1


def _asgi_request(body: bytes, headers: list[tuple[bytes, bytes]]) -> ASGIRequest:
    scope = {
        "type": "http",
        "method": "POST",
        "path": URL,
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"origin", ORIGIN.encode()), *headers],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
    }
    return ASGIRequest(scope, io.BytesIO(body))


@pytest.mark.parametrize(
    "length_header", [[], [(b"content-length", b"10")]], ids=["no length", "lying length"]
)
def test_the_actual_body_is_measured_not_only_content_length(
    length_header: list[tuple[bytes, bytes]],
) -> None:
    # Under ASGI the body arrives whole, whatever Content-Length said (or if it is absent).
    body = json.dumps({**VIEW, "items": ["x" * 200] * 90}).encode()
    request = _asgi_request(body, [(b"content-type", b"text/plain"), *length_header])
    request.COOKIES["_snrs_uuid"] = VISITOR
    response = BeaconView.as_view()(request)
    assert response.status_code == 413
    assert rows() == []


def test_a_declared_length_over_the_limit_is_refused_before_reading(visitor: Client) -> None:
    response = visitor.post(
        URL,
        data=json.dumps(VIEW),
        content_type="text/plain",
        HTTP_ORIGIN=ORIGIN,
        CONTENT_LENGTH="999999",
    )
    assert response.status_code == 413
    assert rows() == []


# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**VIEW, "type": "page.visit"}, "type"),
        ({**VIEW, "type": None}, "type"),
        ({k: v for k, v in VIEW.items() if k != "type"}, "type"),
        ({**VIEW, "correlationId": ""}, "correlationId"),
        ({**VIEW, "correlationId": "   "}, "correlationId"),
        ({**VIEW, "correlationId": None}, "correlationId"),
        ({**VIEW, "correlationId": True}, "correlationId"),
        ({**VIEW, "correlationId": 1.5}, "correlationId"),
        ({**VIEW, "correlationId": ["a"]}, "correlationId"),
        ({**VIEW, "correlationId": "c" * (MAX_ID_LENGTH + 1)}, "correlationId"),
        ({**VIEW, "correlationId": "bad\x00id"}, "correlationId"),
        ({**VIEW, "correlationId": "line\nbreak"}, "correlationId"),
        ({**VIEW, "campaignId": {"a": 1}}, "campaignId"),
        ({**VIEW, "items": "sku-1"}, "items"),
        ({**VIEW, "items": {"0": "sku-1"}}, "items"),
        ({**VIEW, "items": None}, "items"),
        ({**VIEW, "items": ["ok", ""]}, "items"),
        ({**VIEW, "items": ["ok", None]}, "items"),
        ({**VIEW, "items": ["i" * (MAX_ID_LENGTH + 1)]}, "items"),
        ({**CLICK, "items": []}, "items"),
        ({**CLICK, "items": ["a", "b"]}, "items"),
        ({k: v for k, v in SEARCH_CLICK.items() if k != "position"}, "position"),
        ({**SEARCH_CLICK, "position": 0}, "position"),
        ({**SEARCH_CLICK, "position": "2"}, "position"),
        ({**SEARCH_CLICK, "position": 2.0}, "position"),
        ({**SEARCH_CLICK, "position": True}, "position"),
        ({**SEARCH_CLICK, "position": MAX_POSITION + 1}, "position"),
    ],
)
def test_invalid_fields_get_400_with_field_errors(
    visitor: Client, body: dict[str, Any], field: str
) -> None:
    response = post(visitor, body)
    assert response.status_code == 400
    assert field in response.json()
    assert rows() == []


def test_too_many_items(visitor: Client) -> None:
    with override_settings(SYNERISE=synerise(BEACON_MAX_ITEMS=3)):
        assert post(visitor, VIEW).status_code == 204
        response = post(visitor, {**VIEW, "items": ["a", "b", "c", "d"]})
    assert response.status_code == 400
    assert "items" in response.json()
    assert len(rows()) == 1


def test_a_lone_surrogate_is_refused_not_crashed_on(visitor: Client) -> None:
    # Valid JSON, but a string that cannot be encoded as UTF-8 for the outbox row.
    response = post(visitor, '{"type":"recommendation.view","correlationId":"\\ud800"}')
    assert response.status_code == 400
    assert "correlationId" in response.json()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe{}",
        b"[]",
        b'"recommendation.view"',
        b"null",
        b'{"type": "recommendation.view", "correlationId": NaN}',
        b'{"type": "recommendation.view", "correlationId": "c", "items": [Infinity]}',
        b"[" * 8000 + b"]" * 8000,
        b'{"correlationId": ' + b"9" * 5000 + b"}",
    ],
    ids=[
        "empty",
        "text",
        "bad utf-8",
        "array",
        "string",
        "null",
        "NaN",
        "Infinity",
        "deep nesting",
        "huge integer",
    ],
)
def test_bodies_that_are_not_a_json_object_get_400(visitor: Client, raw: bytes) -> None:
    response = post(visitor, raw)
    assert response.status_code == 400
    assert "non_field_errors" in response.json() or response.json()
    assert rows() == []


def test_other_content_types_get_415(visitor: Client) -> None:
    response = visitor.post(
        URL, data={"type": "recommendation.view"}, HTTP_ORIGIN=ORIGIN
    )  # multipart/form-data
    assert response.status_code == 415
    assert rows() == []


@pytest.mark.parametrize("method", ["get", "put", "delete", "options"])
def test_only_post(visitor: Client, method: str) -> None:
    assert getattr(visitor, method)(URL, HTTP_ORIGIN=ORIGIN).status_code == 405


def test_an_error_quoting_a_lone_surrogate_is_a_400_not_a_500(visitor: Client) -> None:
    # Found by the property test of tests/delivery/test_properties.py: the "not a valid choice"
    # message quotes the type, which UTF-8 cannot encode.
    response = post(visitor, '{"type": "\\ud800", "correlationId": "c-1"}')
    assert response.status_code == 400
    assert response.content.isascii()
    assert json.loads(response.content)["type"] == ['"\ud800" is not a valid choice.']
    assert rows() == []


def test_answers_are_json_whatever_accept_says(visitor: Client) -> None:
    response = post(visitor, {"type": "nope"}, HTTP_ACCEPT="text/html")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"


# -- throttling -------------------------------------------------------------------------


def test_throttled_per_client_address(visitor: Client) -> None:
    with override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE="2/min")):
        assert post(visitor, VIEW).status_code == 204
        assert post(visitor, VIEW).status_code == 204
        response = post(visitor, VIEW)
        assert response.status_code == 429
        assert int(response["Retry-After"]) > 0
        # Another address has its own budget.
        assert post(visitor, VIEW, REMOTE_ADDR="10.0.0.2").status_code == 204
    assert len(rows()) == 3


def test_the_rate_is_read_at_request_time(visitor: Client) -> None:
    # The view class was imported long before this override: the rate must still follow it.
    with override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE="1/hour")):
        assert post(visitor, VIEW).status_code == 204
        assert post(visitor, VIEW).status_code == 429
    with override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE="5/hour")):
        assert post(visitor, VIEW).status_code == 204


def test_throttle_keys_are_hashed_so_a_huge_forwarded_for_is_no_500(visitor: Client) -> None:
    """Before: the key held X-Forwarded-For verbatim; 230+ characters broke memcached's limit."""
    from django.core.cache.backends.base import BaseCache

    keys: list[str] = []
    original = BaseCache.validate_key

    def strict(self: BaseCache, key: str) -> None:
        keys.append(key)
        if len(key) > 250:
            raise AssertionError(f"cache key of {len(key)} characters")
        original(self, key)

    forwarded = ", ".join(f"10.{i // 256}.{i % 256}.1" for i in range(40))  # ~500 characters
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseCache, "validate_key", strict)
        for proxies in (None, 1, 3):
            with override_settings(SYNERISE=synerise(NUM_PROXIES=proxies)):
                assert post(visitor, VIEW, HTTP_X_FORWARDED_FOR=forwarded).status_code == 204
                assert post(visitor, VIEW, HTTP_X_FORWARDED_FOR="x" * 5000).status_code == 204
    assert keys and all("10.0" not in key and "127.0.0.1" not in key for key in keys)


def test_a_rotating_forwarded_for_does_not_escape_the_throttle(visitor: Client) -> None:
    """Before: DRF's get_ident trusted X-Forwarded-For: 600 of 600 beacons were written."""
    with override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE="10/min")):
        codes = [
            post(visitor, VIEW, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
            for n in range(60)
        ]
    assert codes.count(204) == 10
    assert len(rows()) == 10


def test_declared_proxies_make_the_forwarded_address_count(visitor: Client) -> None:
    with override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE="1/min", NUM_PROXIES=1)):
        assert post(visitor, VIEW, HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 204
        assert post(visitor, VIEW, HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 429
        # Behind one proxy, only the last hop is trusted: a forged first hop changes nothing.
        forged = "198.51.100.7, 203.0.113.1"
        assert post(visitor, VIEW, HTTP_X_FORWARDED_FOR=forged).status_code == 429
        assert post(visitor, VIEW, HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 204


def test_a_malformed_rate_names_the_setting(visitor: Client) -> None:
    with (
        override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE="lots")),
        pytest.raises(SyneriseConfigurationError, match=r'BEACON_THROTTLE_RATE"\] must look like'),
    ):
        post(visitor, VIEW)


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        ("120/min", (120, 60)),
        ("5/hours", (5, 3600)),
        ("100/minutes", (100, 60)),
        ("3/seconds", (3, 1)),
        ("2/m", (2, 60)),
        ("1000/days", (1000, 86400)),
        ("0/day", (0, 86400)),
        (" 7 / hour ", (7, 3600)),
    ],
)
def test_every_rate_drf_reads_is_accepted(rate: str, expected: tuple[int, int]) -> None:
    with override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE=rate)):
        throttle = BeaconRateThrottle()
    assert (throttle.num_requests, throttle.duration) == expected


def test_a_plural_period_throttles_like_drf(visitor: Client) -> None:
    with override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE="2/minutes")):
        assert [post(visitor, VIEW).status_code for _ in range(3)] == [204, 204, 429]


def test_the_projects_drf_rate_for_the_scope_wins(visitor: Client) -> None:
    drf = {"DEFAULT_THROTTLE_RATES": {"synerise_beacon": "1/hours"}}
    with (
        override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE="100/min")),
        override_settings(REST_FRAMEWORK=drf),
    ):
        assert post(visitor, VIEW).status_code == 204
        assert post(visitor, VIEW).status_code == 429
    cache.clear()
    # Other scopes in REST_FRAMEWORK leave SYNERISE["BEACON_THROTTLE_RATE"] in charge.
    others = {"DEFAULT_THROTTLE_RATES": {"anon": "1/min", "user": "1/min"}}
    with (
        override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE="2/min")),
        override_settings(REST_FRAMEWORK=others),
    ):
        assert [post(visitor, VIEW).status_code for _ in range(3)] == [204, 204, 429]


def test_a_drf_rate_of_none_turns_the_throttle_off(visitor: Client) -> None:
    drf = {"DEFAULT_THROTTLE_RATES": {"synerise_beacon": None}}
    with (
        override_settings(SYNERISE=synerise(BEACON_THROTTLE_RATE="1/hour")),
        override_settings(REST_FRAMEWORK=drf),
    ):
        assert [post(visitor, VIEW).status_code for _ in range(3)] == [204, 204, 204]


def test_a_malformed_drf_rate_names_the_drf_setting(visitor: Client) -> None:
    drf = {"DEFAULT_THROTTLE_RATES": {"synerise_beacon": "lots/min"}}
    with (
        override_settings(REST_FRAMEWORK=drf),
        pytest.raises(
            SyneriseConfigurationError,
            match=r'REST_FRAMEWORK\["DEFAULT_THROTTLE_RATES"\]\["synerise_beacon"\] must look like',
        ),
    ):
        post(visitor, VIEW)


# -- failures of the outbox -------------------------------------------------------------


def _broken_enqueue(event: Any, **kwargs: Any) -> None:
    raise DatabaseError("database is locked")


def test_an_outbox_failure_is_logged_and_answered_503(
    visitor: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(outbox, "enqueue", _broken_enqueue)
    with (
        override_settings(SYNERISE=synerise(RAISE_ERRORS=False)),
        caplog.at_level(logging.ERROR, logger="django_synerise.api"),
    ):
        response = post(visitor, VIEW)
    assert response.status_code == 503
    [record] = [r for r in caplog.records if r.name == "django_synerise.api"]
    assert "Could not write" in record.getMessage()
    assert record.synerise_action == "recommendation.view"  # type: ignore[attr-defined]


def test_an_outbox_failure_is_raised_with_raise_errors(
    visitor: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "enqueue", _broken_enqueue)
    with pytest.raises(DatabaseError):
        post(visitor, VIEW)


# -- property: random bodies ------------------------------------------------------------


REFUSED_CATEGORIES = ("Cc", "Cs", "Cf", "Zl", "Zp", "Co")


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return False
    text = str(value)
    return (
        bool(text.strip())
        and len(text) <= MAX_ID_LENGTH
        and not any(unicodedata.category(c) in REFUSED_CATEGORIES for c in text)
    )


def _expected_valid(raw: bytes) -> bool:
    """The contract, written independently of the serializer."""

    def refuse(name: str) -> None:
        raise ValueError(name)

    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=refuse)
    except (ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    event_type = data.get("type")
    if event_type not in ("recommendation.view", "recommendation.click", "item.search.click"):
        return False
    if not _valid_id(data.get("correlationId")):
        return False
    if data.get("campaignId") is not None and not _valid_id(data["campaignId"]):
        return False
    items = data.get("items", [])
    if not isinstance(items, list) or len(items) > 100 or not all(map(_valid_id, items)):
        return False
    if len({str(item) for item in items}) != len(items):
        return False
    if event_type != "recommendation.view" and len(items) != 1:
        return False
    position = data.get("position")
    if position is not None and (
        isinstance(position, bool)
        or not isinstance(position, int)
        or not 1 <= position <= MAX_POSITION
    ):
        return False
    return not (event_type == "item.search.click" and position is None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ids = st.one_of(
    st.text(max_size=12),
    st.text(min_size=250, max_size=260),
    st.integers(),
    st.sampled_from(["sku-1", " ", "", "\x00", "\ud800", "é😀", "a\u200bb"]),
    json_values,
)
structured = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["recommendation.view", "recommendation.click", "item.search.click", "x", ""]
        )
        | json_values,
        "correlationId": ids,
        "campaignId": ids | st.none(),
        "items": st.lists(ids, max_size=4)
        | st.lists(st.just("i"), min_size=99, max_size=102)
        | json_values,
        "position": st.integers(min_value=-2, max_value=MAX_POSITION + 2) | json_values,
        "clientUUID": st.uuids().map(str) | json_values,
    },
)


valid_ids = st.integers(min_value=-(10**12), max_value=10**12) | st.text(
    st.characters(exclude_categories=REFUSED_CATEGORIES), min_size=1, max_size=MAX_ID_LENGTH
).filter(str.strip)


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A valid beacon with random ids, sometimes with one field replaced or removed."""
    event_type = draw(
        st.sampled_from(["recommendation.view", "recommendation.click", "item.search.click"])
    )
    body: dict[str, Any] = {"type": event_type, "correlationId": draw(valid_ids)}
    if event_type == "recommendation.view":
        body["items"] = draw(st.lists(valid_ids, max_size=100, unique_by=str))
    else:
        body["items"] = [draw(valid_ids)]
    if draw(st.booleans()):
        body["campaignId"] = draw(valid_ids)
    if event_type == "item.search.click":
        body["position"] = draw(st.integers(min_value=1, max_value=MAX_POSITION))
    fields = ["type", "correlationId", "campaignId", "items", "position"]
    field = draw(st.sampled_from([None] * len(fields) + fields))
    if field is not None:
        if draw(st.booleans()):
            body.pop(field, None)
        else:
            body[field] = draw(structured.map(lambda d: d.get(field)) | ids | json_values)
    return body


# Half near-valid beacons (the edges of the rules), half anything at all.
bodies = st.one_of(
    near_valid().map(lambda d: json.dumps(d).encode()),
    st.one_of(
        structured.map(lambda d: json.dumps(d).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=64),
        st.text(max_size=64).map(lambda s: s.encode("utf-8", "surrogatepass")),
    ),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=bodies, content_type=st.sampled_from(["text/plain;charset=UTF-8", "application/json"]))
def test_random_bodies_never_5xx_and_never_write_invalid_input(
    visitor: Client, raw: bytes, content_type: str
) -> None:
    cache.clear()
    OutboxEvent.objects.all().delete()
    response = post(visitor, raw, content_type=content_type)
    too_large = len(raw) > 16384
    valid = not too_large and _expected_valid(raw)
    event("too large" if too_large else "valid" if valid else "invalid")
    assert response.status_code < 500
    expected = 413 if too_large else 204 if valid else 400
    assert response.status_code == expected, (raw, response.content)
    written = rows()
    assert len(written) == (1 if valid else 0)
    if valid:
        assert written[0].body["clientUUID"] == VISITOR


# -- hostile ids, consent and identity (the security review) ------------------------------


@pytest.mark.parametrize(
    "item",
    [
        "sku\u200b1",  # zero-width space
        "\u202esku-1",  # right-to-left override
        "sku-1\u2066",  # left-to-right isolate
        "\ufeffsku-1",  # byte-order mark
        "sku\u2028-1",  # line separator
        "sku-\ue000",  # private use
    ],
)
def test_invisible_and_bidi_characters_are_refused_in_ids(visitor: Client, item: str) -> None:
    """Before: accepted, so a forged id could look like a real one in Synerise."""
    for body in (
        {**VIEW, "items": [item]},
        {**CLICK, "items": [item]},
        {**VIEW, "correlationId": item},
        {**VIEW, "campaignId": item},
    ):
        response = post(visitor, body)
        assert response.status_code == 400, body
    assert rows() == []


def test_repeated_items_are_refused(visitor: Client) -> None:
    """Before: ["sku-1", "sku-1", ...] was written as it came."""
    response = post(visitor, {**VIEW, "items": ["sku-1", "sku-2", "sku-1"]})
    assert response.status_code == 400
    assert response.json() == {"items": ["Each item may appear only once."]}
    assert post(visitor, {**VIEW, "items": [7, "7"]}).status_code == 400
    assert rows() == []


def refuse_everyone(request: Any) -> bool:
    return False


def consent_cookie(request: Any) -> bool:
    return request.COOKIES.get("consent") == "yes"


def no_client(request: Any) -> None:
    return None


def account_uuid(request: Any) -> dict[str, Any]:
    return {"uuid": OTHER_VISITOR, "customId": "42"}


def test_beacons_honour_consent_gpc_and_dnt(visitor: Client) -> None:
    """Before: page visits stopped, beacons were still written."""
    assert post(visitor, VIEW, HTTP_SEC_GPC="1").status_code == 204
    with override_settings(SYNERISE=synerise(RESPECT_DNT=True)):
        assert post(visitor, VIEW, HTTP_DNT="1").status_code == 204
    with override_settings(SYNERISE=synerise(CONSENT="tests.test_api.refuse_everyone")):
        assert post(visitor, VIEW).status_code == 204
    assert rows() == []
    with override_settings(SYNERISE=synerise(CONSENT="tests.test_api.consent_cookie")):
        assert post(visitor, VIEW).status_code == 204
        assert rows() == []
        visitor.cookies["consent"] = "yes"
        assert post(visitor, VIEW).status_code == 204
    assert len(rows()) == 1


def test_beacons_follow_the_client_resolver(visitor: Client) -> None:
    """Before: BeaconView read the cookie and never called CLIENT_RESOLVER."""
    with override_settings(SYNERISE=synerise(CLIENT_RESOLVER="tests.test_api.no_client")):
        assert post(visitor, VIEW).status_code == 204
    assert rows() == []
    with override_settings(SYNERISE=synerise(CLIENT_RESOLVER="tests.test_api.account_uuid")):
        assert post(visitor, VIEW).status_code == 204
    [row] = OutboxEvent.objects.all()
    assert OTHER_VISITOR in row.payload and VISITOR not in row.payload


def test_beacons_are_dropped_and_counted_over_max_pending(
    visitor: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "_backlog", outbox._Backlog())
    with override_settings(SYNERISE=synerise(MAX_PENDING=2)):
        codes = [post(visitor, VIEW).status_code for _ in range(3)]
        assert len(rows()) == 3  # counted once, at the first write: still below the cap
        outbox._backlog.checked_at = float("-inf")  # the next write counts again
        codes += [post(visitor, VIEW).status_code for _ in range(2)]
    assert codes == [204] * 5
    assert len(rows()) == 3
    assert outbox.health().dropped == 2


def test_an_autocomplete_click_says_so(visitor: Client) -> None:
    assert post(visitor, {**SEARCH_CLICK, "searchType": "autocomplete"}).status_code == 204
    assert rows()[0].body["searchType"] == "autocomplete"
    response = post(visitor, {**SEARCH_CLICK, "searchType": "voice"})
    assert response.status_code == 400
    assert "searchType" in response.json()
