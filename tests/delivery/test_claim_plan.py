"""The claim walks the partial index ``synerise_outbox_due`` and stops after the batch (PostgreSQL).

(At the end: the ``make bench`` lines of docs/performance.md, which measure the claim and
the rest of the delivery path, run at a tiny size.)

The outbox keeps sent rows for ``RETAIN_SENT`` days and dead rows until purged,
so the table can hold millions of rows while a few hundred are pending; a burst
can also put a million pending rows into a table that was never analyzed. The
claim must cost O(batch) either way: walk the partial index of pending rows in
``(next_attempt_at, id)`` order and stop after the batch, never sort the
backlog. These tests replay the exact statements ``outbox.claim()`` sends (its
planner settings, then the claim) and ``EXPLAIN`` the claim, on a table shaped
like a real one after ``ANALYZE``, and on a freshly bulk-filled table that has
no statistics at all (where the planner, left alone, expects a handful of
pending rows and picks a bitmap scan of all of them plus a sort).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_synerise import outbox
from django_synerise.models import OutboxEvent
from tests.docs_samples import sample

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="EXPLAIN of PostgreSQL plans"
)

TABLE = OutboxEvent._meta.db_table
SENT, DEAD, PENDING = 60_000, 15_000, 2_000
#: Pending rows of the never-analyzed burst.
BURST = 50_000


def _fill(cursor: Any, count: int, status: str) -> None:
    # A payload of a realistic size (a page visit is ~400 bytes) so the heap has
    # the page count of a real table, and old timestamps so every row is due.
    cursor.execute(
        f"""
        INSERT INTO {TABLE} (kind, batch_type, action, client_key, salt, payload, size,
            status, attempts, next_attempt_at, leased_by, leased_until, last_error,
            occurred_at, created_at, sent_at)
        SELECT 'event', 'custom', 'page.visit', 'uuid:' || n, md5(n::text),
            '{{"type":"custom","action":"page.visit","n":' || n || ',"pad":"'
                || repeat('x', 350) || '"}}',
            400, %s, CASE WHEN %s = 'dead' THEN 16 ELSE 0 END,
            now() - interval '2 days' + n * interval '1 millisecond', '', NULL, '',
            now() - interval '2 days', now() - interval '2 days',
            CASE WHEN %s = 'sent' THEN now() - interval '1 day' END
        FROM generate_series(1, %s) AS n
        """,
        [status, status, status, count],
    )


def _fresh_table() -> None:
    """The outbox table dropped and created again inside the test's transaction.

    A table created in an uncommitted transaction is invisible to autovacuum, so
    nothing analyzes it behind the test's back, and whatever ``ANALYZE`` writes
    in place (``pg_class.reltuples``, which the admin's paginator reads) goes
    with the rollback at the end of the test, which brings the real table back.
    """
    with connection.schema_editor() as editor:
        editor.delete_model(OutboxEvent)
        editor.create_model(OutboxEvent)


@pytest.fixture
def realistic_outbox() -> None:
    _fresh_table()
    with connection.cursor() as cursor:
        _fill(cursor, SENT, "sent")
        _fill(cursor, DEAD, "dead")
        _fill(cursor, PENDING, "pending")
        # What autovacuum would have done on a table that size.
        cursor.execute(f"ANALYZE {TABLE}")


def _claim_statement(limit: int, after: outbox.ClaimedEvent | None = None) -> str:
    """The SQL ``outbox.claim(limit)`` sends, parameters inlined, captured from a real call.

    The statements the claim sends before it (its planner settings, which last
    until the end of the transaction) are run again here, so an ``EXPLAIN`` of
    the returned statement plans it as the claim did.
    """
    with CaptureQueriesContext(connection) as queries:
        rows = outbox.claim(limit, owner="plan-test", after=after)
    assert len(rows) == limit
    statements = [q["sql"] for q in queries.captured_queries]
    claims = [sql for sql in statements if "next_attempt_at" in sql]
    assert len(claims) == 1, statements
    with connection.cursor() as cursor:
        for sql in statements[: statements.index(claims[0])]:
            if "set_config" in sql:
                cursor.execute(sql)
    return claims[0]


@pytest.fixture
def never_analyzed_outbox() -> None:
    """The outbox table created afresh (:func:`_fresh_table`), bulk-filled, never analyzed.

    ``autovacuum_enabled = false`` says to a reader what the uncommitted table
    already guarantees.
    """
    _fresh_table()
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} SET (autovacuum_enabled = false)")
        _fill(cursor, BURST, "pending")
        cursor.execute(
            "SELECT reltuples, (SELECT count(*) FROM pg_statistic WHERE starelid = c.oid) "
            "FROM pg_class c WHERE oid = %s::regclass",
            [TABLE],
        )
        reltuples, statistics = cursor.fetchone()
    # -1: never vacuumed nor analyzed (PostgreSQL 14 and later; 0 before).
    assert reltuples <= 0 and statistics == 0, (reltuples, statistics)


def _assert_ordered_walk_of_the_due_index(nodes: list[dict[str, Any]]) -> None:
    due_scans = [n for n in nodes if n.get("Index Name") == "synerise_outbox_due"]
    assert due_scans, [n["Node Type"] for n in nodes]
    # Walked in the claim's order: no sort of the pending rows is needed.
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in due_scans)
    assert not [n for n in nodes if "Sort" in n["Node Type"]]
    assert not [
        n
        for n in nodes
        if n["Node Type"] in ("Seq Scan", "Bitmap Heap Scan") and n.get("Relation Name") == TABLE
    ]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _explain(statement: str, *options: str) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN ({', '.join(('FORMAT JSON', *options))}) {statement}")
        (document,) = cursor.fetchone()
    if isinstance(document, str):
        document = json.loads(document)
    return list(_nodes(document[0]["Plan"]))


@pytest.mark.postgres
@postgres_only
@pytest.mark.django_db
def test_claim_plan_walks_the_partial_index_and_never_scans_the_table(realistic_outbox):
    nodes = _explain(_claim_statement(100))

    _assert_ordered_walk_of_the_due_index(nodes)
    # The other indexes hold sent and dead rows: the claim must not read those.
    assert not [
        n
        for n in nodes
        if n.get("Index Name") in ("synerise_outbox_status", "synerise_outbox_sent")
    ]


@pytest.mark.postgres
@postgres_only
@pytest.mark.django_db
def test_claim_reads_one_batch_of_index_entries_not_the_backlog(realistic_outbox):
    # ANALYZE runs the UPDATE again, leasing the next 100 rows (inside this
    # test's transaction, rolled back after it).
    nodes = _explain(_claim_statement(100), "ANALYZE", "BUFFERS")

    (scan,) = [n for n in nodes if n.get("Index Name") == "synerise_outbox_due"]
    # The walk stops after the batch, although 1,800 more rows are due behind it
    # and 75,000 sent or dead rows sit in the table.
    assert scan["Actual Rows"] == 100
    assert scan["Actual Loops"] == 1
    # A few hundred pages of index and heap for 100 rows (the walk also steps over
    # the entries of the 100 rows _claim_statement leased a moment ago), not the
    # table's thousands.
    pages = scan["Shared Hit Blocks"] + scan["Shared Read Blocks"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s) / current_setting('block_size')::int", [TABLE])
        (table_pages,) = cursor.fetchone()
    assert table_pages > 4000, table_pages
    assert pages < table_pages / 10, (pages, table_pages)


@pytest.mark.postgres
@postgres_only
@pytest.mark.django_db
def test_claim_plan_on_a_never_analyzed_burst_is_the_same_ordered_walk(never_analyzed_outbox):
    nodes = _explain(_claim_statement(1000), "ANALYZE", "BUFFERS")

    _assert_ordered_walk_of_the_due_index(nodes)
    (scan,) = [n for n in nodes if n.get("Index Name") == "synerise_outbox_due"]
    # The walk stops after the batch (1,000 leased a moment ago, skipped, then
    # 1,000 taken), not after the 50,000 pending rows.
    assert scan["Actual Rows"] == 1000
    assert scan["Actual Loops"] == 1


@pytest.mark.postgres
@postgres_only
@pytest.mark.django_db
def test_a_resumed_claim_starts_behind_the_last_batch_not_at_the_sent_rows(never_analyzed_outbox):
    first = outbox.claim(1000, owner="w")
    # 20,000 rows sent and deleted: their index entries stay until vacuum.
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {TABLE} WHERE id IN "
            f"(SELECT id FROM {TABLE} ORDER BY next_attempt_at, id LIMIT 20000)"
        )
        cursor.execute(
            f"SELECT id, next_attempt_at FROM {TABLE} ORDER BY next_attempt_at, id LIMIT 1"
        )
        first_left, due_at = cursor.fetchone()
    # The last row of the previous batch, as the dispatcher passes it.
    behind = first[-1]._replace(id=first_left - 1, due_at=due_at)
    nodes = _explain(_claim_statement(1000, after=behind), "ANALYZE", "BUFFERS")

    _assert_ordered_walk_of_the_due_index(nodes)
    (scan,) = [n for n in nodes if n.get("Index Name") == "synerise_outbox_due"]
    assert scan["Actual Rows"] == 1000
    # Buffer visits for two batches of rows (the one the capture leased, skipped,
    # then the one EXPLAIN ANALYZE leases), not for the 20,000 deleted rows'
    # entries, which the same claim without a resume point steps over.
    resumed = scan["Shared Hit Blocks"] + scan["Shared Read Blocks"]
    (from_start,) = [
        n
        for n in _explain(_claim_statement(1000), "ANALYZE", "BUFFERS")
        if n.get("Index Name") == "synerise_outbox_due"
    ]
    assert resumed < 3000, resumed
    assert from_start["Shared Hit Blocks"] + from_start["Shared Read Blocks"] > 3 * resumed


# -- make bench ------------------------------------------------------------------------
# The benchmarks that measure the claim (and the rest of the delivery path) live in
# bench/. These run the README's `make bench` lines at a tiny size: every line must
# name the target and settings bench/run.py documents, and produce a table and a
# results document whose figures add up.

ROOT = Path(__file__).resolve().parent.parent.parent


def _bench_sample() -> list[str]:
    lines = sample("bench").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.strip()]


def _documented_settings() -> set[str]:
    import bench.run

    return set(re.findall(r"``(BENCH_\w+|DATABASE_URL)=", bench.run.__doc__ or ""))


def _postgres_reachable(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def _run_bench(env: dict[str, str], tmp_path: Path, sections: str) -> tuple[str, Any]:
    """``python -m bench.run`` at its smallest size: its table and its results document.

    On databases of its own (a SQLite file in ``tmp_path``, a PostgreSQL database
    named after this process): the shared ``bench`` database may be in use by a
    developer's ``make bench`` or another checkout's test run, and a run waits
    for the one holding its database.
    """
    output = tmp_path / "results.json"
    env = dict(
        env,
        BENCH_EVENTS="2000",
        BENCH_REPEAT="1",
        BENCH_SECTIONS=sections,
        BENCH_OUTPUT=str(output),
        BENCH_SQLITE_PATH=str(tmp_path / "bench.sqlite3"),
    )
    postgres = env.get("DATABASE_URL", "").startswith("postgres")
    if postgres:
        parts = urlsplit(env["DATABASE_URL"])
        env["BENCH_DATABASE_URL"] = urlunsplit(parts._replace(path=f"/bench_test_{os.getpid()}"))
    try:
        run = subprocess.run(
            [sys.executable, "-m", "bench.run"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        if postgres:
            _drop_database(env["BENCH_DATABASE_URL"])
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout, json.loads(output.read_text())


def _drop_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(parts.path.lstrip("/"))
            )
        )


@pytest.mark.slow
def test_make_bench_lines_run_and_write_consistent_results(tmp_path):
    lines = _bench_sample()
    assert lines, "the bench sample is empty"
    # Under CI this test runs inside `make test`: a nested make inherits MAKEFLAGS and
    # MAKELEVEL and would print "Entering/Leaving directory" lines around the recipe.
    make_env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
    }
    make = subprocess.run(
        ["make", "--no-print-directory", "-n", "bench"],
        cwd=ROOT,
        env=make_env,
        capture_output=True,
        text=True,
        check=True,
    )
    # Whatever setup make decides to do first, the target ends by running the suite.
    assert make.stdout.strip().splitlines()[-1].endswith("python -m bench.run")
    for line in lines:
        *assignments, command = shlex.split(line.replace("make bench", "make_bench"))
        assert command == "make_bench", line
        env = dict(os.environ)
        for assignment in assignments:
            name, _, value = assignment.partition("=")
            assert name in _documented_settings(), f"{name} is not documented in bench/run.py"
            env[name] = value
        env.pop("BENCH_DATABASE_URL", None)
        postgres = env.get("DATABASE_URL", "").startswith("postgres")
        if not postgres:
            env.pop("DATABASE_URL", None)
        elif not _postgres_reachable(env["DATABASE_URL"]):
            continue
        stdout, document = _run_bench(env, tmp_path, "throughput")
        assert "| Flush, 1 worker, 2k backlog (events/s) |" in stdout
        assert set(document["results"]) == ({"sqlite", "postgresql"} if postgres else {"sqlite"})
        for name, results in document["results"].items():
            throughput = results["throughput"]
            for label in ("flush", "baseline", "flush_delete", "baseline_delete"):
                # Every event of the backlog reached the stand-in, exactly once.
                assert throughput[label]["delivered_by_stand_in"] == 2000, (name, label)
                assert throughput[label]["events_per_s"] > 0
            assert throughput["ratio_to_baseline"] == pytest.approx(
                throughput["flush"]["median_events_per_s"]
                / throughput["baseline"]["median_events_per_s"],
                abs=0.001,
            )
        if postgres:
            assert (
                document["results"]["postgresql"]["throughput"]["flush_4_workers"]["workers"] == 4
            )


@pytest.mark.slow
def test_the_middleware_benchmark_measures_every_variant(tmp_path):
    """The latency section at its smallest size; the run itself checks every variant's rows."""
    env = dict(os.environ)
    env.pop("BENCH_DATABASE_URL", None)
    postgres = env.get("DATABASE_URL", "").startswith("postgres") and _postgres_reachable(
        env["DATABASE_URL"]
    )
    if not postgres:
        env.pop("DATABASE_URL", None)
    stdout, document = _run_bench(env, tmp_path, "middleware")
    assert "Middleware, tracked page: added median (ms), direct call |" in stdout
    variants = {"direct", "direct_orm_insert", "test_client", "real_server"}
    for name, results in document["results"].items():
        expected = variants | (
            {"direct_async_commit", "real_server_async_commit"} if name == "postgresql" else set()
        )
        assert set(results["middleware"]) == expected, name
        for variant, figures in results["middleware"].items():
            for label in ("tracked", "untracked"):
                assert figures[label]["samples"] >= 50, (name, variant, label)
        # The page visit against one bare INSERT of the same run, and its ratio.
        direct = results["middleware"]["direct"]["tracked"]
        assert direct["bare_create_median_ms"] > 0
        # Both medians are stored rounded to the microsecond, the ratio from the
        # unrounded ones: compare to within the rounding of a sub-millisecond median.
        assert direct["ratio_to_bare_create"] == pytest.approx(
            direct["added_median_ms"] / direct["bare_create_median_ms"], rel=0.01
        )
