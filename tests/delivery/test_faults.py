"""Delivery under injected faults, over real HTTP to the stand-in.

Flush passes run in this process with the real client. The clock is
``time_machine``'s: a pause for ``Retry-After`` moves it instead of sleeping,
and between passes it jumps to the moment the next row falls due, so retries
and rate limits cost no wall-clock time and the test shows exactly when each
row was due.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import time_machine
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

import django_synerise
from django_synerise.events import CustomEvent
from django_synerise.exceptions import AuthenticationError, EventTooLargeError, InvalidEventError
from django_synerise.factory import build_client
from django_synerise.models import OutboxEvent
from django_synerise.signals import events_dead
from django_synerise.testing import LocalSynerise
from tests.drain import Harness
from tests.workers import delivery_report, is_poison, logical_id, mixed_events

pytestmark = pytest.mark.django_db

POISON_MARK = "was rejected (LocalSynerise.reject predicate)"


@pytest.fixture
def harness():
    with LocalSynerise(record="full", seed=8) as server:
        synerise = {
            "API_BASE_URL": server.url,
            "API_KEY": server.api_key,
            "TRACKER_KEY": server.tracker_key,
            "TIMEOUT": (1.0, 0.4),
            # Short real backoffs; the drain loop jumps the clock to them anyway.
            "RETRY_BACKOFF_BASE": 1.0,
            "RETRY_BACKOFF_MAX": 30.0,
            "RAISE_ERRORS": True,
            # Delivered rows are kept, to compare each with what arrived.
            "RETAIN_SENT": 7,
        }
        with (
            override_settings(SYNERISE=synerise),
            time_machine.travel(timezone.now(), tick=True) as clock,
        ):
            yield Harness(server, clock)


def test_thirty_percent_faults_a_429_an_expired_token_and_a_poison(harness):
    """Issue 3's fault mix: all but the poison delivered, the poison dead, no salt twice."""
    server = harness.server
    # One poison event among the first 1000 (one batch of 1000 v4 events and friends).
    events = mixed_events(3_000, poison=[537])
    django_synerise.track_many(events)
    # Three faults of 12 % each, tried in turn: 1 - 0.88**3 = 32 % of requests fail.
    for kind in ("500", "timeout", "drop"):
        server.inject(kind, probability=0.12, delay=2.0)
    server.inject("429", times=2, retry_after=5)
    server.inject("expire_tokens", times=1)
    server.reject(is_poison)

    harness.drain()

    rows = list(OutboxEvent.objects.all())
    dead = [row for row in rows if row.status == "dead"]
    assert [logical_id(row.body) for row in dead] == ["e537"]
    assert POISON_MARK in dead[0].last_error and "HTTP 400" in dead[0].last_error
    assert all(row.status == "sent" for row in rows if row not in dead)

    report = delivery_report(server.events, [row for row in rows if row not in dead])
    assert report.missing == set()
    assert report.unexpected == set()
    # A timeout here is the stand-in answering late *without* storing anything, a
    # dropped connection stores nothing either: so not even a same-salt resend.
    assert report.resent_ids == set()
    assert report.distinct_salt_duplicates == {}
    assert max(server.salt_counts().values()) == 1

    injected = server.faults_injected
    assert injected["500"] and injected["timeout"] and injected["drop"]
    assert injected["429"] == 2 and injected["expire_tokens"] == 1
    failed = sum(1 for r in server.requests if r.fault in ("500", "timeout", "drop"))
    assert failed / len(server.requests) > 0.15
    assert harness.sleeps.count(5.0) >= 1, "Retry-After was not honoured"
    assert server.logins >= 2, "the expired token was not replaced"
    # No row reached its attempt limit: 16 failures in a row at 32 % is not a thing.
    assert max(row.attempts for row in rows if row.status == "sent") < 16


def test_poison_event_in_a_batch_of_1000_is_isolated_by_bisection(harness):
    server = harness.server
    django_synerise.track_many(
        CustomEvent("dog.bark", client={"customId": str(i)}, params={"n": f"e{i}"})
        for i in range(1000)
    )
    poison = OutboxEvent.objects.order_by("id")[613]
    server.reject(lambda item: item.get("params", {}).get("n") == "e613")
    dead_signals = []
    events_dead.connect(lambda **kw: dead_signals.append(kw), weak=False, dispatch_uid="t-dead")
    try:
        result = harness.flush()
    finally:
        events_dead.disconnect(dispatch_uid="t-dead")

    assert (result.sent, result.dead, result.retried) == (999, 1, 0)
    # Halving 1000 down to one event: at most 2 requests per level, 10 levels.
    assert result.requests <= 1 + 2 * 10
    assert all(len(r.body) <= 1000 for r in server.requests)
    poison.refresh_from_db()
    assert poison.status == "dead"
    assert poison.last_error.startswith("Synerise rejected the request: Validation failed:")
    assert POISON_MARK in poison.last_error
    assert dead_signals and dead_signals[0]["ids"] == [poison.id]
    assert len(server.salt_counts()) == 999 and max(server.salt_counts().values()) == 1


def test_a_wrong_tracker_key_holds_back_only_the_ai_events(harness):
    server = harness.server
    django_synerise.track_many(mixed_events(50))  # two kinds in five are AI events
    ai_rows = OutboxEvent.objects.filter(kind="ai").count()
    assert ai_rows == 20
    with override_settings(SYNERISE={**settings.SYNERISE, "TRACKER_KEY": "not-the-key"}):
        harness.client = build_client()
        with pytest.raises(AuthenticationError, match="refused the tracker key"):
            harness.flush()
    assert server.count == 30  # every v4 event and transaction
    pending = OutboxEvent.objects.filter(status="pending")
    assert pending.count() == ai_rows and {r.kind for r in pending} == {"ai"}
    assert all(r.attempts == 0 and r.leased_by == "" for r in pending)

    harness.client = build_client()
    harness.drain()
    assert server.count == 50
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"sent"}


def test_without_a_tracker_key_ai_events_go_with_the_workspace_jwt(harness):
    server = harness.server
    django_synerise.track_many(mixed_events(10))
    with override_settings(SYNERISE={**settings.SYNERISE, "TRACKER_KEY": None}):
        harness.client = build_client()
        result = harness.flush()
    assert (result.sent, result.dead, result.retried) == (10, 0, 0)
    ai_requests = [
        r for r in server.requests if r.path.startswith(("/events/v1/", "/v4/events/ai-compat/"))
    ]
    assert ai_requests and all(
        r.headers.get("authorization", "").startswith("Bearer ") and "token" not in r.query
        for r in ai_requests
    )


@pytest.mark.parametrize("status", ["404", "415"])
def test_an_endpoint_that_answers_404_or_415_buries_nothing(harness, status):
    """A misrouted URL fails every batch alike: retried with backoff, not bisected into dead."""
    server = harness.server
    django_synerise.track_many(
        CustomEvent("dog.bark", client={"customId": str(i)}) for i in range(200)
    )
    fault = server.inject(status, paths="/v4/events/batch")

    first = harness.flush()
    assert (first.sent, first.dead, first.retried, first.requests) == (0, 0, 200, 1)
    assert fault.fired == 1
    rows = OutboxEvent.objects.all()
    assert {(row.status, row.attempts) for row in rows} == {("pending", 1)}
    assert all(f"HTTP {status}" in row.last_error for row in rows)
    assert all("check API_BASE_URL" in row.last_error for row in rows)

    server.clear_faults()
    harness.drain()
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"sent"}
    assert len(server.salt_counts()) == 200 and max(server.salt_counts().values()) == 1


@pytest.mark.parametrize("status", ["429", "503"])
def test_retry_after_pauses_the_pass_and_costs_no_attempt(harness, status):
    server = harness.server
    django_synerise.track_many(mixed_events(50, ai=False))
    server.inject(status, times=1, retry_after=7)

    result = harness.flush()

    assert harness.sleeps == [7.0]
    assert result.rate_limited == 1 and result.sent == 50
    assert set(OutboxEvent.objects.values_list("status", "attempts")) == {("sent", 0)}
    assert max(server.salt_counts().values()) == 1


def test_retry_after_longer_than_the_max_wait_ends_the_pass_and_keeps_the_rows(harness):
    harness.server.inject("429", times=1, retry_after=600)
    django_synerise.track_many(mixed_events(20, ai=False))
    before = timezone.now()

    result = harness.flush()

    assert result.stopped_by == "rate_limited" and result.sent == 0
    assert harness.sleeps == []
    rows = OutboxEvent.objects.all()
    assert {(r.status, r.attempts, r.leased_by) for r in rows} == {("pending", 0, "")}
    assert all(r.next_attempt_at >= before + dt.timedelta(seconds=600) for r in rows)
    harness.drain()
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"sent"}


def test_expired_token_is_replaced_and_the_request_repeated(harness):
    server = harness.server
    django_synerise.track_many(mixed_events(10, ai=False))
    harness.flush()
    django_synerise.track_many(mixed_events(10, start=10, ai=False))
    server.expire_tokens()

    result = harness.flush()

    assert result.sent == 10 and result.retried == 0
    assert server.logins == 2
    assert [r.status for r in server.requests if r.status == 401]
    assert len(server.salt_counts()) == 20 and max(server.salt_counts().values()) == 1


def test_malformed_and_server_errors_are_retried_with_an_attempt_counted(harness):
    server = harness.server
    django_synerise.track_many(mixed_events(30, ai=False))
    server.inject("malformed", times=1)
    server.inject("502", times=1)

    first = harness.flush()
    assert first.retried > 0
    retried = OutboxEvent.objects.filter(status="pending")
    assert retried.exists() and all(row.attempts == 1 for row in retried)
    assert all("HTTP" in row.last_error for row in retried)
    harness.drain()

    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"sent"}
    assert max(server.salt_counts().values()) == 1


def test_batches_never_exceed_1000_events_or_1_000_000_bytes(harness):
    server = harness.server
    # 2,500 small events: two full batches of 1000 and one of 500.
    django_synerise.track_many(
        CustomEvent("dog.bark", client={"customId": str(i)}) for i in range(2_500)
    )
    # Then 120 events of about 45 kB each: about 22 fit in 1 MB.
    big = [
        CustomEvent("big.one", client={"customId": str(i)}, params={"blob": "é" * 22_000})
        for i in range(120)
    ]
    django_synerise.track_many(big)

    harness.drain()

    batches = [r for r in server.requests if r.path == "/v4/events/batch"]
    assert all(r.status == 202 for r in batches)
    assert max(len(r.body) for r in batches) == 1000
    assert max(r.size for r in batches) <= 1_000_000
    # The byte limit, not the count, cut the large events: requests came close to it.
    big_requests = [r for r in batches if r.body[0]["action"] == "big.one"]
    assert len(big_requests) >= 120 * 44_000 // 1_000_000
    assert max(r.size for r in big_requests) > 900_000
    assert server.count == 2_620


def test_an_event_larger_than_max_batch_bytes_is_refused_at_enqueue(settings):
    limit = 1_000_000
    fits = CustomEvent("big.one", client={"customId": "1"}, params={"blob": ""})
    overhead = len(fits.to_json().encode())
    # The largest event that fits a batch on its own: ``[`` + event + ``]``.
    just_fits = CustomEvent(
        "big.one", client={"customId": "1"}, params={"blob": "x" * (limit - 2 - overhead)}
    )
    one_more = CustomEvent(
        "big.one", client={"customId": "1"}, params={"blob": "x" * (limit - 1 - overhead)}
    )

    assert django_synerise.track_event(just_fits) is not None
    with pytest.raises(EventTooLargeError) as excinfo:
        django_synerise.track_event(one_more)
    assert isinstance(excinfo.value, InvalidEventError) and isinstance(excinfo.value, ValueError)
    assert "MAX_BATCH_BYTES" in str(excinfo.value)
    with pytest.raises(EventTooLargeError):
        django_synerise.track_many([just_fits, one_more])
    assert OutboxEvent.objects.count() == 1, "a refused batch writes nothing"


def test_a_worker_whose_lease_ran_out_sends_none_of_its_remaining_rows(harness):
    """A request that outlives the lease: another worker takes the rows; the first must stop.

    Three AI requests of 100 events each from one claim. The first one takes
    longer than ``LEASE_SECONDS``; meanwhile a second worker claims the rows
    that fell due and sends them. The first worker must not then send the
    other 200 as well: AI events have no salt, a resend is a duplicate.
    """
    from django.conf import settings as django_settings

    from django_synerise.dispatch import Dispatcher
    from django_synerise.events import AIEvent
    from django_synerise.factory import build_client
    from tests.workers import UUID

    server = harness.server
    django_synerise.track_many(
        AIEvent("recommendation.view", correlation_id=f"c{i}", client_uuid=UUID, items=["1"])
        for i in range(300)
    )
    tuning = {**django_settings.SYNERISE, "AI_BATCH_SIZE": 100, "LEASE_SECONDS": 60}
    with override_settings(SYNERISE=tuning):
        other = Dispatcher(build_client(), sleep=harness.sleep)
        slow = build_client()
        send = slow.send
        first_request: list[str] = []

        def send_then_stall(endpoint, texts, *, group=""):
            send(endpoint, texts, group=group)
            if not first_request:
                first_request.extend(texts)
                # The reply came after the lease ran out; another worker got there first.
                harness.clock.shift(dt.timedelta(seconds=61))
                other.flush()

        slow.send = send_then_stall
        Dispatcher(slow, sleep=harness.sleep).flush()

    counts = {}
    for event in server.events:
        counts[event["correlation"]] = counts.get(event["correlation"], 0) + 1
    assert len(counts) == 300
    in_flight = {json.loads(text)["correlationId"] for text in first_request}
    # The request in flight when the lease ran out arrives twice (it was already
    # sent); every other event exactly once.
    assert {c for c, n in counts.items() if n > 1} == in_flight
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"sent"}
