"""``manage.py synerise_outbox``: every subcommand, and a plain CommandError for every bad argument."""

from __future__ import annotations

import datetime as dt
import json
import shlex
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory, override_settings
from django.utils import timezone

import django_synerise
from django_synerise import outbox
from django_synerise.events import Transaction
from django_synerise.models import OutboxEvent
from tests.docs_samples import run_sample, sample

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("synerise_outbox", *args, stdout=out)
    return out.getvalue()


def track(action: str = "dog.bark", customer: str = "1") -> OutboxEvent:
    row = django_synerise.track(action, client={"customId": customer}, params={"n": 1})
    assert row is not None
    return row


def set_fields(row: OutboxEvent, **fields: object) -> None:
    OutboxEvent.objects.filter(pk=row.pk).update(**fields)


# -- stats ---------------------------------------------------------------------


def make_mix() -> dict[str, OutboxEvent]:
    now = timezone.now()
    rows = {
        "pending": track("a.pending"),
        "sent": track("a.sent"),
        "dead": track("a.dead"),
        "old_dead": track("a.old"),
    }
    tx = django_synerise.track_event(Transaction(client={"customId": "1"}, order_id="o-1"))
    assert tx is not None
    rows["tx"] = tx
    set_fields(rows["pending"], created_at=now - dt.timedelta(minutes=5))
    set_fields(rows["sent"], status="sent", sent_at=now - dt.timedelta(minutes=10))
    set_fields(rows["dead"], status="dead", next_attempt_at=now, dead_at=now)
    set_fields(
        rows["old_dead"],
        status="dead",
        created_at=now - dt.timedelta(days=3),
        next_attempt_at=now - dt.timedelta(days=3),
        dead_at=now - dt.timedelta(days=3),
    )
    return rows


def test_stats_json_counts_activity_and_health():
    make_mix()
    data = json.loads(run("stats", "--json"))
    assert data["counts"] == {
        "pending": {"event": 1, "transaction": 1},
        "sent": {"event": 1},
        "dead": {"event": 2},
    }
    assert data["totals"] == {"pending": 2, "sent": 1, "dead": 2}
    assert data["sent_last_hour"] == 1
    assert data["dead_last_day"] == 1
    health = data["health"]
    assert health["pending"] == 2 and health["dead"] == 2
    assert health["dead_last_day"] == data["dead_last_day"] == 1
    assert 299 <= health["oldest_pending_age"] < 400
    assert 599 <= health["last_sent_age"] < 700
    assert dt.datetime.fromisoformat(health["last_sent_at"]) < timezone.now()
    assert data["database"] == "default"


def test_stats_text_is_a_table_with_ages():
    make_mix()
    text = run("stats")
    lines = text.splitlines()
    assert lines[0].split() == [
        "status",
        "event",
        "transaction",
        "ai",
        "profile",
        "catalog",
        "total",
    ]
    assert lines[1].split() == ["pending", "1", "1", "0", "0", "0", "2"]
    assert lines[2].split() == ["sent", "1", "0", "0", "0", "0", "1"]
    assert lines[3].split() == ["dead", "2", "0", "0", "0", "0", "2"]
    assert "oldest pending:        5 min" in text
    assert "sent in the last hour: 1" in text
    assert "dead in the last day:  1" in text


def test_stats_of_an_empty_outbox():
    data = json.loads(run("stats", "--json"))
    assert data["counts"] == {}
    assert data["health"]["oldest_pending_age"] is None
    assert data["health"]["last_sent_at"] is None
    assert "oldest pending:        -" in run("stats")


# -- requeue -------------------------------------------------------------------


def test_requeue_dead_resets_attempts_and_leaves_other_rows():
    rows = make_mix()
    set_fields(rows["dead"], attempts=16, last_error="rejected")
    out = run("requeue", "--dead")
    assert "Requeued 2 events" in out
    stored = OutboxEvent.objects.get(pk=rows["dead"].pk)
    assert (stored.status, stored.attempts) == ("pending", 0)
    assert stored.next_attempt_at <= timezone.now()
    assert OutboxEvent.objects.get(pk=rows["sent"].pk).status == "sent"


def test_requeue_dead_narrowed_by_action_and_since():
    rows = make_mix()
    assert "Requeued 1 event;" in run("requeue", "--dead", "--action", "a.old")
    assert OutboxEvent.objects.get(pk=rows["old_dead"].pk).status == "pending"
    assert OutboxEvent.objects.get(pk=rows["dead"].pk).status == "dead"
    set_fields(rows["old_dead"], status="dead")
    yesterday = (timezone.localdate() - dt.timedelta(days=1)).isoformat()
    assert "Requeued 1 event;" in run("requeue", "--dead", "--since", yesterday)
    assert OutboxEvent.objects.get(pk=rows["dead"].pk).status == "pending"
    assert OutboxEvent.objects.get(pk=rows["old_dead"].pk).status == "dead"
    later = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    assert "Requeued 0 events" in run("requeue", "--dead", "--since", later)


def test_requeue_by_id_resends_a_sent_row_and_leaves_a_due_pending_one():
    rows = make_mix()
    out = run("requeue", "--id", str(rows["sent"].pk), "--id", str(rows["pending"].pk))
    assert f"Already due or being sent, left as they are: {rows['pending'].pk}" in out
    assert "Requeued 1 event;" in out
    stored = OutboxEvent.objects.get(pk=rows["sent"].pk)
    assert stored.status == "pending" and stored.sent_at is None


def test_requeue_by_id_with_dead_only_takes_dead_rows():
    rows = make_mix()
    out = run("requeue", "--dead", "--id", str(rows["sent"].pk), "--id", str(rows["dead"].pk))
    assert "Requeued 1 event;" in out
    assert OutboxEvent.objects.get(pk=rows["sent"].pk).status == "sent"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["requeue"], "Say which events to requeue: --dead for dead events, --pending for"),
        (["requeue", "--action", "a.dead"], "Say which events to requeue"),
        (["requeue", "--id", "abc"], "--id must be a positive whole number"),
        (["requeue", "--id", "-4"], "--id must be a positive whole number"),
        (["requeue", "--id", "999999"], "No outbox event with id 999999"),
        (["requeue", "--dead", "--since", "yesterday"], "--since must be an ISO 8601 date"),
        (["requeue", "--dead", "--since", "2024-02-30"], "--since must be an ISO 8601 date"),
        (["requeue", "--dead", "--action", " "], "--action must not be empty"),
        (["purge", "--dead-older-than", "-1"], "--dead-older-than must be a number of days"),
        (["purge", "--dead-older-than", "week"], "--dead-older-than must be a number of days"),
        (["purge", "--dead-older-than", "nan"], "--dead-older-than must be a number of days"),
        (["purge", "--chunk-size", "0"], "--chunk-size must be a whole number of rows, 1 or more"),
        (["purge", "--chunk-size", "many"], "--chunk-size must be a whole number of rows"),
        (["show", "12x"], "ID must be a positive whole number"),
        (["show", "999999"], "No outbox event with id 999999"),
        ([], "required: {stats,requeue,purge,show}"),
        (["vacuum"], "invalid choice"),
        (["stats", "--verbose-json"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_raise_a_plain_command_error(args, message):
    make_mix()
    before = sorted(OutboxEvent.objects.values_list("id", "status"))
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert message in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert sorted(OutboxEvent.objects.values_list("id", "status")) == before


def test_unknown_id_requeues_nothing_even_next_to_a_known_one():
    rows = make_mix()
    with pytest.raises(CommandError, match="No outbox event with id 999999"):
        run("requeue", "--id", str(rows["dead"].pk), "--id", "999999")
    assert OutboxEvent.objects.get(pk=rows["dead"].pk).status == "dead"


# -- purge ---------------------------------------------------------------------


def test_purge_deletes_sent_rows_older_than_retain_sent(settings):
    settings.SYNERISE = {**settings.SYNERISE, "RETAIN_SENT": 7}
    rows = make_mix()
    old_sent = track("a.oldsent")
    set_fields(old_sent, status="sent", sent_at=timezone.now() - dt.timedelta(days=8))
    out = run("purge")
    assert "Deleted 1 sent event older than 7 days." in out
    assert "dead" not in out
    assert not OutboxEvent.objects.filter(pk=old_sent.pk).exists()
    assert OutboxEvent.objects.filter(pk=rows["sent"].pk).exists()
    assert OutboxEvent.objects.filter(status="dead").count() == 2


def test_purge_dead_older_than_in_small_chunks():
    make_mix()
    for _ in range(5):
        row = track("a.olddead")
        set_fields(row, status="dead", created_at=timezone.now() - dt.timedelta(days=40))
    out = run("purge", "--dead-older-than", "2.5", "--chunk-size", "2")
    assert "Deleted 6 events dead for more than 2.5 days." in out
    assert OutboxEvent.objects.filter(status="dead").count() == 1
    assert OutboxEvent.objects.filter(status="pending").count() == 2
    assert "Deleted 1 dead event." in run("purge", "--dead-older-than", "0")


def test_purge_keeps_an_old_event_that_died_recently(settings):
    settings.SYNERISE = {**settings.SYNERISE, "RETAIN_SENT": 1}
    row = track("a.old")
    week_ago = timezone.now() - dt.timedelta(days=7)
    set_fields(row, created_at=week_ago, next_attempt_at=week_ago)
    assert outbox.mark_dead([row.pk], "rejected", owner=None) == 1
    out = run("purge", "--dead-older-than", "1")
    assert out.splitlines() == [
        "Deleted 0 sent events older than 1 day.",
        "Deleted 0 events dead for more than 1 day.",
    ]
    assert OutboxEvent.objects.get(pk=row.pk).status == "dead"
    set_fields(row, dead_at=timezone.now() - dt.timedelta(days=2))
    assert "Deleted 1 event dead for more than 1 day." in run("purge", "--dead-older-than", "1")
    assert not OutboxEvent.objects.exists()


# -- show ----------------------------------------------------------------------


def test_show_prints_the_event_as_sent_and_its_state():
    row = track("dog.bark", "42")
    set_fields(row, status="dead", attempts=3, last_error="Synerise rejected the request: bad")
    out = run("show", str(row.pk))
    assert f"Outbox event {row.pk}: dog.bark (v4 event, custom)" in out
    assert "status:       dead" in out
    assert "attempts:     3" in out
    assert "last error:   Synerise rejected the request: bad" in out
    assert "dead since:   -" in out  # died before dead_at was recorded
    assert "client:       customId:42" in out
    payload = out.split("bytes):\n", 1)[1]
    assert json.loads(payload) == json.loads(OutboxEvent.objects.get(pk=row.pk).payload)
    assert '\n  "action": "dog.bark",\n' in payload


# -- the docs' health endpoint ----------------------------------------------


def test_docs_health_endpoint():
    # The example of docs/operations.md.
    synerise_health = run_sample("health-view")["synerise_health"]
    request = RequestFactory().get("/health/synerise/")
    row = track()
    response = synerise_health(request)
    assert response.status_code == 200
    assert json.loads(response.content)["pending"] == 1
    set_fields(row, created_at=timezone.now() - dt.timedelta(minutes=20))
    response = synerise_health(request)
    assert response.status_code == 503
    assert json.loads(response.content)["oldest_pending_age"] > 15 * 60
    set_fields(row, created_at=timezone.now())
    assert outbox.mark_dead([row.pk], "rejected", owner=None) == 1
    response = synerise_health(request)
    assert response.status_code == 503
    assert json.loads(response.content)["dead"] == 1
    assert json.loads(response.content)["dead_last_day"] == 1
    # A day later the dead event is still there, but the check is green again.
    set_fields(row, dead_at=timezone.now() - dt.timedelta(days=1, seconds=1))
    response = synerise_health(request)
    assert response.status_code == 200
    assert json.loads(response.content)["dead"] == 1
    assert json.loads(response.content)["dead_last_day"] == 0


def test_docs_command_lines():
    # The command block of docs/operations.md, line by line (rows 42 and 43 exist there too).
    lines = [shlex.split(line.split(" #", 1)[0]) for line in sample("outbox-commands").splitlines()]
    stats, stats_json, show, requeue_dead, requeue_ids, purge = (words[3:] for words in lines)
    now = timezone.now()
    for pk in (42, 43):
        OutboxEvent.objects.create(
            pk=pk,
            kind="event",
            batch_type="custom",
            action="page.visit",
            payload='{"action":"page.visit"}',
            size=23,
            status="dead",
            next_attempt_at=now,
            created_at=now,
        )
    assert run(*stats).splitlines()[3].split() == ["dead", "2", "0", "0", "0", "0", "2"]
    assert json.loads(run(*stats_json))["totals"]["dead"] == 2
    assert "Outbox event 42: page.visit" in run(*show)
    out = run(*requeue_dead)
    assert "Requeued 2 events" in out
    OutboxEvent.objects.filter(pk__in=[42, 43]).update(status="dead")
    assert "Requeued 2 events" in run(*requeue_ids)
    assert "Deleted 0 events dead for more than 30 days." in run(*purge)


def test_show_says_when_an_event_died():
    row = track("dog.bark", "42")
    assert outbox.mark_dead([row.pk], "rejected", owner=None) == 1
    dead_at = OutboxEvent.objects.get(pk=row.pk).dead_at
    assert dead_at is not None
    assert f"dead since:   {dead_at.isoformat()}" in run("show", str(row.pk))


def test_stats_counts_an_old_event_killed_today_as_dead_in_the_last_day():
    row = track("a.old")
    week_ago = timezone.now() - dt.timedelta(days=7)
    set_fields(row, created_at=week_ago, next_attempt_at=week_ago)
    assert outbox.mark_dead([row.pk], "marked dead in the admin by ann", owner=None) == 1
    data = json.loads(run("stats", "--json"))
    assert data["dead_last_day"] == data["health"]["dead_last_day"] == 1
    assert "dead in the last day:  1" in run("stats")


# -- USE_TZ = False --------------------------------------------------------------


@pytest.fixture
def naive_times():
    # Far from UTC: a stored time off by the offset would show as hours of age.
    with override_settings(USE_TZ=False, TIME_ZONE="Asia/Kolkata"):
        yield


@pytest.mark.usefixtures("naive_times")
def test_without_use_tz_requeue_since_stats_and_purge_work():
    # Sent rows are kept (RETAIN_SENT), so that stats and purge see them.
    with override_settings(SYNERISE={**django_settings.SYNERISE, "RETAIN_SENT": 7}):
        rows = make_mix()
        local_now = dt.datetime.now()
        assert timezone.is_naive(OutboxEvent.objects.get(pk=rows["pending"].pk).created_at)
        data = json.loads(run("stats", "--json"))
        assert data["totals"] == {"pending": 2, "sent": 1, "dead": 2}
        assert data["dead_last_day"] == 1
        assert 299 <= data["health"]["oldest_pending_age"] < 400
        assert data["health"]["last_sent_at"].endswith("+05:30")
        assert "oldest pending:        5 min" in run("stats")
        # A naive --since is local time; one with an offset is converted.
        set_fields(rows["old_dead"], created_at=local_now - dt.timedelta(hours=3))
        since = (local_now - dt.timedelta(hours=2)).isoformat(timespec="seconds")
        assert "Requeued 1 event;" in run("requeue", "--dead", "--since", since)
        assert OutboxEvent.objects.get(pk=rows["dead"].pk).status == "pending"
        assert OutboxEvent.objects.get(pk=rows["dead"].pk).dead_at is None
        utc_now = dt.datetime.now(dt.timezone.utc)
        utc_since = (utc_now - dt.timedelta(hours=1)).isoformat()
        assert "Requeued 0 events." in run("requeue", "--dead", "--since", utc_since)
        utc_since = (utc_now - dt.timedelta(hours=4)).isoformat()
        assert "Requeued 1 event;" in run("requeue", "--dead", "--since", utc_since)
        assert OutboxEvent.objects.get(pk=rows["old_dead"].pk).status == "pending"
        old_sent = track("a.oldsent")
        set_fields(old_sent, status="sent", sent_at=local_now - dt.timedelta(days=8))
        assert outbox.mark_dead([rows["pending"].pk], "rejected", owner=None) == 1
        out = run("purge", "--dead-older-than", "1")
        assert "Deleted 1 sent event older than 7 days." in out
        assert "Deleted 0 events dead for more than 1 day." in out
        assert not OutboxEvent.objects.filter(pk=old_sent.pk).exists()
        assert OutboxEvent.objects.get(pk=rows["pending"].pk).status == "dead"


def _backing_off(n: int) -> list[int]:
    """n pending rows that failed once and wait an hour for their retry."""
    rows = [track("dog.bark", customer=str(i)) for i in range(n)]
    OutboxEvent.objects.filter(pk__in=[r.pk for r in rows]).update(
        attempts=1,
        last_error="could not reach Synerise: connection refused",
        next_attempt_at=timezone.now() + dt.timedelta(hours=1),
    )
    return [r.pk for r in rows]


def test_requeue_by_id_makes_backing_off_rows_due_and_the_next_flush_sends_them(
    synerise_stand_in,
):
    ids = _backing_off(3)
    flush_out = StringIO()
    call_command("synerise_flush", stdout=flush_out)
    assert flush_out.getvalue().startswith("sent 0,")  # still waiting for their retry
    out = run("requeue", *[arg for pk in ids for arg in ("--id", str(pk))])
    assert out.splitlines() == [
        f"Due now (they were waiting for a retry): {', '.join(map(str, ids))}",
        "Requeued 3 events; the next flush sends them.",
    ]
    rows = OutboxEvent.objects.filter(pk__in=ids)
    assert all(row.attempts == 1 and row.next_attempt_at <= timezone.now() for row in rows)
    flush_out = StringIO()
    call_command("synerise_flush", stdout=flush_out)
    assert flush_out.getvalue().startswith("sent 3,")
    assert synerise_stand_in.count == 3


def test_requeue_pending_takes_every_waiting_row_but_not_one_being_sent(synerise_stand_in):
    ids = _backing_off(4)
    # A worker holds the last one right now.
    OutboxEvent.objects.filter(pk=ids[-1]).update(
        leased_by="worker-1", leased_until=timezone.now() + dt.timedelta(minutes=2)
    )
    out = run("requeue", "--pending")
    assert out.splitlines() == [
        f"Due now (they were waiting for a retry): {', '.join(map(str, ids[:3]))}",
        "Requeued 3 events; the next flush sends them.",
    ]
    assert OutboxEvent.objects.get(pk=ids[-1]).leased_by == "worker-1"
    assert run("requeue", "--pending").splitlines() == ["Requeued 0 events."]
    call_command("synerise_flush", stdout=StringIO())
    assert synerise_stand_in.count == 3


def test_docs_after_an_outage_sample(synerise_stand_in):
    ids = _backing_off(2)
    requeue_line, flush_line = [
        shlex.split(line.split(" #", 1)[0])[3:] for line in sample("requeue-pending").splitlines()
    ]
    assert requeue_line == ["requeue", "--pending"] and flush_line == []
    out = run(*requeue_line)
    assert out.splitlines()[-1] == "Requeued 2 events; the next flush sends them."
    flushed = StringIO()
    call_command("synerise_flush", *flush_line, stdout=flushed)
    assert flushed.getvalue().startswith("sent 2,")
    assert not OutboxEvent.objects.filter(pk__in=ids).exists()  # deleted once accepted
