"""``manage.py synerise_outbox``: look at and steer the outbox (a thin shell over ``outbox``).

Subcommands::

    synerise_outbox stats [--json]
    synerise_outbox requeue (--dead | --pending | --id ID ...) [--action ACTION] [--since DATE]
    synerise_outbox purge [--dead-older-than DAYS] [--chunk-size N]
    synerise_outbox show ID
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ... import outbox
from ...conf import synerise_settings
from ...models import OutboxEvent
from ...progress import format_duration


def format_age(seconds: float | None) -> str:
    """``"-"`` when there is no such row, else :func:`~django_synerise.progress.format_duration`."""
    return "-" if seconds is None else format_duration(seconds)


def parse_since(value: str) -> dt.datetime:
    """An ISO date (midnight) or datetime; naive means the current time zone.

    Aware when ``USE_TZ`` is on, naive otherwise (as Django compares datetimes then).
    """
    text = value.strip()
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            if day is not None:
                moment = dt.datetime.combine(day, dt.time.min)
    except ValueError:  # well-formed but impossible, e.g. 2024-02-30
        moment = None
    if moment is None:
        raise CommandError(
            f"--since must be an ISO 8601 date or datetime (2024-05-01 or "
            f"2024-05-01T12:00:00+02:00), not {value!r}."
        )
    if settings.USE_TZ and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    elif not settings.USE_TZ and timezone.is_aware(moment):
        moment = timezone.make_naive(moment, timezone.get_default_timezone())
    return moment


def parse_id(value: str, option: str) -> int:
    """A positive row id, or a :class:`CommandError` naming ``option``."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise CommandError(
            f"{option} must be a positive whole number (an outbox row id), not {value!r}."
        )
    return number


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids))


def parse_chunk_size(value: str) -> int:
    """``--chunk-size``: a whole number of rows, 1 or more, or a :class:`CommandError`."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise CommandError(
            f"--chunk-size must be a whole number of rows, 1 or more, not {value!r}."
        )
    return number


def days_text(days: float) -> str:
    """``"1 day"``, ``"2.5 days"``, ``"0 days"``."""
    return f"{days:g} day" if days == 1 else f"{days:g} days"


def count_text(count: int, noun: str) -> str:
    """``"1 dead event"``, ``"2 dead events"``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def parse_days(value: str, option: str) -> dt.timedelta:
    """A non-negative number of days (``1.5`` allowed), or a :class:`CommandError`."""
    try:
        days = float(value)
    except ValueError:
        days = math.nan
    if not math.isfinite(days) or days < 0:
        raise CommandError(f"{option} must be a number of days, zero or more, not {value!r}.")
    return dt.timedelta(days=days)


class Command(BaseCommand):
    help = (
        "Inspect and manage the Synerise outbox: stats, requeue dead events, purge old rows, "
        "show one event."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(
            dest="subcommand", required=True, metavar="{stats,requeue,purge,show}"
        )

        stats = subcommands.add_parser(
            "stats",
            help="Counts per status and kind, oldest pending age, recent activity.",
            description="Counts per status and kind, oldest pending age, events sent in the "
            "last hour, events that died in the last day, last successful send.",
        )
        stats.add_argument(
            "--json", action="store_true", help="Print JSON (for monitoring) instead of text."
        )

        requeue = subcommands.add_parser(
            "requeue",
            help="Make dead (or chosen) events pending again, or waiting ones due now.",
            description="Make events due now: dead or sent ones pending again with attempts "
            "reset; pending ones that back off after a failure due at once, attempts kept. "
            "They keep their time and eventSalt, so a resend overwrites rather than duplicates.",
        )
        requeue.add_argument(
            "--dead",
            action="store_true",
            help="Requeue dead events (narrow with --action/--since).",
        )
        requeue.add_argument(
            "--pending",
            action="store_true",
            help="Make pending events that wait for a retry due now, e.g. once an outage "
            "is over (narrow with --action/--since).",
        )
        requeue.add_argument(
            "--id",
            dest="ids",
            action="append",
            metavar="ID",
            help="Requeue this row (dead or sent; pending: due now); repeat for several.",
        )
        requeue.add_argument("--action", help="Only events with exactly this action.")
        requeue.add_argument(
            "--since",
            metavar="DATE",
            help="Only events created at or after this ISO date/datetime.",
        )

        purge = subcommands.add_parser(
            "purge",
            help="Delete sent events older than RETAIN_SENT days (and old dead ones).",
            description="Delete sent events older than SYNERISE['RETAIN_SENT'] days and, with "
            "--dead-older-than, events that went dead more than that many days ago. Pending "
            "events are never deleted. Deletes in chunks, so the table is never locked for long.",
        )
        purge.add_argument(
            "--dead-older-than",
            metavar="DAYS",
            help="Also delete events that went dead more than DAYS days ago (0: all dead events).",
        )
        purge.add_argument(
            "--chunk-size", metavar="N", default="5000", help="Rows per DELETE (default 5000)."
        )

        show = subcommands.add_parser(
            "show", help="Show one event as it is sent to Synerise, with its delivery state."
        )
        show.add_argument("id", metavar="ID", help="The outbox row id.")

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        if subcommand == "stats":
            self._stats(as_json=options["json"])
        elif subcommand == "requeue":
            self._requeue(options)
        elif subcommand == "purge":
            self._purge(options)
        else:
            self._show(parse_id(options["id"], "ID"))

    # -- stats -----------------------------------------------------------------

    def _stats(self, *, as_json: bool) -> None:
        data = outbox.stats()
        if as_json:
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True))
            return
        kinds = list(OutboxEvent.Kind.values)
        rows = [["status", *kinds, "total"]]
        for status in OutboxEvent.Status.values:
            per_kind = data["counts"].get(status, {})
            rows.append(
                [
                    status,
                    *(str(per_kind.get(kind, 0)) for kind in kinds),
                    str(data["totals"][status]),
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(
                    cell.ljust(width) if i == 0 else cell.rjust(width)
                    for i, (cell, width) in enumerate(zip(row, widths, strict=True))
                )
            )
        health = data["health"]
        last_sent = health["last_sent_at"]
        self.stdout.write("")
        self.stdout.write(f"oldest pending:        {format_age(health['oldest_pending_age'])}")
        self.stdout.write(
            f"last sent:             {last_sent or '-'}"
            + (f" ({format_age(health['last_sent_age'])} ago)" if last_sent else "")
        )
        self.stdout.write(f"sent in the last hour: {data['sent_last_hour']}")
        self.stdout.write(f"dead in the last day:  {data['dead_last_day']}")

    # -- requeue ---------------------------------------------------------------

    def _requeue(self, options: dict[str, Any]) -> None:
        ids = [parse_id(value, "--id") for value in options["ids"] or []]
        if not options["dead"] and not options["pending"] and not ids:
            raise CommandError(
                "Say which events to requeue: --dead for dead events, --pending for events "
                "waiting for a retry (both narrowed by --action and --since), or --id ID for "
                "particular rows."
            )
        action = options["action"]
        if action is not None and not action.strip():
            raise CommandError("--action must not be empty.")
        since = parse_since(options["since"]) if options["since"] is not None else None
        in_flight: list[int] = []
        if ids:
            found = dict(
                OutboxEvent.objects.using(outbox.db_alias())
                .filter(id__in=ids)
                .values_list("id", "status")
            )
            unknown = sorted(set(ids) - set(found))
            if unknown:
                raise CommandError(
                    f"No outbox event with id {', '.join(map(str, unknown))}; nothing requeued."
                )
            in_flight = sorted(pk for pk, status in found.items() if status == outbox.PENDING)
        due: list[int] = []
        if options["pending"] or in_flight:
            due = outbox.make_due(ids=ids or None, action=action, since=since)
            in_flight = sorted(set(in_flight) - set(due))
        count = 0
        if options["dead"] or ids:
            count = outbox.requeue(
                ids=ids or None, dead=options["dead"], action=action, since=since
            )
        if due:
            self.stdout.write(f"Due now (they were waiting for a retry): {_ids(due)}")
        if in_flight:
            self.stdout.write(f"Already due or being sent, left as they are: {_ids(in_flight)}")
        total = count + len(due)
        if total:
            self.stdout.write(f"Requeued {count_text(total, 'event')}; the next flush sends them.")
        else:
            self.stdout.write("Requeued 0 events.")

    # -- purge -----------------------------------------------------------------

    def _purge(self, options: dict[str, Any]) -> None:
        dead_older_than = None
        if options["dead_older_than"] is not None:
            dead_older_than = parse_days(options["dead_older_than"], "--dead-older-than")
        chunk_size = parse_chunk_size(str(options["chunk_size"]))
        result = outbox.purge(dead_older_than=dead_older_than, chunk_size=chunk_size)
        retain = synerise_settings.RETAIN_SENT
        self.stdout.write(
            f"Deleted {count_text(result['sent'], 'sent event')} older than {days_text(retain)}."
        )
        if dead_older_than is not None:
            days = dead_older_than.total_seconds() / 86400
            if days:
                dead = count_text(result["dead"], "event")
                self.stdout.write(f"Deleted {dead} dead for more than {days_text(days)}.")
            else:
                self.stdout.write(f"Deleted {count_text(result['dead'], 'dead event')}.")

    # -- show ------------------------------------------------------------------

    def _show(self, pk: int) -> None:
        try:
            row = OutboxEvent.objects.using(outbox.db_alias()).get(pk=pk)
        except OutboxEvent.DoesNotExist:
            raise CommandError(f"No outbox event with id {pk}.") from None
        try:
            payload = json.dumps(json.loads(row.payload), indent=2, ensure_ascii=False)
        except ValueError:
            payload = row.payload
        batch = row.batch_type
        lines = [
            f"Outbox event {row.pk}: {row.action} ({row.get_kind_display()}, {batch})",
            f"status:       {row.status}",
            f"attempts:     {row.attempts}",
            f"next attempt: {row.next_attempt_at.isoformat() if row.status == 'pending' else '-'}",
            f"created:      {row.created_at.isoformat()}",
            f"sent:         {row.sent_at.isoformat() if row.sent_at else '-'}",
            f"dead since:   {row.dead_at.isoformat() if row.dead_at else '-'}",
            f"client:       {row.client_key or '-'}",
            f"salt:         {row.salt or '-'}",
            f"last error:   {row.last_error or '-'}",
            f"payload ({row.size} bytes):",
            payload,
        ]
        self.stdout.write("\n".join(lines))
