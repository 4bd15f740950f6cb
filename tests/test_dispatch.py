"""Dispatcher unit tests: grouping, packing, and what each failure does to the rows.

The client is replaced by a fake at its public boundary; the same behaviours
are exercised over real HTTP in test_flush_http.py.
"""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

import django_synerise
from django_synerise import dispatch
from django_synerise.client import SyneriseClient
from django_synerise.dispatch import Dispatcher, pack
from django_synerise.events import AIEvent, CustomEvent, DedicatedEvent, Transaction
from django_synerise.exceptions import (
    AuthenticationError,
    RateLimitedError,
    RejectedError,
    RetryableError,
)
from django_synerise.models import OutboxEvent
from django_synerise.outbox import ClaimedEvent
from django_synerise.signals import events_dead, events_sent

pytestmark = pytest.mark.django_db
UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"


class FakeClient:
    """Records requests; ``fail`` decides per request what to raise.

    Redaction is the real client's, with the test settings' keys: the
    dispatcher scrubs what it stores through the client it was given.
    """

    def __init__(self, fail=None):
        self.requests: list[tuple[str, str, list[dict]]] = []
        self.fail = fail
        self.redact = SyneriseClient(
            base_url="https://api.synerise.test", api_key="test-api-key"
        ).redact

    def send(self, endpoint, texts, *, group=""):
        bodies = [json.loads(t) for t in texts]
        if self.fail is not None:
            error = self.fail(endpoint.name, bodies)
            if error is not None:
                raise error
        self.requests.append((endpoint.name, group, bodies))

    def delivered(self):
        return [body for _, _, bodies in self.requests for body in bodies]


def custom(n, **params):
    return CustomEvent("dog.bark", client={"customId": str(n)}, params={"n": n, **params})


def ai(event_type, n=0):
    return AIEvent(event_type, correlation_id=f"c{n}", client_uuid=UUID, items=[str(n)])


def run(client, **kwargs):
    sleeps = kwargs.pop("sleeps", [])
    return Dispatcher(client, sleep=sleeps.append, **kwargs).flush()


def test_groups_by_endpoint_and_ai_type():
    django_synerise.track_many(
        [
            custom(1),
            DedicatedEvent("hit-timer", client={"customId": "1"}),
            Transaction(client={"customId": "1"}, order_id="o1", revenue=5, currency="PLN"),
            ai("recommendation.view", 1),
            ai("recommendation.click", 2),
            ai("recommendation.view", 3),
        ]
    )
    client = FakeClient()
    result = run(client)
    assert result.sent == 6
    assert result.requests == 4
    shapes = sorted((e, t, len(b)) for e, t, b in client.requests)
    assert shapes == [
        ("ai", "recommendation.click", 1),
        ("ai", "recommendation.view", 2),
        ("event", "", 2),
        ("transaction", "", 1),
    ]
    assert not OutboxEvent.objects.exists()
    assert result.remaining == 0
    assert result.stopped_by == "drained"


def test_payload_is_sent_byte_for_byte_as_stored():
    row = django_synerise.track("dog.bark", client={"customId": "1"}, params={"ż": "ó"})
    client = FakeClient()
    run(client)
    assert client.delivered() == [json.loads(row.payload)]


def test_batches_respect_count_limit():
    django_synerise.track_many([custom(i) for i in range(25)])
    client = FakeClient()
    result = run(client, batch_size=10)
    assert [len(b) for _, _, b in client.requests] == [10, 10, 5]
    assert result.sent == 25


def test_batches_respect_byte_limit():
    with override_settings(SYNERISE={"MAX_BATCH_BYTES": 5000}):
        django_synerise.track_many([custom(i, blob="x" * 1000) for i in range(12)])
        client = FakeClient()
        run(client)
    for _, _, bodies in client.requests:
        size = len(json.dumps(bodies, separators=(",", ":"), ensure_ascii=False).encode())
        assert size <= 5000
    assert sum(len(b) for _, _, b in client.requests) == 12
    assert len(client.requests) >= 3


def test_pack_counts_the_brackets_and_commas():
    rows = [ClaimedEvent(i, "event", "custom", "{}", 10, 0) for i in range(10)]
    with override_settings(SYNERISE={"MAX_BATCH_BYTES": 1024}):
        chunks = list(pack(rows, 1000))
    assert [len(c) for _, _, c in chunks] == [10]
    # 2 brackets + 10 items of 10 bytes + 9 commas = 111 bytes
    rows = [ClaimedEvent(i, "event", "custom", "{}", 100, 0) for i in range(20)]
    with override_settings(SYNERISE={"MAX_BATCH_BYTES": 1024}):
        chunks = list(pack(rows, 1000))
    assert all(2 + sum(r.size for r in c) + len(c) - 1 <= 1024 for _, _, c in chunks)
    assert [len(c) for _, _, c in chunks] == [10, 10]


def test_poison_event_is_isolated_and_the_rest_delivered():
    events = [custom(i) for i in range(100)]
    events[37] = custom(37, poison=True)
    django_synerise.track_many(events)

    def fail(endpoint, bodies):
        if any(b["params"].get("poison") for b in bodies):
            return RejectedError("params.poison is not allowed", status_code=400)
        return None

    client = FakeClient(fail)
    dead = []
    events_dead.connect(receiver := lambda sender, ids, error, **kw: dead.extend(ids))
    try:
        result = run(client)
    finally:
        events_dead.disconnect(receiver)
    assert result.sent == 99
    assert result.dead == 1
    delivered = {b["params"]["n"] for b in client.delivered()}
    assert delivered == set(range(100)) - {37}
    poison = OutboxEvent.objects.get(status="dead")
    assert json.loads(poison.payload)["params"]["n"] == 37
    assert "params.poison is not allowed" in poison.last_error
    assert dead == [poison.pk]
    # Bisection costs about 2*log2(n) extra requests, not n.
    assert result.requests <= 1 + 2 * 8


def test_retryable_failure_counts_an_attempt_and_waits_for_a_later_pass():
    django_synerise.track_many([custom(i) for i in range(3)])
    client = FakeClient(lambda e, b: RetryableError("could not reach Synerise: timeout"))
    result = run(client)
    assert result.retried == 3
    assert result.requests == 1  # not retried within the same pass
    rows = list(OutboxEvent.objects.all())
    assert all(r.attempts == 1 and r.status == "pending" for r in rows)
    assert all("timeout" in r.last_error for r in rows)


def test_retries_exhausted_go_dead():
    django_synerise.track("dog.bark", client={"customId": "1"})
    OutboxEvent.objects.update(attempts=15)
    client = FakeClient(lambda e, b: RetryableError("HTTP 500", status_code=500))
    result = run(client)
    assert result.dead == 1
    row = OutboxEvent.objects.get()
    assert row.status == "dead"
    assert row.attempts == 16


def test_rate_limit_releases_rows_unharmed_pauses_and_goes_on():
    django_synerise.track_many([custom(i) for i in range(30)])
    calls = {"n": 0}

    def fail(endpoint, bodies):
        calls["n"] += 1
        if calls["n"] == 2:
            return RateLimitedError("slow down", status_code=429, retry_after=0)
        return None

    client = FakeClient(fail)
    sleeps: list[float] = []
    result = run(client, batch_size=10, sleeps=sleeps)
    assert sleeps == [0.0]
    assert result.rate_limited == 1
    assert result.sent == 30
    assert OutboxEvent.objects.filter(attempts__gt=0).count() == 0


def test_long_retry_after_ends_the_pass_and_defers_the_rows():
    django_synerise.track_many([custom(i) for i in range(5)])
    client = FakeClient(lambda e, b: RateLimitedError("slow", status_code=429, retry_after=600))
    sleeps: list[float] = []
    result = run(client, sleeps=sleeps)
    assert sleeps == []
    assert result.stopped_by == "rate_limited"
    assert result.released == 5
    from django.utils import timezone

    rows = list(OutboxEvent.objects.all())
    assert all(r.attempts == 0 and r.leased_by == "" for r in rows)
    assert all((r.next_attempt_at - timezone.now()).total_seconds() > 590 for r in rows)


def test_auth_failure_stops_and_releases_everything():
    django_synerise.track_many([custom(i) for i in range(5)])
    client = FakeClient(lambda e, b: AuthenticationError("Synerise refused the API key"))
    with pytest.raises(AuthenticationError):
        run(client)
    rows = list(OutboxEvent.objects.all())
    assert all(r.status == "pending" and r.attempts == 0 and r.leased_by == "" for r in rows)
    assert len(dispatch.outbox.claim(10, owner="next")) == 5


def test_an_endpoint_that_refuses_the_credentials_does_not_hold_up_the_others():
    """A wrong tracker key stops AI events only: v4 events and transactions still go."""
    django_synerise.track_many(
        [ai("recommendation.view", i) for i in range(3)]  # the oldest rows: claimed first
        + [custom(i) for i in range(25)]
        + [Transaction(client={"customId": "1"}, order_id="o1", revenue=5, currency="PLN")]
        + [ai("recommendation.click", 9)]
    )
    client = FakeClient(
        lambda e, b: AuthenticationError("Synerise refused the tracker key") if e == "ai" else None
    )
    dispatcher = Dispatcher(client, batch_size=10, sleep=lambda s: None)
    with pytest.raises(AuthenticationError, match="tracker key"):
        dispatcher.flush()

    assert sorted({endpoint for endpoint, _, _ in client.requests}) == ["event", "transaction"]
    assert len(client.delivered()) == 26
    ai_rows = OutboxEvent.objects.filter(kind="ai")
    assert ai_rows.count() == 4
    assert all(r.status == "pending" and r.attempts == 0 and r.leased_by == "" for r in ai_rows)
    assert not OutboxEvent.objects.exclude(kind="ai").exists()
    # Once refused, an endpoint is not asked again in the same pass (4 AI rows over
    # 3 claims, one click in its own request: without the memo, 3 or more attempts).
    attempts_at_ai = []
    client.fail = lambda e, b: (
        attempts_at_ai.append(e) or (AuthenticationError("refused") if e == "ai" else None)
    )
    with pytest.raises(AuthenticationError):
        Dispatcher(client, batch_size=2, sleep=lambda s: None).flush()
    assert attempts_at_ai == ["ai"]
    # With the key fixed, the next pass delivers them.
    client.fail = None
    result = Dispatcher(client).flush()
    assert result.sent == 4 and result.stopped_by == "drained"


def test_should_stop_finishes_the_request_in_flight_and_releases_the_rest():
    django_synerise.track_many([custom(i) for i in range(30)])
    client = FakeClient()
    result = Dispatcher(
        client, batch_size=10, should_stop=lambda: len(client.requests) >= 1
    ).flush()
    assert result.sent == 10
    assert result.stopped_by == "stop"
    assert OutboxEvent.objects.filter(status="pending", leased_by="").count() == 20


def test_max_events():
    django_synerise.track_many([custom(i) for i in range(30)])
    client = FakeClient()
    result = Dispatcher(client, batch_size=10).flush(max_events=15)
    assert result.sent == 15
    assert result.stopped_by == "max_events"
    assert result.remaining == 15


def test_sent_signal_and_summary():
    django_synerise.track_many([custom(i) for i in range(3)])
    seen = []
    events_sent.connect(
        receiver := lambda sender, ids, endpoint, **kw: seen.append((endpoint, ids))
    )
    try:
        result = run(FakeClient())
    finally:
        events_sent.disconnect(receiver)
    assert [(e, len(ids)) for e, ids in seen] == [("event", 3)]
    assert result.summary().startswith("sent 3, retried 0, dead 0, remaining 0 in ")
    assert result.summary().endswith("events/s)")


def test_a_failing_signal_receiver_does_not_stop_delivery():
    django_synerise.track("dog.bark", client={"customId": "1"})

    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    events_sent.connect(broken)
    try:
        result = run(FakeClient())
    finally:
        events_sent.disconnect(broken)
    assert result.sent == 1


def test_preview_changes_nothing():
    django_synerise.track_many([custom(i) for i in range(3)] + [ai("recommendation.view")])
    before = list(OutboxEvent.objects.values())
    planned = dispatch.preview()
    assert sorted((p.endpoint, p.group, p.path, p.count) for p in planned) == [
        ("ai", "recommendation.view", "/v4/events/ai-compat/batch", 1),
        ("event", "", "/v4/events/batch", 3),
    ]
    assert list(OutboxEvent.objects.values()) == before


def test_secrets_are_scrubbed_from_last_error():
    django_synerise.track("dog.bark", client={"customId": "1"})
    client = FakeClient(
        lambda e, b: RejectedError("bad key test-api-key in request", status_code=400)
    )
    run(client)
    row = OutboxEvent.objects.get()
    assert row.status == "dead"
    assert "test-api-key" not in row.last_error
    assert "bad key *** in request" in row.last_error


@pytest.fixture
def keep_the_test_connection(monkeypatch):
    # A loop re-opens stale connections between passes; here that would close the
    # connection holding the test's transaction.
    monkeypatch.setattr(dispatch, "close_old_connections", lambda: None)


@pytest.mark.usefixtures("keep_the_test_connection")
def test_a_loop_backs_off_while_synerise_is_down_and_says_down_and_up_once(synerise_stand_in):
    from django_synerise.factory import build_client

    django_synerise.track_many([custom(i) for i in range(100)])
    # Six requests fail: two passes stop after OUTAGE_FAILURES (3) each; the third gets through.
    synerise_stand_in.inject("500", times=6)
    sleeps: list[float] = []
    reports: list[str] = []
    passes: list[dispatch.FlushResult] = []
    settings = {
        **django_synerise.conf.synerise_settings.user_settings,
        "RETRY_BACKOFF_BASE": 0,
        "OUTAGE_BACKOFF_MAX": 300,
    }
    with override_settings(SYNERISE=settings):
        dispatcher = Dispatcher(
            build_client(),
            batch_size=10,
            sleep=sleeps.append,
            should_stop=lambda: len(passes) >= 4,
        )
        total = dispatcher.run(loop=True, interval=5, on_pass=passes.append, report=reports.append)
    assert [p.stopped_by for p in passes[:3]] == ["unreachable", "unreachable", "drained"]
    assert total.sent == 100
    assert not OutboxEvent.objects.exists()
    # Exponential waits while down, then back to the interval.
    assert sleeps[:3] == [5, 10, 5]
    assert len(reports) == 2
    assert reports[0].startswith("Synerise looks down (Synerise had a server error")
    assert reports[1].startswith("Synerise is up again after ")


@pytest.mark.usefixtures("keep_the_test_connection")
def test_the_outage_wait_is_capped(synerise_stand_in):
    from django_synerise.factory import build_client

    django_synerise.track_many([custom(i) for i in range(100)])
    synerise_stand_in.inject("500")
    sleeps: list[float] = []
    settings = {
        **django_synerise.conf.synerise_settings.user_settings,
        # Charged rows back off for long: each pass takes ten fresh ones.
        "RETRY_BACKOFF_BASE": 3600,
        "OUTAGE_FAILURES": 1,
        "OUTAGE_BACKOFF_MAX": 30,
    }
    with override_settings(SYNERISE=settings):
        Dispatcher(
            build_client(), batch_size=10, sleep=sleeps.append, should_stop=lambda: len(sleeps) >= 6
        ).run(loop=True, interval=5)
    assert sleeps == [5, 10, 20, 30, 30, 30]
    # Each pass tried one request and charged only its ten rows.
    assert OutboxEvent.objects.filter(attempts=0).count() == 100 - 10 * len(sleeps)
