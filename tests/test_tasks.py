"""The Celery task on a real broker: several flush tasks at once on two worker processes.

A real ``celery worker --pool=prefork -c 2`` (``tests/celery_app.py``) consumes
a queue of its own on the local Redis; the test sends six ``flush_outbox``
tasks at once, as several beat instances would. The outbox lease is the only
lock: each event reaches the stand-in exactly once.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from django.db import connection, transaction

import django_synerise
from django_synerise import tasks
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise
from tests.docs_samples import run_sample
from tests.drain import settings_for
from tests.workers import ROOT, Worker, mixed_events, worker_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BROKER = os.environ.get("CELERY_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")
EVENTS = 5_000


@pytest.fixture(scope="module")
def broker():
    redis = pytest.importorskip("redis")
    pytest.importorskip("celery")
    try:
        redis.Redis.from_url(BROKER, socket_connect_timeout=2).ping()
    except redis.exceptions.RedisError as err:
        pytest.skip(f"no Redis broker at {BROKER}: {err}")
    return BROKER


def test_without_celery_the_module_imports_and_the_task_is_a_plain_function():
    # A fresh interpreter where "import celery" fails, as without the extra.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["celery"] = None
        import django
        django.setup()
        from django_synerise import tasks
        assert tasks.flush_outbox is tasks._flush_outbox, tasks.flush_outbox
        assert not hasattr(tasks.flush_outbox, "delay")
        print("plain", tasks.flush_outbox.__name__)
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "plain _flush_outbox"


def test_the_task_is_registered_under_its_documented_name():
    pytest.importorskip("celery")
    assert tasks.flush_outbox.name == tasks.TASK_NAME == "django_synerise.tasks.flush_outbox"


def test_the_task_runs_one_flush_pass_in_process(synerise_stand_in):
    pytest.importorskip("celery")
    django_synerise.track_many(mixed_events(30))
    # apply(): through Celery's task machinery, in this process.
    summary = tasks.flush_outbox.apply().get()
    assert summary["sent"] == 30 and summary["remaining"] == 0
    assert summary["stopped_by"] == "drained"
    assert synerise_stand_in.count == 30


def celery_worker(name, queue, env, tmp_path, *extra: str) -> Worker:
    args = (
        f"-A tests.celery_app worker --pool=prefork --concurrency=2 -Q {queue} "
        f"-n {queue}@%h --loglevel=INFO --without-gossip --without-mingle --without-heartbeat"
    ).split()
    return Worker(
        name,
        [*args, *extra],
        env,
        tmp_path,
        module="celery",
        ready_marker=" ready.",
        merge_stderr=True,
    ).start()


def test_the_documented_beat_schedule_drains_the_outbox(broker, tmp_path):
    queue = f"synerise-test-{uuid.uuid4().hex[:12]}"
    schedule = copy.deepcopy(run_sample("celery-beat")["CELERY_BEAT_SCHEDULE"])
    entry = schedule["synerise-flush-outbox"]
    entry["schedule"] = 0.5  # the docs' 10 s, shortened for the test
    entry["options"] = {"queue": queue}
    with LocalSynerise(record="salts") as server:
        env = worker_env(
            connection.settings_dict,
            settings_for(server),
            extra={
                "CELERY_BROKER_URL": broker,
                "CELERY_TEST_BEAT_SCHEDULE": json.dumps(schedule),
            },
        )
        django_synerise.track_many(mixed_events(500, ai=False))
        # -B: beat runs inside the worker and sends flush_outbox every 0.5 s.
        worker = celery_worker("beat", queue, env, tmp_path, "-B", "-s", str(tmp_path / "beat"))
        try:
            assert server.wait_for_events(500, timeout=120), worker.diagnostics()
            code = worker.terminate()
        finally:
            worker.stop_quietly()
        counts = server.salt_counts()

    assert code == 0, worker.diagnostics()
    assert len(counts) == 500 and max(counts.values()) == 1
    assert "Scheduler: Sending due task synerise-flush-outbox" in "\n".join(worker.lines)


def test_many_tasks_on_two_worker_processes_deliver_each_event_once(broker, tmp_path):
    import tests.celery_app  # noqa: F401  (the app the tasks are sent with)

    queue = f"synerise-test-{uuid.uuid4().hex[:12]}"
    with LocalSynerise(record="salts") as server:
        env = worker_env(
            connection.settings_dict,
            settings_for(server, BATCH_SIZE=200, RETAIN_SENT=7),
            extra={"CELERY_BROKER_URL": broker},
        )
        worker = celery_worker("celery", queue, env, tmp_path)
        try:
            worker.wait_ready(timeout=120)
            with transaction.atomic():
                django_synerise.track_many(mixed_events(EVENTS, ai=False))
            # Six passes at once, as from several beat instances or a burst of retries.
            results = [tasks.flush_outbox.apply_async(queue=queue) for _ in range(6)]
            summaries = [result.get(timeout=180) for result in results]
            code = worker.terminate()
        finally:
            worker.stop_quietly()
        counts = server.salt_counts()

    assert code == 0, worker.diagnostics()
    expected = set(OutboxEvent.objects.values_list("salt", flat=True))
    assert set(counts) == expected and len(expected) == EVENTS
    assert max(counts.values()) == 1, "an event was delivered twice"
    assert sum(summary["sent"] for summary in summaries) == EVENTS
    assert OutboxEvent.objects.exclude(status="sent").count() == 0
    assert OutboxEvent.objects.exclude(leased_by="").count() == 0
    # Two processes really drained the backlog together.
    assert sum(1 for summary in summaries if summary["sent"]) >= 2, summaries
