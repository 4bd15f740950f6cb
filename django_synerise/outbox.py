"""Outbox service functions: write events, lease them to a worker, record what happened.

These are the only functions that touch :class:`~django_synerise.models.OutboxEvent`
rows on the delivery path; the dispatcher, the management commands, the Celery
task and the admin all go through them.

Row life cycle::

    enqueue() ──► pending ──claim()──► pending + lease ──mark_sent()──► sent (or deleted)
                     ▲                        │
                     │                        ├─mark_retry()──► pending, due after a backoff
                     └──── requeue() ─── dead ◄┴─mark_dead() / retries exhausted
                                              └─release()────► pending, unharmed

A row is *due* when ``status == "pending"``, ``next_attempt_at <= now`` and
its lease, if any, has expired (``leased_until <= now``): the rows of a worker
that died fall due again by themselves. Claiming writes only the lease columns,
which no index holds, so a lease maintains no index entry.
A row that goes dead records when in ``dead_at``; requeueing clears it.

Datetimes are stored the way Django expects for ``USE_TZ``: aware with it,
naive in the default time zone (``TIME_ZONE``) without it. Datetimes passed
in (``now``, ``until``, ``since``) may be either; they are converted. The
payload's own times are fixed at enqueue as UTC ISO 8601 either way.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, DateTimeField, Exists, Field, Max, Min, OuterRef, Q
from django.utils import timezone

from . import signals
from .conf import on_setting_changed, synerise_settings
from .endpoints import endpoint_for
from .events import Event, dumps
from .exceptions import EventTooLargeError
from .models import OutboxEvent

__all__ = [
    "ClaimedEvent",
    "Health",
    "backlog_full",
    "backoff_delay",
    "before_write",
    "claim",
    "db_alias",
    "dropped_count",
    "enqueue",
    "enqueue_droppable",
    "enqueue_many",
    "health",
    "make_due",
    "make_owner",
    "mark_dead",
    "mark_retry",
    "mark_sent",
    "pending_count",
    "purge",
    "purge_if_due",
    "release",
    "requeue",
    "stats",
]

logger = logging.getLogger("django_synerise.outbox")

PENDING = "pending"
SENT = "sent"
DEAD = "dead"


class ClaimedEvent(NamedTuple):
    """A leased row, as the dispatcher needs it (no model instance: cheaper to build).

    ``due_at`` is the row's ``next_attempt_at`` as the database returned it:
    only for :func:`claim`'s ``after``, which resumes the walk behind this row.
    """

    id: int
    kind: str
    batch_type: str
    payload: str
    size: int
    attempts: int
    due_at: Any = None


def db_alias() -> str:
    """The database alias of the outbox table (``DATABASE_ALIAS`` or the router's choice)."""
    alias = synerise_settings.DATABASE_ALIAS
    if alias:
        return str(alias)
    return router.db_for_write(OutboxEvent) or DEFAULT_DB_ALIAS


def make_owner() -> str:
    """A lease owner id unique to this process and call: ``host:pid:random``."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _client_key(client: dict[str, Any]) -> str:
    return " ".join(f"{key}:{value}" for key, value in client.items())[:255]


def _db_time(value: dt.datetime) -> dt.datetime:
    """``value`` as Django stores it: aware with ``USE_TZ``, else naive in ``TIME_ZONE``.

    A naive value is already in the right form without ``USE_TZ``; with it,
    Django's rule applies: a naive datetime is in the current time zone.
    """
    if settings.USE_TZ:
        return timezone.make_aware(value) if timezone.is_naive(value) else value
    if timezone.is_aware(value):
        return timezone.make_naive(value, timezone.get_default_timezone())
    return value


def _build_row(event: Event, now: dt.datetime) -> OutboxEvent:
    if not isinstance(event, Event):
        raise TypeError(
            f"expected a django_synerise.events.Event, not {type(event).__name__}; "
            "build one with django_synerise.events or call django_synerise.track()"
        )
    # AI events too are stored neutral: their endpoint shapes them when they are sent.
    body = event.to_payload()
    payload = dumps(body)
    size = len(payload.encode("utf-8"))
    # The endpoint's own limit: a request holding this event alone must fit.
    endpoint = endpoint_for(event.kind)
    limit = endpoint.byte_limit(synerise_settings)
    if endpoint.request_size([size]) > limit:
        raise EventTooLargeError(size, limit)
    occurred_at = event.occurred_at
    return OutboxEvent(
        kind=event.kind,
        batch_type=event.batch_type,
        action=event.action[:64],
        client_key=_client_key(event.client),
        salt=event.salt or "",
        payload=payload,
        size=size,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        occurred_at=_db_time(occurred_at) if occurred_at is not None else None,
        created_at=now,
    )


class _InsertStatement(NamedTuple):
    sql: str
    fields: tuple[Field[Any, Any], ...]
    #: Per field: whether its value needs the backend's datetime adaptation.
    datetimes: tuple[bool, ...]
    returning: bool
    pk_column: str


# One INSERT statement per database alias (and commit mode), built on first use.
# Reset when DATABASES changes (tests), since the alias may then name another backend.
_insert_statements: dict[tuple[str, bool], _InsertStatement] = {}


def _insert_statement(alias: str, *, async_commit: bool = False) -> _InsertStatement:
    """The single-row INSERT for ``alias``; ``async_commit`` only on PostgreSQL."""
    try:
        return _insert_statements[alias, async_commit]
    except KeyError:
        pass
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = OutboxEvent._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    assert meta.pk is not None
    pk_column = str(meta.pk.column)
    returning = bool(connection.features.can_return_columns_from_insert)
    columns = ", ".join(quote(str(field.column)) for field in fields)
    if async_commit:
        # set_config(..., true) lasts until the end of the transaction, which in
        # autocommit mode is this statement: only its own commit skips the wait
        # for the WAL flush. Typed placeholders, as a SELECT list gives no context.
        values = (
            "SELECT {} FROM (SELECT set_config('synchronous_commit', 'off', true)) AS c".format(
                ", ".join(f"%s::{field.db_type(connection)}" for field in fields)
            )
        )
    else:
        values = "VALUES ({})".format(", ".join(["%s"] * len(fields)))
    sql = "INSERT INTO {} ({}) {}{}".format(
        quote(meta.db_table),
        columns,
        values,
        f" RETURNING {quote(pk_column)}" if returning else "",
    )
    datetimes = tuple(isinstance(field, DateTimeField) for field in fields)
    statement = _InsertStatement(sql, fields, datetimes, returning, pk_column)
    _insert_statements[alias, async_commit] = statement
    return statement


on_setting_changed(_insert_statements.clear, settings=["DATABASES"])


def _insert_one(row: OutboxEvent, alias: str, *, durable: bool = True) -> None:
    """``row.save(force_insert=True)`` without the ORM's per-call SQL compilation.

    A tracked page view pays for this on every request: compiling the INSERT
    cost more than sending it. Model signals are not sent, as with
    ``bulk_create``; :data:`~django_synerise.signals.events_enqueued` is.
    ``durable=False`` makes the commit asynchronous where that touches this
    row only: PostgreSQL, outside any transaction.
    """
    connection = connections[alias]
    async_commit = not durable and connection.vendor == "postgresql" and connection.get_autocommit()
    statement = _insert_statement(alias, async_commit=async_commit)
    params = [
        # Only datetimes need the backend's adaptation (UTC, naive on MySQL, text on
        # SQLite); every other column already holds the str or int it stores.
        field.get_db_prep_save(getattr(row, field.attname), connection)
        if is_datetime
        else getattr(row, field.attname)
        for field, is_datetime in zip(statement.fields, statement.datetimes, strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, params)
        if statement.returning:
            row.pk = cursor.fetchone()[0]
        else:
            row.pk = connection.ops.last_insert_id(
                cursor, OutboxEvent._meta.db_table, statement.pk_column
            )
    row._state.adding = False
    row._state.db = alias


def _write(
    rows: list[OutboxEvent], *, durable: bool = True, wait_for: OutboxEvent | None = None
) -> None:
    alias = db_alias()

    def write() -> None:
        if wait_for is not None:
            # Read here, not earlier: with the outbox on another database the
            # earlier row is itself written on commit, just before this one.
            rows[0].wait_for = wait_for.pk
        if len(rows) == 1:
            _insert_one(rows[0], alias, durable=durable)
        else:
            OutboxEvent.objects.using(alias).bulk_create(rows, batch_size=500)
        signals.send_robust(signals.events_enqueued, OutboxEvent, events=rows)

    if alias != DEFAULT_DB_ALIAS and connections[DEFAULT_DB_ALIAS].in_atomic_block:
        # The outbox lives on another database: it cannot share the caller's
        # transaction, so write only once the caller's transaction has committed.
        transaction.on_commit(write, using=DEFAULT_DB_ALIAS)
    else:
        write()


def before_write(events: Iterable[Event], request: Any = None) -> list[Event]:
    """Pass each record through ``SYNERISE["BEFORE_WRITE"]``; return the ones to write.

    The hook is called as ``hook(record, request)`` (``request`` is ``None``
    when the record was not produced for a request: model hooks, commands)
    and returns the record, a changed copy, or ``None`` to drop it. Dropped
    records are announced with :data:`~django_synerise.signals.events_dropped`
    (``reason="before_write"``). A hook that raises, or returns anything but
    an event or ``None``, drops that record with ``reason="before_write_error"``
    and a logged error, unless ``SYNERISE["RAISE_ERRORS"]`` is true: then the
    error propagates and nothing is written. Without a hook the records are
    returned unchanged.

    Raises :class:`~django_synerise.exceptions.SyneriseConfigurationError`
    when ``BEFORE_WRITE`` names something that cannot be imported.
    """
    records = list(events)
    hook = synerise_settings.import_callable("BEFORE_WRITE", synerise_settings.BEFORE_WRITE)
    if hook is None:
        return records
    kept: list[Event] = []
    dropped: list[Event] = []
    failed: list[Event] = []
    for record in records:
        if not isinstance(record, Event):
            kept.append(record)  # refused with a TypeError when its row is built
            continue
        try:
            result = hook(record, request)
            if result is not None and not isinstance(result, Event):
                raise TypeError(
                    'SYNERISE["BEFORE_WRITE"] must return an event of django_synerise.events '
                    f"or None, not {type(result).__name__}"
                )
        except Exception:
            if synerise_settings.RAISE_ERRORS:
                raise
            logger.exception(
                'SYNERISE["BEFORE_WRITE"] failed on a %s record; it was not written',
                record.action,
                extra={"synerise_action": record.action},
            )
            failed.append(record)
            continue
        if result is None:
            dropped.append(record)
        else:
            kept.append(result)
    if dropped:
        signals.send_robust(
            signals.events_dropped, OutboxEvent, events=dropped, reason="before_write"
        )
    if failed:
        signals.send_robust(
            signals.events_dropped, OutboxEvent, events=failed, reason="before_write_error"
        )
    return kept


def enqueue(
    event: Event,
    *,
    durable: bool = True,
    request: Any = None,
    wait_for: OutboxEvent | None = None,
) -> OutboxEvent | None:
    """Write one event to the outbox, in the caller's transaction; return the row.

    ``wait_for``: a row enqueued earlier that must be delivered first. This row
    is not claimed while that one is pending; once it is sent or dead (or
    deleted), this one goes as usual. Used to send a login event only after
    the profile merge it relies on.

    A rollback of the surrounding ``atomic()`` block removes the event with the
    change that caused it. Returns ``None`` (and writes nothing) when
    ``SYNERISE["ENABLED"]`` is false or ``SYNERISE["BEFORE_WRITE"]`` dropped
    the event (see :func:`before_write`, which receives ``request``).

    ``durable=False`` (the page-visit middleware with ``PAGE_VISITS["ASYNC_COMMIT"]``):
    on PostgreSQL, when no transaction is open, the row's commit returns without
    waiting for the write-ahead log to reach the disk (``synchronous_commit = off``
    for that statement alone). A crash of the database server can then lose the
    last fraction of a second of such rows; nothing else changes. Elsewhere it is
    an ordinary write.

    Raises :class:`~django_synerise.exceptions.EventTooLargeError` when the
    serialized event could never fit in a batch, ``TypeError`` for a non-event.
    """
    if not synerise_settings.ENABLED:
        return None
    kept = before_write((event,), request)
    if not kept:
        return None
    row = _build_row(kept[0], timezone.now())
    _write([row], durable=durable, wait_for=wait_for)
    return row


class _Backlog:
    """This process's view of the pending backlog, for :func:`enqueue_droppable`.

    Counting pending rows on every page visit would cost a query each; the
    count is taken at most once every ``CHECK_SECONDS`` per process, and
    bounded (``LIMIT MAX_PENDING + 1``) so it never reads more than the cap.
    """

    CHECK_SECONDS = 10.0
    LOG_SECONDS = 60.0
    DROPPED_KEY = "django_synerise:outbox:dropped"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked_at = -math.inf
        self.full = False
        self.dropped = 0  # in this process, since start
        self.unlogged = 0
        self.logged_at = -math.inf

    def is_full(self, limit: int) -> bool:
        now = time.monotonic()
        if now - self.checked_at < self.CHECK_SECONDS:
            return self.full
        self.checked_at = now
        pending = OutboxEvent.objects.using(db_alias()).filter(status=PENDING)
        self.full = pending.values("id")[: limit + 1].count() > limit
        return self.full

    def drop(self, event: Event, limit: int) -> None:
        with self.lock:
            self.dropped += 1
            self.unlogged += 1
            now = time.monotonic()
            log = now - self.logged_at >= self.LOG_SECONDS
            if log:
                count, self.unlogged, self.logged_at = self.unlogged, 0, now
        try:
            cache = caches["default"]
            if not cache.add(self.DROPPED_KEY, 1, timeout=None):
                cache.incr(self.DROPPED_KEY)
        except Exception:  # the shared count is for health(); never fail a request for it
            logger.debug("could not count a dropped event in the cache", exc_info=True)
        if log:
            logger.warning(
                "outbox over MAX_PENDING (%d pending rows): dropped %d page visits and beacons "
                "since the last report (latest: %s); is the flusher running?",
                limit,
                count,
                event.action,
            )


_backlog = _Backlog()


def enqueue_droppable(
    event: Event, *, durable: bool = True, request: Any = None
) -> OutboxEvent | None:
    """:func:`enqueue` an event the site can afford to lose: a page visit or a beacon.

    When more than ``SYNERISE["MAX_PENDING"]`` rows are pending (a flusher
    stopped, Synerise down for long, or a flood), the event is dropped instead
    of written: counted (:func:`dropped_count`, ``health().dropped``) and
    reported in one WARNING a minute at most, on ``django_synerise.outbox``.
    Returns ``None`` then. Orders, profiles, model and auth events never come
    here: they are always written. The backlog is counted at most once every
    10 seconds per process, so it may overshoot the cap by what arrives in that
    time. ``MAX_PENDING = None`` turns the bound off. ``durable`` and
    ``request`` are passed on to :func:`enqueue`.
    """
    if synerise_settings.ENABLED and backlog_full():
        _backlog.drop(event, int(synerise_settings.MAX_PENDING))
        signals.send_robust(
            signals.events_dropped, OutboxEvent, events=[event], reason="max_pending"
        )
        return None
    return enqueue(event, durable=durable, request=request)


def backlog_full() -> bool:
    """Whether more than ``MAX_PENDING`` rows are pending, as this process last counted.

    Counts (one bounded query) when the last count is more than 10 seconds
    old, else answers from it. Always false with ``MAX_PENDING = None``.
    """
    limit = synerise_settings.MAX_PENDING
    return limit is not None and _backlog.is_full(int(limit))


def dropped_count() -> int:
    """Page visits and beacons dropped over ``MAX_PENDING``: all processes sharing the cache.

    Read from Django's ``default`` cache (kept until it is cleared); with a
    per-process cache, or when the cache fails, this process's own count.
    """
    try:
        shared = caches["default"].get(_Backlog.DROPPED_KEY)
    except Exception:
        shared = None
    return int(shared) if isinstance(shared, int) else _backlog.dropped


def enqueue_many(events: Iterable[Event], *, request: Any = None) -> list[OutboxEvent]:
    """Write many events with one ``bulk_create``; all or nothing.

    Every event is serialized and checked before anything is written, so one
    invalid event leaves the outbox untouched. Events dropped by
    ``SYNERISE["BEFORE_WRITE"]`` (see :func:`before_write`) are left out; the
    others are written. Returns ``[]`` when disabled.
    """
    if not synerise_settings.ENABLED:
        return []
    now = timezone.now()
    rows = [_build_row(event, now) for event in before_write(events, request)]
    if rows:
        _write(rows)
    return rows


def claim(
    limit: int,
    *,
    owner: str,
    due_before: dt.datetime | None = None,
    now: dt.datetime | None = None,
    after: ClaimedEvent | None = None,
) -> list[ClaimedEvent]:
    """Lease up to ``limit`` due rows to ``owner`` and return them, oldest first.

    A row is claimed when all of these hold:

    * ``status == "pending"``;
    * ``next_attempt_at <= due_before`` (default: now);
    * no live lease: ``leased_until`` is empty or ``<= now`` (a lease expires
      when its worker died or hung);
    * it comes after ``after`` in ``(next_attempt_at, id)`` order, when given;
    * no other transaction holds its row lock (``SKIP LOCKED`` on PostgreSQL,
      MySQL and MariaDB: concurrent workers get disjoint rows without waiting);
    * the row it waits for (``wait_for``, see :func:`enqueue`), if
      any, is no longer pending.

    Claimed rows get ``leased_by = owner`` and ``leased_until`` = now +
    ``LEASE_SECONDS``, nothing else. Rows come back in ``(next_attempt_at, id)``
    order. The transaction is short: it commits before anything is sent.

    ``after`` is the last row of the previous claim of the same pass: the walk
    resumes behind it instead of stepping again over the index entries of every
    row already sent (deleted or updated rows leave entries behind until
    vacuum, and a burst of a million events leaves a million). A row that turns
    due behind that point (committed late, released) waits for the next pass.

    The walk is the same however fresh the table's statistics are: on
    PostgreSQL the claim runs with sorts, bitmap and sequential scans disabled
    for its own statement (``SET LOCAL`` in its transaction), so the planner
    can only walk the partial index ``synerise_outbox_due`` in order and stop
    after ``limit`` rows. PostgreSQL and SQLite (3.35 and later) select, lease
    and read the rows in one ``UPDATE ... RETURNING``; SQLite serializes
    writers, so two workers still never own the same row. Elsewhere the rows
    are locked, leased with a conditional ``UPDATE`` and re-read.
    """
    if limit <= 0:
        return []
    now = _db_time(now) if now is not None else timezone.now()
    due_before = _db_time(due_before) if due_before is not None else now
    lease_until = now + dt.timedelta(seconds=synerise_settings.LEASE_SECONDS)
    alias = db_alias()
    connection = connections[alias]
    if connection.vendor == "postgresql" or (
        connection.vendor == "sqlite" and _sqlite_has_returning(connection)
    ):
        return _claim_returning(connection, limit, owner, due_before, now, lease_until, after)
    manager = OutboxEvent.objects.using(alias)
    columns = ("id", "kind", "batch_type", "payload", "size", "attempts", "next_attempt_at")
    due = (
        Q(status=PENDING, next_attempt_at__lte=due_before)
        & (Q(leased_until__isnull=True) | Q(leased_until__lte=now))
        & _not_waiting()
    )
    if after is not None:
        due &= Q(next_attempt_at__gte=after.due_at) & (
            Q(next_attempt_at__gt=after.due_at) | Q(id__gt=after.id)
        )
    with transaction.atomic(using=alias):
        queryset = manager.filter(due).order_by("next_attempt_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            queryset = queryset.select_for_update(skip_locked=True)
        rows = [ClaimedEvent(*values) for values in queryset.values_list(*columns)[:limit]]
        if not rows:
            return []
        ids = [row.id for row in rows]
        updated = manager.filter(due, id__in=ids).update(leased_by=owner, leased_until=lease_until)
        if updated != len(ids):
            owned = set(
                manager.filter(id__in=ids, leased_by=owner, leased_until=lease_until).values_list(
                    "id", flat=True
                )
            )
            rows = [row for row in rows if row.id in owned]
    return rows


def _not_waiting() -> Q:
    """Rows that wait for no row still pending (the ORM form of the claim's condition)."""
    waited = OutboxEvent.objects.filter(id=OuterRef("wait_for"), status=PENDING)
    return Q(wait_for__isnull=True) | Q(~Exists(waited))


def _sqlite_has_returning(connection: BaseDatabaseWrapper) -> bool:
    # UPDATE ... RETURNING arrived in SQLite 3.35 (2021); Django 5.2 accepts 3.31.
    return bool(connection.features.can_return_columns_from_insert)


# Planner settings of the claim's own transaction (PostgreSQL). Right after a
# burst the table has no statistics; the planner then expects a few pending rows
# and picks a bitmap scan of every pending row plus a sort, whose cost grows with
# the backlog. With these off, the only plan left is the ordered walk of the
# partial index that stops after the batch, whatever the statistics say.
_CLAIM_PLANNER = ("enable_sort", "enable_incremental_sort", "enable_bitmapscan", "enable_seqscan")


def _claim_returning(
    connection: BaseDatabaseWrapper,
    limit: int,
    owner: str,
    due_before: dt.datetime,
    now: dt.datetime,
    lease_until: dt.datetime,
    after: ClaimedEvent | None,
) -> list[ClaimedEvent]:
    # One statement selects, locks, leases and reads: the inner SELECT walks the
    # partial index synerise_outbox_due (pending rows only) in order and stops
    # after `limit` unlocked rows; SQLite runs one writer at a time, so the
    # statement alone keeps two workers from taking the same row.
    # The table name comes from the model, never from input.
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    postgres = connection.vendor == "postgresql"
    adapt = connection.ops.adapt_datetimefield_value
    lease = adapt(lease_until)
    # A row waiting for another (a login event for its profile merge) is not
    # due while that one is pending.
    params: list[Any] = [owner, lease, PENDING, adapt(due_before), adapt(now), PENDING]
    resume = ""
    # next_attempt_at comes back as fixed-width UTC text (SQLite stores it as
    # text already): only the resume point needs it, and parsing a thousand
    # timestamps per batch cost more than the claim's statement. Text of one
    # width sorts as the timestamps do.
    returned, cast = (
        (
            "to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
            "(%s::timestamp AT TIME ZONE 'UTC')",
        )
        if postgres
        else ("next_attempt_at", "%s")
    )
    if after is not None:
        # Written so that next_attempt_at >= x is the index range's start.
        resume = f" AND next_attempt_at >= {cast} AND (next_attempt_at > {cast} OR id > %s)"
        params += [after.due_at, after.due_at, after.id]
    params.append(limit)
    sql = (
        f"UPDATE {table} SET leased_by = %s, leased_until = %s "
        f"WHERE id IN (SELECT id FROM {table} WHERE status = %s AND next_attempt_at <= %s "
        f"AND (leased_until IS NULL OR leased_until <= %s) "
        # Looked up by primary key only, so the walk of the due index stays the
        # plan's one scan of it; a row that is gone (purged) waits for nothing.
        f"AND (wait_for IS NULL OR (SELECT waited.status FROM {table} AS waited "
        f"WHERE waited.id = {table}.wait_for) IS DISTINCT FROM %s){resume} "
        f"ORDER BY next_attempt_at, id LIMIT %s{' FOR UPDATE SKIP LOCKED' if postgres else ''}) "
        f"RETURNING id, kind, batch_type, payload, size, attempts, {returned}"
    )
    if not postgres:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = [ClaimedEvent(*values) for values in cursor.fetchall()]
        rows.sort(key=lambda row: (row.due_at, row.id))
        return rows
    # Inside a caller's transaction the settings are put back after the claim,
    # so that the rest of that transaction plans as it would have.
    nested = connection.in_atomic_block
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        # set_config(..., true) lasts until the end of the transaction.
        cursor.execute(
            "SELECT "
            + ", ".join(
                f"current_setting('{name}'), set_config('{name}', 'off', true)"
                for name in _CLAIM_PLANNER
            )
        )
        previous = list(cursor.fetchone()[::2])
        cursor.execute(sql, params)
        rows = [ClaimedEvent(*values) for values in cursor.fetchall()]
        if nested:
            cursor.execute(
                "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in _CLAIM_PLANNER),
                previous,
            )
    rows.sort(key=lambda row: (row.due_at, row.id))
    return rows


def _where_leased(
    connection: BaseDatabaseWrapper, ids: Sequence[int], owner: str | None
) -> tuple[str, list[Any]]:
    """``WHERE`` clause and parameters: these ids, still leased to ``owner`` (``None``: pending)."""
    params: list[Any]
    if connection.vendor == "postgresql":
        # One array parameter, written as its text form: adapting a list of a
        # thousand ints element by element cost more than running the UPDATE.
        condition = "id = ANY(%s::bigint[])"
        params = ["{" + ",".join(str(int(pk)) for pk in ids) + "}"]
    else:
        condition, params = f"id IN ({', '.join(['%s'] * len(ids))})", list(ids)
    if owner is None:
        condition += " AND status = %s"
        params.append(PENDING)
    else:
        # Only a pending row ever holds a lease (claim() leases pending rows, and
        # every change of status clears the lease), so the owner alone selects
        # them. Leaving "status = 'pending'" out matters: it would let the
        # planner walk the partial index of every pending row instead of looking
        # the ids up by primary key, which it did on a table without statistics
        # (22 ms instead of 2 ms per batch of 1,000 right after a 50,000 burst).
        condition += " AND leased_by = %s"
        params.append(owner)
    return condition, params


def _update_leased(ids: Sequence[int], owner: str | None, assignments: dict[str, Any]) -> int:
    """Apply ``assignments`` (column -> value, or a ``_Raw`` SQL expression) to leased rows.

    Plain SQL rather than a queryset: marking is on every batch's path, and the
    ORM spent more time building ``id IN (...)`` for a thousand ids than the
    database spent running it. Like ``QuerySet.update()``, it sends no model
    signals.
    """
    connection = connections[db_alias()]
    adapt = connection.ops.adapt_datetimefield_value
    columns: list[str] = []
    values: list[Any] = []
    for column, value in assignments.items():
        if isinstance(value, _Raw):
            columns.append(f"{column} = {value.sql}")
            continue
        columns.append(f"{column} = %s")
        values.append(adapt(_db_time(value)) if isinstance(value, dt.datetime) else value)
    condition, params = _where_leased(connection, ids, owner)
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {', '.join(columns)} WHERE {condition}", values + params
        )
        return int(cursor.rowcount)


def _delete_leased(ids: Sequence[int], owner: str | None) -> int:
    connection = connections[db_alias()]
    condition, params = _where_leased(connection, ids, owner)
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {condition}", params)
        return int(cursor.rowcount)


class _Raw(NamedTuple):
    """A SQL expression assigned as is (no user input ever reaches it)."""

    sql: str


def mark_sent(ids: Sequence[int], *, owner: str | None, now: dt.datetime | None = None) -> int:
    """Record that Synerise accepted these rows; return how many were recorded.

    Kept as ``sent`` for ``RETAIN_SENT`` days, or deleted at once when it is 0.
    Only rows still leased to ``owner`` change (``owner=None``: any pending row),
    so a worker whose lease expired cannot overwrite another worker's outcome.
    """
    if not ids:
        return 0
    if synerise_settings.RETAIN_SENT == 0:
        return _delete_leased(ids, owner)
    return _update_leased(
        ids,
        owner,
        {
            "status": SENT,
            "sent_at": now or timezone.now(),
            "leased_by": "",
            "leased_until": None,
            "last_error": "",
        },
    )


def backoff_delay(attempts: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempts + 1``: exponential backoff, full jitter.

    A uniform draw in ``[0, min(RETRY_BACKOFF_MAX, RETRY_BACKOFF_BASE * 2**(attempts-1))]``.
    """
    base = float(synerise_settings.RETRY_BACKOFF_BASE)
    cap = float(synerise_settings.RETRY_BACKOFF_MAX)
    ceiling = min(cap, base * (2 ** min(max(attempts - 1, 0), 62)))
    return (rng or random).uniform(0, ceiling)


def mark_retry(
    rows: Sequence[ClaimedEvent],
    error: str,
    *,
    owner: str | None,
    now: dt.datetime | None = None,
) -> tuple[int, int]:
    """Count a failed attempt for these rows; return ``(retried, dead)``.

    Each row's ``attempts`` goes up by one. Rows that reach ``MAX_ATTEMPTS`` go
    ``dead`` (``dead_at = now``); the others are due again after
    :func:`backoff_delay`. Rows of one batch failed together, so they share
    one delay (one ``UPDATE`` per attempt count) and are likely to travel
    together again.
    """
    if not rows:
        return (0, 0)
    now = now or timezone.now()
    max_attempts = synerise_settings.MAX_ATTEMPTS
    by_attempts: dict[int, list[int]] = {}
    for row in rows:
        by_attempts.setdefault(row.attempts + 1, []).append(row.id)
    retried = dead = 0
    error = error[:2000]
    for attempts, ids in by_attempts.items():
        if attempts >= max_attempts:
            dead += _update_leased(
                ids,
                owner,
                {
                    "status": DEAD,
                    "attempts": attempts,
                    "last_error": f"gave up after {attempts} attempts: {error}"[:2000],
                    "leased_by": "",
                    "leased_until": None,
                    "dead_at": now,
                },
            )
            continue
        retried += _update_leased(
            ids,
            owner,
            {
                "attempts": attempts,
                "next_attempt_at": now + dt.timedelta(seconds=backoff_delay(attempts)),
                "last_error": error,
                "leased_by": "",
                "leased_until": None,
            },
        )
    return (retried, dead)


def mark_dead(
    ids: Sequence[int], error: str, *, owner: str | None, now: dt.datetime | None = None
) -> int:
    """Give up on these rows: ``dead`` with ``error`` (already free of secrets); return how many.

    ``dead_at`` records when (default: now). Only rows still pending (and
    leased to ``owner``, unless it is ``None``) change.
    """
    if not ids:
        return 0
    return _update_leased(
        ids,
        owner,
        {
            "status": DEAD,
            "attempts": _Raw("attempts + 1"),
            "last_error": error[:2000],
            "leased_by": "",
            "leased_until": None,
            "dead_at": now or timezone.now(),
        },
    )


def release(
    ids: Sequence[int],
    *,
    owner: str | None,
    until: dt.datetime | None = None,
    error: str | None = None,
) -> int:
    """Give leased rows back unharmed: no attempt counted, due at ``until`` (default now).

    ``error`` (already free of secrets), when given, becomes their ``last_error``:
    why they wait (refused credentials), for the admin and ``synerise_outbox show``.
    """
    if not ids:
        return 0
    assignments: dict[str, Any] = {
        "next_attempt_at": until or timezone.now(),
        "leased_by": "",
        "leased_until": None,
    }
    if error is not None:
        assignments["last_error"] = error[:2000]
    return _update_leased(ids, owner, assignments)


def pending_count() -> int:
    """Number of pending rows (due or not)."""
    count: int = OutboxEvent.objects.using(db_alias()).filter(status=PENDING).count()
    return count


def requeue(
    *,
    ids: Iterable[int] | None = None,
    dead: bool = True,
    action: str | None = None,
    since: dt.datetime | None = None,
) -> int:
    """Make rows pending and due now with attempts reset (``dead_at`` cleared); return how many.

    ``dead=True`` limits it to dead rows (the usual case); ``dead=False`` also
    takes sent rows (a deliberate resend). Pending rows are never touched, so a
    row a worker holds keeps its lease. ``ids``, ``action`` (exact) and
    ``since`` (created at or after; a naive datetime is in the current time
    zone) narrow the selection. ``last_error`` is kept until the next attempt
    replaces it, so the reason a row died stays visible.

    Payloads keep their ``time`` and ``eventSalt``, so a resend of something
    Synerise already has overwrites it rather than duplicating it.
    """
    queryset = OutboxEvent.objects.using(db_alias()).all()
    queryset = queryset.filter(status=DEAD) if dead else queryset.exclude(status=PENDING)
    if ids is not None:
        queryset = queryset.filter(id__in=list(ids))
    if action:
        queryset = queryset.filter(action=action)
    if since is not None:
        queryset = queryset.filter(created_at__gte=_db_time(since))
    count: int = queryset.update(
        status=PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        leased_by="",
        leased_until=None,
        sent_at=None,
        dead_at=None,
    )
    if count:
        logger.info("requeued %d outbox events", count)
    return count


_last_auto_purge = -math.inf
#: Seconds between two automatic purges by one flusher process.
AUTO_PURGE_SECONDS = 3600.0


def purge_if_due() -> dict[str, int] | None:
    """:func:`purge` old sent rows if this process has not done so for an hour; else ``None``.

    The flusher calls it once per pass, so sent rows older than
    ``RETAIN_SENT`` days go without a scheduled ``synerise_outbox purge``.
    Dead rows are never purged here: they wait for someone to look at them.
    """
    global _last_auto_purge
    now = time.monotonic()
    if now - _last_auto_purge < AUTO_PURGE_SECONDS:
        return None
    _last_auto_purge = now
    return purge()


def make_due(
    *,
    ids: Iterable[int] | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> list[int]:
    """Make pending rows that wait for a later attempt due now; return their ids.

    For an operator who fixed the cause of an outage and will not wait out
    the backoff. Attempts and ``last_error`` are kept. A row a worker holds
    right now (an unexpired lease) is left alone; ``ids``, ``action`` (exact)
    and ``since`` (created at or after) narrow the selection as in
    :func:`requeue`.
    """
    now = _db_time(now) if now is not None else timezone.now()
    queryset = (
        OutboxEvent.objects.using(db_alias())
        .filter(status=PENDING, next_attempt_at__gt=now)
        .exclude(leased_until__gt=now)
    )
    if ids is not None:
        queryset = queryset.filter(id__in=list(ids))
    if action:
        queryset = queryset.filter(action=action)
    if since is not None:
        queryset = queryset.filter(created_at__gte=_db_time(since))
    with transaction.atomic(using=db_alias()):
        chosen = sorted(queryset.values_list("id", flat=True))
        # The same conditions again: a row claimed meanwhile keeps its lease.
        OutboxEvent.objects.using(db_alias()).filter(
            id__in=chosen, status=PENDING, next_attempt_at__gt=now
        ).exclude(leased_until__gt=now).update(next_attempt_at=now, leased_by="", leased_until=None)
    if chosen:
        logger.info("made %d pending outbox events due now", len(chosen))
    return chosen


def purge(
    *,
    sent_older_than: dt.timedelta | None = None,
    dead_older_than: dt.timedelta | None = None,
    chunk_size: int = 5000,
) -> dict[str, int]:
    """Delete old sent rows (default: older than ``RETAIN_SENT`` days) and, if asked, dead ones.

    Sent rows count from ``sent_at``, dead rows from ``dead_at`` (from
    ``created_at`` for rows that died before ``dead_at`` was recorded), so an
    old event that died a moment ago is kept; ``dead_older_than=timedelta(0)``
    deletes every dead row. Pending rows are never deleted. Returns
    ``{"sent": n}``, plus ``"dead": n`` when ``dead_older_than`` is given.

    Deletes in chunks of ``chunk_size`` primary keys, each its own short
    statement, so the table is never locked for long and a purge of millions
    of rows can run beside the flusher. Raises ``ValueError`` for a negative
    age or a ``chunk_size`` below 1.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    for name, age in (("sent_older_than", sent_older_than), ("dead_older_than", dead_older_than)):
        if age is not None and age < dt.timedelta(0):
            raise ValueError(f"{name} must not be negative, not {age}")
    now = timezone.now()
    if sent_older_than is None:
        sent_older_than = dt.timedelta(days=synerise_settings.RETAIN_SENT)
    result = {
        "sent": _purge_chunks(
            Q(status=SENT, sent_at__lt=now - sent_older_than), "sent_at", chunk_size
        )
    }
    if dead_older_than is not None:
        condition = Q(status=DEAD)
        if dead_older_than:
            condition &= _died_before(now - dead_older_than)
        # Keyset on id alone: the condition spans two columns, and the few
        # dead rows are read through the (status, ...) index prefix anyway.
        result["dead"] = _purge_chunks(condition, None, chunk_size)
    if any(result.values()):
        logger.info("purged outbox: %s", ", ".join(f"{n} {status}" for status, n in result.items()))
    return result


# Dead rows written without dead_at (by hand, or by tests) have it NULL and count
# from created_at. Combine with status="dead".
def _died_since(cutoff: dt.datetime) -> Q:
    """Dead rows that died at or after ``cutoff``."""
    return Q(dead_at__gte=cutoff) | Q(dead_at__isnull=True, created_at__gte=cutoff)


def _died_before(cutoff: dt.datetime) -> Q:
    """Dead rows that died before ``cutoff`` (the complement of :func:`_died_since`)."""
    return Q(dead_at__lt=cutoff) | Q(dead_at__isnull=True, created_at__lt=cutoff)


def _purge_chunks(condition: Q, order_field: str | None, chunk_size: int) -> int:
    """Delete the rows matching ``condition``, in ``(order_field, id)`` order (``id`` if None)."""
    manager = OutboxEvent.objects.using(db_alias())
    fields = (order_field, "id") if order_field else ("id",)
    total = 0
    after: tuple[Any, ...] | None = None
    while True:
        queryset = manager.filter(condition)
        if after is not None and order_field:
            # Resume after the last chunk (keyset on the (status, field) index)
            # instead of from the start: deleted rows stay in the index until
            # vacuum, and walking past them again made each chunk slower.
            value, last_id = after
            queryset = queryset.filter(**{f"{order_field}__gte": value}).filter(
                Q(**{f"{order_field}__gt": value}) | Q(**{order_field: value, "id__gt": last_id})
            )
        elif after is not None:
            queryset = queryset.filter(id__gt=after[0])
        rows = list(queryset.order_by(*fields).values_list(*fields)[:chunk_size])
        if not rows:
            return total
        # The condition again: a row requeued between the SELECT and the DELETE
        # is pending now and must survive.
        deleted, _ = manager.filter(condition, id__in=[row[-1] for row in rows]).delete()
        total += deleted
        after = rows[-1]


@dataclass(frozen=True)
class Health:
    """How the outbox is doing, for monitoring (see :func:`health`).

    Attributes:
        pending: rows waiting for delivery (due now or backing off).
        dead: rows given up on, in total (until purged).
        oldest_pending_age: seconds since the oldest pending row was created,
            ``None`` when nothing is pending.
        last_sent_at: when Synerise last accepted an event, ``None`` when no
            sent row is retained (always with ``RETAIN_SENT = 0``: sent rows
            are deleted at once).
        last_sent_age: seconds since ``last_sent_at``.
        dead_last_day: rows that went dead in the last 24 hours.
        dropped: page visits and beacons not written because more than
            ``MAX_PENDING`` rows were pending (:func:`dropped_count`).

    Suggested alerts: ``oldest_pending_age`` above a few flush intervals plus
    the first retries (15 minutes for a ``--loop`` worker: the flusher is
    stopped or Synerise keeps failing); ``dead_last_day`` above zero (events
    are being rejected or given up on: read their ``last_error``), rather than
    ``dead``, which stays up until the dead rows are requeued or purged;
    ``last_sent_age`` large while ``pending`` is not zero (only with
    ``RETAIN_SENT`` above 0).
    """

    pending: int
    dead: int
    oldest_pending_age: float | None
    last_sent_at: dt.datetime | None
    last_sent_age: float | None = None
    dead_last_day: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (datetimes as ISO 8601 with their offset, ages in seconds)."""
        last_sent_at = self.last_sent_at
        if last_sent_at is not None and timezone.is_naive(last_sent_at):
            # USE_TZ = False: stored naive in TIME_ZONE; say which offset that was.
            last_sent_at = timezone.make_aware(last_sent_at, timezone.get_default_timezone())
        return {
            "pending": self.pending,
            "dead": self.dead,
            "dead_last_day": self.dead_last_day,
            "dropped": self.dropped,
            "oldest_pending_age": self.oldest_pending_age,
            "last_sent_at": last_sent_at.isoformat() if last_sent_at else None,
            "last_sent_age": self.last_sent_age,
        }


def health() -> Health:
    """Oldest pending age (seconds), pending and dead counts, recent dead, last successful send.

    Three indexed queries, cheap enough for a health endpoint polled every few
    seconds on a table of millions of rows (the dead rows, few, are counted
    through the status index). ``last_sent_at`` is only known while sent rows
    are retained (``RETAIN_SENT > 0``).
    """
    manager = OutboxEvent.objects.using(db_alias())
    now = timezone.now()
    pending = manager.filter(status=PENDING).aggregate(n=Count("id"), oldest=Min("created_at"))
    dead = manager.filter(status=DEAD).aggregate(
        n=Count("id"), recent=Count("id", filter=_died_since(now - dt.timedelta(days=1)))
    )
    last_sent = manager.filter(status=SENT).aggregate(last=Max("sent_at"))["last"]
    oldest = pending["oldest"]
    return Health(
        pending=int(pending["n"]),
        dead=int(dead["n"]),
        oldest_pending_age=max(0.0, (now - oldest).total_seconds()) if oldest else None,
        last_sent_at=last_sent,
        last_sent_age=max(0.0, (now - last_sent).total_seconds()) if last_sent else None,
        dead_last_day=int(dead["recent"]),
        dropped=dropped_count(),
    )


def stats() -> dict[str, Any]:
    """Counts per status and kind, recent activity and :func:`health`, JSON-ready.

    Keys: ``counts`` (``{status: {kind: n}}``, only non-zero entries),
    ``totals`` (``{status: n}`` for every status), ``sent_last_hour``,
    ``dead_last_day`` (rows that went dead in the last 24 hours, as in
    :attr:`Health.dead_last_day`),
    ``health`` (:meth:`Health.as_dict`) and ``database`` (the alias).

    ``counts`` groups the whole table: on millions of rows it takes a
    fraction of a second, fine for a command or a scrape every minute; use
    :func:`health` for anything polled more often.
    """
    alias = db_alias()
    manager = OutboxEvent.objects.using(alias)
    now = timezone.now()
    current = health()
    counts: dict[str, dict[str, int]] = {}
    totals = {status: 0 for status in OutboxEvent.Status.values}
    for row in manager.values("status", "kind").annotate(n=Count("id")).order_by():
        counts.setdefault(row["status"], {})[row["kind"]] = row["n"]
        totals[row["status"]] = totals.get(row["status"], 0) + row["n"]
    return {
        "database": alias,
        "counts": counts,
        "totals": totals,
        "sent_last_hour": manager.filter(
            status=SENT, sent_at__gte=now - dt.timedelta(hours=1)
        ).count(),
        "dead_last_day": current.dead_last_day,
        "health": current.as_dict(),
    }
