"""One measured process: ``python -m bench.worker flush|baseline|rawpost [ARGS_JSON]``.

Protocol with ``bench.run``: the worker sets itself up (imports, Django, database
connection), prints ``ready``, waits for a line on stdin, does its work, and prints
one JSON line: monotonic start and end times (comparable between processes on
Linux), CPU seconds, peak RSS and what it did. Start-up is thereby excluded from
every figure, and parallel workers start together.

* ``flush``: ``manage.py synerise_flush`` (the real command, one pass) on the
  benchmark settings.
* ``baseline``: the same claim-send-mark loop written directly against the database
  driver (psycopg or sqlite3) and ``requests``, with pre-serialized payloads: no
  ORM, no dispatcher. It is the floor the project is compared with.
* ``rawpost``: posts one pre-built 1000-event body in a loop, no database: the
  stand-in's own cost.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import resource
import sys
import time
import uuid
from typing import Any


def _rusage() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def _current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _backend_cpu(pid: int | None) -> float:
    """CPU seconds of this worker's PostgreSQL backend process (0.0 when not visible)."""
    if pid is None:
        return 0.0
    from bench.standin import cpu_seconds

    return cpu_seconds(pid)


def _wait_for_go() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def flush(args: dict[str, Any]) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    connection.ensure_connection()
    # Imported now, like the baseline's modules: start-up is not what is measured.

    profile = args.get("profile")
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
    backend = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
    claim_times = _time_claims()
    rss_before = _current_rss()
    _wait_for_go()
    cpu0, _ = _rusage()
    db_cpu0 = _backend_cpu(backend)
    out = io.StringIO()
    if profiler is not None:
        profiler.start()
    started = time.monotonic()
    options: dict[str, Any] = {"stdout": out}
    if args.get("batch_size"):
        options["batch_size"] = args["batch_size"]
    call_command("synerise_flush", **options)
    finished = time.monotonic()
    db_cpu = _backend_cpu(backend) - db_cpu0
    if profiler is not None:
        profiler.stop()
        with open(profile, "w") as report:
            report.write(profiler.output_text(unicode=True, color=False, show_all=False))
    cpu1, peak = _rusage()
    summary = out.getvalue().strip().splitlines()[-1]
    sent = int(summary.split("sent ", 1)[1].split(",", 1)[0])
    return {
        "started": started,
        "finished": finished,
        "cpu": cpu1 - cpu0,
        "database_cpu": db_cpu,
        "rss_before": rss_before,
        "peak_rss": peak,
        "sent": sent,
        "summary": summary,
        "claims": _claim_summary(claim_times),
    }


def _time_claims() -> list[float]:
    """Record the duration of every ``outbox.claim()`` call of this process.

    A wrapper around the function the dispatcher calls: two ``perf_counter``
    calls per batch of 1,000, nothing the flush rate can see.
    """
    from django_synerise import outbox

    times: list[float] = []
    claim = outbox.claim

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return claim(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - started)

    outbox.claim = timed  # type: ignore[assignment]
    return times


def _claim_summary(times: list[float]) -> dict[str, Any]:
    """Claim durations of a pass in milliseconds: mean, median, and first and last tenth."""
    if not times:
        return {"count": 0}
    import statistics

    tenth = max(1, len(times) // 10)

    def ms(values: list[float]) -> float:
        return round(statistics.fmean(values) * 1000, 3)

    return {
        "count": len(times),
        "mean_ms": ms(times),
        "median_ms": round(statistics.median(times) * 1000, 3),
        "first_tenth_mean_ms": ms(times[:tenth]),
        "last_tenth_mean_ms": ms(times[-tenth:]),
        "max_ms": round(max(times) * 1000, 3),
    }


def baseline(args: dict[str, Any]) -> dict[str, Any]:
    import requests

    from bench.standin import BATCH_PATH, login

    database_url: str = args["database_url"]
    url: str = args["synerise_url"]
    delete = bool(args.get("delete"))
    batch = int(args.get("batch_size") or 1000)
    table = "django_synerise_outboxevent"
    owner = f"baseline:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    session = requests.Session()
    backend = None
    if database_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(database_url.split("sqlite:///", 1)[1], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
        mark_param = "?"

        def stamp(value: dt.datetime) -> str:
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")

        def in_ids(ids: list[int]) -> tuple[str, list[Any]]:
            return "IN (" + ",".join("?" * len(ids)) + ")", list(ids)

        def execute(sql: str, params: list[Any]) -> list[Any]:
            return conn.execute(sql, params).fetchall()

    else:
        import psycopg

        pg = psycopg.connect(database_url, autocommit=True)
        backend = pg.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        mark_param = "%s"

        def stamp(value: dt.datetime) -> str:  # type: ignore[misc]
            return value  # type: ignore[return-value]

        def in_ids(ids: list[int]) -> tuple[str, list[Any]]:
            return "= ANY(%s)", [ids]

        def execute(sql: str, params: list[Any]) -> list[Any]:
            cursor = pg.execute(sql, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    p = mark_param
    postgres = p == "%s"
    # The loop at its best: the ordered walk of the pending index whatever the
    # statistics say (PostgreSQL: sorts and bitmap/sequential scans off for the
    # claim's transaction), resumed behind the previous batch, leasing only the
    # lease columns.
    claim_sql = (
        f"UPDATE {table} SET leased_by = {p}, leased_until = {p} "
        f"WHERE id IN (SELECT id FROM {table} WHERE status = 'pending' "
        f"AND next_attempt_at <= {p} AND (leased_until IS NULL OR leased_until <= {p}) "
        f"AND next_attempt_at >= {p} AND (next_attempt_at > {p} OR id > {p}) "
        f"ORDER BY next_attempt_at, id LIMIT {p}"
        + (" FOR UPDATE SKIP LOCKED" if postgres else "")
        + ") RETURNING id, payload, next_attempt_at"
    )
    planner = (
        "SELECT set_config('enable_sort', 'off', true), "
        "set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)"
    )
    _wait_for_go()
    cpu0, _ = _rusage()
    db_cpu0 = _backend_cpu(backend)
    started = time.monotonic()
    headers = login(session, url)
    sent = 0
    requests_sent = 0
    due_before = stamp(dt.datetime.now(dt.timezone.utc))
    after: tuple[Any, int] = (stamp(dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)), 0)
    while True:
        now = dt.datetime.now(dt.timezone.utc)
        lease = stamp(now + dt.timedelta(seconds=120))
        params = [owner, lease, due_before, stamp(now), after[0], after[0], after[1], batch]
        if postgres:
            with pg.transaction():
                execute(planner, [])
                rows = execute(claim_sql, params)
        else:
            rows = execute(claim_sql, params)
        if rows:
            after = max((row[2], row[0]) for row in rows)
        if not rows:
            break
        body = ("[" + ",".join(row[1] for row in rows) + "]").encode()
        response = session.post(url + BATCH_PATH, data=body, headers=headers, timeout=30)
        if response.status_code != 202:
            raise RuntimeError(f"stand-in answered {response.status_code}: {response.text[:300]}")
        requests_sent += 1
        condition, ids = in_ids([row[0] for row in rows])
        if delete:
            execute(
                f"DELETE FROM {table} WHERE id {condition} AND leased_by = {p}",
                [*ids, owner],
            )
        else:
            execute(
                f"UPDATE {table} SET status = 'sent', sent_at = {p}, leased_by = '', "
                f"leased_until = NULL, last_error = '' WHERE id {condition} AND leased_by = {p}",
                [stamp(now), *ids, owner],
            )
        sent += len(rows)
    finished = time.monotonic()
    db_cpu = _backend_cpu(backend) - db_cpu0
    cpu1, peak = _rusage()
    return {
        "started": started,
        "finished": finished,
        "cpu": cpu1 - cpu0,
        "database_cpu": db_cpu,
        "peak_rss": peak,
        "sent": sent,
        "requests": requests_sent,
    }


def rawpost(args: dict[str, Any]) -> dict[str, Any]:
    from bench.payloads import batch_body
    from bench.standin import raw_post_loop

    body = batch_body(int(args["events"]))
    _wait_for_go()
    cpu0, _ = _rusage()
    result = raw_post_loop(args["synerise_url"], body, int(args["requests"]))
    cpu1, peak = _rusage()
    result.update(cpu=cpu1 - cpu0, peak_rss=peak, sent=int(args["requests"]) * int(args["events"]))
    return result


MODES = {"flush": flush, "baseline": baseline, "rawpost": rawpost}


def main() -> None:
    mode = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    result = MODES[mode](args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
