"""``manage.py demo``: migrate, seed, simulate shoppers, flush, and show what Synerise received.

Without ``SYNERISE_API_KEY`` the events go to django-synerise's local stand-in
for Synerise, started in this process on a free port; with a key they go to
the configured Synerise API (``SYNERISE_TRACKER_KEY`` is then needed too: the
recommendation events are sent with it).

Exits with status 1 when any event of this run was not delivered, or when
what arrived differs from what the simulated shoppers did.
"""

import collections
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max
from django.test import override_settings

from django_synerise.conf import synerise_settings
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise
from shop.simulation import HOST, Simulation

#: How the stand-in names the endpoints it serves, as paths.
STAND_IN_ENDPOINTS = {
    "v4-batch": "/v4/events/batch",
    "v4-custom": "/v4/events/custom",
    "v4-dedicated": "/v4/events/<type>",
    "transactions": "/v4/transactions",
    "transactions-batch": "/v4/transactions/batch",
    "ai-batch": "/events/v1/batch",
    "ai-single": "/events/v1/single/<type>",
    "ai-compat-batch": "/v4/events/ai-compat/batch",
    "ai-compat-single": "/v4/events/ai-compat/<type>",
    "clients-batch": "/v4/clients/batch",
    "catalog-items-batch": "/catalogs/bags/<id>/items/batch",
}

#: The endpoint the dispatcher sends each kind of outbox row to (AI events: see _outbox_endpoint).
OUTBOX_ENDPOINTS = {
    "event": "/v4/events/batch",
    "transaction": "/v4/transactions/batch",
    "ai": "/events/v1/batch",
    "profile": "/v4/clients/batch",
    "catalog": "/catalogs/bags/<id>/items/batch",
}

#: Outbox rows that are not events but profiles and catalog items, and the
#: stand-in's name of their endpoint. They carry no eventSalt: what arrived is
#: matched to this run's rows by content.
RECORD_ENDPOINTS = {"profile": "clients-batch", "catalog": "catalog-items-batch"}


def _outbox_endpoint(kind: str) -> str:
    """Where rows of ``kind`` go; AI events to the API ``AI_EVENTS_API`` names."""
    if kind == "ai" and synerise_settings.AI_EVENTS_API == "ai-compat":
        return STAND_IN_ENDPOINTS["ai-compat-batch"]
    return OUTBOX_ENDPOINTS[kind]


Key = tuple[str, str, str]  # (endpoint, type, action)


class Command(BaseCommand):
    help = (
        "Run the example shop's demo: migrate, seed products, simulate shoppers through the "
        "real middleware, hooks and beacon endpoint, flush the outbox and report what Synerise "
        "received. Uses a local Synerise stand-in unless SYNERISE_API_KEY is set."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--visitors", type=int, default=24, help="Simulated shoppers (default 24, at least 8)."
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="Seed of the shoppers' random choices."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["visitors"] < 8:
            raise CommandError("--visitors must be at least 8, so that every action happens.")
        started = time.monotonic()
        self.stdout.write(self.style.MIGRATE_HEADING("Setting up the shop"))
        call_command("migrate", interactive=False, verbosity=0)
        # Seeding saves the products: their catalog items are part of this run.
        start_id = OutboxEvent.objects.aggregate(last=Max("id"))["last"] or 0
        call_command("seed_shop", stdout=self.stdout)

        with self._synerise() as stand_in:
            counts = self._simulate(options["visitors"], options["seed"])
            rows = self._rows_since(start_id)
            counts.update(self._records(rows))
            self._flush(len(rows))
            received, earlier = self._received(rows, stand_in)
            problems = self._report(counts, rows, received, earlier, stand_in)

        elapsed = time.monotonic() - started
        if problems:
            for problem in problems:
                self.stderr.write(f"  - {problem}")
            raise CommandError(
                f"the demo did not deliver everything ({len(problems)} problem(s) above)",
                returncode=1,
            )
        # Counted as the table counts them: a merge record holds two profiles.
        total = sum(counts.values())
        self.stdout.write(
            self.style.SUCCESS(
                f"\nAll {total} events of this run were delivered, in {elapsed:.1f} s."
            )
        )

    @contextlib.contextmanager
    def _synerise(self) -> Iterator[LocalSynerise | None]:
        """Point the SYNERISE settings at a fresh stand-in, or check the real API's keys."""
        if not settings.SYNERISE_STAND_IN:
            # The shop's pages use the tracking code; the system checks only warn
            # (under --deploy) since they cannot see which templates use it.
            if not synerise_settings.TRACKER_KEY:
                raise CommandError(
                    'SYNERISE["TRACKER_KEY"] is not set: the shop\'s pages use '
                    "{% synerise_tracking_code %}, which renders nothing without it. "
                    'Set SYNERISE["TRACKER_KEY"] (SYNERISE_TRACKER_KEY in the environment).'
                )
            self.stdout.write(f"Synerise: {synerise_settings.API_BASE_URL} (SYNERISE_API_KEY set)")
            yield None
            return
        with LocalSynerise(catalogs={settings.SHOP_CATALOG: 1}) as server:
            overrides = {
                **settings.SYNERISE,
                "API_BASE_URL": server.url,
                "API_KEY": server.api_key,
                "TRACKER_KEY": server.tracker_key,
            }
            self.stdout.write(
                f"Synerise: a local stand-in at {server.url} (no SYNERISE_API_KEY set; "
                "set it to send to your workspace)"
            )
            with override_settings(SYNERISE=overrides):
                yield server

    def _simulate(self, visitors: int, seed: int | None) -> collections.Counter[str]:
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"\nSimulating {visitors} shoppers in this process with Django's test client "
                f"(no server listens on http://{HOST}/ meanwhile; `make run` serves the shop "
                "there to click through)"
            )
        )
        began = time.monotonic()
        simulation = Simulation(visitors=visitors, seed=seed)
        counts = simulation.run()
        did = ", ".join(f"{count} {action}" for action, count in sorted(counts.items()))
        self.stdout.write(f"  {did}")
        among = ", ".join(f"{count} {kind}" for kind, count in sorted(simulation.details.items()))
        self.stdout.write(f"  among them: {among}")
        self.stdout.write(f"  in {time.monotonic() - began:.1f} s")
        return counts

    def _rows_since(self, start_id: int) -> dict[int, dict[str, Any]]:
        """This run's outbox rows, as they were before the flush."""
        return {
            row["id"]: row
            for row in OutboxEvent.objects.filter(id__gt=start_id).values(
                "id", "kind", "batch_type", "action", "salt", "payload"
            )
        }

    @staticmethod
    def _items(row: dict[str, Any]) -> list[Any]:
        """The profiles or catalog items a record row sends (a merge row sends two)."""
        body = OutboxEvent(payload=row["payload"]).body
        return body if isinstance(body, list) else [body]

    def _records(self, rows: dict[int, dict[str, Any]]) -> collections.Counter[str]:
        """Profiles and catalog items this run enqueued (the shop's saves and logins), by action."""
        records: collections.Counter[str] = collections.Counter()
        for row in rows.values():
            if row["kind"] in RECORD_ENDPOINTS:
                records[row["action"]] += len(self._items(row))
        return records

    def _flush(self, count: int) -> None:
        pending = OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING).count()
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"\nFlushing the outbox: manage.py synerise_flush ({count} events from this "
                f"run, {pending} pending in all)"
            )
        )
        try:
            call_command("synerise_flush", stdout=self.stdout, stderr=self.stderr)
        except CommandError as error:
            # Synerise down or a key refused: the flusher stops with its own status;
            # the report below still says what arrived and what waits.
            self.stderr.write(f"synerise_flush: {error}")

    def _received(
        self, rows: dict[int, dict[str, Any]], stand_in: LocalSynerise | None
    ) -> tuple[collections.Counter[Key], int]:
        """What Synerise received of this run's events, and how many earlier ones came along."""
        received: collections.Counter[Key] = collections.Counter()
        if stand_in is None:
            # The real API tells us nothing back: count the rows it accepted (sent, or
            # deleted on sending when RETAIN_SENT is 0).
            not_sent = set(
                OutboxEvent.objects.filter(id__in=rows)
                .exclude(status=OutboxEvent.Status.SENT)
                .values_list("id", flat=True)
            )
            for row_id, row in rows.items():
                if row_id not in not_sent:
                    items = len(self._items(row)) if row["kind"] in RECORD_ENDPOINTS else 1
                    key = (_outbox_endpoint(row["kind"]), row["batch_type"], row["action"])
                    received[key] += items
            return received, 0
        # The stand-in records what it accepted; match it to this run by eventSalt
        # (v4 events, transactions) or correlation id (AI events, which carry no salt).
        salts = {row["salt"] for row in rows.values() if row["salt"]}
        correlations = {
            (row["batch_type"], OutboxEvent(payload=row["payload"]).body.get("correlationId"))
            for row in rows.values()
            if row["kind"] == "ai"
        }
        records: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        for row in rows.values():
            if row["kind"] in RECORD_ENDPOINTS:
                for item in self._items(row):
                    key = (RECORD_ENDPOINTS[row["kind"]], json.dumps(item, sort_keys=True))
                    records[key].append(row["action"])
        earlier = 0
        for event in stand_in.events:
            if event["endpoint"] in RECORD_ENDPOINTS.values():
                actions = records.get(
                    (event["endpoint"], json.dumps(event["body"], sort_keys=True))
                )
                if not actions:
                    earlier += 1
                    continue
                endpoint = STAND_IN_ENDPOINTS[event["endpoint"]]
                received[(endpoint, event["type"], actions.pop())] += 1
                continue
            ours = (
                event["salt"] in salts
                if event["salt"]
                else (event["type"], event["correlation"]) in correlations
            )
            if not ours:
                earlier += 1
                continue
            endpoint = STAND_IN_ENDPOINTS.get(event["endpoint"], event["endpoint"])
            received[(endpoint, event["type"], event["action"])] += 1
        return received, earlier

    def _report(
        self,
        counts: collections.Counter[str],
        rows: dict[int, dict[str, Any]],
        received: collections.Counter[Key],
        earlier: int,
        stand_in: LocalSynerise | None,
    ) -> list[str]:
        """Print the delivery table; return what went wrong (empty when nothing did)."""
        by_action: collections.Counter[str] = collections.Counter()
        keys: dict[str, Key] = {}
        for key, count in received.items():
            by_action[key[2]] += count
            keys.setdefault(key[2], key)
        table = []
        for action in sorted(set(counts) | set(by_action), key=lambda a: keys.get(a, ("~", a))):
            endpoint, event_type, _ = keys.get(action, ("(nothing received)", "-", action))
            table.append((endpoint, event_type, action, counts[action], by_action[action]))

        who = "the local stand-in" if stand_in is not None else "Synerise"
        self.stdout.write(
            self.style.MIGRATE_HEADING(f"\nWhat {who} received, by endpoint and event type")
        )
        headers = ("endpoint", "type", "action", "simulated", "received")
        total = ("total", "", "", sum(counts.values()), sum(by_action.values()))
        widths = [max(len(str(row[i])) for row in [headers, *table]) for i in range(5)]

        def format_row(row: tuple[Any, ...]) -> str:
            left = "  ".join(f"{row[i]!s:<{widths[i]}}" for i in range(3))
            return f"  {left}  {row[3]!s:>{widths[3]}}  {row[4]!s:>{widths[4]}}"

        self.stdout.write(format_row(headers))
        for row in table:
            text = format_row(row)
            self.stdout.write(text if row[3] == row[4] else self.style.ERROR(text))
        self.stdout.write(format_row(total))
        if earlier:
            self.stdout.write(f"  (and {earlier} events enqueued before this run)")
        if stand_in is not None:
            self.stdout.write(
                f"  {len(stand_in.requests)} HTTP requests, {stand_in.logins} login(s)"
            )

        problems = [
            f"{action}: simulated {simulated}, received {got}"
            for _, _, action, simulated, got in table
            if simulated != got
        ]
        statuses = collections.Counter(
            OutboxEvent.objects.filter(id__in=rows)
            .exclude(status=OutboxEvent.Status.SENT)
            .values_list("status", flat=True)
        )
        for status, count in sorted(statuses.items()):
            hint = (
                "see their last_error: manage.py synerise_outbox show ID, or the admin"
                if status == OutboxEvent.Status.DEAD
                else "a retry is scheduled: run manage.py synerise_flush again later"
            )
            problems.append(f"{count} events of this run are {status} ({hint})")
        return problems
