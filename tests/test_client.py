"""Tests of django_synerise.client: sending records to endpoints, auth flows, classification.

Unit tests mount a fake transport adapter on a real ``requests.Session`` (so
URLs, query strings and headers go through requests' own preparation); the HTTP
tests at the end talk to the local Synerise stand-in over real sockets.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import http
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from django_synerise import events
from django_synerise.client import (
    LOGIN_PATH,
    MAX_RESPONSE_CHARS,
    MemoryTokenCache,
    SyneriseClient,
    default_user_agent,
)
from django_synerise.endpoints import AI_EVENTS, EVENTS, TRANSACTIONS
from django_synerise.events import AIEvent, CustomEvent, DedicatedEvent, Transaction
from django_synerise.exceptions import (
    AuthenticationError,
    RateLimitedError,
    RejectedError,
    RetryableError,
    SyneriseError,
)
from tests.helpers import make_jwt

BASE = "https://api.synerise.test"
API_KEY = "ak-SECRET-5f0c1e0a-1111"
TRACKER_KEY = "tk-SECRET-56ba9d02-2222"
GUID = "guid-3333"
UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"


# ---------------------------------------------------------------------------
# A fake Synerise at the session boundary
# ---------------------------------------------------------------------------

Reply = tuple[int, Any, dict[str, str]] | BaseException | Callable[..., Any]


class FakeAdapter(requests.adapters.BaseAdapter):
    """Answers logins with fresh JWTs and other calls from a queue (default 202)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[requests.PreparedRequest] = []
        self.replies: list[Reply] = []
        self.login_replies: list[Reply] = []
        self.logins = 0
        self.token_ttl: float | None = 3600
        self.issued: list[str] = []

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.requests.append(request)
        self.last_kwargs = kwargs
        path = urlsplit(request.url).path
        if path == LOGIN_PATH:
            self.logins += 1
            if self.login_replies:
                return self._reply(request, self.login_replies.pop(0))
            exp = None if self.token_ttl is None else time.time() + self.token_ttl
            token = make_jwt(exp, n=self.logins)
            self.issued.append(token)
            return self._reply(request, (200, {"token": token}, {}))
        if self.replies:
            return self._reply(request, self.replies.pop(0))
        return self._reply(request, (202, None, {}))

    def _reply(self, request: requests.PreparedRequest, reply: Reply) -> requests.Response:
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            reply = reply(request)
        status, body, headers = reply  # type: ignore[misc]
        response = requests.Response()
        response.status_code = status
        response.reason = (
            http.HTTPStatus(status).phrase if status in http.HTTPStatus._value2member_map_ else "?"
        )
        if body is None:
            content = b""
        elif isinstance(body, bytes):
            content = body
        elif isinstance(body, str):
            content = body.encode()
        else:
            content = json.dumps(body).encode()
        response._content = content
        response.headers = CaseInsensitiveDict(headers)
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass

    # helpers
    def calls(self, path: str | None = None) -> list[requests.PreparedRequest]:
        return [r for r in self.requests if path is None or urlsplit(r.url).path == path]

    def api_calls(self) -> list[requests.PreparedRequest]:
        return [r for r in self.requests if urlsplit(r.url).path != LOGIN_PATH]


@pytest.fixture
def adapter() -> FakeAdapter:
    return FakeAdapter()


@pytest.fixture
def session(adapter: FakeAdapter) -> requests.Session:
    s = requests.Session()
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    return s


@pytest.fixture
def make_client(session: requests.Session) -> Callable[..., SyneriseClient]:
    def factory(**kwargs: Any) -> SyneriseClient:
        options: dict[str, Any] = {
            "base_url": BASE,
            "api_key": API_KEY,
            "tracker_key": TRACKER_KEY,
            "session": session,
        }
        options.update(kwargs)
        return SyneriseClient(**options)

    return factory


@pytest.fixture
def client(make_client: Callable[..., SyneriseClient]) -> SyneriseClient:
    return make_client()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def body_of(request: requests.PreparedRequest) -> Any:
    raw = request.body
    assert isinstance(raw, bytes)
    return json.loads(raw.decode("utf-8"))


def custom(**kwargs: Any) -> CustomEvent:
    kwargs.setdefault("client", {"customId": "42"})
    kwargs.setdefault("params", {"loudness": 3})
    return CustomEvent("dog.bark", **kwargs)


def ai_view(**kwargs: Any) -> AIEvent:
    kwargs.setdefault("correlation_id", "corr-1")
    kwargs.setdefault("client_uuid", UUID)
    kwargs.setdefault("items", ["1", "2"])
    return AIEvent("recommendation.view", **kwargs)


def all_secrets(adapter: FakeAdapter) -> list[str]:
    basic = base64.b64encode(f"{GUID}:{API_KEY}".encode()).decode()
    return [API_KEY, TRACKER_KEY, basic, *adapter.issued]


def assert_no_secrets(text: str, adapter: FakeAdapter) -> None:
    for secret in all_secrets(adapter):
        assert secret not in text
    assert "SECRET" not in text


def exception_texts(exc: SyneriseError) -> str:
    parts = [str(exc), repr(exc), exc.message, exc.response or "", exc.endpoint or ""]
    cause = exc.__cause__
    if cause is not None:
        parts += [str(cause), repr(cause)]
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------


class TestConstruction:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"base_url": "api.synerise.com"},
            {"auth": "oauth"},
            {"ai_events_api": "v2"},
            {"ai_timestamp_format": "rfc"},
            {"token_lifetime": 0},
            {"token_refresh_margin": -1},
        ],
    )
    def test_rejects_impossible_arguments(
        self, make_client: Callable[..., SyneriseClient], kwargs: dict[str, Any]
    ) -> None:
        with pytest.raises(ValueError):
            make_client(**kwargs)

    def test_arguments_are_keyword_only(self) -> None:
        with pytest.raises(TypeError):
            SyneriseClient(BASE)  # type: ignore[call-arg]

    def test_trailing_slash_is_dropped(self, make_client: Callable[..., SyneriseClient]) -> None:
        assert make_client(base_url=BASE + "/").base_url == BASE

    def test_repr_shows_no_secret(self, client: SyneriseClient) -> None:
        assert API_KEY not in repr(client)

    def test_token_cache_key_is_a_hash(self, client: SyneriseClient) -> None:
        digest = hashlib.sha256(f"{BASE}\n{API_KEY}".encode()).hexdigest()
        assert digest[:40] in client.token_cache_key
        assert API_KEY not in client.token_cache_key
        assert len(client.token_cache_key) < 250  # memcached's limit

    def test_owned_session_is_closed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with SyneriseClient(base_url=BASE, api_key=API_KEY) as c:
            closed = []
            monkeypatch.setattr(c.session, "close", lambda: closed.append(True))
        assert closed == [True]

    def test_session_passed_in_stays_open(
        self, make_client: Callable[..., SyneriseClient], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        c = make_client()
        closed = []
        monkeypatch.setattr(c.session, "close", lambda: closed.append(True))
        c.close()
        assert closed == []


# ---------------------------------------------------------------------------
# Workspace authentication
# ---------------------------------------------------------------------------


class TestJwtAuth:
    def test_login_request_and_bearer(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        client.send(EVENTS, [custom()])
        login, call = adapter.requests
        assert login.method == "POST"
        assert login.url == BASE + LOGIN_PATH
        assert login.headers["Content-Type"] == "application/json"
        assert login.headers["Api-Version"] == "4.4"
        assert body_of(login) == {"apiKey": API_KEY}
        assert call.headers["Authorization"] == f"Bearer {adapter.issued[0]}"
        assert call.headers["Api-Version"] == "4.4"
        assert call.headers["Content-Type"] == "application/json"
        assert call.headers["User-Agent"] == default_user_agent()

    def test_token_is_reused(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        for _ in range(3):
            client.send(EVENTS, [custom()])
        assert adapter.logins == 1
        assert len(adapter.api_calls()) == 3

    def test_clients_sharing_a_cache_share_the_token(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        cache = MemoryTokenCache()
        make_client(token_cache=cache).send(EVENTS, [custom()])
        make_client(token_cache=cache).send(EVENTS, [custom()])
        assert adapter.logins == 1

    def test_cache_timeout_from_exp_minus_margin(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        recorded: list[float] = []

        class Recording(MemoryTokenCache):
            def set(self, key: str, value: str, timeout: float) -> None:
                recorded.append(timeout)
                super().set(key, value, timeout)

        adapter.token_ttl = 3600
        make_client(token_cache=Recording(), token_refresh_margin=60).send(EVENTS, [custom()])
        assert recorded[0] == pytest.approx(3540, abs=2)

    def test_cache_timeout_falls_back_to_token_lifetime(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        recorded: list[float] = []

        class Recording(MemoryTokenCache):
            def set(self, key: str, value: str, timeout: float) -> None:
                recorded.append(timeout)
                super().set(key, value, timeout)

        adapter.token_ttl = None
        make_client(token_cache=Recording(), token_lifetime=1234).send(EVENTS, [custom()])
        adapter.login_replies.append((200, {"token": "opaque-token"}, {}))
        make_client(token_cache=Recording(), token_lifetime=99).send(EVENTS, [custom()])
        assert recorded == [1234, 99]
        assert adapter.api_calls()[-1].headers["Authorization"] == "Bearer opaque-token"

    def test_short_lived_token_is_kept_half_its_life(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        recorded: list[float] = []

        class Recording(MemoryTokenCache):
            def set(self, key: str, value: str, timeout: float) -> None:
                recorded.append(timeout)
                super().set(key, value, timeout)

        adapter.token_ttl = 40
        make_client(token_cache=Recording(), token_refresh_margin=60).send(EVENTS, [custom()])
        assert recorded[0] == pytest.approx(20, abs=1)

    def test_token_already_expired_by_our_clock(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter, caplog: Any
    ) -> None:
        recorded: list[float] = []

        class Recording(MemoryTokenCache):
            def set(self, key: str, value: str, timeout: float) -> None:
                recorded.append(timeout)
                super().set(key, value, timeout)

        adapter.token_ttl = -7200
        with caplog.at_level(logging.WARNING, logger="django_synerise.client"):
            make_client(token_cache=Recording(), token_lifetime=999).send(EVENTS, [custom()])
        assert recorded == [999]
        assert "system time" in caplog.text

    def test_refreshes_before_exp(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        clock = FakeClock()
        adapter.token_ttl = 3600
        c = make_client(token_cache=MemoryTokenCache(clock=clock), token_refresh_margin=60)
        c.send(EVENTS, [custom()])
        clock.now += 3500  # 100 s before exp: still good
        c.send(EVENTS, [custom()])
        assert adapter.logins == 1
        clock.now += 45  # inside the margin: renewed before Synerise would refuse it
        c.send(EVENTS, [custom()])
        assert adapter.logins == 2
        last = adapter.api_calls()[-1]
        assert last.headers["Authorization"] == f"Bearer {adapter.issued[1]}"

    def test_relogin_once_on_401(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        client.send(EVENTS, [custom()])
        adapter.queue((401, {"message": "Token expired"}, {}))
        client.send(EVENTS, [custom()])
        assert adapter.logins == 2
        calls = adapter.api_calls()
        assert len(calls) == 3
        assert calls[1].headers["Authorization"] == f"Bearer {adapter.issued[0]}"
        assert calls[2].headers["Authorization"] == f"Bearer {adapter.issued[1]}"
        assert calls[1].body == calls[2].body
        # The new token is cached for the next call.
        client.send(EVENTS, [custom()])
        assert adapter.logins == 2

    def test_second_401_is_authentication_error(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        adapter.queue(
            (401, {"message": "Unauthorized"}, {}), (401, {"message": "Unauthorized"}, {})
        )
        with pytest.raises(AuthenticationError) as info:
            client.send(EVENTS, [custom()])
        assert adapter.logins == 2
        assert len(adapter.api_calls()) == 2
        assert info.value.status_code == 401
        assert info.value.endpoint == "/v4/events/batch"
        assert "Unauthorized" in info.value.message

    def test_another_worker_already_refreshed(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        cache = MemoryTokenCache()
        c = make_client(token_cache=cache)
        c.send(EVENTS, [custom()])

        def refreshed_elsewhere(
            request: requests.PreparedRequest,
        ) -> tuple[int, Any, dict[str, str]]:
            cache.set(c.token_cache_key, "fresh-from-elsewhere", 600)
            return (401, None, {})

        adapter.queue(refreshed_elsewhere)
        c.send(EVENTS, [custom()])
        assert adapter.logins == 1
        assert adapter.api_calls()[-1].headers["Authorization"] == "Bearer fresh-from-elsewhere"

    def test_403_is_authentication_error_without_relogin(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        adapter.queue((403, {"error": "Forbidden", "message": "No permission"}, {}))
        with pytest.raises(AuthenticationError) as info:
            client.send(EVENTS, [custom()])
        assert adapter.logins == 1
        assert info.value.status_code == 403
        assert "No permission" in str(info.value)

    @pytest.mark.parametrize("status", [400, 401, 403])
    def test_refused_login(self, client: SyneriseClient, adapter: FakeAdapter, status: int) -> None:
        adapter.login_replies.append((status, {"message": "Invalid api key"}, {}))
        with pytest.raises(AuthenticationError) as info:
            client.send(EVENTS, [custom()])
        assert info.value.message.startswith("Synerise refused the API key")
        assert "Invalid api key" in info.value.message
        assert info.value.endpoint == LOGIN_PATH
        assert info.value.status_code == status
        assert adapter.api_calls() == []

    def test_login_404_is_authentication_error(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        adapter.login_replies.append((404, "Not Found", {}))
        with pytest.raises(AuthenticationError, match="API_BASE_URL"):
            client.send(EVENTS, [custom()])

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_login_server_error_is_retryable(
        self, client: SyneriseClient, adapter: FakeAdapter, status: int
    ) -> None:
        adapter.login_replies.append((status, None, {}))
        with pytest.raises(RetryableError) as info:
            client.send(EVENTS, [custom()])
        assert not isinstance(info.value, RateLimitedError)
        assert info.value.endpoint == LOGIN_PATH

    def test_login_rate_limited(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        adapter.login_replies.append((429, None, {"Retry-After": "3"}))
        with pytest.raises(RateLimitedError) as info:
            client.send(EVENTS, [custom()])
        assert info.value.retry_after == 3

    def test_login_network_error_is_retryable(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        adapter.login_replies.append(requests.ConnectionError("boom"))
        with pytest.raises(RetryableError, match="could not reach Synerise"):
            client.send(EVENTS, [custom()])

    @pytest.mark.parametrize("body", ["<html>oops</html>", {"nope": 1}, {"token": ""}, [1]])
    def test_login_without_token_is_retryable(
        self, client: SyneriseClient, adapter: FakeAdapter, body: Any
    ) -> None:
        adapter.login_replies.append((200, body, {}))
        with pytest.raises(RetryableError, match="no token"):
            client.send(EVENTS, [custom()])

    def test_missing_api_key(self, make_client: Callable[..., SyneriseClient]) -> None:
        with pytest.raises(ValueError, match="api_key is required"):
            make_client(api_key=None).send(EVENTS, [custom()])

    def test_broken_token_cache_does_not_stop_delivery(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter, caplog: Any
    ) -> None:
        class Broken:
            def get(self, key: str) -> str | None:
                raise ConnectionError("redis down")

            def set(self, key: str, value: str, timeout: float) -> None:
                raise ConnectionError("redis down")

            def delete(self, key: str) -> None:
                raise ConnectionError("redis down")

        c = make_client(token_cache=Broken())
        with caplog.at_level(logging.WARNING, logger="django_synerise.client"):
            c.send(EVENTS, [custom()])
        assert len(adapter.api_calls()) == 1
        assert "token cache" in caplog.text

    def test_concurrent_threads_log_in_once(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                client.send(EVENTS, [custom()])
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert adapter.logins == 1


class TestBasicAuth:
    def test_basic_header_and_no_login(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        c = make_client(auth="basic", workspace_guid=GUID)
        c.send(EVENTS, [custom()])
        c.send(TRANSACTIONS, [Transaction(client={"customId": "1"}, order_id="o1")])
        assert adapter.logins == 0
        expected = "Basic " + base64.b64encode(f"{GUID}:{API_KEY}".encode()).decode()
        for call in adapter.requests:
            assert call.headers["Authorization"] == expected
            assert call.headers["Api-Version"] == "4.4"

    def test_basic_401_is_authentication_error(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        adapter.queue((401, {"message": "Bad credentials"}, {}))
        with pytest.raises(AuthenticationError, match="Basic credentials") as info:
            make_client(auth="basic", workspace_guid=GUID).send(EVENTS, [custom()])
        assert adapter.logins == 0
        assert len(adapter.requests) == 1
        assert_no_secrets(exception_texts(info.value), adapter)

    def test_basic_needs_guid(self, make_client: Callable[..., SyneriseClient]) -> None:
        with pytest.raises(ValueError, match="workspace_guid"):
            make_client(auth="basic").send(EVENTS, [custom()])


# ---------------------------------------------------------------------------
# Endpoints and bodies
# ---------------------------------------------------------------------------


class TestEndpoints:
    def test_send_three_input_forms(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        a = custom()
        b = DedicatedEvent("shared", client={"email": "x@example.com"}, params={"sku": "1"})
        client.send(EVENTS, [a, b.to_payload(), a.to_json()])
        (call,) = adapter.api_calls()
        assert call.url == BASE + "/v4/events/batch"
        assert body_of(call) == [a.to_payload(), b.to_payload(), a.to_payload()]

    def test_send_joins_texts_without_reencoding(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        texts = [
            custom(params={"name": "Zażółć ✓"}).to_json(),
            '{"type":"custom","action":"x.y","client":{"id":1},"label":"l"}',
        ]
        client.send(EVENTS, texts)
        (call,) = adapter.api_calls()
        assert call.body == ("[" + ",".join(texts) + "]").encode("utf-8")

    def test_send_accepts_a_generator(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        client.send(EVENTS, (e.to_json() for e in [custom(), custom()]))
        assert len(body_of(adapter.api_calls()[0])) == 2

    def test_empty_batch_sends_nothing(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        client.send(EVENTS, [])
        client.send(TRANSACTIONS, [])
        client.send(AI_EVENTS, group="recommendation.view", items=[])
        assert adapter.requests == []

    def test_send_refuses_records_of_another_endpoint(self, client: SyneriseClient) -> None:
        with pytest.raises(ValueError, match="send it to the 'transaction' endpoint"):
            client.send(EVENTS, [Transaction(client={"customId": "1"}, order_id="o1")])
        with pytest.raises(ValueError, match="send it to the 'ai' endpoint"):
            client.send(EVENTS, [ai_view()])
        with pytest.raises(TypeError):
            client.send(EVENTS, [42])  # type: ignore[list-item]

    def test_send_transactions(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        tx = Transaction(
            client={"customId": "1"},
            order_id="o-1",
            products=[{"sku": "s", "name": "n", "quantity": 2, "finalUnitPrice": 3}],
            currency="PLN",
        )
        client.send(TRANSACTIONS, [tx, tx.to_payload(), tx.to_json()])
        (batch,) = adapter.api_calls()
        assert batch.url == BASE + "/v4/transactions/batch"
        assert body_of(batch) == [tx.to_payload()] * 3
        with pytest.raises(ValueError, match="'event' kind"):
            client.send(TRANSACTIONS, [custom()])

    def test_ai_batch_events_v1(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        stamp = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
        event = ai_view(timestamp=stamp)
        client.send(
            AI_EVENTS,
            group="recommendation.view",
            items=[event, event.to_payload(), event.to_json()],
        )
        (call,) = adapter.requests
        parts = urlsplit(call.url)
        assert parts.path == "/events/v1/batch"
        assert parse_qs(parts.query) == {"token": [TRACKER_KEY]}
        assert "Authorization" not in call.headers
        assert call.headers["Content-Type"] == "application/json"
        body = body_of(call)
        assert body["eventType"] == "recommendation.view"
        assert len(body["items"]) == 3
        assert body["items"][0]["eventTimestamp"] == int(stamp.timestamp() * 1000)
        assert body["items"][0]["items"] == ["1", "2"]

    def test_ai_batch_ai_compat_iso(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        c = make_client(ai_events_api="ai-compat", ai_timestamp_format="iso8601")
        stamp = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
        event = AIEvent(
            "recommendation.click",
            correlation_id="c",
            client_uuid=UUID,
            items=["9"],
            timestamp=stamp,
        )
        c.send(AI_EVENTS, group="recommendation.click", items=[event])
        (call,) = adapter.requests
        parts = urlsplit(call.url)
        assert parts.path == "/v4/events/ai-compat/batch"
        assert parse_qs(parts.query) == {"token": [TRACKER_KEY]}
        item = body_of(call)["items"][0]
        assert item["item"] == "9"
        assert item["eventTimestamp"] == "2024-01-02T03:04:05.000Z"
        assert adapter.logins == 0

    def test_ai_batch_type_checks(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        with pytest.raises(ValueError, match=r"request's event type, 'recommendation\.click'"):
            client.send(AI_EVENTS, [ai_view()], group="recommendation.click")
        with pytest.raises(ValueError, match="'event' kind"):
            client.send(AI_EVENTS, [custom()], group="recommendation.view")
        with pytest.raises(ValueError, match="one event type per request: pass group="):
            client.send(AI_EVENTS, [ai_view().to_json()])
        assert adapter.requests == []
        # Record objects name their own group.
        client.send(AI_EVENTS, [ai_view()])
        assert body_of(adapter.requests[0])["eventType"] == "recommendation.view"

    @pytest.mark.parametrize("auth", ["jwt", "basic"])
    def test_ai_without_tracker_key_sends_the_workspace_jwt(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter, auth: str
    ) -> None:
        client = make_client(tracker_key=None, auth=auth, workspace_guid="guid-1")
        client.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])
        (call,) = [r for r in adapter.requests if r.path_url.startswith("/events/")]
        assert urlsplit(call.url).query == ""
        assert call.headers["Authorization"].startswith("Bearer ")
        assert adapter.logins == 1

    def test_ai_without_any_key(self, make_client: Callable[..., SyneriseClient]) -> None:
        client = make_client(tracker_key=None, api_key=None)
        with pytest.raises(ValueError, match="api_key is required"):
            client.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])

    def test_post_refuses_query_strings(self, client: SyneriseClient) -> None:
        with pytest.raises(ValueError, match="query string"):
            client.post("/events/v1/batch?token=x", b"{}", auth="tracker")
        with pytest.raises(ValueError):
            client.post("v4/events/batch", b"[]")

    def test_post_returns_the_response(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        adapter.queue((200, {"ok": True}, {}))
        response = client.post("/v4/events/batch", b"[]")
        assert response.status_code == 200

    def test_timeout_is_passed(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        make_client(timeout=(1.5, 7.0)).send(EVENTS, [custom()])
        assert adapter.last_kwargs["timeout"] == (1.5, 7.0)

    @pytest.mark.parametrize("status", [200, 201, 202, 204])
    def test_any_2xx_is_success(
        self, client: SyneriseClient, adapter: FakeAdapter, status: int
    ) -> None:
        adapter.queue((status, "<not json>", {}))
        client.send(EVENTS, [custom()])

    def test_custom_user_agent_and_api_version(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        make_client(user_agent="shop/1.0", api_version="4.5").send(EVENTS, [custom()])
        for call in adapter.requests:
            assert call.headers["User-Agent"] == "shop/1.0"
            assert call.headers["Api-Version"] == "4.5"


# ---------------------------------------------------------------------------
# Error classification
# ---------------------------------------------------------------------------


class TestClassification:
    @pytest.mark.parametrize("status", [400, 409, 413, 422])
    def test_other_4xx_is_rejected(
        self, client: SyneriseClient, adapter: FakeAdapter, status: int
    ) -> None:
        adapter.queue(
            (status, {"status": status, "error": "Bad", "message": "Validation failed"}, {})
        )
        with pytest.raises(RejectedError) as info:
            client.send(EVENTS, [custom()])
        exc = info.value
        assert exc.status_code == status
        assert exc.endpoint == "/v4/events/batch"
        assert "Validation failed" in exc.message
        assert exc.message.startswith("Synerise rejected the request")

    @pytest.mark.parametrize("status", [404, 405, 415])
    def test_wrong_endpoint_or_media_type_is_retryable_not_rejected(
        self, client: SyneriseClient, adapter: FakeAdapter, status: int
    ) -> None:
        adapter.queue((status, {"status": status, "error": "Nope", "message": "No route"}, {}))
        with pytest.raises(RetryableError) as info:
            client.send(EVENTS, [custom()])
        exc = info.value
        assert not isinstance(exc, RateLimitedError)
        assert exc.status_code == status
        assert exc.message.startswith("Synerise did not accept requests at this endpoint")
        assert "No route" in exc.message
        assert "check API_BASE_URL and AI_EVENTS_API" in exc.message

    def test_rejected_carries_errors_and_request_id(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        errors = [
            {"field": "client", "message": "must contain an identifier"},
            {"field": "label", "message": "must not be blank"},
        ]
        adapter.queue(
            (
                400,
                {"error": "Bad Request", "errors": errors, "path": "/v4/events/batch"},
                {"X-Request-Id": "req-123"},
            )
        )
        with pytest.raises(RejectedError) as info:
            client.send(EVENTS, [custom()])
        exc = info.value
        assert exc.errors == errors
        assert exc.request_id == "req-123"
        assert "Bad Request" in exc.message
        assert "client: must contain an identifier" in exc.message
        assert str(exc).endswith("(/v4/events/batch, HTTP 400, request id req-123)")

    def test_correlation_id_header(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        adapter.queue((400, "plain text", {"X-Correlation-Id": "corr-9"}))
        with pytest.raises(RejectedError) as info:
            client.send(EVENTS, [custom()])
        assert info.value.request_id == "corr-9"
        assert info.value.response == "plain text"
        assert info.value.errors == []

    def test_response_is_truncated(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        adapter.queue((400, "x" * 10_000, {}))
        with pytest.raises(RejectedError) as info:
            client.send(EVENTS, [custom()])
        assert info.value.response is not None
        assert len(info.value.response) <= MAX_RESPONSE_CHARS

    @pytest.mark.parametrize("status", [408, 500, 502, 504, 507, 599])
    def test_retryable_statuses(
        self, client: SyneriseClient, adapter: FakeAdapter, status: int
    ) -> None:
        adapter.queue((status, {"message": "oops"}, {"Retry-After": "5"}))
        with pytest.raises(RetryableError) as info:
            client.send(EVENTS, [custom()])
        assert type(info.value) is RetryableError
        assert info.value.status_code == status

    def test_503_without_retry_after_is_retryable(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        adapter.queue((503, None, {}))
        with pytest.raises(RetryableError) as info:
            client.send(EVENTS, [custom()])
        assert type(info.value) is RetryableError

    def test_503_with_retry_after_is_rate_limited(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        adapter.queue((503, None, {"Retry-After": "30"}))
        with pytest.raises(RateLimitedError) as info:
            client.send(EVENTS, [custom()])
        assert info.value.retry_after == 30

    @pytest.mark.parametrize(
        ("header", "expected"),
        [({"Retry-After": "12"}, 12.0), ({}, None), ({"Retry-After": "whenever"}, None)],
    )
    def test_429(
        self,
        client: SyneriseClient,
        adapter: FakeAdapter,
        header: dict[str, str],
        expected: float | None,
    ) -> None:
        adapter.queue((429, {"message": "Too many requests"}, header))
        with pytest.raises(RateLimitedError) as info:
            client.send(EVENTS, [custom()])
        assert info.value.retry_after == expected
        assert info.value.status_code == 429

    def test_429_with_http_date(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        header = email.utils.formatdate(time.time() + 60, usegmt=True)
        adapter.queue((429, None, {"Retry-After": header}))
        with pytest.raises(RateLimitedError) as info:
            client.send(EVENTS, [custom()])
        assert info.value.retry_after == pytest.approx(60, abs=2)

    def test_redirect_is_not_followed(self, client: SyneriseClient, adapter: FakeAdapter) -> None:
        adapter.queue((301, None, {"Location": "https://elsewhere.test/v4/events/batch"}))
        with pytest.raises(RetryableError, match="base URL"):
            client.send(EVENTS, [custom()])
        assert adapter.last_kwargs.get("allow_redirects", False) is False
        assert len(adapter.api_calls()) == 1

    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (requests.ConnectionError("x"), "connection failed"),
            (requests.ConnectTimeout("x"), "connection timed out"),
            (requests.ReadTimeout("x"), "read timeout"),
            (requests.exceptions.ChunkedEncodingError("x"), "cut off"),
            (requests.exceptions.SSLError("x"), "TLS"),
            (requests.exceptions.InvalidHeader("x"), "request failed"),
            (
                requests.ConnectionError(ConnectionRefusedError(111, "refused")),
                "connection refused",
            ),
        ],
    )
    def test_network_errors_are_retryable(
        self, client: SyneriseClient, adapter: FakeAdapter, error: Exception, reason: str
    ) -> None:
        client.send(EVENTS, [custom()])  # log in first
        adapter.queue(error)
        with pytest.raises(RetryableError) as info:
            client.send(EVENTS, [custom()])
        assert type(info.value) is RetryableError
        assert info.value.message.startswith("could not reach Synerise: ")
        assert reason in info.value.message
        assert info.value.status_code is None
        assert info.value.endpoint == "/v4/events/batch"

    def test_network_error_text_never_carries_the_tracker_key(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        url = f"{BASE}/events/v1/batch?token={TRACKER_KEY}"
        adapter.queue(
            requests.ConnectionError(f"HTTPSConnectionPool: Max retries exceeded with url: {url}")
        )
        with pytest.raises(RetryableError) as info:
            client.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])
        text = exception_texts(info.value)
        assert_no_secrets(text, adapter)
        assert info.value.endpoint == "/events/v1/batch"
        assert isinstance(info.value.__cause__, requests.ConnectionError)
        assert info.value.__cause__.__traceback__ is None
        assert info.value.__context__ is None or info.value.__suppress_context__
        assert not isinstance(info.value.__context__, requests.RequestException)

    @pytest.mark.parametrize("status", [401, 403])
    def test_tracker_key_refused(
        self, client: SyneriseClient, adapter: FakeAdapter, status: int
    ) -> None:
        adapter.queue((status, {"message": "Invalid token"}, {}))
        with pytest.raises(AuthenticationError, match="tracker key") as info:
            client.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])
        assert adapter.logins == 0
        assert len(adapter.requests) == 1
        assert info.value.endpoint == "/events/v1/batch"

    @pytest.mark.parametrize(
        ("status", "cls"),
        [(400, RejectedError), (429, RateLimitedError), (500, RetryableError)],
    )
    def test_ai_errors_classified(
        self, client: SyneriseClient, adapter: FakeAdapter, status: int, cls: type[SyneriseError]
    ) -> None:
        adapter.queue((status, None, {}))
        with pytest.raises(cls) as info:
            client.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])
        assert info.value.endpoint == "/events/v1/batch"


# ---------------------------------------------------------------------------
# Secrets and logging
# ---------------------------------------------------------------------------


class TestSecrets:
    def test_echoed_secrets_are_redacted(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        client.send(EVENTS, [custom()])
        jwt = adapter.issued[0]
        echo = {
            "message": f"bad key {API_KEY} with token {jwt}",
            "errors": [{"field": "token", "message": TRACKER_KEY}],
            "path": f"/v4/events/batch?token={TRACKER_KEY}",
        }
        adapter.queue((400, echo, {"X-Request-Id": f"id-{API_KEY}"}))
        with pytest.raises(RejectedError) as info:
            client.send(EVENTS, [custom()])
        assert_no_secrets(exception_texts(info.value), adapter)
        assert_no_secrets(info.value.request_id or "", adapter)
        assert "***" in info.value.message

    def test_refused_login_echoing_the_key(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        adapter.login_replies.append((401, {"message": f"Unknown apiKey {API_KEY}"}, {}))
        with pytest.raises(AuthenticationError) as info:
            client.send(EVENTS, [custom()])
        assert_no_secrets(exception_texts(info.value), adapter)

    def test_basic_credentials_are_redacted(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter
    ) -> None:
        basic = base64.b64encode(f"{GUID}:{API_KEY}".encode()).decode()
        adapter.queue((400, {"message": f"header was {basic}"}, {}))
        with pytest.raises(RejectedError) as info:
            make_client(auth="basic", workspace_guid=GUID).send(EVENTS, [custom()])
        assert basic not in exception_texts(info.value)

    def test_exceptions_pickle_without_secrets(
        self, client: SyneriseClient, adapter: FakeAdapter
    ) -> None:
        import pickle

        adapter.queue((429, {"message": f"slow down {API_KEY}"}, {"Retry-After": "4"}))
        with pytest.raises(RateLimitedError) as info:
            client.send(EVENTS, [custom()])
        restored = pickle.loads(pickle.dumps(info.value))
        assert restored.retry_after == 4
        assert API_KEY not in str(restored)

    def test_logs_carry_no_secrets(
        self, make_client: Callable[..., SyneriseClient], adapter: FakeAdapter, caplog: Any
    ) -> None:
        c = make_client()
        with caplog.at_level(logging.DEBUG, logger="django_synerise.client"):
            c.send(EVENTS, [custom(), custom()])
            adapter.queue((401, None, {}))
            c.send(EVENTS, [custom()])
            adapter.queue(
                (400, {"message": f"echo {API_KEY} {TRACKER_KEY}"}, {"X-Request-Id": "r-1"})
            )
            with pytest.raises(RejectedError):
                c.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])
            adapter.queue(requests.ConnectionError(f"url ?token={TRACKER_KEY}"))
            with pytest.raises(RetryableError):
                c.send(AI_EVENTS, [ai_view()])
        records = caplog.records
        assert records
        for record in records:
            assert_no_secrets(record.getMessage(), adapter)
            assert record.name == "django_synerise.client"
        messages = [r.getMessage() for r in records]
        assert any("POST /v4/events/batch: 2 event(s)" in m and "bytes" in m for m in messages)
        assert any("/v4/events/batch body: [" in m for m in messages)
        assert not any("token=" in m and "***" not in m for m in messages)
        warnings = [r for r in records if r.levelno == logging.WARNING]
        assert any("HTTP 400" in r.getMessage() and "r-1" in r.getMessage() for r in warnings)
        assert any("could not reach Synerise" in r.getMessage() for r in warnings)

    def test_no_debug_body_when_debug_is_off(self, client: SyneriseClient, caplog: Any) -> None:
        with caplog.at_level(logging.INFO, logger="django_synerise.client"):
            client.send(EVENTS, [custom()])
        assert not [r for r in caplog.records if r.levelno == logging.DEBUG]


# ---------------------------------------------------------------------------
# Real HTTP against the local Synerise stand-in
# ---------------------------------------------------------------------------

HTTP_API_KEY = "http-api-key-SECRET"
HTTP_TRACKER_KEY = "http-tracker-key-SECRET"


@pytest.fixture(scope="module")
def local_synerise() -> Iterator[Any]:
    testing = pytest.importorskip("django_synerise.testing")
    server = testing.LocalSynerise(
        api_key=HTTP_API_KEY, tracker_key=HTTP_TRACKER_KEY, workspace_guid=GUID
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(local_synerise: Any) -> Iterator[Any]:
    local_synerise.clear_faults()
    local_synerise.reset()
    yield local_synerise
    local_synerise.clear_faults()


@pytest.fixture
def http_client(server: Any) -> Iterator[SyneriseClient]:
    with SyneriseClient(
        base_url=server.url,
        api_key=HTTP_API_KEY,
        tracker_key=HTTP_TRACKER_KEY,
        timeout=(1.0, 1.0),
    ) as c:
        yield c


@pytest.fixture
def basic_client(server: Any) -> Iterator[SyneriseClient]:
    with SyneriseClient(
        base_url=server.url,
        api_key=HTTP_API_KEY,
        auth="basic",
        workspace_guid=GUID,
        timeout=(1.0, 1.0),
    ) as c:
        yield c


def http_secrets(server: Any) -> list[str]:
    return [HTTP_API_KEY, HTTP_TRACKER_KEY, *server._tokens]


def assert_clean(exc: SyneriseError, server: Any) -> None:
    text = exception_texts(exc)
    for secret in http_secrets(server):
        assert secret not in text
    assert "SECRET" not in text
    assert "?" not in (exc.endpoint or "")


class TestHTTPEndpoints:
    def test_batch_of_custom_and_dedicated_events(
        self, http_client: SyneriseClient, server: Any
    ) -> None:
        a = custom()
        mug = {"sku": "A-1", "name": "Mug", "finalUnitPrice": 9}
        b = events.add_to_cart(client={"customId": "7"}, product=mug, currency="PLN")
        c = CustomEvent("page.visit", client={"uuid": UUID}, params={"url": "https://shop.test/"})
        http_client.send(EVENTS, [a, b.to_payload(), c.to_json()])
        assert [(e["endpoint"], e["type"], e["salt"]) for e in server.events] == [
            ("v4-batch", "custom", a.salt),
            ("v4-batch", "added-to-cart", b.salt),
            ("v4-batch", "custom", c.salt),
        ]
        assert [server.events[0]["action"], server.events[2]["action"]] == [
            "dog.bark",
            "page.visit",
        ]
        assert server.events[1]["body"] == b.to_payload()
        assert server.logins == 1

    def test_transactions(self, http_client: SyneriseClient, server: Any) -> None:
        tx = Transaction(
            client={"email": "buyer@example.com"},
            order_id="o-1",
            products=[{"sku": "s", "name": "Shoe", "quantity": 2, "finalUnitPrice": 9.5}],
            currency="EUR",
            payment_info={"method": "CASH"},
        )
        http_client.send(TRANSACTIONS, [tx, tx.to_json()])
        assert [e["endpoint"] for e in server.events] == [
            "transactions-batch",
            "transactions-batch",
        ]
        assert server.events[1]["body"] == tx.to_payload()

    @pytest.mark.parametrize("timestamps", ["unix-ms", "iso8601"])
    @pytest.mark.parametrize(
        ("api", "batch_endpoint"),
        [("events-v1", "ai-batch"), ("ai-compat", "ai-compat-batch")],
    )
    def test_ai_events(
        self,
        server: Any,
        api: str,
        batch_endpoint: str,
        timestamps: str,
    ) -> None:
        views = [ai_view(correlation_id=f"c{i}") for i in range(3)]
        click = AIEvent("recommendation.click", correlation_id="c9", client_uuid=UUID, items=["77"])
        search = AIEvent(
            "item.search.click", correlation_id="s1", client_uuid=UUID, items=["5"], position=3
        )
        with SyneriseClient(
            base_url=server.url,
            tracker_key=HTTP_TRACKER_KEY,
            ai_events_api=api,  # type: ignore[arg-type]
            ai_timestamp_format=timestamps,  # type: ignore[arg-type]
        ) as c:
            c.send(
                AI_EVENTS,
                group="recommendation.view",
                items=[views[0], views[1].to_payload(), views[2].to_json()],
            )
            c.send(AI_EVENTS, group="recommendation.click", items=[click])
            c.send(AI_EVENTS, [search])
        assert [(e["endpoint"], e["type"], e["correlation"]) for e in server.events] == [
            (batch_endpoint, "recommendation.view", "c0"),
            (batch_endpoint, "recommendation.view", "c1"),
            (batch_endpoint, "recommendation.view", "c2"),
            (batch_endpoint, "recommendation.click", "c9"),
            (batch_endpoint, "item.search.click", "s1"),
        ]
        assert server.logins == 0
        assert all(r.query == {"token": "<redacted>"} for r in server.requests)
        assert all("authorization" not in r.headers for r in server.requests)

    def test_basic_auth(self, basic_client: SyneriseClient, server: Any) -> None:
        basic_client.send(EVENTS, [custom()])
        basic_client.send(TRANSACTIONS, [Transaction(client={"customId": "1"}, order_id="o")])
        assert server.logins == 0
        assert server.count == 2
        assert {r.headers["authorization"] for r in server.requests} == {"Basic <redacted>"}

    def test_connections_are_kept_alive(self, http_client: SyneriseClient, server: Any) -> None:
        before = server.connections
        for _ in range(5):
            http_client.send(EVENTS, [custom()])
        http_client.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])
        assert server.connections - before == 1
        assert server.count == 6

    def test_user_agent_and_headers(self, http_client: SyneriseClient, server: Any) -> None:
        http_client.send(EVENTS, [custom()])
        for request in server.requests:
            assert request.headers["user-agent"] == default_user_agent()
            assert request.headers["api-version"] == "4.4"
            assert request.headers["content-type"] == "application/json"


class TestHTTPAuth:
    def test_expired_tokens_log_in_again_once(
        self, http_client: SyneriseClient, server: Any
    ) -> None:
        http_client.send(EVENTS, [custom()])
        server.inject("expire_tokens")
        http_client.send(EVENTS, [custom()])
        assert server.logins == 2
        assert server.count == 2
        assert [r.status for r in server.requests] == [200, 202, 401, 200, 202]

    def test_second_401_is_authentication_error(
        self, http_client: SyneriseClient, server: Any
    ) -> None:
        server.inject("expire_tokens", times=2)
        with pytest.raises(AuthenticationError) as info:
            http_client.send(EVENTS, [custom()])
        assert info.value.status_code == 401
        assert "Token expired" in info.value.message or "Invalid token" in info.value.message
        assert info.value.request_id
        assert server.logins == 2
        assert_clean(info.value, server)

    def test_refresh_before_exp_through_http(self, server: Any) -> None:
        clock = FakeClock()
        with SyneriseClient(
            base_url=server.url,
            api_key=HTTP_API_KEY,
            token_cache=MemoryTokenCache(clock=clock),
            token_refresh_margin=60,
        ) as c:
            c.send(EVENTS, [custom()])
            clock.now += server.token_ttl - 100
            c.send(EVENTS, [custom()])
            assert server.logins == 1
            clock.now += 50
            c.send(EVENTS, [custom()])
            assert server.logins == 2
        assert [r.status for r in server.requests if r.path != LOGIN_PATH] == [202, 202, 202]

    def test_wrong_api_key(self, server: Any) -> None:
        with (
            SyneriseClient(base_url=server.url, api_key="wrong-SECRET-key") as c,
            pytest.raises(AuthenticationError, match="refused the API key") as info,
        ):
            c.send(EVENTS, [custom()])
        assert info.value.status_code == 401
        assert info.value.endpoint == LOGIN_PATH
        assert "wrong-SECRET-key" not in exception_texts(info.value)

    def test_wrong_tracker_key(self, server: Any) -> None:
        with (
            SyneriseClient(base_url=server.url, tracker_key="wrong-SECRET-tracker") as c,
            pytest.raises(AuthenticationError, match="tracker key") as info,
        ):
            c.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])
        assert info.value.status_code == 403
        assert info.value.endpoint == "/events/v1/batch"
        assert "wrong-SECRET-tracker" not in exception_texts(info.value)

    def test_wrong_basic_credentials(self, server: Any) -> None:
        with (
            SyneriseClient(
                base_url=server.url, api_key=HTTP_API_KEY, auth="basic", workspace_guid="other"
            ) as c,
            pytest.raises(AuthenticationError, match="Basic credentials") as info,
        ):
            c.send(EVENTS, [custom()])
        assert info.value.status_code == 401
        assert_clean(info.value, server)

    def test_login_failure_is_retryable(self, http_client: SyneriseClient, server: Any) -> None:
        server.inject("503", times=1, paths=[LOGIN_PATH])
        with pytest.raises(RetryableError) as info:
            http_client.send(EVENTS, [custom()])
        assert type(info.value) is RetryableError
        assert info.value.endpoint == LOGIN_PATH
        http_client.send(EVENTS, [custom()])
        assert server.count == 1


class TestHTTPErrors:
    def test_rejected_with_per_event_errors(self, http_client: SyneriseClient, server: Any) -> None:
        server.reject(lambda item: item.get("params", {}).get("poison") is True)
        good, bad = custom(), custom(params={"poison": True})
        with pytest.raises(RejectedError) as info:
            http_client.send(EVENTS, [good, bad])
        exc = info.value
        assert exc.status_code == 400
        assert exc.endpoint == "/v4/events/batch"
        assert exc.request_id
        assert exc.errors and exc.errors[0]["field"] == "[1]"
        assert "[1]" in exc.message
        assert exc.response and '"status": 400' in exc.response
        assert server.count == 0
        assert_clean(exc, server)

    def test_invalid_payload_is_rejected(self, http_client: SyneriseClient, server: Any) -> None:
        with pytest.raises(RejectedError, match="label") as info:
            http_client.send(EVENTS, [{"type": "custom", "action": "a.b", "client": {"id": 1}}])
        assert info.value.errors

    def test_too_large_is_rejected(self, http_client: SyneriseClient, server: Any) -> None:
        limit = server.max_body_bytes
        server.max_body_bytes = 500
        try:
            with pytest.raises(RejectedError) as info:
                http_client.send(EVENTS, [custom(params={"blob": "x" * 600})])
        finally:
            server.max_body_bytes = limit
        assert info.value.status_code == 413

    def test_unknown_endpoint_is_retryable(self, http_client: SyneriseClient, server: Any) -> None:
        with pytest.raises(RetryableError) as info:
            http_client.post("/v4/events/nope", b"{}")
        assert not isinstance(info.value, RejectedError)
        assert info.value.status_code == 404
        assert "check API_BASE_URL" in str(info.value)

    def test_ai_rejected(self, http_client: SyneriseClient, server: Any) -> None:
        with pytest.raises(RejectedError, match="clientUUID") as info:
            http_client.send(
                AI_EVENTS,
                group="recommendation.view",
                items=[{"correlationId": "c", "clientUUID": "nope", "items": []}],
            )
        assert info.value.endpoint == "/events/v1/batch"
        assert_clean(info.value, server)

    @pytest.mark.parametrize("fault", ["500", "502", "malformed"])
    def test_server_errors_are_retryable(
        self, http_client: SyneriseClient, server: Any, fault: str
    ) -> None:
        server.inject(fault, times=1)
        with pytest.raises(RetryableError) as info:
            http_client.send(EVENTS, [custom()])
        assert type(info.value) is RetryableError
        assert info.value.status_code in (500, 502)
        http_client.send(EVENTS, [custom()])
        assert server.count == 1

    def test_503_without_retry_after(self, http_client: SyneriseClient, server: Any) -> None:
        server.inject("503", times=1)
        with pytest.raises(RetryableError) as info:
            http_client.send(EVENTS, [custom()])
        assert type(info.value) is RetryableError
        assert info.value.status_code == 503

    def test_503_with_retry_after(self, http_client: SyneriseClient, server: Any) -> None:
        server.inject("503", times=1, retry_after=12)
        with pytest.raises(RateLimitedError) as info:
            http_client.send(EVENTS, [custom()])
        assert info.value.retry_after == 12

    @pytest.mark.parametrize(
        ("retry_after", "expected"), [(7, 7.0), (None, None), ("not-a-date", None)]
    )
    def test_429(
        self,
        http_client: SyneriseClient,
        server: Any,
        retry_after: Any,
        expected: float | None,
    ) -> None:
        server.inject("429", times=1, retry_after=retry_after)
        with pytest.raises(RateLimitedError) as info:
            http_client.send(TRANSACTIONS, [Transaction(client={"customId": "1"}, order_id="o")])
        assert info.value.status_code == 429
        assert info.value.retry_after == expected
        assert info.value.endpoint == "/v4/transactions/batch"

    def test_429_with_http_date(self, http_client: SyneriseClient, server: Any) -> None:
        server.inject(
            "429", times=1, retry_after=email.utils.formatdate(time.time() + 30, usegmt=True)
        )
        with pytest.raises(RateLimitedError) as info:
            http_client.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])
        assert info.value.retry_after == pytest.approx(30, abs=2)
        assert_clean(info.value, server)

    @pytest.mark.parametrize("fault", ["timeout", "slow"])
    def test_timeouts_are_retryable(self, server: Any, fault: str) -> None:
        server.inject(fault, times=1, delay=1.0)
        with (
            SyneriseClient(
                base_url=server.url, tracker_key=HTTP_TRACKER_KEY, timeout=(1.0, 0.2)
            ) as c,
            pytest.raises(RetryableError, match="read timeout") as info,
        ):
            c.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])
        assert info.value.status_code is None
        assert info.value.endpoint == "/events/v1/batch"
        assert_clean(info.value, server)

    def test_dropped_connection_is_retryable(
        self, http_client: SyneriseClient, server: Any
    ) -> None:
        server.inject("drop", times=1)
        with pytest.raises(RetryableError, match="could not reach Synerise") as info:
            http_client.send(AI_EVENTS, [ai_view()])
        assert info.value.endpoint == "/events/v1/batch"
        assert_clean(info.value, server)
        # The session recovers on the next call.
        http_client.send(AI_EVENTS, [ai_view()])
        assert server.count == 1

    def test_nothing_listening_is_retryable(self) -> None:
        with (
            socket_on_free_port() as port,
            SyneriseClient(base_url=f"http://127.0.0.1:{port}", tracker_key=HTTP_TRACKER_KEY) as c,
        ):
            with pytest.raises(RetryableError, match="connection refused") as info:
                c.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])
        text = exception_texts(info.value)
        assert HTTP_TRACKER_KEY not in text
        # requests' own text (kept, scrubbed, as the cause) names the URL.
        assert "token=***" in str(info.value.__cause__)

    def test_logs_carry_no_secrets_through_http(
        self, http_client: SyneriseClient, server: Any, caplog: Any
    ) -> None:
        server.inject("drop", times=1, paths=["/events/v1/"])
        server.inject("expire_tokens", times=1)
        with caplog.at_level(logging.DEBUG, logger="django_synerise.client"):
            http_client.send(EVENTS, [custom()])
            with pytest.raises(RetryableError):
                http_client.send(AI_EVENTS, group="recommendation.view", items=[ai_view()])
        assert caplog.records
        for record in caplog.records:
            for secret in http_secrets(server):
                assert secret not in record.getMessage()


class socket_on_free_port:
    """A port nothing listens on (bound, never listening), for connection-refused tests."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
