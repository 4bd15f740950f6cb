"""Parallel flush processes and crashed ones: every event delivered, none twice.

Real ``synerise_flush --loop`` processes (see ``tests/workers.py``) share the
test database and send over HTTP to the local stand-in, which counts what it
accepts by ``eventSalt``. Run on SQLite, PostgreSQL (``SKIP LOCKED``) and
MariaDB (``SKIP LOCKED``, different locking underneath) by switching
``DATABASE_URL``.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction

import django_synerise
from django_synerise import outbox
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise
from tests.workers import (
    Worker,
    delivery_report,
    logical_id,
    mixed_events,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# SQLite has one writer at a time: the same guarantees, a smaller load.
EVENTS = {"postgresql": 20_000, "mysql": 20_000}.get(connection.vendor, 2_000)


def synerise_for(server: LocalSynerise, **tuning: object) -> dict[str, object]:
    return {
        "API_BASE_URL": server.url,
        "API_KEY": server.api_key,
        "TRACKER_KEY": server.tracker_key,
        # Delivered rows are kept, to compare their salts with what arrived.
        "RETAIN_SENT": 7,
        **tuning,
    }


@pytest.fixture
def workers(tmp_path):
    started: list[Worker] = []

    def start(name: str, server: LocalSynerise, *args: str, **tuning: object) -> Worker:
        env = worker_env(connection.settings_dict, synerise_for(server, **tuning))
        worker = Worker(name, args or ("--loop", "--interval", "0.2"), env, tmp_path).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop_quietly()


def enqueue_at_once(events) -> None:
    # One transaction: every worker sees the whole backlog appear at the same instant.
    with transaction.atomic():
        django_synerise.track_many(events)


def test_four_workers_deliver_each_event_exactly_once(workers):
    with LocalSynerise(record="salts") as server:
        # Forty batches, not two: with 1,000-event batches one worker can take the
        # whole SQLite backlog before the others wake from their poll interval.
        pool = [workers(f"worker{i}", server, BATCH_SIZE=EVENTS // 40) for i in range(4)]
        for worker in pool:
            worker.wait_ready()
        # Salts only: every event counts by eventSalt here.
        enqueue_at_once(mixed_events(EVENTS, ai=False))

        assert server.wait_for_events(EVENTS, timeout=240), (
            f"{server.count} of {EVENTS} delivered\n" + "\n".join(w.diagnostics() for w in pool)
        )
        wait_until(lambda: outbox.pending_count() == 0, 60, "the outbox to drain")
        codes = [worker.terminate() for worker in pool]
        counts = server.salt_counts()
        requests = list(server.requests)

    assert codes == [0, 0, 0, 0], "\n".join(w.diagnostics() for w in pool)
    expected = set(OutboxEvent.objects.values_list("salt", flat=True))
    assert len(expected) == EVENTS
    assert set(counts) == expected, "lost or unknown events"
    resent = {salt: n for salt, n in counts.items() if n > 1}
    assert resent == {}, f"{len(resent)} events delivered more than once"
    assert server.count == EVENTS
    assert OutboxEvent.objects.exclude(status="sent").count() == 0
    assert OutboxEvent.objects.exclude(leased_by="").count() == 0, "a lease was left behind"
    assert all(r.status is not None and 200 <= r.status < 300 for r in requests)

    per_worker = [worker.summary()["sent"] for worker in pool]
    assert sum(per_worker) == EVENTS
    # The workers really raced for the same rows rather than taking turns.
    assert sum(1 for sent in per_worker if sent) >= 2, per_worker


def test_worker_killed_mid_send_loses_nothing(workers):
    """SIGKILL while a request is in flight: its lease expires and another worker resends it.

    The stand-in accepts the killed worker's first request but holds the reply
    (the ``slow`` fault), the worst moment to die: Synerise has the events, the
    outbox does not know. They are sent again with the same salts, which
    Synerise overwrites; the rest of its claim is sent once; nothing is lost.
    """
    total, batch, lease = 2_000, 200, 3
    tuning = {"BATCH_SIZE": batch, "LEASE_SECONDS": lease}
    with LocalSynerise(record="full") as server:
        server.inject("slow", times=1, delay=120)
        doomed = workers("doomed", server, **tuning)
        doomed.wait_ready()
        enqueue_at_once(mixed_events(total))

        # The first request is in: the worker now waits for a reply that is not coming.
        assert server.wait_for_events(1, timeout=60), doomed.diagnostics()
        in_flight = {logical_id(event["body"]) for event in server.events}
        held = OutboxEvent.objects.filter(status="pending", leased_by__contains=f":{doomed.pid}:")
        held_ids = set(held.values_list("id", flat=True))
        assert len(held_ids) == batch, "the worker should hold its whole claim's lease"
        doomed.kill()

        survivors = [workers(f"survivor{i}", server, **tuning) for i in range(2)]
        wait_until(
            lambda: not OutboxEvent.objects.exclude(status="sent").exists(),
            60,
            "the survivors to deliver everything, the dead worker's batch included",
        )
        codes = [worker.terminate() for worker in survivors]
        accepted = list(server.events)

    assert codes == [0, 0], "\n".join(w.diagnostics() for w in survivors)
    rows = list(OutboxEvent.objects.all())
    report = delivery_report(accepted, rows)
    assert report.missing == set()
    assert report.unexpected == set()
    assert report.distinct_salt_duplicates == {}
    # Exactly the request that was in flight came twice, nothing else.
    assert report.resent_ids == in_flight
    assert report.same_salt_resends == len(in_flight)
    assert report.accepted == total + len(in_flight)
    assert OutboxEvent.objects.exclude(leased_by="").count() == 0
    assert OutboxEvent.objects.filter(id__in=held_ids, attempts=0).count() == batch, (
        "a lease that expired is not a failed attempt"
    )


def test_sigterm_ends_a_worker_paused_for_retry_after(workers):
    """A worker waiting out a long ``Retry-After`` still stops promptly, leases released.

    Service managers give a stopping process a few seconds before SIGKILL; a
    pause of up to ``RATE_LIMIT_MAX_WAIT`` must not run into that.
    """
    with LocalSynerise(record="salts") as server:
        server.inject("429", retry_after=50)
        worker = workers("paused", server, RATE_LIMIT_MAX_WAIT=60)
        worker.wait_ready()
        enqueue_at_once(mixed_events(50, ai=False))
        wait_until(lambda: any(r.status == 429 for r in server.requests), 60, "the first 429")
        # Far less than the 50 s pause: the signal must cut it short.
        code = worker.terminate(timeout=20)

    assert code == 0, worker.diagnostics()
    rows = OutboxEvent.objects.all()
    assert {(r.status, r.attempts, r.leased_by) for r in rows} == {("pending", 0, "")}
