"""Privacy: the docs' recipes, a data subject's request, and the review's attacks over real HTTP."""

from __future__ import annotations

import json
import shlex
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

import django_synerise
from django_synerise.events import AIEvent
from django_synerise.models import OutboxEvent
from django_synerise.privacy import Person, delete_outbox_rows, find_outbox_rows
from tests.docs_samples import run_sample, sample
from tests.helpers import synerise

ANN = "0f8fad5b-d9cb-469f-a165-70867728950e"
OTHER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
PAGE_VISIT = "django_synerise.middleware.PageVisitMiddleware"


# -- the consent recipes --------------------------------------------------------------------


def test_cookie_banner_recipe() -> None:
    consent = run_sample("privacy-cookie-banner")["SYNERISE"]["CONSENT"]
    factory = RequestFactory()
    answered = factory.get("/")
    answered.COOKIES["cookie_consent"] = "necessary,analytics"
    refused = factory.get("/")
    refused.COOKIES["cookie_consent"] = "necessary"
    assert consent(answered) and not consent(refused) and not consent(factory.get("/"))


@pytest.mark.django_db
def test_session_recipe_through_the_test_client(client: Any, settings: Any) -> None:
    from django.urls import path

    ns = run_sample("privacy-session-consent")
    urls = type("urls", (), {})()
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("choice/", ns["tracking_choice"]),
        path("page/", lambda request: __import__("django").http.HttpResponse("<p>hi</p>")),
    ]
    settings.ROOT_URLCONF = urls
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, PAGE_VISIT]
    client.cookies["_snrs_uuid"] = ANN
    with synerise(CONSENT=ns["session_consent"]):
        client.get("/page/", HTTP_USER_AGENT=CHROME)
        assert not OutboxEvent.objects.exists()
        client.post("/choice/", {"analytics": "yes"})
        client.get("/page/", HTTP_USER_AGENT=CHROME)
        assert OutboxEvent.objects.filter(action="page.visit").count() == 1
        client.post("/choice/", {"analytics": "no"})
        client.get("/page/", HTTP_USER_AGENT=CHROME)
    assert OutboxEvent.objects.filter(action="page.visit").count() == 1


@pytest.mark.django_db
def test_url_settings_sample(client: Any, settings: Any) -> None:
    from django.http import HttpResponse
    from django.urls import re_path

    page_visits = run_sample("privacy-urls")["SYNERISE"]["PAGE_VISITS"]
    urls = type("urls", (), {})()
    urls.urlpatterns = [re_path(r"^", lambda request: HttpResponse("<p>page</p>"))]  # type: ignore[attr-defined]
    settings.ROOT_URLCONF = urls
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, PAGE_VISIT]
    client.cookies["_snrs_uuid"] = ANN
    with synerise(PAGE_VISITS=page_visits):
        client.get("/reset/MQ/c4x-8a1f/?page=2&token=abc", HTTP_USER_AGENT=CHROME)
        client.get("/account/orders/", HTTP_USER_AGENT=CHROME)
    [row] = OutboxEvent.objects.all()
    assert row.body["params"]["path"] == "/reset/*/*/"
    assert row.body["params"]["url"] == "http://testserver/reset/*/*/?page=2"


# -- a data subject's request ---------------------------------------------------------------


def ann_and_others() -> None:
    django_synerise.track("quiz.answered", client={"email": "Ann@Example.com"})
    django_synerise.track("quiz.answered", client={"customId": "42"})
    django_synerise.track("quiz.answered", client={"uuid": ANN})
    django_synerise.track_event(
        AIEvent("recommendation.view", correlation_id="c", client_uuid=ANN, items=["a"])
    )
    # Near misses that must survive.
    django_synerise.track("quiz.answered", client={"email": "joann@example.com"})
    django_synerise.track("quiz.answered", client={"customId": "421"})
    django_synerise.track("quiz.answered", client={"uuid": OTHER})


@pytest.mark.django_db
def test_forget_sample_finds_and_deletes_every_row_of_one_person() -> None:
    ann_and_others()
    OutboxEvent.objects.filter(client_key="customId:42").update(status="sent")
    ns = run_sample("privacy-forget")
    assert len(ns["rows"]) == 4
    assert ns["deleted"] == 4
    left = sorted(OutboxEvent.objects.values_list("client_key", flat=True))
    assert left == ["customId:421", "email:joann@example.com", f"uuid:{OTHER}"]


def test_a_person_needs_an_identifier_and_valid_uuids() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Person()
    with pytest.raises(ValueError, match="uuids"):
        Person(uuids=("not-a-uuid",))


@pytest.mark.django_db
def test_forget_command_lists_then_deletes(capsys: pytest.CaptureFixture[str]) -> None:
    ann_and_others()
    argv = shlex.split(sample("privacy-forget-command"))
    assert argv[:3] == ["python", "manage.py", "synerise_forget"]
    call_command(*argv[2:-1], f"--uuid={ANN}")  # without --delete: a list
    assert "4 outbox rows (add --delete" in capsys.readouterr().out
    assert OutboxEvent.objects.count() == 7
    call_command(*argv[2:], f"--uuid={ANN}")
    assert "deleted 4 outbox rows" in capsys.readouterr().out
    assert find_outbox_rows(Person(email="ann@example.com", uuids=(ANN,))) == []
    assert delete_outbox_rows(Person(custom_id="42")) == 0
    with pytest.raises(CommandError, match="at least one"):
        call_command("synerise_forget")


# -- the review's attacks, over real HTTP -----------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(WSGIServer):
    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        threading.Thread(target=self._handle, args=(request, client_address), daemon=True).start()

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        finally:
            self.shutdown_request(request)


@pytest.fixture
def live_site(settings: Any) -> Iterator[str]:
    """This suite's project served over real HTTP by a threaded WSGI server."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, PAGE_VISIT]
    settings.ALLOWED_HOSTS = ["*"]
    server = make_server(
        "127.0.0.1", 0, WSGIHandler(), server_class=_ThreadingServer, handler_class=_Quiet
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def refuse_everyone(request: Any) -> bool:
    return False


@pytest.mark.django_db(transaction=True)
def test_the_reviews_attacks_replayed_over_http(live_site: str) -> None:
    """Minted cookies, rotating X-Forwarded-For, token URLs, GPC, refused consent, hostile input.

    Expected: rows within the configured rates, no token or e-mail of a query
    string in any payload, no row for GPC or refused consent, no 5xx.
    """
    page = live_site + "/producers/pages/plain/"
    beacon = live_site + "/synerise/beacon/"
    statuses: list[int] = []

    def get(url: str, **headers: str) -> None:
        cookie = {"_snrs_uuid": str(uuid.uuid4())}
        statuses.append(
            requests.get(
                url, headers={"User-Agent": "curl/8.5.0", **headers}, cookies=cookie, timeout=10
            ).status_code
        )

    def post(body: Any, **headers: str) -> None:
        data = body if isinstance(body, str) else json.dumps(body)
        statuses.append(
            requests.post(
                beacon,
                data=data,
                headers={"Content-Type": "text/plain", **headers},
                cookies={"_snrs_uuid": str(uuid.uuid4())},
                timeout=10,
            ).status_code
        )

    view = {"type": "recommendation.view", "correlationId": "c", "items": ["a"]}
    with synerise(BEACON_THROTTLE_RATE="20/min", PAGE_VISITS={"THROTTLE_RATE": "30/min"}):
        # 1. A fresh cookie and a forged X-Forwarded-For on every request, 8 threads.
        def flood(n: int) -> None:
            for i in range(25):
                get(
                    page + f"?token=tok-{n}-{i}&email=victim{n}%40example.com&utm_source=ad",
                    HTTP_X_FORWARDED_FOR=f"203.0.{n}.{i}",
                    Referer=f"https://mail.example/inbox?sid=sess-{n}-{i}",
                )
                post(view, Origin=live_site, **{"X-Forwarded-For": f"198.51.{n}.{i}"})
                post(view, Origin="https://evil.example")

        threads = [threading.Thread(target=flood, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        # 2. An oversized X-Forwarded-For, hostile ids.
        post(view, Origin=live_site, **{"X-Forwarded-For": "9" * 5000})
        post({**view, "items": ["a\u202eb"]}, Origin=live_site)
        post({**view, "items": ["a", "a"]}, Origin=live_site)
        post("[" * 50_000, Origin=live_site)
    visits_written = OutboxEvent.objects.filter(action="page.visit").count()
    beacons_written = OutboxEvent.objects.filter(kind="ai").count()

    # 3. Consent refused and GPC: nothing at all.
    before = OutboxEvent.objects.count()
    with synerise(
        CONSENT="tests.test_privacy.refuse_everyone", PAGE_VISITS={"THROTTLE_RATE": None}
    ):
        for _ in range(5):
            get(page)
            post(view, Origin=live_site)
    for _ in range(5):
        get(page, **{"Sec-GPC": "1"})
        post(view, Origin=live_site, **{"Sec-GPC": "1"})
    assert OutboxEvent.objects.count() == before

    assert [code for code in statuses if code >= 500] == []
    # Every request came from 127.0.0.1: one budget each, whatever the headers said.
    assert visits_written == 30
    assert 0 < beacons_written <= 20  # refused cross-origin posts used some of the budget
    payloads = " ".join(OutboxEvent.objects.values_list("payload", flat=True))
    assert "tok-" not in payloads and "victim" not in payloads and "sess-" not in payloads
    assert "utm_source" in payloads and "https://mail.example/" in payloads
