"""``make bench``: run every benchmark, print a table, write ``bench/results.json``.

Environment:

``BENCH_FULL=1``
    the large sizes: a 1,000,000-event backlog (and 1,000,000 sent/dead rows in
    the scaling run) instead of 100,000.
``DATABASE_URL=postgres://...``
    also run on that PostgreSQL server, in a database named ``bench`` (created
    when missing): never the database the URL names, which the tests use.
``BENCH_DATABASE_URL=postgres://.../name``
    the PostgreSQL benchmark database to use instead of ``bench``.
``BENCH_EVENTS=n``
    any other backlog size (every other size follows from it).
``BENCH_REPEAT=n``
    run each throughput measurement n times (default 3) and report the median.
``BENCH_SECTIONS=a,b``
    only these sections: ``stand_in``, ``burst``, ``throughput``, ``scaling``, ``enqueue``,
    ``middleware``.
``BENCH_PROFILE=dir``
    write a pyinstrument profile of the one-worker flush per database into ``dir``.
``BENCH_OUTPUT=path``
    where to write the JSON (default ``bench/results.json``).
``BENCH_SQLITE_PATH=path``
    the SQLite benchmark database file (default ``bench/bench.sqlite3``).
``BENCH_SQLITE=0``
    skip SQLite (it runs by default, before PostgreSQL).

Two runs on one database would empty each other's table:
each run holds a lock on its database (an advisory lock on PostgreSQL, a lock
file beside the SQLite file) and a second run waits for the first.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

TARGETS = {
    # A burst flushed at once by one worker, as a share of the raw-SQL loop.
    "burst_ratio_to_baseline": 0.8,
    # Claim time per batch during the large burst / during the small one.
    "burst_claim_ratio": 1.2,
    # The middleware's added time / one bare Model.objects.create(), direct call.
    "middleware_to_bare_create": 1.5,
    # The flush process while draining the large burst.
    "peak_rss_mb": 100,
}


def postgres_bench_url() -> str | None:
    """The PostgreSQL benchmark database URL, or ``None`` when PostgreSQL is not configured."""
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        return explicit
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return None
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgres", path="/bench"))


def ensure_postgres_database(url: str) -> str:
    """Create the benchmark database if it does not exist; return the server version."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        version = conn.execute("SHOW server_version").fetchone()
        settings = {
            row[0]: row[1]
            for row in conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('shared_buffers', 'synchronous_commit', 'fsync', 'wal_level', 'max_wal_size')"
            ).fetchall()
        }
    return f"{version[0] if version else '?'} {json.dumps(settings)}"


def storage_latency(postgres_url: str | None) -> dict[str, Any]:
    """What a durable commit costs on this machine: the floor under every INSERT."""
    samples = []
    probe = HERE / ".fsync-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(200):
            os.write(fd, b"x" * 512)
            started = time.perf_counter()
            os.fsync(fd)
            samples.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        probe.unlink()
    out: dict[str, Any] = {"fsync_median_ms": round(statistics.median(samples) * 1000, 3)}
    if postgres_url:
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as conn:
            # A logged table (a temporary one skips the WAL, and with it the flush).
            conn.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (x int)")
            commits = []
            for _ in range(300):
                started = time.perf_counter()
                conn.execute("INSERT INTO bench_commit_probe VALUES (1)")
                commits.append(time.perf_counter() - started)
            conn.execute("DROP TABLE bench_commit_probe")
            round_trips = []
            for _ in range(300):
                started = time.perf_counter()
                conn.execute("SELECT 1")
                round_trips.append(time.perf_counter() - started)
        out["postgres_insert_commit_median_ms"] = round(statistics.median(commits) * 1000, 3)
        out["postgres_round_trip_median_ms"] = round(statistics.median(round_trips) * 1000, 3)
    return out


def machine() -> dict[str, Any]:
    model = "?"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = 0
    try:
        with open("/proc/meminfo") as meminfo:
            memory = int(meminfo.readline().split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(memory / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def versions() -> dict[str, str]:
    import sqlite3

    out = {"sqlite": sqlite3.sqlite_version}
    for name in ("django-synerise", "Django", "psycopg", "requests"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:
        out["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out["git_commit"] = "?"
    return out


def run_suite(database_url: str, config: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    env["BENCH_DATABASE_URL"] = database_url
    result = subprocess.run(
        [sys.executable, "-m", "bench.suite", json.dumps({**config, "database_url": database_url})],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"the benchmark suite failed on {database_url}")
    suite: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return suite


def main() -> int:
    full = os.environ.get("BENCH_FULL") == "1"
    events = os.environ.get("BENCH_EVENTS")
    sections = [s for s in os.environ.get("BENCH_SECTIONS", "").split(",") if s]
    config = {
        "full": full,
        "events": int(os.environ.get("BENCH_EVENTS", "0")) or None,
        "repeat": int(os.environ.get("BENCH_REPEAT", "3")),
        "sections": sections,
        "profile_dir": os.environ.get("BENCH_PROFILE"),
    }
    sqlite_path = os.environ.get("BENCH_SQLITE_PATH") or str(HERE / "bench.sqlite3")
    databases: dict[str, str] = {}
    if os.environ.get("BENCH_SQLITE") != "0":
        databases["sqlite"] = f"sqlite:///{sqlite_path}"
    postgres = postgres_bench_url()
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": f"{events} events" if events else ("full" if full else "quick"),
        "machine": machine(),
        "versions": versions(),
    }
    if postgres:
        info["versions"]["postgresql"] = ensure_postgres_database(postgres)
        databases["postgresql"] = postgres
    info["storage"] = storage_latency(postgres)
    print(f"django-synerise benchmarks ({info['mode']} mode)", file=sys.stderr)
    results: dict[str, Any] = {}
    for name, url in databases.items():
        print(f"{name}:", file=sys.stderr, flush=True)
        results[name] = run_suite(url, config)
    info["machine"]["loadavg_end"] = os.getloadavg()
    document = {**info, "targets": TARGETS, "results": results}
    document["checks"] = checks(results)
    output = Path(os.environ.get("BENCH_OUTPUT") or HERE / "results.json")
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    temporary.replace(output)
    from .report import table

    print(table(document))
    print(f"\nwritten to {output}", file=sys.stderr)
    return 0


def checks(results: dict[str, Any]) -> dict[str, Any]:
    """Each target against its figure (PostgreSQL); ``None`` where the run did not measure it."""
    pg = results.get("postgresql")
    if not pg:
        return {}
    out: dict[str, Any] = {}
    burst = pg.get("burst")
    if burst:
        large = burst[f"events_{burst['sizes'][-1]}"]
        out["burst_ratio_to_baseline"] = large["ratio_to_baseline"]
        out["burst_claim_ratio"] = burst["claim_ratio"]
        out["peak_rss_mb"] = large["flush"]["peak_rss_mb"]
    middleware = pg.get("middleware")
    if middleware and "direct" in middleware:
        out["middleware_to_bare_create"] = middleware["direct"]["tracked"]["ratio_to_bare_create"]
    return out


if __name__ == "__main__":
    sys.exit(main())
