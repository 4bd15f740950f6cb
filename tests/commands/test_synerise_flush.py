"""``manage.py synerise_flush`` through real HTTP to the local stand-in."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

import django_synerise
from django_synerise import outbox
from django_synerise.events import AIEvent, Transaction
from django_synerise.models import OutboxEvent

UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"
ROOT = Path(__file__).resolve().parent.parent.parent


def enqueue_mixed(n: int = 10) -> None:
    events = [
        django_synerise.events.CustomEvent("dog.bark", client={"customId": str(i)})
        for i in range(n)
    ]
    apple = {"sku": "A", "name": "Apple", "finalUnitPrice": 2}
    events.append(
        django_synerise.events.add_to_cart(client={"customId": "1"}, product=apple, currency="PLN")
    )
    events.append(
        Transaction(
            client={"customId": "1"},
            order_id="o-1",
            products=[{"sku": "A", "name": "Apple", "quantity": 1, "finalUnitPrice": 2}],
            currency="PLN",
        )
    )
    events.append(AIEvent("recommendation.view", correlation_id="c", client_uuid=UUID, items=["1"]))
    events.append(
        AIEvent("recommendation.click", correlation_id="c", client_uuid=UUID, items=["1"])
    )
    django_synerise.track_many(events)


def flush(*args: str) -> str:
    out = StringIO()
    call_command("synerise_flush", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def flush_failing(*args: str) -> str:
    """Run a pass that delivers nothing; return its output (it exits with status 3)."""
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("synerise_flush", *args, stdout=out, stderr=StringIO())
    assert failed.value.returncode == 3, failed.value
    return out.getvalue()


@pytest.mark.django_db
def test_flush_delivers_every_kind_to_its_endpoint(synerise_stand_in):
    enqueue_mixed()
    output = flush()
    assert output.strip().splitlines()[-1].startswith("sent 14, retried 0, dead 0, remaining 0 in ")
    summary = synerise_stand_in.summary()
    assert sum(summary["v4-batch"].values()) == 11
    assert sum(summary["transactions-batch"].values()) == 1
    assert summary["ai-compat-batch"] == {"recommendation.view": 1, "recommendation.click": 1}
    assert not OutboxEvent.objects.exists()
    stored = {row.salt for row in OutboxEvent.objects.exclude(kind="ai")}
    assert set(synerise_stand_in.salt_counts()) >= stored


@pytest.mark.django_db
def test_batch_size_and_max_events(synerise_stand_in):
    django_synerise.track_many(
        [
            django_synerise.events.CustomEvent("dog.bark", client={"customId": str(i)})
            for i in range(25)
        ]
    )
    flush("--batch-size", "10", "--max-events", "20")
    batches = [r for r in synerise_stand_in.requests if r.path == "/v4/events/batch"]
    assert len(batches) == 2
    assert OutboxEvent.objects.filter(status="pending").count() == 5


@pytest.mark.django_db
def test_dry_run_sends_and_changes_nothing(synerise_stand_in):
    enqueue_mixed(3)
    before = list(OutboxEvent.objects.values())
    output = flush("--dry-run")
    assert "dry run: 7 events in 4 requests; nothing sent" in output
    assert "would send 4 v4 events (" in output
    assert "bytes) to /v4/events/batch" in output
    assert "would send 1 AI events (recommendation.view) (" in output
    assert synerise_stand_in.count == 0
    assert list(OutboxEvent.objects.values()) == before


BATCH_SIZE = "argument --batch-size: must be a whole number between 1 and 1000"
MAX_EVENTS = "argument --max-events: must be a whole number 1 or more"
INTERVAL = "argument --interval: must be a number of seconds, zero or more and at most 86400"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "2000"], f"{BATCH_SIZE}, not '2000'."),
        (["--batch-size", "0"], f"{BATCH_SIZE}, not '0'."),
        (["--batch-size", "-5"], f"{BATCH_SIZE}, not '-5'."),
        (["--batch-size", "many"], f"{BATCH_SIZE}, not 'many'."),
        (["--batch-size", "2.5"], f"{BATCH_SIZE}, not '2.5'."),
        (["--max-events", "0"], f"{MAX_EVENTS}, not '0'."),
        (["--max-events", "lots"], f"{MAX_EVENTS}, not 'lots'."),
        (["--interval", "-1"], f"{INTERVAL} (one day), not '-1'."),
        (["--interval", "nan"], f"{INTERVAL} (one day), not 'nan'."),
        (["--interval", "inf"], f"{INTERVAL} (one day), not 'inf'."),
        (["--interval=-inf"], f"{INTERVAL} (one day), not '-inf'."),
        (["--interval", "1e400"], f"{INTERVAL} (one day), not '1e400'."),
        (["--interval", "1e12"], f"{INTERVAL} (one day), not '1e12'."),
        (["--interval", "soon"], f"{INTERVAL} (one day), not 'soon'."),
    ],
)
def test_bad_arguments_are_plain_command_errors(args, message):
    django_synerise.track("dog.bark", client={"customId": "1"})
    with pytest.raises(CommandError) as caught:
        flush("--loop", *args)
    assert str(caught.value) == f"Error: {message}"
    assert OutboxEvent.objects.get().status == "pending"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "--batch-size must be a whole number between 1 and 1000, not 0."),
        ({"max_events": -1}, "--max-events must be a whole number 1 or more, not -1."),
        ({"interval": float("nan")}, "--interval must be a number of seconds, zero or more"),
        ({"interval": float("inf")}, "--interval must be a number of seconds, zero or more"),
    ],
)
def test_bad_values_passed_to_call_command_are_command_errors(options, message):
    django_synerise.track("dog.bark", client={"customId": "1"})
    with pytest.raises(CommandError) as caught:
        call_command("synerise_flush", loop=True, stdout=StringIO(), **options)
    assert message in str(caught.value)
    assert OutboxEvent.objects.get().status == "pending"


def test_the_parser_converts_good_values():
    from django.core.management import load_command_class

    command = load_command_class("django_synerise", "synerise_flush")
    parser = command.create_parser("manage.py", "synerise_flush")
    options = parser.parse_args(["--batch-size", "10", "--max-events", "7", "--interval", "0.5"])
    assert (options.batch_size, options.max_events, options.interval) == (10, 7, 0.5)
    assert parser.parse_args([]).interval == 5.0


@pytest.mark.django_db
def test_numbers_passed_to_call_command_are_accepted(synerise_stand_in):
    django_synerise.track_many(
        [
            django_synerise.events.CustomEvent("dog.bark", client={"customId": str(i)})
            for i in range(5)
        ]
    )
    out = StringIO()
    call_command("synerise_flush", batch_size=2, max_events=4, interval=0.0, stdout=out)
    batches = [r for r in synerise_stand_in.requests if r.path == "/v4/events/batch"]
    assert len(batches) == 2
    # The 4 sent rows are deleted; the fifth waits for the next pass.
    assert OutboxEvent.objects.count() == 1
    assert OutboxEvent.objects.filter(status="pending").count() == 1


@pytest.mark.django_db
def test_refused_credentials_exit_1_and_leave_rows_unharmed(synerise_stand_in, settings):
    enqueue_mixed(2)
    settings.SYNERISE = {**settings.SYNERISE, "API_KEY": "wrong-key"}
    with pytest.raises(CommandError) as exc:
        flush()
    assert exc.value.returncode == 1
    assert "wrong-key" not in str(exc.value)
    assert "credentials" in str(exc.value)
    # AI events go with the tracker key, not the workspace login: they were delivered
    # in the same pass; the rest wait unharmed.
    assert not OutboxEvent.objects.filter(kind="ai").exists()
    pending = OutboxEvent.objects.filter(status="pending")
    assert pending.count() == 4 and not pending.filter(kind="ai").exists()
    assert all(row.attempts == 0 and row.leased_by == "" for row in pending)


@pytest.mark.django_db
def test_missing_api_key_is_a_configuration_error_exit_1(settings):
    django_synerise.track("dog.bark", client={"customId": "1"})
    settings.SYNERISE = {**settings.SYNERISE, "API_KEY": None}
    with pytest.raises(CommandError) as exc:
        flush()
    assert exc.value.returncode == 1
    assert "API_KEY" in str(exc.value)


@pytest.mark.django_db
def test_retry_then_deliver_on_a_later_pass(synerise_stand_in):
    django_synerise.track("dog.bark", client={"customId": "1"})
    synerise_stand_in.inject("500", times=1)
    with override_settings(
        SYNERISE={
            **synerise_settings_dict(synerise_stand_in),
            "RETRY_BACKOFF_BASE": 0,
            # The delivered row is kept, to read its attempts.
            "RETAIN_SENT": 7,
        }
    ):
        out, err = StringIO(), StringIO()
        with pytest.raises(CommandError) as failed:
            call_command("synerise_flush", stdout=out, stderr=err)
        # Nothing got through: the summary, the reason once, and a non-zero exit.
        assert failed.value.returncode == 3
        assert "sent 0, retried 1" in out.getvalue()
        assert err.getvalue().count("Synerise had a server error") == 1
        second = flush()
    assert "sent 1, retried 0" in second
    row = OutboxEvent.objects.get()
    assert row.status == "sent"
    assert row.attempts == 1


def synerise_settings_dict(server):
    from django.conf import settings

    return {**settings.SYNERISE, "API_BASE_URL": server.url}


def _subprocess_env(server) -> dict[str, str]:
    env = dict(os.environ)
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    elif connection.vendor == "postgresql":
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    else:
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        env["DATABASE_URL"] = (
            f"mysql://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 3306}/{db['NAME']}"
        )
    env["SYNERISE_API_BASE_URL"] = server.url
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.django_db(transaction=True)
def test_loop_stops_cleanly_on_sigterm(synerise_server):
    django_synerise.track("dog.bark", client={"customId": "1"})
    worker = subprocess.Popen(
        [sys.executable, "-m", "django", "synerise_flush", "--loop", "--interval", "0.1"],
        env=_subprocess_env(synerise_server),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert synerise_server.wait_for_events(1, timeout=30)
        django_synerise.track("dog.bark", client={"customId": "2"})
        assert synerise_server.wait_for_events(2, timeout=30)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert out.strip().splitlines()[-1].startswith("sent 2, retried 0, dead 0, remaining 0")
    assert not OutboxEvent.objects.exists()
    assert not OutboxEvent.objects.exclude(leased_by="").exists()


@pytest.mark.django_db(transaction=True)
def test_broken_auth_exits_1_from_the_shell(synerise_server):
    django_synerise.track("dog.bark", client={"customId": "1"})
    env = _subprocess_env(synerise_server)
    env["SYNERISE_API_KEY"] = "not-the-key"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "django", "synerise_flush"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "not-the-key" not in proc.stdout + proc.stderr
    # Said once (not by each logger on its way up), and the summary is still there.
    assert (proc.stdout + proc.stderr).count("refused the API key") == 1, proc.stderr
    assert proc.stdout.startswith("sent 0, retried 0, dead 0, remaining 1 in ")
    assert time.monotonic() - started < 60
    assert OutboxEvent.objects.get().status == "pending"


@pytest.mark.django_db
def test_flush_without_use_tz_delivers_retries_and_gives_up(synerise_stand_in):
    # USE_TZ = False, in a zone far from UTC: times are stored naive, in local time.
    with override_settings(USE_TZ=False, TIME_ZONE="Asia/Kolkata"):
        enqueue_mixed(3)
        out = flush()
        assert out.strip().splitlines()[-1].startswith("sent 7, retried 0, dead 0, remaining 0")
        local_now = dt.datetime.now()
        for row in OutboxEvent.objects.all():
            assert row.status == "sent"
            assert row.sent_at is not None and timezone.is_naive(row.sent_at)
            assert abs((row.sent_at - local_now).total_seconds()) < 60
        # The events went out with their UTC times.
        sent_times = [
            dt.datetime.fromisoformat(json.loads(row.payload)["time"].replace("Z", "+00:00"))
            for row in OutboxEvent.objects.filter(kind="event")
        ]
        utc_now = dt.datetime.now(dt.timezone.utc)
        assert all(abs((t - utc_now).total_seconds()) < 60 for t in sent_times)

        django_synerise.track("dog.bark", client={"customId": "late"})
        synerise_stand_in.inject("500", times=2)
        settings_now = {**synerise_settings_dict(synerise_stand_in), "RETRY_BACKOFF_BASE": 0}
        with override_settings(SYNERISE={**settings_now, "MAX_ATTEMPTS": 2}):
            assert "sent 0, retried 1, dead 0" in flush_failing()
            assert "sent 0, retried 0, dead 1" in flush_failing()
        row = OutboxEvent.objects.get(status="dead")
        assert row.dead_at is not None and timezone.is_naive(row.dead_at)
        assert abs((row.dead_at - dt.datetime.now()).total_seconds()) < 60
        assert outbox.health().dead_last_day == 1


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def enqueue_custom(n: int) -> None:
    django_synerise.track_many(
        [
            django_synerise.events.CustomEvent("dog.bark", client={"customId": str(i)})
            for i in range(n)
        ]
    )


@pytest.mark.django_db
def test_progress_on_a_terminal(synerise_stand_in, monkeypatch):
    from django_synerise.management.commands import synerise_flush

    # Every pass counts as long here; by default the line waits a second.
    monkeypatch.setattr(synerise_flush.Command, "progress_delay", 0.0)
    monkeypatch.setattr(synerise_flush.Command, "progress_interval", 0.0)
    enqueue_custom(50)
    out = Terminal()
    call_command("synerise_flush", "--batch-size", "10", stdout=out)
    text = out.getvalue()
    assert "\rsent 10 of 50, 40 remaining, " in text
    assert "\rsent 50 of 50, 0 remaining, " in text
    assert " events/s, ETA " in text
    # The line is wiped, and the summary stands on a line of its own.
    last = text.split("\r")[-1]
    assert last.startswith("sent 50, retried 0, dead 0, remaining 0 in ")


@pytest.mark.django_db
def test_no_progress_under_cron(synerise_stand_in, monkeypatch):
    from django_synerise.management.commands import synerise_flush

    monkeypatch.setattr(synerise_flush.Command, "progress_delay", 0.0)
    enqueue_custom(50)
    output = flush("--batch-size", "10")
    assert "\r" not in output and "ETA" not in output
    assert output.splitlines() == [output.strip()]
    assert output.startswith("sent 50, retried 0, dead 0, remaining 0 in ")


@pytest.mark.django_db
def test_an_outage_stops_the_pass_uncharged_with_one_line_per_failure(synerise_stand_in):
    enqueue_custom(200)
    synerise_stand_in.inject("drop")  # every request: Synerise went away
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("synerise_flush", "--batch-size", "10", stdout=out, stderr=err)
    assert failed.value.returncode == 3
    assert "Synerise looks down: the pass stopped after 3 failed requests in a row" in str(
        failed.value
    )
    # Three requests tried (OUTAGE_FAILURES), not twenty.
    tried = [r for r in synerise_stand_in.requests if r.path == "/v4/events/batch"]
    assert len(tried) == 3
    # The tried rows were charged an attempt; the rest were released untouched and due.
    rows = OutboxEvent.objects.all()
    assert rows.filter(attempts=1).count() == 30
    untried = rows.filter(attempts=0)
    assert untried.count() == 170
    assert not untried.exclude(leased_by="").exists()
    assert not untried.filter(next_attempt_at__gt=timezone.now()).exists()
    # The summary, and one line per kind of failure (a dropped socket reads as a
    # reset or as a close, depending on timing), not one per request.
    assert out.getvalue().startswith("sent 0, retried 30, dead 0, remaining 200 in ")
    lines = err.getvalue().splitlines()
    kinds = [
        re.fullmatch(r"(could not reach Synerise: .+) \((\d+) events, to be retried\)", line)
        for line in lines
    ]
    assert all(kinds), lines
    assert len({kind.group(1) for kind in kinds}) == len(lines) <= 2
    assert sum(int(kind.group(2)) for kind in kinds) == 30


@pytest.mark.django_db
def test_a_closed_port_exits_non_zero(settings):
    from tests.test_client import socket_on_free_port

    enqueue_custom(5)
    with socket_on_free_port() as port:
        settings.SYNERISE = {**settings.SYNERISE, "API_BASE_URL": f"http://127.0.0.1:{port}"}
        out, err = StringIO(), StringIO()
        with pytest.raises(CommandError) as failed:
            call_command("synerise_flush", stdout=out, stderr=err)
    assert failed.value.returncode == 3
    assert "Nothing was delivered" in str(failed.value)
    assert "sent 0, retried 5" in out.getvalue()
    assert err.getvalue().splitlines() == [
        "could not reach Synerise: connection refused (5 events, to be retried)"
    ]


@pytest.mark.django_db
def test_a_refused_tracker_key_keeps_the_summary_and_the_reason(synerise_stand_in, settings):
    enqueue_mixed(3)
    settings.SYNERISE = {**settings.SYNERISE, "TRACKER_KEY": "wrong-tracker-key"}
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("synerise_flush", stdout=out, stderr=err)
    message = str(failed.value)
    assert failed.value.returncode == 1
    # The v4 events and the transaction went; the summary says so besides the error.
    assert out.getvalue().startswith("sent 5, retried 0, dead 0, remaining 2 in ")
    assert message.startswith("Synerise refused the credentials for AI events: ")
    assert "events events" not in message and "wrong-tracker-key" not in message
    assert message.count("refused the tracker key") == 1
    assert "refused" not in err.getvalue()
    # The held-back rows say why they wait (for the admin), without the key.
    for row in OutboxEvent.objects.filter(kind="ai"):
        assert (row.status, row.attempts, row.leased_by) == ("pending", 0, "")
        assert "Synerise refused the tracker key" in row.last_error
        assert "wrong-tracker-key" not in row.last_error


@pytest.mark.django_db
def test_docs_outage_settings_sample(synerise_stand_in, settings):
    from django_synerise.conf import DEFAULTS
    from tests.docs_samples import run_sample

    documented = run_sample("outage-settings")["SYNERISE"]
    # The page shows the defaults, and they do what it says.
    assert {key: DEFAULTS[key] for key in documented} == documented
    settings.SYNERISE = {**settings.SYNERISE, **documented}
    enqueue_custom(50)
    synerise_stand_in.inject("502")
    with pytest.raises(CommandError) as failed:
        call_command("synerise_flush", "--batch-size", "5", stdout=StringIO(), stderr=StringIO())
    assert failed.value.returncode == 3
    tried = [r for r in synerise_stand_in.requests if r.path == "/v4/events/batch"]
    assert len(tried) == documented["OUTAGE_FAILURES"]


@pytest.mark.django_db
@pytest.mark.parametrize("args", [(), ("--loop", "--max-events", "1", "--interval", "0")])
def test_every_flusher_purges_old_sent_rows(monkeypatch, synerise_stand_in, args):
    """Before: only the Celery task purged; a site flushing with the command kept
    sent rows (and the profile data in them) until a purge was scheduled by hand."""
    # Sent rows are kept (RETAIN_SENT), so that purging them can be seen.
    with override_settings(SYNERISE={**django_settings.SYNERISE, "RETAIN_SENT": 7}):
        monkeypatch.setattr(outbox, "_last_auto_purge", float("-inf"))
        rows = django_synerise.track_many(
            [django_synerise.events.CustomEvent("dog.bark", client={"customId": "1"})] * 3
        )
        old = timezone.now() - dt.timedelta(days=8)
        OutboxEvent.objects.filter(pk__in=[r.pk for r in rows[:2]]).update(
            status="sent", sent_at=old
        )
        assert "sent 1," in flush(*args)
        assert list(OutboxEvent.objects.values_list("status", flat=True)) == ["sent"]


@pytest.mark.django_db
def test_a_dry_run_purges_nothing(monkeypatch):
    monkeypatch.setattr(outbox, "_last_auto_purge", float("-inf"))
    row = django_synerise.track("dog.bark", client={"customId": "1"})
    OutboxEvent.objects.filter(pk=row.pk).update(
        status="sent", sent_at=timezone.now() - dt.timedelta(days=8)
    )
    flush("--dry-run")
    assert OutboxEvent.objects.filter(pk=row.pk).exists()
