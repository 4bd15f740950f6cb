"""Outbox service functions: enqueue in the caller's transaction, claim, record, requeue, purge."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import django_synerise
from django_synerise import outbox
from django_synerise.conf import synerise_settings
from django_synerise.events import AIEvent, CustomEvent, DedicatedEvent, Transaction
from django_synerise.exceptions import EventTooLargeError, InvalidEventError
from django_synerise.models import OutboxEvent
from django_synerise.signals import events_enqueued

pytestmark = pytest.mark.django_db
UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"


def custom(n: int = 0) -> CustomEvent:
    return CustomEvent("dog.bark", client={"customId": str(n)}, params={"n": n})


def test_track_writes_one_row_with_the_exact_payload():
    row = django_synerise.track("dog.bark", client={"customId": "7"}, params={"loud": 3})
    assert row is not None and row.pk
    stored = OutboxEvent.objects.get()
    body = json.loads(stored.payload)
    assert body["action"] == "dog.bark"
    assert body["label"] == "dog.bark"
    assert body["client"] == {"customId": "7"}
    assert body["params"] == {"loud": 3}
    assert stored.salt == body["eventSalt"]
    assert stored.status == "pending"
    assert stored.kind == "event"
    assert stored.batch_type == "custom"
    assert stored.action == "dog.bark"
    assert stored.client_key == "customId:7"
    assert stored.size == len(stored.payload.encode())
    assert stored.attempts == 0


def test_track_returns_the_stored_row_after_one_insert(django_assert_num_queries):
    occurred = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    with django_assert_num_queries(1):
        row = django_synerise.track("dog.bark", client={"customId": "7"}, time=occurred)
    assert row is not None
    assert not row._state.adding
    assert row._state.db == "default"
    stored = OutboxEvent.objects.get(pk=row.pk)
    for field in OutboxEvent._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(row, field.attname), field.name
    # Datetimes survive the round trip through the backend's own adaptation.
    assert stored.occurred_at == occurred
    assert stored.leased_until is None and stored.sent_at is None
    second = django_synerise.track("dog.bark", client={"customId": "8"})
    assert second is not None and second.pk > row.pk


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_a_non_durable_enqueue_skips_the_disk_wait_for_its_own_commit_only():
    event = CustomEvent("page.visit", client={"uuid": UUID}, params={"url": "/"})
    with CaptureQueriesContext(connection) as queries:
        row = outbox.enqueue(event, durable=False)
    assert row is not None and OutboxEvent.objects.get(pk=row.pk).payload == row.payload
    (insert,) = queries.captured_queries
    if connection.vendor == "postgresql":
        assert "set_config('synchronous_commit', 'off', true)" in insert["sql"]
        # Local to that statement's own transaction: the session keeps its setting.
        assert _synchronous_commit() == "on"
    else:
        assert "set_config" not in insert["sql"]

    # Inside a transaction it would change the caller's commit too: an ordinary INSERT.
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        outbox.enqueue(event, durable=False)
        if connection.vendor == "postgresql":
            assert _synchronous_commit() == "on"
    assert all("set_config" not in query["sql"] for query in queries.captured_queries)
    with CaptureQueriesContext(connection) as queries:
        outbox.enqueue(event)
    assert "set_config" not in queries.captured_queries[0]["sql"]
    assert OutboxEvent.objects.count() == 3


def test_track_time_is_fixed_at_enqueue_and_naive_time_uses_current_timezone():
    naive = dt.datetime(2024, 1, 2, 3, 4, 5)
    with timezone.override("Europe/Warsaw"):
        row = django_synerise.track("dog.bark", client={"customId": "7"}, time=naive)
    assert row is not None
    assert json.loads(row.payload)["time"] == "2024-01-02T02:04:05.000Z"


def test_track_event_accepts_every_kind():
    rows = [
        django_synerise.track_event(DedicatedEvent("hit-timer", client={"customId": "1"})),
        django_synerise.track_event(
            Transaction(client={"customId": "1"}, order_id="o", revenue=1, currency="PLN")
        ),
        django_synerise.track_event(
            AIEvent("recommendation.view", correlation_id="c", client_uuid=UUID, items=["1"])
        ),
    ]
    assert [(r.kind, r.batch_type) for r in rows] == [
        ("event", "hit-timer"),
        ("transaction", "transaction"),
        ("ai", "recommendation.view"),
    ]
    assert OutboxEvent.objects.count() == 3


def test_ai_event_payload_is_stored_neutral_whatever_the_api():
    # Shaped for AI_EVENTS_API only when sent (tests/delivery/test_ai_api_switch.py).
    event = AIEvent("recommendation.click", correlation_id="c", client_uuid=UUID, items=["9"])
    stored = []
    for api in ("ai-compat", "events-v1"):
        with override_settings(SYNERISE={"AI_EVENTS_API": api, "AI_TIMESTAMP_FORMAT": "unix-ms"}):
            row = django_synerise.track_event(event)
        assert row is not None
        stored.append(json.loads(row.payload))
    assert stored[0] == stored[1] == event.to_payload()
    assert stored[0]["items"] == ["9"]
    assert isinstance(stored[0]["eventTimestamp"], str)


def test_rollback_removes_the_event():
    with pytest.raises(RuntimeError), transaction.atomic():
        django_synerise.track("dog.bark", client={"customId": "7"})
        assert OutboxEvent.objects.count() == 1
        raise RuntimeError("the order failed")
    assert OutboxEvent.objects.count() == 0


def test_disabled_is_a_no_op():
    with override_settings(SYNERISE={"ENABLED": False}):
        assert django_synerise.track("dog.bark", client={"customId": "7"}) is None
        assert django_synerise.track_event(custom()) is None
        assert django_synerise.track_many([custom(1), custom(2)]) == []
    assert OutboxEvent.objects.count() == 0


def test_invalid_input_raises_before_writing():
    with pytest.raises(InvalidEventError, match="client"):
        django_synerise.track("dog.bark", client={})
    with pytest.raises(TypeError, match="Event"):
        django_synerise.track_event({"action": "dog.bark"})  # type: ignore[arg-type]
    assert OutboxEvent.objects.count() == 0


def test_event_larger_than_a_batch_is_refused_at_enqueue():
    with override_settings(SYNERISE={"MAX_BATCH_BYTES": 2048}):
        with pytest.raises(EventTooLargeError, match="MAX_BATCH_BYTES") as exc:
            django_synerise.track("dog.bark", client={"customId": "7"}, params={"x": "y" * 3000})
    assert isinstance(exc.value, ValueError)
    assert OutboxEvent.objects.count() == 0


def test_track_many_is_one_bulk_insert_and_all_or_nothing(django_assert_max_num_queries):
    events = [custom(i) for i in range(300)]
    # SQLite caps the parameters of one statement, so Django splits the insert.
    with django_assert_max_num_queries(1 if connection.vendor != "sqlite" else 6):
        rows = django_synerise.track_many(events)
    assert len(rows) == 300
    assert OutboxEvent.objects.count() == 300
    with override_settings(SYNERISE={"MAX_BATCH_BYTES": 2048}), pytest.raises(EventTooLargeError):
        big = CustomEvent("dog.bark", client={"customId": "1"}, params={"x": "y" * 3000})
        django_synerise.track_many([custom(1), big])
    assert OutboxEvent.objects.count() == 300


def test_enqueued_signal_fires():
    seen = []

    def receiver(sender, events, **kwargs):
        seen.extend(events)

    events_enqueued.connect(receiver)
    try:
        row = django_synerise.track("dog.bark", client={"customId": "7"})
    finally:
        events_enqueued.disconnect(receiver)
    assert seen == [row]


def test_claim_leases_due_rows_oldest_first_and_not_twice():
    django_synerise.track_many([custom(i) for i in range(5)])
    first = outbox.claim(3, owner="a")
    second = outbox.claim(3, owner="b")
    assert [r.id for r in first] == sorted(r.id for r in first)
    assert len(first) == 3 and len(second) == 2
    assert not {r.id for r in first} & {r.id for r in second}
    assert outbox.claim(3, owner="c") == []
    leased = OutboxEvent.objects.get(pk=first[0].id)
    assert leased.leased_by == "a"
    assert leased.leased_until is not None
    # The lease lives in its own columns, which no index holds: the indexed
    # next_attempt_at keeps its value.
    assert leased.next_attempt_at == leased.created_at


def test_claim_skips_rows_not_yet_due_and_respects_due_before():
    django_synerise.track("dog.bark", client={"customId": "1"})
    later = timezone.now() + dt.timedelta(minutes=5)
    OutboxEvent.objects.update(next_attempt_at=later)
    assert outbox.claim(10, owner="a") == []
    assert len(outbox.claim(10, owner="a", now=later + dt.timedelta(seconds=1))) == 1


def test_expired_lease_makes_rows_due_again():
    django_synerise.track("dog.bark", client={"customId": "1"})
    (row,) = outbox.claim(10, owner="dead-worker")
    assert outbox.claim(10, owner="b") == []
    after_lease = timezone.now() + dt.timedelta(seconds=121)
    (again,) = outbox.claim(10, owner="b", now=after_lease)
    assert again.id == row.id
    # The first worker's late outcome no longer applies: the lease is b's.
    assert outbox.mark_sent([row.id], owner="dead-worker") == 0
    assert outbox.mark_sent([row.id], owner="b") == 1


def test_claim_after_resumes_behind_the_previous_batch_in_claim_order():
    django_synerise.track_many([custom(i) for i in range(6)])
    # Equal next_attempt_at for the first four: the id breaks the tie.
    ids = list(OutboxEvent.objects.order_by("id").values_list("id", flat=True))
    first = outbox.claim(2, owner="w")
    assert [r.id for r in first] == ids[:2]
    second = outbox.claim(2, owner="w", after=first[-1])
    assert [r.id for r in second] == ids[2:4]
    # A row behind the resume point that turns due again (released) is left to
    # the next walk from the start, never taken twice in one walk.
    outbox.release([first[0].id], owner="w", until=timezone.now() - dt.timedelta(hours=1))
    third = outbox.claim(10, owner="w", after=second[-1])
    assert [r.id for r in third] == ids[4:]
    assert [r.id for r in outbox.claim(10, owner="w")] == [first[0].id]


def test_a_lease_writes_only_the_lease_columns():
    django_synerise.track("dog.bark", client={"customId": "1"})
    before = OutboxEvent.objects.get()
    outbox.claim(1, owner="w")
    after = OutboxEvent.objects.get()
    changed = {
        field.name
        for field in OutboxEvent._meta.concrete_fields
        if getattr(before, field.attname) != getattr(after, field.attname)
    }
    assert changed == {"leased_by", "leased_until"}
    indexed = {name for index in OutboxEvent._meta.indexes for name in index.fields}
    assert not changed & indexed


def test_mark_sent_deletes_by_default_and_keeps_per_retain_sent():
    django_synerise.track_many([custom(1), custom(2)])
    rows = outbox.claim(10, owner="w")
    assert synerise_settings.RETAIN_SENT == 0
    assert outbox.mark_sent([rows[0].id], owner="w") == 1
    assert not OutboxEvent.objects.filter(pk=rows[0].id).exists()
    with override_settings(SYNERISE={"RETAIN_SENT": 7}):
        assert outbox.mark_sent([rows[1].id], owner="w") == 1
    sent = OutboxEvent.objects.get(pk=rows[1].id)
    assert sent.status == "sent" and sent.sent_at is not None and sent.leased_by == ""


def test_mark_retry_backs_off_and_goes_dead_at_max_attempts():
    django_synerise.track("dog.bark", client={"customId": "1"})
    with override_settings(
        SYNERISE={"MAX_ATTEMPTS": 3, "RETRY_BACKOFF_BASE": 10, "RETRY_BACKOFF_MAX": 100}
    ):
        now = timezone.now()
        for attempt in (1, 2):
            (row,) = outbox.claim(1, owner="w", now=now)
            assert outbox.mark_retry([row], "HTTP 500", owner="w", now=now) == (1, 0)
            stored = OutboxEvent.objects.get()
            assert stored.attempts == attempt
            assert stored.status == "pending"
            assert (
                now <= stored.next_attempt_at <= now + dt.timedelta(seconds=10 * 2 ** (attempt - 1))
            )
            assert stored.last_error == "HTTP 500"
            now = stored.next_attempt_at + dt.timedelta(seconds=1)
        (row,) = outbox.claim(1, owner="w", now=now)
        assert outbox.mark_retry([row], "HTTP 500", owner="w", now=now) == (0, 1)
    stored = OutboxEvent.objects.get()
    assert stored.status == "dead"
    assert stored.attempts == 3
    assert "HTTP 500" in stored.last_error


def test_backoff_is_bounded_full_jitter():
    import random

    rng = random.Random(1)
    with override_settings(SYNERISE={"RETRY_BACKOFF_BASE": 2, "RETRY_BACKOFF_MAX": 60}):
        delays = [outbox.backoff_delay(n, rng=rng) for n in range(1, 12) for _ in range(50)]
        assert all(0 <= d <= 60 for d in delays)
        assert max(outbox.backoff_delay(1, rng=rng) for _ in range(200)) <= 2
        assert max(outbox.backoff_delay(10, rng=rng) for _ in range(200)) > 30


def test_release_does_not_count_an_attempt():
    django_synerise.track("dog.bark", client={"customId": "1"})
    (row,) = outbox.claim(1, owner="w")
    until = timezone.now() + dt.timedelta(seconds=30)
    assert outbox.release([row.id], owner="w", until=until) == 1
    stored = OutboxEvent.objects.get()
    assert stored.attempts == 0 and stored.leased_by == "" and stored.next_attempt_at == until


def test_requeue_dead_rows_resets_attempts():
    rows = django_synerise.track_many([custom(1), custom(2)])
    OutboxEvent.objects.filter(pk=rows[0].pk).update(status="dead", attempts=5, last_error="bad")
    assert outbox.requeue() == 1
    stored = OutboxEvent.objects.get(pk=rows[0].pk)
    assert stored.status == "pending" and stored.attempts == 0
    assert outbox.requeue(ids=[rows[1].pk]) == 0  # only dead rows by default


def test_purge_deletes_old_sent_and_old_dead_in_chunks():
    rows = django_synerise.track_many([custom(i) for i in range(7)])
    old = timezone.now() - dt.timedelta(days=30)
    OutboxEvent.objects.filter(pk__in=[r.pk for r in rows[:5]]).update(status="sent", sent_at=old)
    OutboxEvent.objects.filter(pk=rows[5].pk).update(status="dead", created_at=old)
    assert outbox.purge(chunk_size=2) == {"sent": 5}
    assert OutboxEvent.objects.count() == 2
    assert outbox.purge(dead_older_than=dt.timedelta(days=1)) == {"sent": 0, "dead": 1}
    assert list(OutboxEvent.objects.values_list("status", flat=True)) == ["pending"]


def test_health_and_stats():
    rows = django_synerise.track_many([custom(i) for i in range(3)])
    OutboxEvent.objects.filter(pk=rows[0].pk).update(status="dead")
    OutboxEvent.objects.filter(pk=rows[1].pk).update(status="sent", sent_at=timezone.now())
    health = outbox.health()
    assert health.pending == 1
    assert health.dead == 1
    assert health.oldest_pending_age is not None and health.oldest_pending_age >= 0
    assert health.last_sent_at is not None
    stats = outbox.stats()
    assert stats["counts"] == {"pending": {"event": 1}, "dead": {"event": 1}, "sent": {"event": 1}}
    assert stats["sent_last_hour"] == 1


# -- dead_at: when a row went dead ---------------------------------------------------


def test_every_way_to_die_records_dead_at_and_requeue_clears_it():
    rows = django_synerise.track_many([custom(1), custom(2)])
    with override_settings(SYNERISE={"MAX_ATTEMPTS": 1}):
        claimed = outbox.claim(10, owner="w")
        given_up_at = timezone.now() + dt.timedelta(seconds=3)
        assert outbox.mark_retry(claimed[:1], "HTTP 500", owner="w", now=given_up_at) == (0, 1)
    before = timezone.now()
    assert outbox.mark_dead([claimed[1].id], "rejected", owner="w") == 1
    after = timezone.now()
    stored = {row.pk: row for row in OutboxEvent.objects.all()}
    assert stored[rows[0].pk].status == "dead"
    assert stored[rows[0].pk].dead_at == given_up_at
    assert stored[rows[1].pk].status == "dead"
    assert stored[rows[1].pk].dead_at is not None
    assert before <= stored[rows[1].pk].dead_at <= after
    assert outbox.requeue() == 2
    assert list(OutboxEvent.objects.values_list("status", "dead_at").distinct()) == [
        ("pending", None)
    ]


def test_retries_and_releases_leave_dead_at_empty():
    django_synerise.track("dog.bark", client={"customId": "1"})
    (row,) = outbox.claim(1, owner="w")
    assert outbox.mark_retry([row], "HTTP 500", owner="w") == (1, 0)
    (row,) = outbox.claim(1, owner="w", now=timezone.now() + dt.timedelta(hours=2))
    assert outbox.release([row.id], owner="w") == 1
    assert OutboxEvent.objects.get().dead_at is None


def test_dead_last_day_counts_by_dead_at_and_old_rows_by_created_at():
    now = timezone.now()
    week_ago = now - dt.timedelta(days=7)
    rows = django_synerise.track_many([custom(i) for i in range(5)])
    # Created a week ago, never claimed (next_attempt_at a week ago too), killed now:
    # the way the admin's "mark dead" leaves a row.
    OutboxEvent.objects.filter(pk=rows[0].pk).update(created_at=week_ago, next_attempt_at=week_ago)
    assert outbox.mark_dead([rows[0].pk], "marked dead in the admin", owner=None) == 1
    # Died two days ago, whatever its next_attempt_at says.
    OutboxEvent.objects.filter(pk=rows[1].pk).update(
        status="dead", created_at=week_ago, dead_at=now - dt.timedelta(days=2), next_attempt_at=now
    )
    # Died before dead_at existed: by created_at.
    OutboxEvent.objects.filter(pk=rows[2].pk).update(
        status="dead", created_at=now - dt.timedelta(hours=3)
    )
    OutboxEvent.objects.filter(pk=rows[3].pk).update(
        status="dead", created_at=now - dt.timedelta(days=3)
    )
    health = outbox.health()
    assert health.dead == 4
    assert health.dead_last_day == 2
    assert health.as_dict()["dead_last_day"] == 2
    stats = outbox.stats()
    assert stats["dead_last_day"] == 2
    assert stats["health"]["dead_last_day"] == 2


def test_health_reads_the_table_in_three_queries(django_assert_num_queries):
    django_synerise.track("dog.bark", client={"customId": "1"})
    with django_assert_num_queries(3):
        outbox.health()


def test_purge_of_dead_rows_counts_from_when_they_died():
    now = timezone.now()
    month_ago = now - dt.timedelta(days=30)
    rows = django_synerise.track_many([custom(i) for i in range(6)])
    OutboxEvent.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=month_ago)
    # Created a month ago, died a second ago: the evidence an operator needs, kept.
    assert outbox.mark_dead([rows[0].pk], "rejected", owner=None) == 1
    OutboxEvent.objects.filter(pk__in=[rows[1].pk, rows[2].pk]).update(
        status="dead", dead_at=now - dt.timedelta(days=2)
    )
    # Died before dead_at existed: by created_at, as before.
    OutboxEvent.objects.filter(pk=rows[3].pk).update(status="dead")
    OutboxEvent.objects.filter(pk=rows[4].pk).update(status="dead", created_at=now)
    # rows[5] stays pending, however old.
    result = outbox.purge(dead_older_than=dt.timedelta(days=1), chunk_size=1)
    assert result == {"sent": 0, "dead": 3}
    assert sorted(OutboxEvent.objects.values_list("pk", flat=True)) == [
        rows[0].pk,
        rows[4].pk,
        rows[5].pk,
    ]
    assert outbox.purge(dead_older_than=dt.timedelta(0)) == {"sent": 0, "dead": 2}
    assert list(OutboxEvent.objects.values_list("pk", flat=True)) == [rows[5].pk]


# -- USE_TZ = False ------------------------------------------------------------------

# A zone far from UTC (and without summer time): a datetime stored in UTC, or aware,
# where Django expects local naive time shows up as hours off.
NAIVE_ZONE = "Asia/Kolkata"


@pytest.fixture
def naive_times():
    with override_settings(USE_TZ=False, TIME_ZONE=NAIVE_ZONE):
        yield


def near(value: dt.datetime | None, expected: dt.datetime, seconds: float = 60) -> bool:
    assert value is not None
    return abs((value - expected).total_seconds()) < seconds


@pytest.mark.usefixtures("naive_times")
def test_without_use_tz_enqueue_stores_local_naive_times_and_payloads_stay_utc():
    occurred = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    row = django_synerise.track("dog.bark", client={"customId": "7"}, time=occurred)
    rows = django_synerise.track_many([custom(1), custom(2)])
    assert row is not None
    local_now = dt.datetime.now()  # the process runs in TIME_ZONE
    for stored in OutboxEvent.objects.all():
        assert timezone.is_naive(stored.created_at)
        assert near(stored.created_at, local_now)
        assert near(stored.next_attempt_at, local_now)
    for fresh in rows:
        sent_time = json.loads(fresh.payload)["time"].replace("Z", "+00:00")
        assert near(dt.datetime.fromisoformat(sent_time), dt.datetime.now(dt.timezone.utc))
    stored = OutboxEvent.objects.get(pk=row.pk)
    # 03:04:05 UTC is 08:34:05 in Kolkata; the payload keeps UTC.
    assert stored.occurred_at == dt.datetime(2024, 1, 2, 8, 34, 5, 678000)
    assert json.loads(stored.payload)["time"] == "2024-01-02T03:04:05.678Z"
    for field in OutboxEvent._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(row, field.attname), field.name


@pytest.mark.usefixtures("naive_times")
def test_without_use_tz_claim_mark_requeue_and_release_work():
    django_synerise.track_many([custom(i) for i in range(4)])
    with override_settings(SYNERISE={"MAX_ATTEMPTS": 2, "RETAIN_SENT": 7}):
        claimed = outbox.claim(10, owner="w")
        assert len(claimed) == 4
        leased = OutboxEvent.objects.get(pk=claimed[0].id)
        assert near(leased.leased_until, dt.datetime.now() + dt.timedelta(seconds=120))
        # Aware datetimes from a caller are converted, not refused.
        aware_now = dt.datetime.now(dt.timezone.utc)
        assert outbox.mark_sent([claimed[0].id], owner="w", now=aware_now) == 1
        assert outbox.mark_retry([claimed[1]], "HTTP 500", owner="w") == (1, 0)
        assert outbox.mark_dead([claimed[2].id], "rejected", owner="w") == 1
        assert outbox.release([claimed[3].id], owner="w", until=aware_now) == 1
        # Due exactly at the release time; the retried row backs off from a later now.
        (again,) = outbox.claim(10, owner="v", due_before=aware_now)
        assert again.id == claimed[3].id
    stored = {row.pk: row for row in OutboxEvent.objects.all()}
    local_now = dt.datetime.now()
    assert near(stored[claimed[0].id].sent_at, local_now)
    assert near(stored[claimed[2].id].dead_at, local_now)
    assert outbox.requeue(since=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)) == 1
    assert OutboxEvent.objects.get(pk=claimed[2].id).dead_at is None


@pytest.mark.usefixtures("naive_times")
def test_without_use_tz_stats_health_and_purge_use_local_time():
    # Sent rows are kept (RETAIN_SENT), so that stats and purge see them.
    with override_settings(SYNERISE={**django_settings.SYNERISE, "RETAIN_SENT": 7}):
        rows = django_synerise.track_many([custom(i) for i in range(5)])
        local_now = dt.datetime.now()
        OutboxEvent.objects.filter(pk=rows[0].pk).update(
            status="sent", sent_at=local_now - dt.timedelta(minutes=10)
        )
        OutboxEvent.objects.filter(pk=rows[1].pk).update(
            status="sent", sent_at=local_now - dt.timedelta(days=30)
        )
        OutboxEvent.objects.filter(pk=rows[2].pk).update(
            created_at=local_now - dt.timedelta(days=30)
        )
        assert outbox.mark_dead([rows[2].pk], "rejected", owner=None) == 1
        OutboxEvent.objects.filter(pk=rows[3].pk).update(
            status="dead", dead_at=local_now - dt.timedelta(days=3)
        )
        OutboxEvent.objects.filter(pk=rows[4].pk).update(
            created_at=local_now - dt.timedelta(hours=2)
        )
        health = outbox.health()
        assert health.pending == 1
        assert 7199 <= (health.oldest_pending_age or 0) < 7300
        assert 599 <= (health.last_sent_age or 0) < 700
        assert health.dead == 2 and health.dead_last_day == 1
        # The JSON form says which offset the stored local time had.
        assert health.as_dict()["last_sent_at"].endswith("+05:30")
        stats = outbox.stats()
        assert stats["sent_last_hour"] == 1
        assert stats["dead_last_day"] == 1
        assert outbox.purge(dead_older_than=dt.timedelta(days=1)) == {"sent": 1, "dead": 1}
        assert sorted(OutboxEvent.objects.values_list("pk", flat=True)) == [
            rows[0].pk,
            rows[2].pk,
            rows[4].pk,
        ]


def test_the_flusher_purges_old_sent_rows_once_an_hour(monkeypatch, synerise_stand_in):
    """Before: sent rows stayed until someone ran ``synerise_outbox purge``."""
    # Sent rows are kept (RETAIN_SENT), so that purging them can be seen.
    with override_settings(SYNERISE={**django_settings.SYNERISE, "RETAIN_SENT": 7}):
        from django_synerise import dispatch

        monkeypatch.setattr(outbox, "_last_auto_purge", float("-inf"))
        rows = django_synerise.track_many([custom(i) for i in range(4)])
        old = timezone.now() - dt.timedelta(days=8)
        OutboxEvent.objects.filter(pk__in=[r.pk for r in rows[:2]]).update(
            status="sent", sent_at=old
        )
        OutboxEvent.objects.filter(pk=rows[2].pk).update(status="dead", dead_at=old)
        result = dispatch.flush()
        assert result.sent == 1
        # The two old sent rows are gone; the one just sent and the dead one stay.
        assert sorted(OutboxEvent.objects.values_list("status", flat=True)) == ["dead", "sent"]
        rows = django_synerise.track_many([custom(9)])
        OutboxEvent.objects.filter(status="sent").update(sent_at=old)
        dispatch.flush()
        assert OutboxEvent.objects.filter(sent_at=old).count() == 1  # next purge in an hour
        assert outbox.purge_if_due() is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's HOT updates")
def test_a_claim_updates_its_rows_in_place_without_index_entries():
    # The heap is filled half way (migration 0001) and the lease columns are in no
    # index: leasing a batch rewrites each row on its own page (a HOT update),
    # adding no index entry. Counters of this transaction, read in it.
    django_synerise.track_many([custom(i) for i in range(200)])
    table = OutboxEvent._meta.db_table

    def hot_updates() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_stat_get_xact_tuples_hot_updated(%s::regclass), "
                "(SELECT reloptions FROM pg_class WHERE oid = %s::regclass)",
                [table, table],
            )
            hot, options = cursor.fetchone()
        assert "fillfactor=50" in (options or []), options
        return int(hot)

    before = hot_updates()
    assert len(outbox.claim(200, owner="w")) == 200
    assert hot_updates() - before >= 180
