"""tracking.py: request context on custom events, BEFORE_WRITE, and the async producers."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import pytest
import requests
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import AsyncClient, Client, RequestFactory, override_settings

import django_synerise
from django_synerise import signals
from django_synerise.events import AIEvent, CustomEvent, DedicatedEvent, Transaction
from django_synerise.exceptions import InvalidEventError, SyneriseConfigurationError
from django_synerise.models import OutboxEvent
from tests.docs_samples import run_sample
from tests.workers import Worker, worker_env

UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"
HOOK = "tests.testapp.tracking_views.drop_staff_mask_email"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)


def synerise(**overrides: Any) -> override_settings:
    return override_settings(SYNERISE={**settings.SYNERISE, **overrides})


def payload(row: OutboxEvent | None = None) -> dict[str, Any]:
    stored = OutboxEvent.objects.get(pk=row.pk) if row is not None else OutboxEvent.objects.get()
    return json.loads(stored.payload)  # type: ignore[no-any-return]


def visitor_request(path: str = "/shoes/?utm_source=news&utm_campaign=june&page=2", **meta: Any):
    request = RequestFactory().get(
        path,
        HTTP_REFERER="https://search.example/?q=shoes",
        HTTP_USER_AGENT=CHROME,
        **meta,
    )
    request.COOKIES["_snrs_uuid"] = UUID
    return request


@pytest.fixture
def dropped():
    seen: list[tuple[str, list[Any]]] = []

    def receiver(sender: Any, events: list[Any], reason: str, **kwargs: Any) -> None:
        seen.append((reason, events))

    signals.events_dropped.connect(receiver)
    yield seen
    signals.events_dropped.disconnect(receiver)


# -- request context -----------------------------------------------------------------


@pytest.mark.django_db
def test_track_with_a_request_identifies_the_visitor_and_adds_the_page_context():
    row = django_synerise.track("size.chosen", request=visitor_request(), params={"size": 42})

    body = payload(row)
    assert body["client"] == {"uuid": UUID}
    assert body["params"] == {
        # The page visits' privacy rules: only UTM parameters stay in the URL, a
        # referrer from another site is cut to its origin.
        "url": "http://testserver/shoes/?utm_source=news&utm_campaign=june",
        "path": "/shoes/",
        "referrer": "https://search.example/",
        "userAgent": CHROME,
        "source": "WEB_DESKTOP",
        "utm_source": "news",
        "utm_campaign": "june",
        "size": 42,
    }


IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("user_agent", "source"),
    [(IPHONE, "WEB_MOBILE"), (CHROME, "WEB_DESKTOP"), (None, "WEB_DESKTOP")],
)
def test_the_request_context_says_which_web_source_the_event_came_from(user_agent, source):
    request = visitor_request()
    if user_agent is None:
        del request.META["HTTP_USER_AGENT"]
    else:
        request.META["HTTP_USER_AGENT"] = user_agent

    body = payload(django_synerise.track("size.chosen", request=request))

    assert body["params"]["source"] == source
    assert ("userAgent" in body["params"]) is (user_agent is not None)


@pytest.mark.django_db
def test_the_request_context_source_reaches_the_stand_in(synerise_stand_in):
    from django_synerise.dispatch import flush

    request = visitor_request()
    request.META["HTTP_USER_AGENT"] = IPHONE
    django_synerise.track("size.chosen", request=request)
    flush()

    [event] = synerise_stand_in.events_of(type="custom")
    assert event["body"]["params"]["source"] == "WEB_MOBILE"


@pytest.mark.django_db
def test_a_logged_in_user_is_identified_like_in_page_visits():
    user = User.objects.create_user("ada", email="ada@example.com")
    request = visitor_request()
    request.user = user

    body = payload(django_synerise.track("size.chosen", request=request))

    # Not with the cookie's uuid: the browser chose it (see identity's module docstring).
    assert body["client"] == {"customId": str(user.pk), "email": "ada@example.com"}


@pytest.mark.django_db
def test_explicit_client_and_params_win_over_the_request():
    row = django_synerise.track(
        "size.chosen",
        client={"customId": "42"},
        request=visitor_request(),
        params={"url": "https://shop.example/canonical"},
    )
    body = payload(row)
    assert body["client"] == {"customId": "42"}
    assert body["params"]["url"] == "https://shop.example/canonical"
    assert body["params"]["utm_source"] == "news"


@pytest.mark.django_db
def test_a_request_that_identifies_nobody_records_nothing_but_still_validates():
    anonymous = RequestFactory().get("/")
    assert django_synerise.track("size.chosen", request=anonymous) is None
    assert not OutboxEvent.objects.exists()
    with pytest.raises(InvalidEventError, match="action"):
        django_synerise.track("no spaces allowed", request=anonymous)


def refuse(request: Any) -> bool:
    return request.COOKIES.get("consent") == "yes"


@pytest.mark.django_db
def test_a_visitor_who_may_not_be_tracked_is_not_recorded():
    with synerise(CONSENT=refuse):
        assert django_synerise.track("size.chosen", request=visitor_request()) is None
        assert (
            django_synerise.track("size.chosen", request=visitor_request(HTTP_SEC_GPC="1")) is None
        )
        with pytest.raises(InvalidEventError, match="action"):
            django_synerise.track("bad action", request=visitor_request())
        consenting = visitor_request()
        consenting.COOKIES["consent"] = "yes"
        assert django_synerise.track("size.chosen", request=consenting) is not None
    assert OutboxEvent.objects.count() == 1


@pytest.mark.django_db
def test_without_client_or_request_the_error_names_both():
    with pytest.raises(InvalidEventError, match=r"client.*request="):
        django_synerise.track("size.chosen")
    assert not OutboxEvent.objects.exists()


def broken_resolver(request: Any) -> dict[str, Any]:
    raise RuntimeError("resolver is down")


@pytest.mark.django_db
def test_an_identity_error_is_logged_and_swallowed_unless_raise_errors(caplog):
    resolver = f"{__name__}.broken_resolver"
    with synerise(CLIENT_RESOLVER=resolver, RAISE_ERRORS=False), caplog.at_level(logging.ERROR):
        assert django_synerise.track("size.chosen", request=visitor_request()) is None
    assert not OutboxEvent.objects.exists()
    record = next(r for r in caplog.records if r.name == "django_synerise.tracking")
    assert record.synerise_action == "size.chosen"  # type: ignore[attr-defined]
    with synerise(CLIENT_RESOLVER=resolver), pytest.raises(RuntimeError, match="resolver is down"):
        django_synerise.track("size.chosen", request=visitor_request())


# -- BEFORE_WRITE -------------------------------------------------------------------


@pytest.mark.django_db
def test_before_write_drops_staff_users_events(dropped):
    staff = User.objects.create_user("admin", email="admin@example.com", is_staff=True)
    request = visitor_request()
    request.user = staff
    with synerise(BEFORE_WRITE=HOOK):
        assert django_synerise.track("size.chosen", request=request) is None
        assert (
            django_synerise.track_event(
                DedicatedEvent("logged-in", client={"uuid": UUID}), request=request
            )
            is None
        )
    assert not OutboxEvent.objects.exists()
    assert [(reason, [e.action for e in events]) for reason, events in dropped] == [
        ("before_write", ["size.chosen"]),
        ("before_write", ["client.login"]),
    ]


@pytest.mark.django_db
def test_before_write_writes_the_changed_copy_and_sees_no_request_without_one():
    with synerise(BEFORE_WRITE=HOOK):
        with_request = django_synerise.track(
            "signup.started", request=visitor_request(), params={"email": "a@example.com"}
        )
        without = django_synerise.track(
            "signup.started", client={"customId": "7"}, params={"email": "a@example.com"}
        )
    assert payload(with_request)["params"]["email"] == "***"
    assert payload(with_request)["params"]["hookSawRequest"] is True
    assert payload(without)["params"] == {"email": "***", "hookSawRequest": False}


def keep_odd(record: Any, request: Any) -> Any:
    return record if record.params.get("n", 1) % 2 else None


@pytest.mark.django_db
def test_before_write_in_track_many_keeps_what_it_returns(dropped):
    events = [CustomEvent("dog.bark", client={"customId": "1"}, params={"n": n}) for n in range(6)]
    with synerise(BEFORE_WRITE=keep_odd):  # a callable works as well as a dotted path
        rows = django_synerise.track_many(events)
    assert [json.loads(r.payload)["params"]["n"] for r in rows] == [1, 3, 5]
    assert OutboxEvent.objects.count() == 3
    assert [len(events) for _, events in dropped] == [3]


def seen_kinds(record: Any, request: Any) -> Any:
    SEEN.append(record.kind)
    return record


SEEN: list[str] = []


@pytest.mark.django_db
def test_before_write_sees_every_kind_of_record():
    SEEN.clear()
    with synerise(BEFORE_WRITE=seen_kinds):
        django_synerise.track_many(
            [
                CustomEvent("dog.bark", client={"uuid": UUID}),
                Transaction(client={"uuid": UUID}, order_id="o-1", revenue=10, currency="PLN"),
                AIEvent("recommendation.view", correlation_id="c", client_uuid=UUID, items=["1"]),
            ]
        )
    assert SEEN == ["event", "transaction", "ai"]
    assert OutboxEvent.objects.count() == 3


def explode(record: Any, request: Any) -> Any:
    raise ValueError("hook bug")


def wrong_type(record: Any, request: Any) -> Any:
    return {"not": "an event"}


@pytest.mark.django_db
@pytest.mark.parametrize(("hook", "message"), [(explode, "hook bug"), (wrong_type, "dict")])
def test_a_failing_hook_is_a_producer_error(hook, message, caplog, dropped):
    with synerise(BEFORE_WRITE=hook, RAISE_ERRORS=False), caplog.at_level(logging.ERROR):
        assert django_synerise.track("dog.bark", client={"customId": "1"}) is None
    assert not OutboxEvent.objects.exists()
    assert [reason for reason, _ in dropped] == ["before_write_error"]
    record = next(r for r in caplog.records if r.name == "django_synerise.outbox")
    assert message in str(record.exc_info[1]) and record.synerise_action == "dog.bark"

    with synerise(BEFORE_WRITE=hook), pytest.raises((ValueError, TypeError), match=message):
        django_synerise.track_many([CustomEvent("dog.bark", client={"customId": "1"})])
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db
def test_a_hook_that_cannot_be_imported_names_the_setting():
    with (
        synerise(BEFORE_WRITE="tests.nowhere.hook"),
        pytest.raises(SyneriseConfigurationError, match=r'SYNERISE\["BEFORE_WRITE"\]'),
    ):
        django_synerise.track("dog.bark", client={"customId": "1"})


@pytest.mark.django_db
def test_page_visits_and_auth_events_hand_the_request_to_the_hook():
    staff = User.objects.create_user("admin", password="pw", is_staff=True)
    middleware = [*settings.MIDDLEWARE, "django_synerise.middleware.PageVisitMiddleware"]
    client = Client(headers={"user-agent": CHROME})
    client.cookies["_snrs_uuid"] = UUID
    with synerise(BEFORE_WRITE=HOOK), override_settings(MIDDLEWARE=middleware):
        client.get("/producers/pages/plain/")  # anonymous with the cookie: recorded
        # The login view's request carries the staff user: the auth event is dropped.
        client.post("/producers/auth/sign-in/", {"username": staff.username})
        client.get("/producers/pages/plain/")  # the staff user's visit: dropped
    assert list(OutboxEvent.objects.values_list("action", flat=True)) == ["page.visit"]


# -- async --------------------------------------------------------------------------


def run(coroutine: Any) -> Any:
    """``asyncio.run`` as a script would, then close the connection its thread opened."""
    try:
        return asyncio.run(coroutine)
    finally:
        asyncio.run(sync_to_async(connections.close_all)())


@pytest.mark.django_db(transaction=True)
def test_atrack_family_from_asyncio_run():
    async def main() -> list[Any]:
        return [
            await django_synerise.atrack("dog.bark", client={"customId": "7"}, params={"n": 1}),
            await django_synerise.atrack_event(DedicatedEvent("logged-in", client={"uuid": UUID})),
            await django_synerise.atrack_many(
                CustomEvent("dog.bark", client={"customId": str(n)}) for n in range(3)
            ),
            await django_synerise.atrack("size.chosen", request=visitor_request()),
        ]

    single, dedicated, many, with_request = run(main())

    assert payload(single)["params"] == {"n": 1}
    assert payload(dedicated)["type"] == "logged-in"
    assert len(many) == 3
    assert payload(with_request)["params"]["utm_source"] == "news"
    assert OutboxEvent.objects.count() == 6


@pytest.mark.django_db(transaction=True)
def test_atrack_validates_before_writing_and_respects_enabled_and_the_hook():
    with pytest.raises(InvalidEventError, match="action"):
        run(django_synerise.atrack("no spaces", client={"customId": "7"}))
    with synerise(ENABLED=False):
        assert run(django_synerise.atrack("dog.bark", client={"customId": "7"})) is None
        assert run(django_synerise.atrack_many([custom_event()])) == []
    with synerise(BEFORE_WRITE=keep_odd):
        assert (
            run(django_synerise.atrack("dog.bark", client={"customId": "7"}, params={"n": 2}))
            is None
        )
    assert not OutboxEvent.objects.exists()


def custom_event() -> CustomEvent:
    return CustomEvent("dog.bark", client={"customId": "1"})


@pytest.mark.django_db(transaction=True)
def test_async_view_through_django_async_client():
    staff = User.objects.create_user("admin", is_staff=True)
    client = AsyncClient()
    client.cookies["_snrs_uuid"] = UUID
    headers = {"user-agent": CHROME, "referer": "https://ads.example/"}
    with synerise(BEFORE_WRITE=HOOK):
        response = asyncio.run(client.get("/tracking/async/?utm_medium=cpc", headers=headers))
        assert response.status_code == 200, response.content
        ids = response.json()
        asyncio.run(client.aforce_login(staff))
        staff_response = asyncio.run(client.get("/tracking/async/"))
    asyncio.run(sync_to_async(connections.close_all)())

    liked = payload(OutboxEvent.objects.get(pk=ids["row"]))
    assert liked["client"] == {"uuid": UUID}
    assert liked["params"]["email"] == "***" and liked["params"]["utm_medium"] == "cpc"
    assert liked["params"]["referrer"] == "https://ads.example/"
    # The staff user's request-bound records are dropped; the explicit-client one has no
    # request, so the hook keeps it.
    staff_ids = staff_response.json()
    assert staff_ids["row"] is None and staff_ids["dedicated"] is None and staff_ids["many"] == []
    assert staff_ids["explicit"] is not None


# -- under a real ASGI server ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db(transaction=True)
def test_async_view_under_uvicorn_with_the_hook(tmp_path):
    staff = User.objects.create_user("admin", is_staff=True)
    staff_session = Client()
    staff_session.force_login(staff)
    port = free_port()
    env = worker_env(connection.settings_dict, {"BEFORE_WRITE": HOOK, "RAISE_ERRORS": True})
    server = Worker(
        "uvicorn",
        ["tests.asgi:application", "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"],
        env,
        tmp_path,
        module="uvicorn",
        ready_marker="Uvicorn running",
        merge_stderr=True,
    ).start()
    url = f"http://127.0.0.1:{port}/tracking/async/"
    headers = {"User-Agent": CHROME, "Referer": "https://ads.example/"}
    try:
        server.wait_ready()
        visitor = requests.get(
            url + "?utm_source=uvicorn", headers=headers, cookies={"_snrs_uuid": UUID}, timeout=30
        )
        staff_cookies = {"_snrs_uuid": UUID, "sessionid": staff_session.cookies["sessionid"].value}
        staffer = requests.get(url, headers=headers, cookies=staff_cookies, timeout=30)
    finally:
        server.terminate()
    assert visitor.status_code == 200, server.diagnostics()
    assert staffer.status_code == 200, server.diagnostics()
    assert "SynchronousOnlyOperation" not in "\n".join(server.lines)

    ids = visitor.json()
    liked = payload(OutboxEvent.objects.get(pk=ids["row"]))
    assert liked["client"] == {"uuid": UUID}
    assert liked["params"]["url"] == f"http://127.0.0.1:{port}/tracking/async/?utm_source=uvicorn"
    assert liked["params"]["utm_source"] == "uvicorn"
    assert liked["params"]["email"] == "***" and liked["params"]["hookSawRequest"] is True
    assert len(ids["many"]) == 3 and ids["dedicated"] and ids["explicit"]
    # The staff user's request-bound records were dropped by the hook.
    staff_ids = staffer.json()
    assert staff_ids["row"] is None and staff_ids["dedicated"] is None and staff_ids["many"] == []
    # Six rows for the visitor, the explicit-client one for the staff user (and the
    # client.login of force_login above, written in this process).
    assert OutboxEvent.objects.exclude(action="client.login").count() == 6 + 1


# -- the docs' samples ----------------------------------------------------------------


@pytest.mark.django_db
def test_docs_track_request_sample():
    view = run_sample("track-request")["choose_size"]
    request = RequestFactory().post("/shoes/?utm_source=news", {"size": "42"})
    request.COOKIES["_snrs_uuid"] = UUID
    assert view(request, "SHOE-1").status_code == 204
    body = payload()
    assert body["client"] == {"uuid": UUID}
    assert body["params"]["sku"] == "SHOE-1" and body["params"]["size"] == "42"
    assert body["params"]["utm_source"] == "news"


@pytest.mark.django_db(transaction=True)
def test_docs_async_samples():
    view = run_sample("async-view")["add_to_wishlist"]
    request = visitor_request()
    response = run(view(request, "MUG-001"))
    assert json.loads(response.content) == {"recorded": True}
    assert payload()["params"]["sku"] == "MUG-001"
    OutboxEvent.objects.all().delete()

    try:
        run_sample("async-script")  # calls asyncio.run() itself
    finally:
        run(asyncio.sleep(0))
    assert sorted(OutboxEvent.objects.values_list("action", flat=True)) == [
        "client.logout",
        "import.finished",
        *["quiz.answered"] * 3,
    ]
    OutboxEvent.objects.all().delete()

    change_email = run_sample("async-atomic")["change_email"]
    user = User.objects.create_user("ada", email="old@example.com")
    post = RequestFactory().post("/account/email/", {"email": "ada@example.com"})

    async def auser() -> User:
        return user

    post.auser = auser
    assert run(change_email(post)).status_code == 200
    assert User.objects.get(pk=user.pk).email == "ada@example.com"
    assert payload()["client"] == {"customId": str(user.pk)}
    assert payload()["params"] == {"email": "ada@example.com"}


@pytest.mark.django_db
def test_docs_before_write_recipes():
    hook = run_sample("before-write-recipes")["before_write"]
    staff = User.objects.create_user("admin", is_staff=True)
    customer = User.objects.create_user("ada")
    staff_request = visitor_request()
    staff_request.user = staff
    office = visitor_request(REMOTE_ADDR="10.1.2.3")
    office.user = customer
    outside = visitor_request(REMOTE_ADDR="203.0.113.9")
    outside.user = customer
    with synerise(BEFORE_WRITE=hook):
        assert django_synerise.track("size.chosen", request=staff_request) is None
        assert django_synerise.track("size.chosen", request=office) is None
        row = django_synerise.track(
            "signup.started", request=outside, params={"email": "ada@example.com"}
        )
        # No request (a command, a model hook): only masking applies.
        background = django_synerise.track(
            "import.finished", client={"customId": "1"}, params={"email": "x@example.com"}
        )
    assert payload(row)["params"]["email"] == "[masked]"
    assert payload(background)["params"] == {"email": "[masked]"}
    assert OutboxEvent.objects.count() == 2
