"""The local Synerise stand-in, exercised over real HTTP with ``requests``."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import time_machine

from django_synerise import events
from django_synerise.testing import LocalSynerise
from django_synerise.testing import server as server_module
from django_synerise.testing.pytest_plugin import (  # noqa: F401 - fixtures used by name
    synerise_server,
    synerise_stand_in,
)

UTC = dt.timezone.utc
CLIENT_UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"
JSON = {"Content-Type": "application/json"}
V4 = {"Content-Type": "application/json", "Api-Version": "4.4"}


@pytest.fixture
def server() -> Iterator[LocalSynerise]:
    with LocalSynerise(seed=7) as stand_in:
        yield stand_in


def login(server: LocalSynerise, session: Any = requests) -> str:
    response = session.post(
        server.url + "/uauth/v2/auth/login/profile",
        data=json.dumps({"apiKey": server.api_key}),
        headers=V4,
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def post(
    server: LocalSynerise,
    path: str,
    body: Any,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    session: Any = requests,
    timeout: float = 5,
) -> requests.Response:
    """POST ``body`` (JSON-encoded unless bytes) with v4 headers and a fresh token."""
    sent = dict(V4)
    if path.startswith(("/v4/", "/uauth/")) and "?token=" not in path:
        sent["Authorization"] = f"Bearer {token or server.issue_token()}"
    sent.update(headers or {})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return session.post(server.url + path, data=data, headers=sent, timeout=timeout)  # type: ignore[no-any-return]


def ai_path(server: LocalSynerise, path: str) -> str:
    return f"{path}?token={server.tracker_key}"


def custom(action: str = "dog.bark", **extra: Any) -> dict[str, Any]:
    body = {
        "type": "custom",
        "action": action,
        "client": {"customId": "c-1"},
        "label": action,
        "time": "2022-11-28T12:18:27Z",
        "eventSalt": str(uuid.uuid4()),
    }
    body.update(extra)
    return body


def ai_item(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "correlationId": "5b0a0fcd-e76b-425c-b9e8-7d6d7bd4a79b",
        "clientUUID": CLIENT_UUID,
        "items": ["89435879453"],
        # ISO 8601: what both AI APIs accept (ai-compat takes nothing else).
        "eventTimestamp": "2022-12-08T13:23:22Z",
    }
    body.update(extra)
    return body


def transaction(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client": {"email": "a@example.com"},
        "orderId": "order-1",
        "recordedAt": "2022-11-28T12:18:27.123Z",
        "revenue": {"amount": 13.0, "currency": "PLN"},
        "value": {"amount": 13.0, "currency": "PLN"},
        "products": [
            {
                "sku": "SKU-1",
                "name": "Socks",
                "quantity": 2,
                "finalUnitPrice": {"amount": 6.5, "currency": "PLN"},
            }
        ],
        "eventSalt": str(uuid.uuid4()),
    }
    body.update(extra)
    return body


def assert_error(response: requests.Response, status: int, field: str | None, text: str) -> None:
    """The response is Synerise's error body with ``status``, naming ``field``, saying ``text``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "errors", "message", "path", "status", "timestamp"}
    assert body["status"] == status
    assert body["path"] == response.request.path_url.split("?")[0]
    uuid.UUID(response.headers["X-Request-Id"])
    if field is None:
        assert text in body["message"], body
    else:
        matching = [e for e in body["errors"] if e["field"] == field]
        assert matching, body
        assert text in matching[0]["message"], body


# -- the vocabulary agrees with the event model ------------------------------------------


def test_vocabulary_matches_the_event_model() -> None:
    assert dict(server_module.DEDICATED_EVENT_TYPES) == events.DEDICATED_EVENT_TYPES
    assert set(events.AI_EVENT_TYPES) == server_module.AI_EVENT_TYPES


def test_server_module_runs_without_django() -> None:
    code = (
        "import sys; import django_synerise.testing.server as s; "
        "print(any(m == 'django' or m.startswith('django.') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "False"


# -- life cycle ----------------------------------------------------------------------------


def test_start_stop_and_url() -> None:
    stand_in = LocalSynerise()
    with pytest.raises(RuntimeError, match="start"):
        stand_in.url
    assert stand_in.start() is stand_in
    assert stand_in.url.startswith("http://127.0.0.1:")
    assert stand_in.port > 0
    response = requests.get(stand_in.url + "/__local__/health", timeout=5)
    assert response.json() == {"status": "ok"}
    stand_in.stop()
    stand_in.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{stand_in.port}/__local__/health", timeout=2)


def test_given_port() -> None:
    with LocalSynerise() as first:
        port = first.port
    with LocalSynerise(port=port) as second:
        assert second.url == f"http://127.0.0.1:{port}"


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="record"):
        LocalSynerise(record="everything")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2xx"):
        LocalSynerise(success_status={"events": 400})
    with pytest.raises(ValueError, match="family"):
        LocalSynerise(success_status={"v5": 200})


# -- login and auth ------------------------------------------------------------------------


def test_login_returns_a_jwt_with_exp() -> None:
    with LocalSynerise(token_ttl=600) as stand_in:
        before = time.time()
        token = login(stand_in)
        header, payload, signature = token.split(".")
        assert signature
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"]
        assert before + 599 <= claims["exp"] <= time.time() + 601
        assert stand_in.logins == 1
        assert post(stand_in, "/v4/events/batch", [custom()], token=token).status_code == 202


def test_login_with_a_wrong_key_is_401(server: LocalSynerise) -> None:
    response = requests.post(
        server.url + "/uauth/v2/auth/login/profile",
        data=json.dumps({"apiKey": "nope"}),
        headers=V4,
        timeout=5,
    )
    assert_error(response, 401, None, "Invalid API key")


def test_login_needs_api_version_and_json(server: LocalSynerise) -> None:
    url = server.url + "/uauth/v2/auth/login/profile"
    body = json.dumps({"apiKey": server.api_key})
    assert_error(requests.post(url, data=body, headers=JSON, timeout=5), 400, None, "Api-Version")
    response = requests.post(
        url, data=body, headers={"Api-Version": "4.4", "Content-Type": "text/plain"}, timeout=5
    )
    assert_error(response, 415, None, "application/json")
    response = requests.post(url, data=b'{"key": "x"}', headers=V4, timeout=5)
    assert_error(response, 400, "apiKey", "required")


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Missing Authorization"),
        ("Bearer not-a-token", "Invalid token"),
        ("Token abc", "Unsupported authorization scheme"),
        ("Basic " + base64.b64encode(b"guid:test-api-key").decode(), "not enabled"),
    ],
)
def test_v4_calls_need_valid_auth(
    server: LocalSynerise, authorization: str | None, message: str
) -> None:
    headers = dict(V4)
    if authorization:
        headers["Authorization"] = authorization
    response = requests.post(
        server.url + "/v4/events/batch", data=json.dumps([custom()]), headers=headers, timeout=5
    )
    assert_error(response, 401, None, message)
    assert server.count == 0


def test_expired_token_is_401() -> None:
    with LocalSynerise(token_ttl=60) as stand_in:
        token = login(stand_in)
        with time_machine.travel(dt.datetime.now(UTC) + dt.timedelta(seconds=61), tick=True):
            response = post(stand_in, "/v4/events/batch", [custom()], token=token)
            assert_error(response, 401, None, "Token expired")
            assert post(stand_in, "/v4/events/batch", [custom()], token=login(stand_in)).ok


def test_basic_auth_when_workspace_guid_is_set() -> None:
    with LocalSynerise(workspace_guid="ws-guid", api_key="k1") as stand_in:
        good = "Basic " + base64.b64encode(b"ws-guid:k1").decode()
        bad = "Basic " + base64.b64encode(b"ws-guid:k2").decode()
        url = stand_in.url + "/v4/events/batch"
        body = json.dumps([custom()])
        response = requests.post(url, data=body, headers={**V4, "Authorization": good}, timeout=5)
        assert response.status_code == 202
        response = requests.post(url, data=body, headers={**V4, "Authorization": bad}, timeout=5)
        assert_error(response, 401, None, "Invalid workspace credentials")
        response = requests.post(
            url, data=body, headers={**V4, "Authorization": "Basic %%%"}, timeout=5
        )
        assert_error(response, 401, None, "Malformed")
        assert stand_in.requests[0].headers["authorization"] == "Basic <redacted>"


def test_ai_calls_need_the_tracker_key(server: LocalSynerise) -> None:
    body = {"eventType": "recommendation.view", "items": [ai_item()]}
    response = requests.post(
        server.url + "/events/v1/batch", data=json.dumps(body), headers=JSON, timeout=5
    )
    assert_error(response, 401, None, "Missing token")
    response = requests.post(
        server.url + "/events/v1/batch?token=wrong", data=json.dumps(body), headers=JSON, timeout=5
    )
    assert_error(response, 403, None, "Invalid tracker key")
    # A workspace JWT is the other documented way in.
    response = requests.post(
        server.url + "/events/v1/batch",
        data=json.dumps(body),
        headers={**JSON, "Authorization": f"Bearer {server.issue_token()}"},
        timeout=5,
    )
    assert response.status_code == 200
    assert server.requests[1].query == {"token": "<redacted>"}


# -- accepted requests ---------------------------------------------------------------------


MUG = {"sku": "A-1", "name": "Mug", "quantity": 2, "finalUnitPrice": 9.5, "regularPrice": 12}


def shop_event(name: str, client: dict[str, Any]) -> events.DedicatedEvent:
    """A valid event of dedicated type ``name``: from its builder where it has one."""
    builders: dict[str, Callable[[], events.DedicatedEvent]] = {
        "added-to-cart": lambda: events.add_to_cart(client=client, product=MUG, currency="PLN"),
        "removed-from-cart": lambda: events.remove_from_cart(
            client=client, product=MUG, currency="PLN"
        ),
        "added-to-favorites": lambda: events.add_to_favorites(
            client=client, product=MUG, currency="PLN"
        ),
        "product-view": lambda: events.product_view(
            client=client, product=MUG, currency="PLN", source="WEB_MOBILE"
        ),
        "cancelled-transaction": lambda: events.cancelled_transaction(
            client=client, order_id="A-7", products=[MUG], currency="PLN"
        ),
        "item-search-click": lambda: events.item_search_click(
            client=client, correlation_id="c-1", item="A-1", position=3, search_type="autocomplete"
        ),
    }
    if name in builders:
        return builders[name]()
    return events.DedicatedEvent(name, client=client, params={"sku": "A-1"})


def event_model_batch() -> list[events.Event]:
    client = {"customId": "42", "email": "jane@example.com"}
    built: list[events.Event] = [
        events.CustomEvent("dog.bark", client=client, params={"loudness": 3, "mood": None}),
        events.page_visit(client={"uuid": CLIENT_UUID}, url="https://shop.example/", title="Home"),
        events.cart_status(client=client, products=[MUG], currency="PLN"),
    ]
    built += [shop_event(name, {"id": 5092159999}) for name in events.DEDICATED_EVENT_TYPES]
    return built


def test_v4_batch_accepts_what_the_event_model_builds(server: LocalSynerise) -> None:
    built = event_model_batch()
    response = post(server, "/v4/events/batch", [e.to_payload() for e in built])
    assert response.status_code == 202, response.text
    assert response.content == b""
    uuid.UUID(response.headers["X-Request-Id"])
    assert server.count == len(built)
    recorded = server.events_of(endpoint="v4-batch")
    assert [(r["type"], r["action"], r["salt"]) for r in recorded] == [
        (e.batch_type, e.action, e.salt) for e in built
    ]
    assert recorded[0]["body"]["params"] == {"loudness": 3}
    assert not any(r["time_replaced"] for r in recorded)
    assert server.summary()["v4-batch"]["custom"] == 3
    assert server.summary()["v4-batch"]["push/viewed"] == 1


def test_v4_single_custom_and_dedicated_endpoints(server: LocalSynerise) -> None:
    event = events.CustomEvent("dog.bark", client={"customId": "1"})
    assert post(server, "/v4/events/custom", event.to_payload()).status_code == 202
    payload = event.to_payload()
    del payload["type"]
    assert post(server, "/v4/events/custom", payload).status_code == 202
    for name in ("added-to-cart", "push/viewed"):
        dedicated = shop_event(name, {"customId": "1"})
        response = post(server, f"/v4/events/{name}", dedicated.to_payload())
        assert response.status_code == 202, response.text
    assert server.summary() == {
        "v4-custom": {"custom": 2},
        "v4-dedicated": {"added-to-cart": 1, "push/viewed": 1},
    }
    assert server.events_of(type="push/viewed")[0]["action"] == "push.view"


def test_iso_8601_time_forms_are_accepted(server: LocalSynerise) -> None:
    times = [
        "2022-05-23T13:00:00Z",
        "2022-05-23T09:00:00-04:00",
        "2022-05-23T07:00:00-0600",
        "2022-05-23T13:00:00.176Z",
        "2022-05-23T13:00Z",
    ]
    response = post(server, "/v4/events/batch", [custom(time=t) for t in times])
    assert response.status_code == 202, response.text


def test_portable_iso_parser_agrees() -> None:
    for text in ("2022-05-23T09:00:00-04:00", "2022-05-23T13:00:00.5Z", "2022-05-23T13:00+0130"):
        assert server_module._parse_iso_portable(text) == server_module._parse_iso(text)
    assert server_module._parse_iso_portable("2022-02-30T00:00:00Z") is None
    assert server_module._parse_iso_portable("2022-05-23T13:00:00+25:00") is None


def test_future_time_is_accepted_and_flagged(server: LocalSynerise) -> None:
    future = events.format_time(dt.datetime.now(UTC) + dt.timedelta(hours=1))
    response = post(server, "/v4/events/batch", [custom(time=future), custom()])
    assert response.status_code == 202
    assert [e["time_replaced"] for e in server.events] == [True, False]


def test_transactions_single_and_batch(server: LocalSynerise) -> None:
    built = events.Transaction(
        client={"customId": "7"},
        order_id="A-1",
        products=[{"sku": "S1", "name": "Shoe", "quantity": 2, "finalUnitPrice": 19.99}],
        currency="EUR",
        payment_info={"method": "CARD"},
        metadata={"coupon": "X"},
    )
    assert post(server, "/v4/transactions", built.to_payload()).status_code == 202
    response = post(server, "/v4/transactions/batch", [built.to_payload(), transaction()])
    assert response.status_code == 202, response.text
    assert server.summary() == {
        "transactions": {"transaction": 1},
        "transactions-batch": {"transaction": 2},
    }
    assert server.events[0]["salt"] == built.salt
    assert server.events[0]["action"] == "transaction.charge"


@pytest.mark.parametrize("api", ["events-v1", "ai-compat"])
@pytest.mark.parametrize("stamp", ["unix-ms", "iso8601"])
def test_ai_events_from_the_event_model(server: LocalSynerise, api: str, stamp: str) -> None:
    for event_type in events.AI_EVENT_TYPES:
        built = [
            events.AIEvent(
                event_type,
                correlation_id=f"corr-{n}",
                client_uuid=CLIENT_UUID,
                items=["1", 2],
                campaign_id="camp",
                position=1 if event_type == "item.search.click" else None,
            )
            for n in range(3)
        ]
        payloads = [e.to_payload(ai_api=api, ai_timestamp_format=stamp) for e in built]  # type: ignore[arg-type]
        if api == "events-v1":
            batch_path, single_path = "/events/v1/batch", f"/events/v1/single/{event_type}"
        else:
            batch_path, single_path = (
                "/v4/events/ai-compat/batch",
                (f"/v4/events/ai-compat/{event_type}"),
            )
        response = post(
            server, ai_path(server, batch_path), {"eventType": event_type, "items": payloads}
        )
        assert response.status_code == 200, response.text
        assert response.json() == {}
        response = post(server, ai_path(server, single_path), payloads[0], headers=JSON)
        assert response.status_code == 200, response.text
    prefix = "ai" if api == "events-v1" else "ai-compat"
    summary = server.summary()
    assert summary[f"{prefix}-batch"] == {t: 3 for t in events.AI_EVENT_TYPES}
    assert summary[f"{prefix}-single"] == {t: 1 for t in events.AI_EVENT_TYPES}
    assert server.events[0]["correlation"] == "corr-0"
    assert server.events[0]["salt"] is None


def test_ai_events_need_no_api_version(server: LocalSynerise) -> None:
    response = requests.post(
        server.url + ai_path(server, "/events/v1/single/recommendation.view"),
        data=json.dumps(ai_item(eventTimestamp="2022-12-08T13:23:22Z")),
        headers=JSON,
        timeout=5,
    )
    assert response.status_code == 200, response.text


# -- browsers: CORS and text/plain on the AI endpoints ------------------------------------

ORIGIN = "http://shop.example:8000"
TEXT_PLAIN = "text/plain;charset=UTF-8"  # what a browser sends with a string body
AI_PATHS = [
    "/events/v1/batch",
    "/events/v1/single/recommendation.view",
    "/v4/events/ai-compat/batch",
    "/v4/events/ai-compat/recommendation.click",
]


@pytest.mark.parametrize("path", AI_PATHS)
def test_ai_endpoints_answer_a_cors_preflight(server: LocalSynerise, path: str) -> None:
    response = requests.options(
        server.url + ai_path(server, path),
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=5,
    )
    assert response.status_code == 204
    assert response.content == b""
    assert "Content-Length" not in response.headers
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert response.headers["Vary"] == "Origin"
    [recorded] = server.requests
    assert (recorded.method, recorded.path, recorded.status) == ("OPTIONS", path, 204)
    assert server.count == 0


def test_a_preflight_leaves_faults_to_the_post(server: LocalSynerise) -> None:
    server.inject("503", times=1)
    url = server.url + ai_path(server, "/events/v1/batch")
    assert requests.options(url, headers={"Origin": ORIGIN}, timeout=5).status_code == 204
    body = {"eventType": "recommendation.view", "items": [ai_item()]}
    response = post(server, ai_path(server, "/events/v1/batch"), body, headers={"Origin": ORIGIN})
    assert_error(response, 503, None, "injected")
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN  # a fault's answer too
    assert server.faults_injected == {"503": 1}


def test_other_endpoints_answer_no_preflight(server: LocalSynerise) -> None:
    for path in ("/v4/events/batch", "/v4/transactions", "/uauth/v2/auth/login/profile"):
        response = requests.options(server.url + path, headers={"Origin": ORIGIN}, timeout=5)
        assert_error(response, 405, None, "use POST")
        assert "Access-Control-Allow-Origin" not in response.headers
    response = post(server, "/v4/events/batch", [custom()], headers={"Origin": ORIGIN})
    assert response.status_code == 202
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Vary" not in response.headers


def test_ai_answers_carry_cors_headers(server: LocalSynerise) -> None:
    body = {"eventType": "recommendation.view", "items": [ai_item()]}
    for path in ("/events/v1/batch", "/v4/events/ai-compat/batch"):
        ok = post(server, ai_path(server, path), body, headers={"Origin": ORIGIN})
        assert ok.status_code == 200, ok.text
        assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert ok.headers["Vary"] == "Origin"
    # Errors too, so that a page's script can read why an event was refused.
    refused = post(server, "/events/v1/batch?token=wrong", body, headers={"Origin": ORIGIN})
    assert_error(refused, 403, None, "Invalid tracker key")
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN
    invalid = post(
        server,
        ai_path(server, "/events/v1/batch"),
        {"eventType": "recommendation.view", "items": [ai_item(clientUUID="x")]},
        headers={"Origin": ORIGIN},
    )
    assert_error(invalid, 400, "items[0].clientUUID", "UUID")
    assert invalid.headers["Access-Control-Allow-Origin"] == ORIGIN
    # A server-to-server call sends no Origin: nothing to allow, but caches still vary on it.
    plain = post(server, ai_path(server, "/events/v1/batch"), body)
    assert plain.status_code == 200
    assert "Access-Control-Allow-Origin" not in plain.headers
    assert plain.headers["Vary"] == "Origin"


@pytest.mark.parametrize(
    "content_type", ["text/plain", TEXT_PLAIN, "text/plain; charset=utf-8", "Text/Plain"]
)
@pytest.mark.parametrize("path", AI_PATHS)
def test_ai_endpoints_accept_text_plain_json(
    server: LocalSynerise, path: str, content_type: str
) -> None:
    if path.endswith("/batch"):
        body: Any = {"eventType": "recommendation.view", "items": [ai_item(), ai_item()]}
        expected = 2
    else:
        body = ai_item(items=["sku-1"]) if path.endswith("click") else ai_item()
        expected = 1
    response = post(server, ai_path(server, path), body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert server.count == expected
    assert server.requests[0].body == body


def test_text_plain_bodies_are_validated_like_json(server: LocalSynerise) -> None:
    path = ai_path(server, "/events/v1/batch")
    headers = {"Content-Type": TEXT_PLAIN}
    assert_error(post(server, path, b"{", headers=headers), 400, None, "not valid JSON")
    bad = {"eventType": "recommendation.view", "items": [ai_item(eventTimestamp=1670505802)]}
    response = post(server, path, bad, headers=headers)
    assert_error(response, 400, "items[0].eventTimestamp", "milliseconds")
    response = post(
        server, path, {"eventType": "recommendation.view", "items": [None]}, headers=headers
    )
    assert_error(response, 400, "items[0]", "must not be null")
    assert server.count == 0


def test_text_plain_in_another_charset_is_415(server: LocalSynerise) -> None:
    body = {"eventType": "recommendation.view", "items": [ai_item()]}
    response = post(
        server,
        ai_path(server, "/events/v1/batch"),
        body,
        headers={"Content-Type": "text/plain; charset=ISO-8859-1"},
    )
    assert_error(response, 415, None, "text/plain;charset=UTF-8")


def test_v4_endpoints_still_want_json_from_text_plain(server: LocalSynerise) -> None:
    response = post(server, "/v4/events/batch", [custom()], headers={"Content-Type": TEXT_PLAIN})
    assert_error(response, 415, None, "use application/json")
    assert response.json()["message"].endswith("; use application/json")
    response = post(server, "/v4/transactions", transaction(), headers={"Content-Type": TEXT_PLAIN})
    assert_error(response, 415, None, "use application/json")


def test_text_plain_can_be_turned_off() -> None:
    with LocalSynerise(ai_text_plain=False) as stand_in:
        body = {"eventType": "recommendation.view", "items": [ai_item()]}
        for path in ("/events/v1/batch", "/v4/events/ai-compat/batch"):
            response = post(
                stand_in,
                ai_path(stand_in, path),
                body,
                headers={"Content-Type": TEXT_PLAIN, "Origin": ORIGIN},
            )
            assert_error(response, 415, None, "use application/json")
            assert response.json()["message"].endswith("; use application/json")
            # The browser can still read the refusal.
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert post(stand_in, ai_path(stand_in, path), body).status_code == 200
        assert stand_in.count == 2


def test_success_status_is_configurable() -> None:
    with LocalSynerise(success_status={"events": 200, "transactions": 201, "ai": 204}) as s:
        assert post(s, "/v4/events/batch", [custom()]).status_code == 200
        assert post(s, "/v4/transactions", transaction()).status_code == 201
        response = post(s, ai_path(s, "/events/v1/single/recommendation.view"), ai_item())
        assert response.status_code == 204
        assert response.content == b""
        s.success_status["events"] = 202
        assert post(s, "/v4/events/custom", custom()).status_code == 202


def test_chunked_body_is_read(server: LocalSynerise) -> None:
    body = json.dumps([custom(), custom()]).encode()
    response = requests.post(
        server.url + "/v4/events/batch",
        data=iter([body[:10], body[10:]]),
        headers={**V4, "Authorization": f"Bearer {server.issue_token()}"},
        timeout=5,
    )
    assert response.status_code == 202, response.text
    assert server.count == 2


# -- rejected requests ---------------------------------------------------------------------

V4_BATCH_REJECTIONS = [
    pytest.param(
        [{k: v for k, v in custom().items() if k != "type"}],
        "[0].type",
        "required",
        id="type-missing",
    ),
    pytest.param(
        [custom(type="dog")], "[0].type", "neither 'custom' nor a dedicated", id="type-unknown"
    ),
    pytest.param([custom(type=["custom"])], "[0].type", "neither", id="type-not-string"),
    pytest.param(
        [{**custom(), "action": None}], "[0].action", "must not be null", id="null-action"
    ),
    pytest.param(
        [{k: v for k, v in custom().items() if k != "action"}],
        "[0].action",
        "required for a custom event",
        id="action-missing",
    ),
    pytest.param([custom(action="x")], "[0].action", "2 to 32 characters", id="action-short"),
    pytest.param([custom(action="a" * 33)], "[0].action", "2 to 32", id="action-long"),
    pytest.param([custom(action="dog bark")], "[0].action", "letters, digits", id="action-space"),
    pytest.param(
        [custom(action="transaction.charge")],
        "[0].action",
        "/v4/transactions",
        id="transaction-charge",
    ),
    pytest.param(
        [custom(type="added-to-cart")], "[0].action", "must not be sent", id="dedicated-action"
    ),
    pytest.param(
        [custom(action="product.addToCart")],
        "[0].action",
        "type 'added-to-cart' and no action",
        id="custom-with-a-dedicated-action",
    ),
    pytest.param(
        [custom(action="recommendation.click")],
        "[0].action",
        "AI events API",
        id="custom-with-an-ai-action",
    ),
    pytest.param(
        [{k: v for k, v in custom().items() if k != "client"}],
        "[0].client",
        "required",
        id="client-missing",
    ),
    pytest.param(
        [custom(client={})],
        "[0].client",
        "at least one of id, customId, uuid, email",
        id="client-empty",
    ),
    pytest.param([custom(client="c-1")], "[0].client", "must be an object", id="client-string"),
    pytest.param(
        [custom(client={"phone": "1"})], "[0].client", "unknown identifier", id="client-unknown"
    ),
    pytest.param(
        [custom(client={"id": "12"})], "[0].client.id", "positive integer", id="client-id-str"
    ),
    pytest.param(
        [custom(client={"id": True})], "[0].client.id", "positive integer", id="client-id-bool"
    ),
    pytest.param(
        [custom(client={"customId": " "})],
        "[0].client.customId",
        "non-empty",
        id="client-customid-blank",
    ),
    pytest.param(
        [custom(client={"uuid": "abc"})], "[0].client.uuid", "not a UUID", id="client-uuid"
    ),
    pytest.param(
        [custom(client={"email": "nobody"})], "[0].client.email", "not an email", id="client-email"
    ),
    pytest.param(
        [{k: v for k, v in custom().items() if k != "label"}],
        "[0].label",
        "non-empty",
        id="label-missing",
    ),
    pytest.param([custom(label="  ")], "[0].label", "non-empty", id="label-blank"),
    pytest.param([custom(time="yesterday")], "[0].time", "ISO 8601", id="time-text"),
    pytest.param([custom(time="2022-11-28T12:18:27")], "[0].time", "with offset", id="time-naive"),
    pytest.param([custom(time="2022-13-28T12:18:27Z")], "[0].time", "ISO 8601", id="time-month-13"),
    pytest.param([custom(time=1669637907)], "[0].time", "ISO 8601", id="time-number"),
    pytest.param([custom(params=[1])], "[0].params", "must be an object", id="params-list"),
    pytest.param([custom(eventSalt="")], "[0].eventSalt", "non-empty", id="salt-empty"),
    pytest.param([custom(eventSalt=5)], "[0].eventSalt", "non-empty string", id="salt-number"),
    pytest.param([custom(uuid="x")], "[0].uuid", "not a field of a v4 event", id="unknown-field"),
    pytest.param(
        [custom(params={"a": {"b": [1, None]}})],
        "[0].params.a.b[1]",
        "must not be null",
        id="null-deep",
    ),
    pytest.param([custom(), "event"], "[1]", "JSON object", id="item-not-object"),
    pytest.param({"events": []}, "body", "must be an array", id="not-array"),
    pytest.param([], "body", "at least one", id="empty"),
]


@pytest.mark.parametrize(("body", "field", "message"), V4_BATCH_REJECTIONS)
def test_v4_batch_rejections(server: LocalSynerise, body: Any, field: str, message: str) -> None:
    assert_error(post(server, "/v4/events/batch", body), 400, field, message)
    assert server.count == 0
    assert server.requests[-1].errors


def test_a_batch_names_every_invalid_item(server: LocalSynerise) -> None:
    body = [custom(), custom(label=""), custom(), custom(client={})]
    response = post(server, "/v4/events/batch", body)
    assert_error(response, 400, "[1].label", "non-empty")
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["[1].label", "[3].client"]
    assert "[1].label" in response.json()["message"]
    assert server.count == 0


def test_batch_limits(server: LocalSynerise) -> None:
    response = post(server, "/v4/events/batch", [custom() for _ in range(1001)])
    assert_error(response, 400, "body", "at most 1000")
    assert post(server, "/v4/events/batch", [custom() for _ in range(1000)]).status_code == 202
    big = [custom(params={"blob": "x" * 5000}) for _ in range(200)]
    assert len(json.dumps(big)) > 1_000_000
    assert_error(post(server, "/v4/events/batch", big), 413, None, "limit is 1000000")
    assert server.count == 1000


def test_json_errors(server: LocalSynerise) -> None:
    assert_error(post(server, "/v4/events/batch", b"[{"), 400, None, "not valid JSON")
    assert_error(post(server, "/v4/events/batch", b'[{"a": NaN}]'), 400, None, "not valid JSON")
    assert_error(post(server, "/v4/events/batch", b"\xff\xfe"), 400, None, "not valid JSON")
    assert_error(post(server, "/v4/events/batch", None), 400, "body", "must not be null")
    # The word null inside a string is no null.
    assert post(server, "/v4/events/batch", [custom(label="null")]).status_code == 202


def test_v4_headers_are_checked(server: LocalSynerise) -> None:
    response = post(server, "/v4/events/batch", [custom()], headers={"Api-Version": ""})
    assert_error(response, 400, None, "Api-Version")
    response = post(server, "/v4/events/batch", [custom()], headers={"Api-Version": "latest"})
    assert_error(response, 400, None, "Unsupported Api-Version")
    response = post(server, "/v4/events/batch", [custom()], headers={"Content-Type": "text/plain"})
    assert_error(response, 415, None, "text/plain")
    ok = post(
        server,
        "/v4/events/batch",
        [custom()],
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 202


def test_unknown_paths_and_methods(server: LocalSynerise) -> None:
    assert_error(post(server, "/v4/events/page-visit", custom()), 404, None, "No such endpoint")
    assert_error(post(server, "/v4/auth/login/profile", {"apiKey": "x"}), 404, None, "No such")
    response = requests.get(server.url + "/v4/events/batch", timeout=5)
    assert_error(response, 405, None, "use POST")


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("/v4/events/custom", custom(type="added-to-cart"), "type", "must be 'custom'"),
        ("/v4/events/custom", [custom()], "body", "JSON object"),
        ("/v4/events/added-to-cart", custom(), "type", "must be 'added-to-cart'"),
        ("/v4/events/added-to-cart", {**custom(), "type": "added-to-cart"}, "action", "must not"),
    ],
)
def test_v4_single_rejections(
    server: LocalSynerise, path: str, body: Any, field: str, message: str
) -> None:
    assert_error(post(server, path, body), 400, field, message)


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("/v4/transactions", transaction(orderId=""), "orderId", "non-empty string"),
        ("/v4/transactions", {**transaction(), "orderId": 12}, "orderId", "non-empty string"),
        ("/v4/transactions", transaction(client={}), "client", "at least one"),
        ("/v4/transactions", transaction(revenue=13.0), "revenue", '"amount"'),
        ("/v4/transactions", transaction(value={"amount": "13"}), "value.amount", "a number"),
        (
            "/v4/transactions",
            transaction(discountAmount={"amount": 1, "currency": "zł"}),
            "discountAmount.currency",
            "ISO 4217",
        ),
        ("/v4/transactions", transaction(recordedAt="now"), "recordedAt", "ISO 8601"),
        ("/v4/transactions", transaction(products={}), "products", "must be an array"),
        (
            "/v4/transactions",
            transaction(products=[{"quantity": 1}]),
            "products[0].sku",
            "required",
        ),
        (
            "/v4/transactions",
            transaction(products=[{"sku": "a", "regularPrice": 5}]),
            "products[0].regularPrice",
            "must be an object",
        ),
        (
            "/v4/transactions",
            transaction(products=[{"sku": "a", "quantity": 0}]),
            "products[0].quantity",
            "positive",
        ),
        ("/v4/transactions", transaction(paymentInfo="CASH"), "paymentInfo", "must be an object"),
        ("/v4/transactions", transaction(metadata=None), "metadata", "must not be null"),
        (
            "/v4/transactions",
            transaction(
                value={"amount": 5, "currency": "PLN"},
                products=[{"sku": "a", "finalUnitPrice": {"amount": 5, "currency": "EUR"}}],
            ),
            "body",
            "mixes currencies ['EUR', 'PLN']",
        ),
        ("/v4/transactions/batch", transaction(), "body", "must be an array"),
        ("/v4/transactions/batch", [transaction(), transaction(orderId="")], "[1].orderId", "non-"),
    ],
)
def test_transaction_rejections(
    server: LocalSynerise, path: str, body: Any, field: str, message: str
) -> None:
    assert_error(post(server, path, body), 400, field, message)
    assert server.count == 0


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        (
            "/events/v1/batch",
            {"eventType": "page.visit", "items": [ai_item()]},
            "eventType",
            "unknown",
        ),
        ("/events/v1/batch", {"items": [ai_item()]}, "eventType", "unknown or missing"),
        ("/events/v1/batch", [ai_item()], "body", "must be an object"),
        ("/events/v1/batch", {"eventType": "recommendation.view", "items": []}, "body", "at least"),
        ("/events/v1/batch", {"eventType": "recommendation.view"}, "items", "must be an array"),
        (
            "/events/v1/batch",
            {"eventType": "recommendation.view", "items": [ai_item()], "extra": 1},
            "extra",
            "not a field",
        ),
        (
            "/events/v1/batch",
            {
                "eventType": "recommendation.view",
                "items": [ai_item(), ai_item(eventType="recommendation.click")],
            },
            "items[1].eventType",
            "one event type per request",
        ),
        (
            "/events/v1/batch",
            {"eventType": "recommendation.view", "items": [ai_item(correlationId="")]},
            "items[0].correlationId",
            "non-empty",
        ),
        (
            "/events/v1/single/recommendation.view",
            ai_item(clientUUID="not-a-uuid"),
            "clientUUID",
            "UUID",
        ),
        ("/events/v1/single/recommendation.view", ai_item(items="1"), "items", "must be an array"),
        ("/events/v1/single/recommendation.view", ai_item(items=[1]), "items[0]", "item id"),
        (
            "/events/v1/single/recommendation.view",
            {k: v for k, v in ai_item().items() if k != "items"},
            "items",
            "is required",
        ),
        (
            "/events/v1/single/recommendation.view",
            ai_item(eventTimestamp=1670505802),
            "eventTimestamp",
            "looks like seconds",
        ),
        (
            "/events/v1/single/recommendation.view",
            ai_item(eventTimestamp="yesterday"),
            "eventTimestamp",
            "ISO 8601",
        ),
        (
            "/events/v1/single/recommendation.view",
            ai_item(eventTimestamp=1.6e12),
            "eventTimestamp",
            "ISO 8601",
        ),
        ("/events/v1/single/recommendation.view", ai_item(campaignId=""), "campaignId", "non-"),
        ("/events/v1/single/recommendation.click", ai_item(item="1"), "item", "not a field"),
        (
            "/events/v1/single/recommendation.click",
            ai_item(position=1),
            "position",
            "only for item.search.click",
        ),
        ("/events/v1/single/product.view", ai_item(), "eventType", "unknown event type"),
        (
            "/v4/events/ai-compat/recommendation.view",
            ai_item(item="1"),
            "item",
            "only for click events",
        ),
        (
            "/v4/events/ai-compat/recommendation.click",
            {k: v for k, v in ai_item().items() if k != "items"},
            "item",
            "clicked item id",
        ),
        (
            "/v4/events/ai-compat/item.search.click",
            ai_item(item="1", position=0),
            "position",
            "positive integer",
        ),
        ("/v4/events/ai-compat/item.search.click", ai_item(sessionId=""), "sessionId", "non-"),
        ("/v4/events/ai-compat/item.search.click", ai_item(item=""), "item", "non-empty"),
    ],
)
def test_ai_rejections(
    server: LocalSynerise, path: str, body: Any, field: str, message: str
) -> None:
    assert_error(post(server, ai_path(server, path), body), 400, field, message)
    assert server.count == 0


def test_ai_compat_click_carries_item_and_position(server: LocalSynerise) -> None:
    body = {k: v for k, v in ai_item().items() if k != "items"}
    body.update(item="89435879453", position=3, searchType="autocomplete", sessionId="s-1")
    response = post(server, ai_path(server, "/v4/events/ai-compat/item.search.click"), body)
    assert response.status_code == 200, response.text
    del body["position"], body["searchType"]
    batch = {"eventType": "recommendation.click", "items": [body, ai_item(items=[])]}
    response = post(server, ai_path(server, "/v4/events/ai-compat/batch"), batch)
    assert response.status_code == 200, response.text
    assert server.count == 3


# -- shop events, money, sources and search clicks (what Synerise's SDK validators require) --


def cart_params(**extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "sku": "A-1",
        "name": "Mug",
        "quantity": 1,
        "finalUnitPrice": {"amount": 9.5, "currency": "PLN"},
        "source": "WEB_DESKTOP",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not ...}


def dedicated(name: str, params: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in custom(type=name).items() if k != "action"}
    body["params"] = params
    return body


def cart_status_params(**extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "products": [cart_params(source=...)],
        "total_amount": 9.5,
        "total_quantity": 1.0,
        "source": "WEB_MOBILE",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not ...}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (dedicated("added-to-cart", cart_params(name=...)), "params.name", "required"),
        (dedicated("added-to-cart", cart_params(source=...)), "params.source", "must be one of"),
        (dedicated("removed-from-cart", cart_params(source="MOBILE_WEB")), "params.source", "one"),
        (dedicated("added-to-cart", cart_params(quantity=0)), "params.quantity", "positive"),
        (
            dedicated("added-to-cart", cart_params(finalUnitPrice=...)),
            "params.finalUnitPrice",
            "required",
        ),
        (
            dedicated(
                "added-to-cart", cart_params(finalUnitPrice={"amount": -1, "currency": "PLN"})
            ),
            "params.finalUnitPrice.amount",
            "greater than or equal to zero",
        ),
        (
            dedicated("added-to-cart", cart_params(regularPrice={"amount": 1, "currency": "PLN"})),
            "params.regularPrice",
            "transaction field",
        ),
        (dedicated("product-view", {"productId": "A-1"}), "params.source", "must be one of"),
        (
            dedicated("product-view", {"sku": "A-1", "source": "WEB_DESKTOP"}),
            "params.productId",
            "not sku",
        ),
        (dedicated("added-to-favorites", {}), "params", "required"),
        (
            dedicated("item-search-click", {"correlationId": "c", "item": "1", "position": 1}),
            "params.searchType",
            "full-text-search",
        ),
        (
            dedicated(
                "item-search-click",
                {"correlationId": "c", "item": "1", "position": 0, "searchType": "autocomplete"},
            ),
            "params.position",
            "positive",
        ),
        (dedicated("cancelled-transaction", {"source": "POS"}), "params.orderId", "required"),
        (
            custom("cart.status", params=cart_status_params(total_amount=9)),
            "params.total_amount",
            "float",
        ),
        (
            custom("cart.status", params=cart_status_params(source=...)),
            "params.source",
            "required",
        ),
        (
            custom("cart.status", params=cart_status_params(products=[cart_params(name="")])),
            "params.products[0].name",
            "required",
        ),
    ],
)
def test_shop_event_rejections(server: LocalSynerise, body: Any, field: str, message: str) -> None:
    assert_error(post(server, f"/v4/events/{body['type']}", body), 400, field, message)
    assert_error(post(server, "/v4/events/batch", [body]), 400, f"[0].{field}", message)
    assert server.count == 0


def test_shop_events_accept_free_items_and_both_search_types(server: LocalSynerise) -> None:
    free = {"amount": 0, "currency": "PLN"}
    batch = [
        dedicated("added-to-cart", cart_params(finalUnitPrice=free)),
        custom("cart.status", params=cart_status_params(products=[], total_amount=0.0)),
    ] + [
        dedicated(
            "item-search-click",
            {"correlationId": "c", "item": "1", "position": 2, "searchType": kind},
        )
        for kind in ("full-text-search", "autocomplete")
    ]
    response = post(server, "/v4/events/batch", batch)
    assert response.status_code == 202, response.text
    assert server.summary()["v4-batch"] == {"added-to-cart": 1, "custom": 1, "item-search-click": 2}
    assert server.events_of(type="item-search-click")[0]["action"] == "item.search.click"


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"revenue": {"amount": -0.01, "currency": "PLN"}}, "revenue.amount", "or equal to zero"),
        ({"discountAmount": {"amount": 0, "currency": "PLN"}}, "discountAmount.amount", "omitted"),
        ({"source": "MOBILE_WEB"}, "source", "must be one of"),
        ({"source": "FAX"}, "source", "must be one of"),
        (
            {"products": [{"sku": "S", "finalUnitPrice": {"amount": 1, "currency": "PLN"}}]},
            "products[0].name",
            "required",
        ),
        (
            {"products": [{"sku": "S", "name": "Sock"}]},
            "products[0].finalUnitPrice",
            "required",
        ),
        (
            {
                "products": [
                    {"sku": "S", "name": "S", "finalUnitPrice": {"amount": -2, "currency": "PLN"}}
                ]
            },
            "products[0].finalUnitPrice.amount",
            "or equal to zero",
        ),
    ],
)
def test_transaction_money_source_and_product_rules(
    server: LocalSynerise, extra: dict[str, Any], field: str, message: str
) -> None:
    assert_error(post(server, "/v4/transactions", transaction(**extra)), 400, field, message)
    assert server.count == 0


def test_transactions_accept_every_event_source_and_a_free_item(server: LocalSynerise) -> None:
    free = [{"sku": "GIFT", "name": "Gift", "finalUnitPrice": {"amount": 0, "currency": "PLN"}}]
    sources = ["WEB_DESKTOP", "WEB_MOBILE", "MOBILE_APP", "POS", "MOBILE", "DESKTOP"]
    body = [transaction(source=source, products=free) for source in sources]
    response = post(server, "/v4/transactions/batch", body)
    assert response.status_code == 202, response.text
    assert server.count == len(sources)


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        (
            "/v4/events/ai-compat/recommendation.view",
            ai_item(eventTimestamp=1670505802000),
            "eventTimestamp",
            "ISO 8601",
        ),
        (
            "/v4/events/ai-compat/recommendation.view",
            ai_item(EventTimestamp=1670505802000, eventTimestamp=...),
            "EventTimestamp",
            "ISO 8601",
        ),
        (
            "/v4/events/ai-compat/item.search.click",
            {**ai_item(items=...), "item": "1", "position": 1},
            "searchType",
            "required",
        ),
        (
            "/v4/events/ai-compat/item.search.click",
            {**ai_item(items=...), "item": "1", "searchType": "autocomplete"},
            "position",
            "required",
        ),
        (
            "/v4/events/ai-compat/item.search.click",
            {**ai_item(items=...), "item": "1", "position": 1, "searchType": "voice"},
            "searchType",
            "required",
        ),
        (
            "/events/v1/single/item.search.click",
            ai_item(position=1, searchType="fuzzy"),
            "searchType",
            "one of",
        ),
        (
            "/events/v1/single/recommendation.view",
            ai_item(searchType="autocomplete"),
            "searchType",
            "only",
        ),
    ],
)
def test_ai_search_click_and_timestamp_rules(
    server: LocalSynerise, path: str, body: dict[str, Any], field: str, message: str
) -> None:
    body = {k: v for k, v in body.items() if v is not ...}
    assert_error(post(server, ai_path(server, path), body), 400, field, message)
    assert server.count == 0


def test_ai_compat_reads_both_timestamp_spellings(server: LocalSynerise) -> None:
    stamp = "2022-12-08T13:23:22.000Z"
    bodies = [ai_item(), {**{k: v for k, v in ai_item().items() if k != "eventTimestamp"}}]
    bodies[1]["EventTimestamp"] = stamp
    for body in bodies:
        path = ai_path(server, "/v4/events/ai-compat/recommendation.view")
        assert post(server, path, body).status_code == 200
    both = {**ai_item(), "EventTimestamp": stamp}
    path = ai_path(server, "/v4/events/ai-compat/recommendation.view")
    assert_error(post(server, path, both), 400, "EventTimestamp", "twice")
    assert server.count == 2


# -- recording -----------------------------------------------------------------------------


def test_requests_are_recorded_with_secrets_redacted(server: LocalSynerise) -> None:
    token = login(server)
    post(server, "/v4/events/batch", [custom()], token=token)
    post(server, ai_path(server, "/events/v1/single/recommendation.view"), ai_item())
    first, second, third = server.requests
    assert (first.method, first.path, first.status) == ("POST", "/uauth/v2/auth/login/profile", 200)
    assert second.headers["authorization"] == "Bearer <redacted>"
    assert second.headers["api-version"] == "4.4"
    assert token not in repr(server.requests)
    assert second.body[0]["action"] == "dog.bark"
    assert second.size > 0
    assert second.fault is None
    assert third.query == {"token": "<redacted>"}
    assert server.tracker_key not in repr(server.requests)


def test_record_salts_keeps_no_bodies() -> None:
    with LocalSynerise(record="salts") as stand_in:
        event = custom()
        assert post(stand_in, "/v4/events/batch", [event]).status_code == 202
        assert stand_in.events == [
            {
                "endpoint": "v4-batch",
                "type": "custom",
                "action": "dog.bark",
                "salt": event["eventSalt"],
                "correlation": None,
                "time_replaced": False,
            }
        ]
        assert stand_in.requests[0].body is None
        assert stand_in.salt_counts() == {event["eventSalt"]: 1}


def test_record_count_keeps_counters_only() -> None:
    with LocalSynerise(record="count") as stand_in:
        assert post(stand_in, "/v4/events/batch", [custom(), custom()]).status_code == 202
        assert stand_in.count == 2
        assert stand_in.events == []
        assert stand_in.summary() == {"v4-batch": {"custom": 2}}
        with pytest.raises(RuntimeError, match="record='full' or 'salts'"):
            stand_in.salt_counts()
        with pytest.raises(RuntimeError):
            stand_in.events_of(type="custom")


def test_salt_counts_show_resends(server: LocalSynerise) -> None:
    first, second = custom(), custom()
    post(server, "/v4/events/batch", [first, second])
    post(server, "/v4/events/batch", [first])
    counts = server.salt_counts()
    assert counts[first["eventSalt"]] == 2
    assert counts[second["eventSalt"]] == 1


def test_events_of_filters(server: LocalSynerise) -> None:
    dedicated = shop_event("added-to-cart", {"customId": "c-1"}).to_payload()
    post(server, "/v4/events/batch", [custom(), dedicated])
    post(server, "/v4/events/custom", custom())
    assert len(server.events_of()) == 3
    assert len(server.events_of(type="custom")) == 2
    assert len(server.events_of(type="custom", endpoint="v4-batch")) == 1
    assert server.events_of(type="added-to-cart")[0]["action"] == "product.addToCart"


def test_report_reset_and_wait(server: LocalSynerise) -> None:
    post(server, "/v4/events/batch", [custom(), custom()])
    post(server, "/v4/transactions", transaction())
    assert server.wait_for_events(3, timeout=1)
    assert not server.wait_for_events(4, timeout=0.05)
    rows = [line.split() for line in server.report().splitlines()]
    assert rows[0] == ["endpoint", "type", "events"]
    assert ["v4-batch", "custom", "2"] in rows
    assert ["transactions", "transaction", "1"] in rows
    assert ["total", "3"] in rows
    summary = requests.get(server.url + "/__local__/summary", timeout=5).json()
    assert summary["count"] == 3
    server.reset()
    assert (server.count, server.events, server.requests, server.summary()) == (0, [], [], {})


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["500", "502", "503", "429"])
def test_status_faults(server: LocalSynerise, status: str) -> None:
    server.inject(status, times=1, retry_after=7)
    response = post(server, "/v4/events/batch", [custom()])
    assert_error(response, int(status), None, "injected")
    assert response.headers["Retry-After"] == "7"
    assert server.count == 0
    assert server.requests[-1].fault == status
    assert post(server, "/v4/events/batch", [custom()]).status_code == 202
    assert server.faults_injected == {status: 1}


def test_retry_after_forms(server: LocalSynerise) -> None:
    server.inject("429", times=1, retry_after=0.5)
    assert post(server, "/v4/events/batch", [custom()]).headers["Retry-After"] == "0.5"
    server.inject("503", times=1, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    response = post(server, "/v4/events/batch", [custom()])
    assert response.headers["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    server.inject("503", times=1)
    assert "Retry-After" not in post(server, "/v4/events/batch", [custom()]).headers


def test_malformed_fault(server: LocalSynerise) -> None:
    server.inject("malformed", times=1)
    response = post(server, "/v4/events/batch", [custom()])
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "text/html"
    with pytest.raises(ValueError):
        response.json()


def test_drop_fault(server: LocalSynerise) -> None:
    server.inject("drop", times=1)
    with pytest.raises(requests.ConnectionError):
        post(server, "/v4/events/batch", [custom()])
    assert server.requests[-1].status is None
    assert server.count == 0
    assert post(server, "/v4/events/batch", [custom()]).status_code == 202


def test_timeout_fault_outlasts_the_client_and_stop_does_not_wait() -> None:
    stand_in = LocalSynerise().start()
    stand_in.inject("timeout", times=1)  # the default delay is 30 s
    with pytest.raises(requests.ReadTimeout):
        post(stand_in, "/v4/events/batch", [custom()], timeout=0.3)
    started = time.monotonic()
    stand_in.stop()
    assert time.monotonic() - started < 2
    assert stand_in.count == 0


def test_short_timeout_fault_answers_504(server: LocalSynerise) -> None:
    server.inject("timeout", times=1, delay=0.05)
    assert_error(post(server, "/v4/events/batch", [custom()]), 504, None, "timeout")
    assert server.count == 0


def test_slow_fault_accepts_but_answers_late(server: LocalSynerise) -> None:
    server.inject("slow", times=1, delay=1)
    event = custom()
    with pytest.raises(requests.ReadTimeout):
        post(server, "/v4/events/batch", [event], timeout=0.2)
    assert server.count == 1
    # The client resends the same bytes: the salt shows the duplicate Synerise overwrites.
    assert post(server, "/v4/events/batch", [event]).status_code == 202
    assert server.salt_counts()[event["eventSalt"]] == 2


def test_expire_tokens_now(server: LocalSynerise) -> None:
    token = login(server)
    assert post(server, "/v4/events/batch", [custom()], token=token).status_code == 202
    server.inject("expire_tokens")
    assert_error(post(server, "/v4/events/batch", [custom()], token=token), 401, None, "Invalid")
    assert post(server, "/v4/events/batch", [custom()], token=login(server)).status_code == 202
    assert server.faults_injected["expire_tokens"] == 1


def test_expire_tokens_on_the_next_call(server: LocalSynerise) -> None:
    server.inject("expire_tokens", times=1)
    token = login(server)  # the login itself is not a Bearer call: unaffected
    # AI calls with the tracker key do not use the token and do not use up the fault.
    response = post(server, ai_path(server, "/events/v1/single/recommendation.view"), ai_item())
    assert response.status_code == 200
    assert post(server, "/v4/events/batch", [custom()], token=token).status_code == 401
    fresh = login(server)
    assert post(server, "/v4/events/batch", [custom()], token=fresh).status_code == 202


def test_faults_spare_the_login_unless_named(server: LocalSynerise) -> None:
    server.inject("503", times=1)
    token = login(server)
    assert post(server, "/v4/events/batch", [custom()], token=token).status_code == 503
    server.inject("500", times=1, paths="/uauth/")
    response = requests.post(
        server.url + "/uauth/v2/auth/login/profile",
        data=json.dumps({"apiKey": server.api_key}),
        headers=V4,
        timeout=5,
    )
    assert response.status_code == 500


def test_fault_paths_filter(server: LocalSynerise) -> None:
    server.inject("500", paths=["/v4/transactions"])
    assert post(server, "/v4/events/batch", [custom()]).status_code == 202
    assert post(server, "/v4/transactions", transaction()).status_code == 500
    assert post(server, "/v4/transactions", transaction()).status_code == 500  # until cleared
    server.clear_faults()
    assert post(server, "/v4/transactions", transaction()).status_code == 202


def test_probabilistic_faults_are_seeded() -> None:
    def run() -> list[int]:
        with LocalSynerise(seed=42) as stand_in:
            stand_in.inject("503", probability=0.5)
            token = stand_in.issue_token()
            session = requests.Session()
            return [
                post(
                    stand_in, "/v4/events/batch", [custom()], token=token, session=session
                ).status_code
                for _ in range(30)
            ]

    first = run()
    assert first == run()
    assert 5 < first.count(503) < 25
    assert set(first) == {202, 503}


def test_probability_with_times_caps_the_faults(server: LocalSynerise) -> None:
    fault = server.inject("500", probability=1.0, times=2)
    statuses = [post(server, "/v4/events/batch", [custom()]).status_code for _ in range(4)]
    assert statuses == [500, 500, 202, 202]
    assert fault.fired == 2 and fault.exhausted


def test_inject_rejects_bad_arguments(server: LocalSynerise) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        server.inject("418")
    with pytest.raises(ValueError, match="times"):
        server.inject("500", times=0)
    with pytest.raises(ValueError, match="probability"):
        server.inject("500", probability=2)


def test_reject_predicate_poisons_a_batch(server: LocalSynerise) -> None:
    server.reject(lambda item: item.get("params", {}).get("poison") is True)
    batch = [custom(), custom(), custom(params={"poison": True}), custom()]
    response = post(server, "/v4/events/batch", batch)
    assert_error(response, 400, "[2]", "rejected")
    assert server.count == 0
    assert post(server, "/v4/events/batch", batch[:2] + batch[3:]).status_code == 202
    assert server.count == 3
    server.clear_faults()
    assert post(server, "/v4/events/batch", batch[2:3]).status_code == 202


def test_reject_predicate_sees_ai_items_and_transactions(server: LocalSynerise) -> None:
    server.reject(lambda item: item.get("correlationId") == "bad" or item.get("orderId") == "bad")
    body = {"eventType": "recommendation.view", "items": [ai_item(), ai_item(correlationId="bad")]}
    assert_error(
        post(server, ai_path(server, "/events/v1/batch"), body), 400, "items[1]", "rejected"
    )
    assert_error(
        post(server, "/v4/transactions", transaction(orderId="bad")), 400, "transaction", ""
    )


def test_a_failing_predicate_is_a_500(
    server: LocalSynerise, capsys: pytest.CaptureFixture[str]
) -> None:
    server.reject(lambda item: 1 / 0 > 0)
    assert_error(post(server, "/v4/events/batch", [custom()]), 500, None, "ZeroDivisionError")
    assert "ZeroDivisionError" in capsys.readouterr().err


# -- connections ---------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(server: LocalSynerise) -> None:
    session = requests.Session()
    token = login(server, session)
    for _ in range(3):
        assert post(server, "/v4/events/batch", [custom()], token=token, session=session).ok
    assert server.connections == 1
    response = post(
        server, "/v4/events/batch", [custom()], token=token, headers={"Connection": "close"}
    )
    assert response.headers["Connection"] == "close"
    assert server.connections == 2


def test_keep_alive_survives_an_error_reply(server: LocalSynerise) -> None:
    session = requests.Session()
    assert post(server, "/v4/events/batch", [custom(label="")], session=session).status_code == 400
    assert post(server, "/v4/events/batch", b"nonsense", session=session).status_code == 400
    assert post(server, "/v4/events/batch", [custom()], session=session).status_code == 202
    assert server.connections == 1


# -- entry points --------------------------------------------------------------------------


def test_command_line_port_in_use_says_so(server: LocalSynerise) -> None:
    port = urlsplit(server.url).port
    result = subprocess.run(
        [sys.executable, "-m", "django_synerise.testing", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "pass another --port" in result.stderr
    assert "Traceback" not in result.stderr


def test_binding_a_used_port_raises_oserror_not_attributeerror(server: LocalSynerise) -> None:
    taken = LocalSynerise(port=urlsplit(server.url).port)
    with pytest.raises(OSError, match="in use"):
        taken.start()


def test_command_line_entry_point() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django_synerise.testing",
            "--api-key",
            "cli-key",
            "--no-ai-text-plain",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        response = requests.post(
            url + "/uauth/v2/auth/login/profile",
            data=json.dumps({"apiKey": "cli-key"}),
            headers=V4,
            timeout=5,
        )
        token = response.json()["token"]
        response = requests.post(
            url + "/v4/events/batch",
            data=json.dumps([custom()]),
            headers={**V4, "Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert response.status_code == 202
        response = requests.post(
            url + "/events/v1/batch?token=test-tracker-key",
            data=json.dumps({"eventType": "recommendation.view", "items": [ai_item()]}),
            headers={"Content-Type": TEXT_PLAIN},
            timeout=5,
        )
        assert response.status_code == 415  # --no-ai-text-plain
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "v4-batch" in out
    assert "custom" in out
    # Before: the banner printed both keys.
    assert "API key as given, tracker key default" in err
    assert "cli-key" not in err + out and "test-tracker-key" not in err + out


def test_synerise_server_fixture(synerise_server: LocalSynerise) -> None:  # noqa: F811
    assert requests.get(synerise_server.url + "/__local__/health", timeout=5).ok


def test_synerise_stand_in_fixture(synerise_stand_in: LocalSynerise) -> None:  # noqa: F811
    from django.conf import settings

    assert settings.SYNERISE["API_BASE_URL"] == synerise_stand_in.url
    assert settings.SYNERISE["API_KEY"] == synerise_stand_in.api_key
    assert settings.SYNERISE["TRACKER_KEY"] == synerise_stand_in.tracker_key
    assert settings.SYNERISE["RAISE_ERRORS"] is True  # the rest is kept


def test_deeply_nested_json_is_a_400_not_a_500_with_a_traceback(
    server: LocalSynerise, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before: the stand-in answered 500 and printed a RecursionError traceback."""
    deep = b"[" * 100_000 + b"]" * 100_000
    response = post(server, "/v4/events/batch", deep)
    assert response.status_code == 400
    assert "nested too deeply" in response.text
    deep_object = ('{"a":' * 5_000 + "1" + "}" * 5_000).encode()
    response = post(server, "/v4/events/batch", b"[" + deep_object + b"]")
    assert response.status_code == 400
    assert "Traceback" not in capfd.readouterr().err


def test_verbose_logs_keep_the_tracker_key_out(capfd: pytest.CaptureFixture[str]) -> None:
    """Before: ``--verbose`` logged each request line, ``?token=`` and all."""
    with LocalSynerise(verbose=True) as server:
        response = post(
            server,
            ai_path(server, "/events/v1/batch"),
            {"eventType": "recommendation.view", "items": [ai_item()]},
        )
        assert response.status_code < 500
    err = capfd.readouterr().err
    assert "/events/v1/batch?token=***" in err
    assert server.tracker_key not in err
