"""The claim reads the partial index ``synerise_outbox_due``, not the table (PostgreSQL).

The outbox keeps sent rows for ``RETAIN_SENT`` days and dead rows until purged,
so the table can hold millions of rows while a few hundred are pending. The
claim must cost O(batch), whatever else the table holds: the planner has to
walk the partial index of pending rows in ``(next_attempt_at, id)`` order and
stop after the batch. These tests run the exact statement ``outbox.claim()``
sends through ``EXPLAIN`` on a table shaped like a real one, after ``ANALYZE``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_synerise import outbox
from django_synerise.models import OutboxEvent

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN of PostgreSQL plans"),
    pytest.mark.django_db,
]

TABLE = OutboxEvent._meta.db_table
SENT, DEAD, PENDING = 60_000, 15_000, 2_000


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


@pytest.fixture
def realistic_outbox() -> None:
    with connection.cursor() as cursor:
        _fill(cursor, SENT, "sent")
        _fill(cursor, DEAD, "dead")
        _fill(cursor, PENDING, "pending")
        # What autovacuum would have done on a table that size.
        cursor.execute(f"ANALYZE {TABLE}")


def _claim_statement(limit: int) -> str:
    """The SQL ``outbox.claim(limit)`` sends, parameters inlined, captured from a real call."""
    with CaptureQueriesContext(connection) as queries:
        rows = outbox.claim(limit, owner="plan-test")
    assert len(rows) == limit
    statements = [q["sql"] for q in queries.captured_queries if "next_attempt_at" in q["sql"]]
    assert len(statements) == 1, statements
    return statements[0]


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


def test_claim_plan_walks_the_partial_index_and_never_scans_the_table(realistic_outbox):
    nodes = _explain(_claim_statement(100))

    due_scans = [n for n in nodes if n.get("Index Name") == "synerise_outbox_due"]
    assert due_scans, [n["Node Type"] for n in nodes]
    # Walked in the claim's order: no sort of the pending rows is needed.
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in due_scans)
    assert not [n for n in nodes if n["Node Type"] == "Sort"]
    assert not [
        n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == TABLE
    ]
    # The other indexes hold sent and dead rows: the claim must not read those.
    assert not [
        n
        for n in nodes
        if n.get("Index Name") in ("synerise_outbox_status", "synerise_outbox_sent")
    ]


def test_claim_reads_one_batch_of_index_entries_not_the_backlog(realistic_outbox):
    # ANALYZE runs the UPDATE again, leasing the next 100 rows (inside this
    # test's transaction, rolled back after it).
    nodes = _explain(_claim_statement(100), "ANALYZE", "BUFFERS")

    (scan,) = [n for n in nodes if n.get("Index Name") == "synerise_outbox_due"]
    # The walk stops after the batch, although 1,800 more rows are due behind it
    # and 75,000 sent or dead rows sit in the table.
    assert scan["Actual Rows"] == 100
    assert scan["Actual Loops"] == 1
    # A few pages of index and heap for 100 rows, not the table's thousands.
    pages = scan["Shared Hit Blocks"] + scan["Shared Read Blocks"]
    assert pages < 100, pages
