"""Synerise down for hours, simulated with a controlled clock: backoff, no early death, drain.

The stand-in is stopped (connections refused), flush passes run whenever a
row falls due, and the clock jumps from one due time to the next, so hours of
outage take a second. Settings are the defaults a site runs with
(``RETRY_BACKOFF_BASE=30``, ``RETRY_BACKOFF_MAX=3600``, ``MAX_ATTEMPTS=16``).
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

import django_synerise
from django_synerise import outbox
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise
from tests.drain import Harness, settings_for
from tests.workers import delivery_report, mixed_events

pytestmark = pytest.mark.django_db

BASE, CAP, MAX_ATTEMPTS = 30.0, 3600.0, 16
HOUR = dt.timedelta(hours=1)


def ceiling(attempts: int) -> float:
    """The longest wait allowed after the ``attempts``-th failure (full jitter below it)."""
    return min(CAP, BASE * 2 ** (attempts - 1))


@pytest.fixture
def outage():
    start = timezone.now()
    # tick=False: the clock stands still during a pass, so a row's delay is exact.
    with (
        LocalSynerise(record="full") as server,
        override_settings(SYNERISE=settings_for(server, TIMEOUT=(1.0, 2.0), RETAIN_SENT=7)),
        time_machine.travel(start, tick=False) as clock,
    ):
        harness = Harness(server, clock)
        harness.start = start
        harness.delays = []
        server.stop()  # Synerise is down: every connection is refused.
        yield harness


def failing_pass(harness) -> None:
    """One pass during the outage; check each retried row's delay against the schedule."""
    before = dict(OutboxEvent.objects.filter(status="pending").values_list("id", "attempts"))
    now = timezone.now()
    result = harness.flush()
    assert result.sent == 0
    for row in OutboxEvent.objects.filter(id__in=before):
        if row.attempts == before[row.id]:
            continue  # not due in this pass
        assert row.attempts == before[row.id] + 1
        assert row.leased_by == "" and "could not reach Synerise" in row.last_error
        if row.status == "pending":
            delay = (row.next_attempt_at - now).total_seconds()
            assert 0 <= delay <= ceiling(row.attempts), (row.attempts, delay)
            harness.delays.append((row.attempts, delay))


def next_due(harness) -> dt.datetime | None:
    return (
        OutboxEvent.objects.filter(status="pending")
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )


def test_an_hour_down_follows_the_backoff_and_drains_when_synerise_returns(outage):
    django_synerise.track_many(mixed_events(300))
    end = outage.start + HOUR
    while (due := next_due(outage)) is not None and due <= end:
        outage.clock.move_to(max(due, timezone.now()))
        failing_pass(outage)

    rows = list(OutboxEvent.objects.all())
    assert {row.status for row in rows} == {"pending"}, "nothing may die before MAX_ATTEMPTS"
    attempts = {row.attempts for row in rows}
    # The waits after attempts 1..6 add up to at most 30+60+...+960 = 1890 s: within an
    # hour every row was tried at least 7 times, and far fewer than MAX_ATTEMPTS.
    assert min(attempts) >= 7 and max(attempts) < MAX_ATTEMPTS
    # Full jitter: waits are spread below the ceiling, not pinned to it.
    assert any(delay < 0.5 * ceiling(n) for n, delay in outage.delays)
    assert outage.sleeps == []

    outage.server.start()  # back, on the same address
    outage.clock.move_to(end)
    outage.drain()

    rows = list(OutboxEvent.objects.all())
    assert {row.status for row in rows} == {"sent"}
    report = delivery_report(outage.server.events, rows)
    assert report.missing == set() and report.unexpected == set()
    assert report.resent_ids == set(), "a refused connection stores nothing: nothing twice"


def test_past_max_attempts_events_go_dead_then_a_requeue_delivers_them(outage):
    django_synerise.track_many(mixed_events(40))
    while (due := next_due(outage)) is not None:
        outage.clock.move_to(max(due, timezone.now()))
        failing_pass(outage)
        pending = OutboxEvent.objects.filter(status="pending")
        assert all(row.attempts < MAX_ATTEMPTS for row in pending)

    rows = list(OutboxEvent.objects.all())
    assert {(row.status, row.attempts) for row in rows} == {("dead", MAX_ATTEMPTS)}
    assert all(row.last_error.startswith("gave up after 16 attempts") for row in rows)
    elapsed = timezone.now() - outage.start
    # Never sooner than the 15 waits allow at their shortest (0) nor later than at their longest.
    assert elapsed <= dt.timedelta(seconds=sum(ceiling(n) for n in range(1, MAX_ATTEMPTS)))

    outage.server.start()
    assert outbox.requeue() == 40
    outage.drain()

    rows = list(OutboxEvent.objects.all())
    assert {row.status for row in rows} == {"sent"}
    report = delivery_report(outage.server.events, rows)
    assert report.missing == set() and report.resent_ids == set()
