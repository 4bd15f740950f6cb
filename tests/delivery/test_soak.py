"""Fault soak: parallel workers, random faults, crashes and lost connections, nothing lost.

Three real ``synerise_flush --loop`` processes drain a mixed backlog (custom,
dedicated, transactions, AI events) that keeps growing while they run. The
stand-in fails about a quarter of the requests at random: 500s, 503 and 429
with ``Retry-After``, read timeouts (with and without the events stored),
dropped connections, malformed responses; tokens expire now and then. During
the run one worker is SIGKILLed in the middle of a batch and restarted, and
(on PostgreSQL) another worker's database connection is terminated under it.

Afterwards: every event delivered, only the poison events dead (with the API's
message), no event under two salts, nothing pending, no lease left, and every
worker exits cleanly on SIGTERM. Resends with the *same* salt are counted and
reported: Synerise overwrites them (``eventSalt``), that is the at-least-once
contract.

The default run is small; ``-m soak`` (or ``SOAK=1``) runs the 50,000-event soak.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from django.db import connection, transaction

import django_synerise
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise
from tests.drain import settings_for
from tests.workers import (
    Worker,
    delivery_report,
    is_poison,
    logical_id,
    mixed_events,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

POSTGRES = connection.vendor == "postgresql"
WORKER_TUNING = {
    # Delivered rows are kept, to compare them with what arrived.
    "RETAIN_SENT": 7,
    "BATCH_SIZE": 100,
    "TIMEOUT": [1.0, 0.75],
    "RETRY_BACKOFF_BASE": 0.2,
    "RETRY_BACKOFF_MAX": 2.0,
    "LEASE_SECONDS": 5,
}
# (fault, probability, options); tried in this order on every request but the login.
FAULTS = [
    ("500", 0.05, {}),
    ("503", 0.03, {"retry_after": 0.5}),
    ("429", 0.03, {"retry_after": 0.3}),
    ("timeout", 0.03, {"delay": 1.5}),  # 504 after the client gave up; nothing stored
    ("slow", 0.01, {"delay": 1.5}),  # stored, but the reply comes after the client gave up
    ("drop", 0.04, {}),
    ("malformed", 0.03, {}),
]


@dataclass
class Soak:
    events: int
    workers: list[Worker] = field(default_factory=list)
    killed_holding: int = 0
    kills: int = 0
    terminated_backends: int = 0
    stats: dict[str, object] = field(default_factory=dict)


def start_worker(soak: Soak, name: str, server: LocalSynerise, log_dir) -> Worker:
    env = worker_env(
        connection.settings_dict,
        settings_for(server, **WORKER_TUNING),
        application_name=f"synerise-soak-{name}",
    )
    worker = Worker(name, ["--loop", "--interval", "0.2"], env, log_dir).start()
    soak.workers.append(worker)
    return worker


def held_by(worker: Worker) -> int:
    return OutboxEvent.objects.filter(
        status="pending", leased_by__contains=f":{worker.pid}:"
    ).count()


def enqueue(events: list, chunk: int = 500) -> None:
    """Write ``events`` in transactions of ``chunk`` rows while the workers claim."""
    for start in range(0, len(events), chunk):
        with transaction.atomic():
            django_synerise.track_many(events[start : start + chunk])


def catch_holding(worker: Worker, timeout: float = 120) -> bool:
    """Wait until ``worker`` holds leased rows (true) or nothing is left to lease (false)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if held_by(worker):
            return True
        if not OutboxEvent.objects.filter(status="pending", leased_by="").exists():
            return bool(held_by(worker))
        time.sleep(0.002)  # polling the database: no one signals a lease
    raise AssertionError(f"{worker.name} neither leased rows nor ran out of them")


def run_soak(total: int, tmp_path, *, seed: int) -> Soak:
    soak = Soak(events=total)
    # Three poison events, one of each endpoint family (custom, transaction, AI).
    poison = [total // 4 // 5 * 5, total // 2 // 5 * 5 + 2, total * 3 // 4 // 5 * 5 + 3]
    events = mixed_events(total, poison=poison)
    # The backlog grows in waves while the workers run; each fault below strikes
    # right after a wave, while there is work in flight.
    cut = [0, total * 2 // 5, total * 3 // 5, total * 4 // 5, total]
    waves = [events[cut[i] : cut[i + 1]] for i in range(4)]
    with LocalSynerise(record="full", seed=seed) as server:
        for kind, probability, options in FAULTS:
            server.inject(kind, probability=probability, **options)
        server.reject(is_poison)
        enqueue(waves.pop(0))

        pool = [start_worker(soak, f"w{i}", server, tmp_path) for i in range(3)]
        for worker in pool:
            worker.wait_ready()
        started = time.monotonic()

        # A worker SIGKILLed while it holds leased rows, then restarted. A kill that
        # lands between two batches proves less: then the restarted one goes next.
        victim = pool[0]
        for attempt in range(5):
            catch_holding(victim)
            victim.kill()
            soak.kills += 1
            soak.killed_holding = held_by(victim)
            victim = start_worker(soak, f"w0-restart{attempt}", server, tmp_path)
            victim.wait_ready()
            if soak.killed_holding:
                break
            if waves:
                enqueue(waves.pop(0))
        assert soak.killed_holding, "never caught a worker in the middle of a batch"

        # Tokens expire after each later wave. One expiry at a time: two in a row would
        # refuse the fresh token a worker just fetched, a broken key, not an expiry.
        expiries = []
        if waves:
            enqueue(waves.pop(0))
            expiries.append(server.inject("expire_tokens", times=1))

        # A worker's database connection terminated under it, mid-pass (PostgreSQL).
        if POSTGRES:
            target = pool[1]
            caught = catch_holding(target)
            while not caught and waves:
                enqueue(waves.pop(0))
                caught = catch_holding(target)
            assert caught, f"{target.name} never held a lease"
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    [f"synerise-soak-{target.name}"],
                )
                soak.terminated_backends = sum(1 for (ok,) in cursor.fetchall() if ok)
            assert soak.terminated_backends == 1
            wait_until(
                lambda: "database error, reconnecting" in target.stderr(),
                60,
                f"{target.name} to notice its lost connection",
            )

        while waves:
            if expiries:
                wait_until(lambda: expiries[-1].exhausted, 120, "the previous token expiry")
                # The worker it hit logs in again and repeats its request within
                # milliseconds; an expiry injected in between would refuse the fresh
                # token too, which is a broken key, not an expiry.
                time.sleep(1.0)
            enqueue(waves.pop(0))
            expiries.append(server.inject("expire_tokens", times=1))

        wait_until(
            lambda: not OutboxEvent.objects.filter(status="pending").exists(),
            600,
            "every event to be sent or dead",
        )
        elapsed = time.monotonic() - started
        alive = [w for w in soak.workers if w.process.poll() is None]
        codes = {w.name: w.terminate() for w in alive}
        accepted = list(server.events)
        soak.stats = {
            "requests": len(server.requests),
            "faults": dict(server.faults_injected),
            "logins": server.logins,
            "token_expiries": sum(1 for expiry in expiries if expiry.exhausted),
            "elapsed_s": round(elapsed, 1),
        }

    # Every worker still running (the one whose connection died included) stops cleanly.
    assert len(alive) == 3, "\n".join(w.diagnostics() for w in soak.workers)
    assert set(codes.values()) == {0}, "\n".join(w.diagnostics() for w in alive)

    rows = list(OutboxEvent.objects.all())
    assert len(rows) == total
    dead = [row for row in rows if row.status == "dead"]
    dead_ids = sorted(logical_id(row.body) for row in dead)
    assert dead_ids == sorted(
        logical_id(e.to_payload()) for i, e in enumerate(events) if i in poison
    )
    assert all("was rejected (LocalSynerise.reject predicate)" in row.last_error for row in dead)
    assert all("HTTP 400" in row.last_error for row in dead)
    assert OutboxEvent.objects.exclude(leased_by="").count() == 0, "a lease was left behind"
    assert OutboxEvent.objects.filter(leased_until__isnull=False).count() == 0

    report = delivery_report(accepted, [row for row in rows if row.status == "sent"])
    assert report.missing == set(), f"lost: {sorted(report.missing)[:20]}"
    assert report.unexpected == set(), f"unknown or poison: {sorted(report.unexpected)[:20]}"
    assert report.distinct_salt_duplicates == {}
    assert report.delivered == total - len(poison)
    soak.stats.update(
        {
            "delivered": report.delivered,
            "dead": len(dead),
            "same_salt_resends": report.same_salt_resends,
            "ai_resends": report.ai_resends,
            "killed_holding": soak.killed_holding,
            "kills": soak.kills,
            "terminated_backends": soak.terminated_backends,
            "events_per_s": round(report.delivered / elapsed),
        }
    )
    print(f"\nsoak of {total} events: {soak.stats}")
    return soak


def test_fault_soak(tmp_path):
    """The small soak of the default run; the same assertions as the long one."""
    run_soak(4_000 if connection.vendor != "sqlite" else 2_000, tmp_path, seed=3)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_fault_soak_50k(tmp_path):
    run_soak(50_000, tmp_path, seed=50)
