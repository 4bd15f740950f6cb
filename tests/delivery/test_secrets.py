"""Secret hygiene: the API key, tracker key, JWTs and Basic credentials never show.

The whole pipeline runs with recognisable secrets against a hostile Synerise
(``tests/hostile.py``) that echoes every credential it receives in its error
bodies, ``X-Request-Id`` and ``Location`` headers. Every error path is forced:
server errors, rejections (with bisection), rate limits, redirects, refused
tokens, a refused login, a refused tracker key, Basic auth, refused
connections and timeouts. Then the secrets are looked for in everything an
operator or an attacker could read: log records at DEBUG (tracebacks
included), ``last_error``, exception text, attributes and pickles, signals,
the flush command's output and the admin pages.
"""

from __future__ import annotations

import base64
import io
import logging
import pickle
import socket
import traceback

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

import django_synerise
from django_synerise import dispatch, outbox
from django_synerise.exceptions import SyneriseError
from django_synerise.models import OutboxEvent
from django_synerise.signals import events_dead
from django_synerise.testing import LocalSynerise
from tests.drain import settings_for
from tests.hostile import EchoingProxy, Rule
from tests.workers import mixed_events

pytestmark = pytest.mark.django_db

API_KEY = "SECRET-APIKEY-7f3c9d2e41"
TRACKER_KEY = "SECRET-TRACKER-b84e1a55c0"
WORKSPACE_GUID = "SECRET-GUID-2c6f0b9a"
V4 = "/v4/"
AI = "/events/v1/"
LOGIN = "/uauth/"


class Evidence:
    """Everything readable the pipeline produced, and the secrets to look for in it."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.texts: list[tuple[str, str]] = []
        self.secrets = {API_KEY, TRACKER_KEY, WORKSPACE_GUID}
        self.exceptions: list[BaseException] = []

    def add(self, where: str, text: object) -> None:
        self.texts.append((where, str(text)))

    def exception(self, where: str, exc: BaseException) -> None:
        self.exceptions.append(exc)
        self.add(f"{where}: str", exc)
        self.add(f"{where}: repr", repr(exc))
        self.add(f"{where}: traceback", "".join(traceback.format_exception(exc)))
        for cause in (exc.__cause__, exc.__context__):
            if cause is not None:
                self.add(f"{where}: cause", repr(cause))
        if isinstance(exc, SyneriseError):
            for name in ("message", "response", "request_id", "endpoint"):
                self.add(f"{where}: .{name}", getattr(exc, name))
            self.add(f"{where}: pickle", pickle.dumps(exc))

    def rows(self, where: str) -> None:
        for row in OutboxEvent.objects.all():
            self.add(f"{where}: last_error #{row.pk}", row.last_error)

    def leaks(self) -> list[str]:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        logs = [("log", formatter.format(record)) for record in self.caplog.records]
        found = []
        for where, text in self.texts + logs:
            for secret in self.secrets:
                if secret in text:
                    found.append(f"{where} shows {secret[:16]}...: {text[:300]}")
        return found


def flush_command(evidence: Evidence, where: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("synerise_flush", stdout=out, stderr=err)
    except CommandError as exc:
        evidence.exception(f"{where}: CommandError", exc)
    evidence.add(f"{where}: stdout", out.getvalue())
    evidence.add(f"{where}: stderr", err.getvalue())
    evidence.rows(where)


def flush_direct(evidence: Evidence, where: str) -> None:
    try:
        dispatch.flush()
    except SyneriseError as exc:
        evidence.exception(where, exc)
    evidence.rows(where)


@pytest.fixture
def evidence(caplog):
    # Every logger, not only the package's: urllib3 logs request lines at DEBUG.
    caplog.set_level(logging.DEBUG)
    cache.clear()  # no token left over from another test
    evidence = Evidence(caplog)
    dead_signals = []
    events_dead.connect(lambda **kw: dead_signals.append(kw), weak=False, dispatch_uid="t-secrets")
    yield evidence
    events_dead.disconnect(dispatch_uid="t-secrets")
    for kwargs in dead_signals:
        evidence.add("events_dead signal", kwargs["error"])


def everything_due() -> None:
    """Dead rows back to pending and every pending row due now: each phase sees them all."""
    outbox.requeue()
    OutboxEvent.objects.filter(status="pending").update(
        next_attempt_at=timezone.now(), attempts=0, leased_by="", leased_until=None
    )


def stand_in(evidence: Evidence, **options: object) -> LocalSynerise:
    server = LocalSynerise(api_key=API_KEY, tracker_key=TRACKER_KEY, **options)
    issue = server.issue_token

    def issue_and_remember() -> str:
        token = issue()
        # The whole token, and its signature alone (a truncated token still leaks it).
        evidence.secrets.update({token, token.rsplit(".", 1)[1]})
        return token

    server.issue_token = issue_and_remember  # type: ignore[method-assign]
    return server


def test_no_error_path_leaks_a_secret(evidence, admin_client):
    with (
        stand_in(evidence) as server,
        EchoingProxy(server.url) as proxy,
        override_settings(
            SYNERISE=settings_for(
                server,
                API_BASE_URL=proxy.url,
                RETRY_BACKOFF_BASE=0,
                RATE_LIMIT_MAX_WAIT=0,
                TIMEOUT=(1.0, 0.5),
            )
        ),
    ):
        django_synerise.track_many(mixed_events(10))

        def phase(where: str, *rules: Rule, direct: bool = False) -> None:
            everything_due()
            proxy.rules = list(rules)
            (flush_direct if direct else flush_command)(evidence, where)

        phase(
            "server errors", Rule(V4, 500), Rule("/v4/transactions", 502, html=True), Rule(AI, 500)
        )
        phase("rejections", Rule(V4, 400), Rule(AI, 422))
        assert OutboxEvent.objects.filter(status="dead").exists()
        # Admin pages while rows carry their errors.
        pages = [reverse("admin:django_synerise_outboxevent_changelist")]
        pages += [
            reverse("admin:django_synerise_outboxevent_changelist") + f"?status__exact={s}"
            for s in ("pending", "dead")
        ]
        pages += [
            reverse("admin:django_synerise_outboxevent_change", args=[pk])
            for pk in OutboxEvent.objects.values_list("pk", flat=True)
        ]
        for url in pages:
            response = admin_client.get(url)
            assert response.status_code == 200
            evidence.add(f"admin {url}", response.content.decode())

        phase("rate limits", Rule(V4, 429, retry_after="30"), Rule(AI, 503, retry_after="30"))
        phase("redirects", Rule(V4, 302), Rule(AI, 307))
        phase("malformed", Rule(V4, 500, html=True), Rule(AI, 500, html=True))
        phase("refused token", Rule(V4, 401, times=2))
        phase("refused token, direct", Rule(V4, 401, times=2), direct=True)
        phase("refused tracker key", Rule(AI, 403))
        phase("refused tracker key, direct", Rule(AI, 403), direct=True)
        cache.clear()
        phase("refused login", Rule(LOGIN, 401))
        phase("refused login, direct", Rule(LOGIN, 403), direct=True)
        phase("login server error", Rule(LOGIN, 500), direct=True)
        # A real expiry: the stand-in's own 401, then a fresh login.
        server.expire_tokens()
        phase("expired token")

        # Read timeouts (the stand-in's own fault) and refused connections.
        server.inject("timeout", times=3, delay=2.0)
        with override_settings(SYNERISE=settings_for(server, RETRY_BACKOFF_BASE=0)):
            everything_due()
            flush_command(evidence, "timeouts")
            closed = socket.socket()
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
            closed.close()
        with override_settings(
            SYNERISE=settings_for(server, API_BASE_URL=f"http://127.0.0.1:{port}")
        ):
            everything_due()
            flush_command(evidence, "connection refused")
            flush_direct(evidence, "connection refused, direct")

        # Everything still gets through once the hostile proxy calms down.
        proxy.rules = []
        everything_due()
        flush_command(evidence, "recovery")
        assert not OutboxEvent.objects.exists()
        # The admin login wrote its own client.login event, after the profile
        # record that gives the admin's browser its uuid: they travel too.
        assert server.count == 12

    assert proxy.echoed > 20, "the hostile paths were not exercised"
    assert len(evidence.secrets) > 3, "no JWT was issued"
    assert any("refused" in str(exc) for exc in evidence.exceptions)
    assert evidence.caplog.records, "nothing was logged at all"
    assert evidence.leaks() == []


def test_basic_credentials_never_leak(evidence):
    with (
        stand_in(evidence, workspace_guid=WORKSPACE_GUID) as server,
        EchoingProxy(server.url) as proxy,
        override_settings(
            SYNERISE=settings_for(
                server,
                API_BASE_URL=proxy.url,
                AUTH="basic",
                WORKSPACE_GUID=WORKSPACE_GUID,
                RETRY_BACKOFF_BASE=0,
            )
        ),
    ):
        basic = base64.b64encode(f"{WORKSPACE_GUID}:{API_KEY}".encode()).decode()
        evidence.secrets.add(basic)
        django_synerise.track_many(mixed_events(6, ai=False))
        for where, rule in (
            ("basic: server error", Rule(V4, 500)),
            ("basic: rejected", Rule(V4, 400)),
            ("basic: refused", Rule(V4, 401)),
        ):
            proxy.rules = [rule]
            everything_due()
            flush_direct(evidence, where)
            everything_due()
            flush_command(evidence, where)
        proxy.rules = []
        everything_due()
        flush_command(evidence, "basic: recovery")
        assert server.count == 6

    assert proxy.echoed >= 3
    assert evidence.leaks() == []
