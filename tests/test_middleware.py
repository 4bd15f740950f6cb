"""PageVisitMiddleware through Django's test client (sync and async)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import User
from django.test import AsyncClient, Client, override_settings

from django_synerise.models import OutboxEvent
from tests.docs_samples import run_sample
from tests.helpers import synerise
from tests.testapp import producer_views

pytestmark = pytest.mark.django_db

UUID = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
MIDDLEWARE = "django_synerise.middleware.PageVisitMiddleware"


def page_visits(**overrides: Any) -> override_settings:
    return synerise(PAGE_VISITS=overrides)


@pytest.fixture(autouse=True)
def with_middleware(settings: Any) -> None:
    auth = "django.contrib.auth.middleware.AuthenticationMiddleware"
    stack = list(settings.MIDDLEWARE)
    stack.insert(stack.index(auth) + 1, MIDDLEWARE)
    settings.MIDDLEWARE = stack


@pytest.fixture(autouse=True)
def backlog_counted() -> None:
    """The outbox bound counts pending rows once per 10 s: done here, not inside a query count."""
    from django_synerise import outbox

    outbox.backlog_full()


@pytest.fixture
def visitor() -> Client:
    """A browser that already ran Synerise's JS tracker."""
    client = Client(HTTP_USER_AGENT=CHROME)
    client.cookies["_snrs_uuid"] = UUID
    return client


def events() -> list[dict[str, Any]]:
    """The page visits in the outbox (force_login adds a logged-in event of its own)."""
    rows = OutboxEvent.objects.filter(action="page.visit").order_by("id")
    return [json.loads(row.payload) for row in rows]


def test_tracked_page_writes_exactly_one_row(
    visitor: Client, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        response = visitor.get(
            "/producers/pages/plain/?utm_source=news&utm_campaign=spring&q=shoes",
            HTTP_REFERER="https://search.example/?q=shoes",
        )
    assert response.status_code == 200
    [row] = OutboxEvent.objects.all()
    assert (row.kind, row.batch_type, row.action) == ("event", "custom", "page.visit")
    body = row.body
    assert body["type"] == "custom"
    assert body["action"] == "page.visit"
    assert body["client"] == {"uuid": UUID}
    assert body["params"] == {
        # Only UTM parameters stay; a cross-site referrer is cut to its origin.
        "url": "http://testserver/producers/pages/plain/?utm_source=news&utm_campaign=spring",
        "path": "/producers/pages/plain/",
        "referrer": "https://search.example/",
        "title": "Test",  # the page's <title>
        "utm_source": "news",
        "utm_campaign": "spring",
        "userAgent": CHROME,
    }
    assert body["eventSalt"]


@pytest.mark.django_db(transaction=True)
def test_async_commit_writes_the_same_row_with_one_statement(visitor: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for async_commit in (False, True):
        OutboxEvent.objects.all().delete()
        with page_visits(ASYNC_COMMIT=async_commit), CaptureQueriesContext(connection) as q:
            assert visitor.get("/producers/pages/plain/").status_code == 200
        (insert,) = q.captured_queries
        [row] = OutboxEvent.objects.all()
        assert row.action == "page.visit" and row.body["client"] == {"uuid": UUID}
        skips_the_wait = async_commit and connection.vendor == "postgresql"
        assert ("set_config('synchronous_commit', 'off', true)" in insert["sql"]) is skips_the_wait


def test_title_set_by_the_view(visitor: Client) -> None:
    visitor.get("/producers/pages/titled/")
    [event] = events()
    assert event["params"]["title"] == "Red shoes | Shop"


def test_streaming_html_is_tracked(visitor: Client) -> None:
    response = visitor.get("/producers/pages/streaming/")
    assert b"".join(response.streaming_content).startswith(b"<!doctype html>")
    assert len(events()) == 1


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("post", "/producers/pages/form/", {}),
        ("get", "/producers/no-such-page/", {}),
        ("get", "/producers/pages/json/", {}),
        ("get", "/producers/pages/text/", {}),
        ("get", "/admin/login/", {}),
        ("get", "/producers/backoffice/login/", {}),
        ("get", "/static/producers-fake-page/", {}),
        (
            "get",
            "/producers/pages/plain/",
            {"HTTP_USER_AGENT": "Googlebot/2.1 (+http://www.google.com/bot.html)"},
        ),
        ("get", "/producers/pages/plain/", {"HTTP_USER_AGENT": "UptimeRobot/2.0"}),
        ("get", "/producers/pages/plain/", {"HTTP_SEC_PURPOSE": "prefetch"}),
        ("get", "/producers/pages/plain/", {"HTTP_SEC_PURPOSE": "prefetch;prerender"}),
        ("get", "/producers/pages/plain/", {"HTTP_SEC_FETCH_DEST": "empty"}),
        ("get", "/producers/pages/plain/", {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}),
        ("get", "/producers/pages/plain/", {"HTTP_HX_REQUEST": "true"}),
    ],
    ids=[
        "post",
        "404",
        "json",
        "text",
        "admin",
        "other-admin-site",
        "static",
        "googlebot",
        "monitor",
        "prefetch",
        "prerender",
        "fetch",
        "xhr",
        "htmx-fragment",
    ],
)
def test_untracked_requests_write_nothing_and_query_nothing(
    visitor: Client, django_assert_num_queries: Any, method: str, path: str, headers: dict[str, str]
) -> None:
    with django_assert_num_queries(0):
        getattr(visitor, method)(path, **headers)
    assert OutboxEvent.objects.count() == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_SEC_FETCH_DEST": "document", "HTTP_SEC_FETCH_MODE": "navigate"},
        {"HTTP_HX_REQUEST": "true", "HTTP_HX_BOOSTED": "true", "HTTP_SEC_FETCH_DEST": "empty"},
    ],
    ids=["browser-navigation", "htmx-boosted-navigation"],
)
def test_navigations_are_tracked(visitor: Client, headers: dict[str, str]) -> None:
    visitor.get("/producers/pages/plain/", **headers)
    assert len(events()) == 1


def test_media_url_is_excluded(visitor: Client) -> None:
    with override_settings(MEDIA_URL="/media/"):
        visitor.get("/media/producers-fake-page/")
    assert events() == []
    visitor.get("/media/producers-fake-page/")  # MEDIA_URL unset: an ordinary page
    assert len(events()) == 1


@pytest.mark.parametrize("header", ["HTTP_DNT", "HTTP_SEC_GPC"])
def test_do_not_track_is_respected_when_asked(visitor: Client, header: str) -> None:
    visitor.get("/producers/pages/plain/", **{header: "1"})
    if header == "HTTP_DNT":
        assert len(events()) == 1  # RESPECT_DNT is off by default
    else:
        assert events() == []  # RESPECT_GPC is on by default
        visitor.get("/producers/pages/plain/")
    with synerise(RESPECT_DNT=True):
        visitor.get("/producers/pages/plain/", **{header: "1"})
        assert len(events()) == 1
        visitor.get("/producers/pages/plain/", **{header: "0"})
    assert len(events()) == 2


def test_bots_are_tracked_when_exclusion_is_off(visitor: Client) -> None:
    with page_visits(EXCLUDE_BOTS=False):
        visitor.get("/producers/pages/plain/", HTTP_USER_AGENT="Googlebot/2.1")
    assert len(events()) == 1


@pytest.mark.parametrize(
    "user_agent",
    [
        "python-requests/2.32.3",
        "curl/8.5.0",
        "Go-http-client/1.1",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/126.0.0.0 Safari/537.36",
    ],
    ids=["requests", "curl", "go", "headless-chrome"],
)
def test_automation_is_tracked_by_default_and_excluded_when_asked(
    visitor: Client, django_assert_num_queries: Any, user_agent: str
) -> None:
    # The visitor carries the tracker's cookie: a QA script or an e2e test on purpose.
    visitor.get("/producers/pages/plain/", HTTP_USER_AGENT=user_agent)
    [event] = events()
    assert event["params"]["userAgent"] == user_agent
    with page_visits(EXCLUDE_AUTOMATION=True), django_assert_num_queries(0):
        visitor.get("/producers/pages/plain/", HTTP_USER_AGENT=user_agent)
    with page_visits(EXCLUDE_AUTOMATION=True, EXCLUDE_BOTS=False), django_assert_num_queries(0):
        visitor.get("/producers/pages/plain/", HTTP_USER_AGENT=user_agent)
    assert len(events()) == 1


def test_excluding_automation_leaves_bots_to_exclude_bots(visitor: Client) -> None:
    with page_visits(EXCLUDE_AUTOMATION=True, EXCLUDE_BOTS=False):
        visitor.get("/producers/pages/plain/", HTTP_USER_AGENT="Googlebot/2.1")
        visitor.get("/producers/pages/plain/")  # a browser
    assert len(events()) == 2


def test_an_anonymous_visitor_without_a_session_cookie_costs_no_query(
    django_assert_num_queries: Any,
) -> None:
    client = Client(HTTP_USER_AGENT=CHROME)  # no tracker cookie, no session
    with django_assert_num_queries(0):
        assert client.get("/producers/pages/plain/").status_code == 200
    assert events() == []


def test_an_anonymous_visitor_with_a_session_cookie_costs_one_session_read(
    django_assert_num_queries: Any,
) -> None:
    # Identity must be checked: only the session can tell whether somebody is logged in.
    client = Client(HTTP_USER_AGENT=CHROME)
    session = client.session
    session["cart"] = [1]
    session.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    with django_assert_num_queries(1) as captured:
        assert client.get("/producers/pages/plain/").status_code == 200
    [query] = captured.captured_queries
    assert "django_session" in query["sql"] and query["sql"].lstrip().upper().startswith("SELECT")
    assert OutboxEvent.objects.count() == 0


def test_untracked_logged_in_request_does_not_touch_the_session(
    django_assert_num_queries: Any,
) -> None:
    user = User.objects.create_user("ann", email="ann@example.com")
    client = Client(HTTP_USER_AGENT=CHROME)
    client.force_login(user)
    with django_assert_num_queries(0):
        client.get("/producers/pages/json/")
        client.post("/producers/pages/form/")
    with synerise(RESPECT_DNT=True), django_assert_num_queries(0):
        client.get("/producers/pages/plain/", HTTP_DNT="1")
    assert events() == []


def test_logged_in_user_is_identified(visitor: Client) -> None:
    user = User.objects.create_user("ann", email="ann@example.com")
    visitor.force_login(user)
    visitor.get("/producers/pages/plain/")
    [event] = events()
    # Before: the cookie's uuid came along, linking a uuid the client chose to the account.
    assert event["client"] == {"customId": str(user.pk), "email": "ann@example.com"}


def test_logged_in_page_costs_one_query_more_than_without_the_middleware(
    django_assert_num_queries: Any,
) -> None:
    user = User.objects.create_user("bob", email="bob@example.com")
    client = Client(HTTP_USER_AGENT=CHROME)
    client.force_login(user)
    # The view reads request.user (session + user: 2 queries) whether tracked or not.
    with page_visits(ENABLED=False), django_assert_num_queries(2):
        client.get("/producers/pages/user/")
    with django_assert_num_queries(3):
        client.get("/producers/pages/user/")
    [event] = events()
    assert event["client"] == {"customId": str(user.pk), "email": "bob@example.com"}


def test_requests_without_identifier_are_skipped_and_logged(
    caplog: pytest.LogCaptureFixture, django_assert_num_queries: Any
) -> None:
    client = Client(HTTP_USER_AGENT=CHROME)
    client.cookies["_snrs_uuid"] = "not-a-uuid"
    with (
        caplog.at_level(logging.DEBUG, logger="django_synerise.middleware"),
        django_assert_num_queries(0),
    ):
        client.get("/producers/pages/plain/")
    assert events() == []
    assert "no Synerise identifier" in caplog.text


def test_time_is_the_arrival_time_not_the_enqueue_or_flush_time(visitor: Client) -> None:
    arrival = dt.datetime(2026, 5, 23, 13, 0, 0, 176000, tzinfo=dt.timezone.utc)
    with time_machine.travel(arrival, tick=False) as traveller:
        producer_views.DURING_VIEW.append(lambda: traveller.shift(dt.timedelta(seconds=90)))
        try:
            visitor.get("/producers/pages/plain/")
        finally:
            producer_views.DURING_VIEW.clear()
    [row] = OutboxEvent.objects.all()
    assert row.body["time"] == "2026-05-23T13:00:00.176Z"
    assert row.occurred_at == arrival
    assert row.created_at == arrival + dt.timedelta(seconds=90)


def test_exclude_and_include_paths(visitor: Client) -> None:
    with page_visits(EXCLUDE_PATHS=[r"^/producers/pages/private/"]):
        visitor.get("/producers/pages/private/account/")
        visitor.get("/producers/pages/plain/")
    assert [e["params"]["path"] for e in events()] == ["/producers/pages/plain/"]
    with page_visits(INCLUDE_PATHS=[r"^/producers/pages/titled/$"]):
        visitor.get("/producers/pages/plain/")
        visitor.get("/producers/pages/titled/")
    assert [e["params"]["path"] for e in events()][1:] == ["/producers/pages/titled/"]


def test_methods_status_codes_and_content_types_are_configurable(visitor: Client) -> None:
    with page_visits(METHODS=["GET", "POST"], CONTENT_TYPES=["text/*"], STATUS_CODES=[200, 404]):
        visitor.post("/producers/pages/form/")
        visitor.get("/producers/pages/text/")
        visitor.get("/producers/pages/json/")
        visitor.get("/producers/no-such-page/")
    paths = [e["params"]["path"] for e in events()]
    assert paths == ["/producers/pages/form/", "/producers/pages/text/", "/producers/no-such-page/"]


def extra_params(request: Any, response: Any) -> dict[str, Any]:
    return {"section": request.path.split("/")[3], "status": response.status_code}


def test_params_callable_adds_params(visitor: Client) -> None:
    with page_visits(PARAMS="tests.test_middleware.extra_params"):
        visitor.get("/producers/pages/plain/")
    [event] = events()
    assert event["params"]["section"] == "plain"
    assert event["params"]["status"] == 200


def test_disabled_writes_nothing(visitor: Client, django_assert_num_queries: Any) -> None:
    with synerise(ENABLED=False), django_assert_num_queries(0):
        visitor.get("/producers/pages/plain/")
    with page_visits(ENABLED=False), django_assert_num_queries(0):
        visitor.get("/producers/pages/plain/")
    assert events() == []


def broken_params(request: Any, response: Any) -> dict[str, Any]:
    raise RuntimeError("params bug")


def test_errors_raise_when_raise_errors(visitor: Client) -> None:
    with (
        page_visits(PARAMS="tests.test_middleware.broken_params"),
        pytest.raises(RuntimeError, match="params bug"),
    ):
        visitor.get("/producers/pages/plain/")


def test_errors_never_break_the_page_by_default(
    visitor: Client, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = {
        "RAISE_ERRORS": False,
        "PAGE_VISITS": {"PARAMS": "tests.test_middleware.broken_params"},
    }
    with synerise(**overrides), caplog.at_level(logging.ERROR, logger="django_synerise.middleware"):
        response = visitor.get("/producers/pages/plain/")
    assert response.status_code == 200
    assert response.content.startswith(b"<!doctype html>")
    assert events() == []
    [record] = [r for r in caplog.records if r.name == "django_synerise.middleware"]
    assert "page.visit" in record.getMessage()
    assert record.synerise_action == "page.visit"  # type: ignore[attr-defined]
    assert settings.SYNERISE["API_KEY"] not in caplog.text


def resolve_broken(request: Any) -> dict[str, Any]:
    raise RuntimeError("resolver bug")


@pytest.mark.parametrize("stack", ["sync", "async"])
def test_identity_errors_are_logged_once_with_the_page_visit_action(
    visitor: Client, caplog: pytest.LogCaptureFixture, stack: str
) -> None:
    overrides = {"RAISE_ERRORS": False, "CLIENT_RESOLVER": "tests.test_middleware.resolve_broken"}
    with synerise(**overrides), caplog.at_level(logging.DEBUG, logger="django_synerise"):
        if stack == "sync":
            response = visitor.get("/producers/pages/plain/")
        else:
            response = async_get("/producers/pages/async/")
    assert response.status_code == 200
    assert events() == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    [record] = errors
    assert record.name == "django_synerise.middleware"
    assert record.synerise_action == "page.visit"  # type: ignore[attr-defined]
    assert record.exc_info is not None and "resolver bug" in str(record.exc_info[1])
    # Not mistaken for a visitor nobody could identify.
    assert "no Synerise identifier" not in caplog.text


def test_identity_errors_raise_when_raise_errors(visitor: Client) -> None:
    with (
        synerise(CLIENT_RESOLVER="tests.test_middleware.resolve_broken"),
        pytest.raises(RuntimeError, match="resolver bug"),
    ):
        visitor.get("/producers/pages/plain/")


def test_invalid_exclude_regex_is_a_configuration_error(visitor: Client) -> None:
    with (
        page_visits(EXCLUDE_PATHS=["(unclosed"]),
        pytest.raises(Exception, match=r'PAGE_VISITS"\]\["EXCLUDE_PATHS"\] holds an invalid regex'),
    ):
        visitor.get("/producers/pages/plain/")


# Async stack ------------------------------------------------------------------------


def async_get(path: str, **headers: Any) -> Any:
    client = AsyncClient()
    client.cookies["_snrs_uuid"] = UUID
    return async_to_sync(client.get)(path, headers={"user-agent": CHROME, **headers})


def test_async_view_is_tracked_with_one_query(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(1):
        response = async_get("/producers/pages/async/")
    assert response.status_code == 200
    [event] = events()
    assert event["client"] == {"uuid": UUID}
    assert event["params"]["title"] == "Async page"
    assert event["params"]["userAgent"] == CHROME


def test_sync_view_under_asgi_is_tracked() -> None:
    response = async_get("/producers/pages/plain/")
    assert response.status_code == 200
    assert len(events()) == 1


def test_async_untracked_requests_write_nothing(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        async_get("/producers/pages/json/")
        async_get("/producers/pages/async/", **{"user-agent": "Googlebot/2.1"})
    assert events() == []


def test_async_logged_in_user_is_identified() -> None:
    user = User.objects.create_user("cid", email="cid@example.com")
    client = AsyncClient()
    async_to_sync(client.aforce_login)(user)
    async_to_sync(client.get)("/producers/pages/async/", headers={"user-agent": CHROME})
    [event] = events()
    assert event["client"] == {"customId": str(user.pk), "email": "cid@example.com"}


def test_async_errors_never_break_the_page_by_default(caplog: pytest.LogCaptureFixture) -> None:
    overrides = {
        "RAISE_ERRORS": False,
        "PAGE_VISITS": {"PARAMS": "tests.test_middleware.broken_params"},
    }
    with synerise(**overrides), caplog.at_level(logging.ERROR, logger="django_synerise.middleware"):
        response = async_get("/producers/pages/async/")
    assert response.status_code == 200
    assert events() == []
    assert "page.visit" in caplog.text


@pytest.fixture(autouse=True)
def _no_leftover_callbacks() -> Iterator[None]:
    yield
    producer_views.DURING_VIEW.clear()


def test_middleware_adapts_to_the_stack() -> None:
    from asgiref.sync import iscoroutinefunction

    from django_synerise.middleware import PageVisitMiddleware

    async def async_view(request: Any) -> Any:
        return None

    assert iscoroutinefunction(PageVisitMiddleware(async_view))
    assert not iscoroutinefunction(PageVisitMiddleware(lambda request: None))


# The PAGE_VISITS example of docs/page-visits.md, with this suite's paths.
def page_params(request: Any, response: Any) -> dict[str, Any]:
    match = request.resolver_match
    return {"view": match.view_name if match else None}


def test_docs_page_visits_settings(visitor: Client) -> None:
    documented = run_sample("page-visits-settings")["SYNERISE"]
    assert set(documented["PAGE_VISITS"]) == {"EXCLUDE_PATHS", "PARAMS"}
    with synerise(
        RESPECT_DNT=documented["RESPECT_DNT"],
        PAGE_VISITS={
            "EXCLUDE_PATHS": [r"^/producers/pages/private/", r"^/producers/pages/streaming/"],
            "PARAMS": "tests.test_middleware.page_params",
        },
    ):
        visitor.get("/producers/pages/private/account/")
        visitor.get("/producers/pages/streaming/")
        visitor.get("/producers/pages/plain/", HTTP_SEC_GPC="1")
        visitor.get("/producers/pages/plain/")
    [event] = events()
    assert event["params"]["view"] == "producer-page"


def test_middleware_without_the_app_installed_fails_at_startup_with_the_fix():
    from django.core.exceptions import ImproperlyConfigured
    from django.test import modify_settings

    from django_synerise.middleware import PageVisitMiddleware

    with modify_settings(INSTALLED_APPS={"remove": ["django_synerise"]}):
        with pytest.raises(ImproperlyConfigured, match='Add "django_synerise" to INSTALLED_APPS'):
            PageVisitMiddleware(lambda request: None)


# Privacy and abuse (the security review) --------------------------------------------------


def test_query_strings_keep_only_utm_and_the_allow_list(visitor: Client) -> None:
    """Before: ``?token=...&email=...`` was stored verbatim in ``url``."""
    query = "?token=s3cr3t&email=ann%40example.com&utm_source=news&page=2&code=oauth"
    visitor.get("/producers/pages/plain/" + query)
    with page_visits(KEEP_QUERY_PARAMS=["page"]):
        visitor.get("/producers/pages/plain/" + query)
    first, second = (event["params"] for event in events())
    assert first["url"] == "http://testserver/producers/pages/plain/?utm_source=news"
    assert second["url"] == "http://testserver/producers/pages/plain/?utm_source=news&page=2"
    payloads = json.dumps(events())
    for secret in ("s3cr3t", "ann@example.com", "ann%40example.com", "oauth"):
        assert secret not in payloads


def test_referrers_are_cut_to_their_origin_across_sites_and_cleaned_on_this_one(
    visitor: Client,
) -> None:
    """Before: a Referer carrying a session id reached Synerise as sent."""
    visitor.get(
        "/producers/pages/plain/",
        HTTP_REFERER="https://user:pw@mail.example:8443/inbox?sid=abc#m1",
    )
    visitor.get(
        "/producers/pages/plain/",
        HTTP_REFERER="http://testserver/producers/pages/plain/?sid=abc&utm_medium=mail",
    )
    visitor.get("/producers/pages/plain/", HTTP_REFERER="javascript:alert(1)")
    referrers = [event["params"].get("referrer") for event in events()]
    assert referrers == [
        "https://mail.example:8443/",
        "http://testserver/producers/pages/plain/?utm_medium=mail",
        None,
    ]


def test_mask_paths_hide_tokens_in_paths_and_exclude_paths_skip_pages(visitor: Client) -> None:
    with page_visits(
        MASK_PATHS=[r"^/producers/pages/(plain)/"], EXCLUDE_PATHS=[r"^/producers/pages/private/"]
    ):
        visitor.get(
            "/producers/pages/plain/", HTTP_REFERER="http://testserver/producers/pages/plain/"
        )
        visitor.get("/producers/pages/private/account/")
    with page_visits(MASK_PATHS=[r"pages/plain"]):
        visitor.get("/producers/pages/plain/")
    first, second = (event["params"] for event in events())
    assert first["path"] == "/producers/pages/*/"
    assert first["url"] == "http://testserver/producers/pages/*/"
    assert first["referrer"] == "http://testserver/producers/pages/*/"
    assert second["path"] == "/producers/*/"


def refuse_consent(request: Any) -> bool:
    return False


def test_refused_consent_and_gpc_write_nothing(visitor: Client) -> None:
    with synerise(CONSENT="tests.test_middleware.refuse_consent"):
        visitor.get("/producers/pages/plain/")
    visitor.get("/producers/pages/plain/", HTTP_SEC_GPC="1")
    assert events() == []


def test_minted_cookies_do_not_escape_the_page_visit_throttle() -> None:
    """Before: a fresh ``_snrs_uuid`` per request wrote a row for every request."""
    import uuid

    with page_visits(THROTTLE_RATE="5/min"):
        for _ in range(20):
            client = Client(HTTP_USER_AGENT="curl/8.5.0")
            client.cookies["_snrs_uuid"] = str(uuid.uuid4())
            forged = f"198.51.100.{uuid.uuid4().int % 250}"
            assert (
                client.get("/producers/pages/plain/", HTTP_X_FORWARDED_FOR=forged).status_code
                == 200
            )
        assert len(events()) == 5
        other = Client(HTTP_USER_AGENT=CHROME, REMOTE_ADDR="10.0.0.9")
        other.cookies["_snrs_uuid"] = UUID
        other.get("/producers/pages/plain/")
    assert len(events()) == 6
    with page_visits(THROTTLE_RATE=None):
        visitor = Client(HTTP_USER_AGENT=CHROME)
        visitor.cookies["_snrs_uuid"] = UUID
        visitor.get("/producers/pages/plain/")
    assert len(events()) == 7


def test_page_visits_are_dropped_over_max_pending_but_other_events_are_not(
    visitor: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django_synerise import outbox, track

    monkeypatch.setattr(outbox, "_backlog", outbox._Backlog())
    with synerise(MAX_PENDING=1), caplog.at_level(logging.WARNING, "django_synerise.outbox"):
        track("order.placed", client={"customId": "7"})
        track("order.placed", client={"customId": "8"})
        for _ in range(3):
            assert visitor.get("/producers/pages/plain/").status_code == 200
        track("order.placed", client={"customId": "9"})
    assert events() == []
    assert OutboxEvent.objects.filter(action="order.placed").count() == 3
    assert outbox.health().dropped == 3
    assert outbox.health().as_dict()["dropped"] == 3
    # One report a minute, not one line per dropped visit.
    assert len([r for r in caplog.records if "MAX_PENDING" in r.getMessage()]) == 1
