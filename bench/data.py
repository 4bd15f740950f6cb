"""Benchmark data: outbox rows loaded in bulk.

Payloads come from :mod:`bench.payloads` (the real serializer). Rows go in with
``COPY`` on PostgreSQL and multi-row ``INSERT`` on SQLite: loading a million rows
takes seconds, not minutes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.db import connection

from django_synerise.models import OutboxEvent

from .payloads import fresh_salt, payload_pool

TABLE = OutboxEvent._meta.db_table
COLUMNS = (
    "kind",
    "batch_type",
    "action",
    "client_key",
    "salt",
    "payload",
    "size",
    "status",
    "attempts",
    "next_attempt_at",
    "leased_by",
    "leased_until",
    "last_error",
    "occurred_at",
    "created_at",
    "sent_at",
)


def _rows(count: int, status: str, start: int) -> Iterator[tuple[object, ...]]:
    pool = payload_pool()
    now = dt.datetime.now(dt.timezone.utc)
    # Old rows first: a backlog that built up over the last hour, oldest due first.
    base = now - dt.timedelta(hours=1)
    step = dt.timedelta(seconds=3600 / max(count, 1))
    sent_at = now if status == "sent" else None
    error = "gave up after 16 attempts: bench" if status == "dead" else ""
    for i in range(count):
        payload, salt, client_key = pool[(start + i) % len(pool)]
        fresh = fresh_salt(start + i)
        created = base + step * i
        yield (
            "event",
            "custom",
            "page.visit",
            client_key,
            fresh,
            payload.replace(salt, fresh),
            len(payload.encode()),
            status,
            16 if status == "dead" else (1 if status == "sent" else 0),
            created,
            "",
            None,
            error,
            created,
            created,
            sent_at,
        )


def truncate() -> None:
    """Empty the outbox table (and reset its id sequence on PostgreSQL)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f'TRUNCATE "{TABLE}" RESTART IDENTITY')
        else:
            cursor.execute(f'DELETE FROM "{TABLE}"')
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [TABLE])


def load(count: int, *, status: str = "pending", start: int = 0) -> None:
    """Append ``count`` rows of ``status`` to the outbox; ``start`` keeps salts unique."""
    if count <= 0:
        return
    rows = _rows(count, status, start)
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        raw = connection.connection
        assert raw is not None
        with raw.cursor() as cursor:
            names = ", ".join(COLUMNS)
            with cursor.copy(f'COPY "{TABLE}" ({names}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
        return
    adapt = connection.ops.adapt_datetimefield_value
    rows = (tuple(adapt(v) if isinstance(v, dt.datetime) else v for v in row) for row in rows)
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    chunk = 500
    sql_head = f'INSERT INTO "{TABLE}" ({", ".join(COLUMNS)}) VALUES '
    with connection.cursor() as cursor:
        batch: list[tuple[object, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == chunk:
                cursor.execute(sql_head + ", ".join([placeholders] * chunk), _flat(batch))
                batch = []
        if batch:
            cursor.execute(sql_head + ", ".join([placeholders] * len(batch)), _flat(batch))


def _flat(batch: list[tuple[object, ...]]) -> list[object]:
    return [value for row in batch for value in row]


def analyze() -> None:
    """Refresh planner statistics, as autovacuum would after a bulk load."""
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{TABLE}"')


def counts() -> dict[str, int]:
    """Rows per status."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT status, COUNT(*) FROM "{TABLE}" GROUP BY status')
        return {status: int(n) for status, n in cursor.fetchall()}
