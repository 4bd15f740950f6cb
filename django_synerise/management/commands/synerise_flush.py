"""``manage.py synerise_flush``: send the outbox to Synerise (a thin shell over ``dispatch``)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections
from django.db.utils import DatabaseError

from ...dispatch import Dispatcher, FlushResult, preview
from ...exceptions import AuthenticationError, SyneriseConfigurationError


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Send pending outbox events to Synerise. Runs one pass by default; --loop keeps "
        "running until SIGTERM/SIGINT. Safe to run in several processes at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=_positive_int,
            default=None,
            help="Events per request (1-1000; default SYNERISE['BATCH_SIZE']).",
        )
        parser.add_argument(
            "--max-events",
            type=_positive_int,
            default=None,
            help="Stop after handling this many events.",
        )
        parser.add_argument("--loop", action="store_true", help="Keep flushing until stopped.")
        parser.add_argument(
            "--interval",
            type=float,
            default=5.0,
            help="Seconds between passes with --loop when the outbox is empty (default 5).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show what would be sent; send nothing, change nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size is not None and batch_size > 1000:
            raise CommandError("--batch-size must be between 1 and 1000 (Synerise's limit).")
        if options["interval"] < 0:
            raise CommandError("--interval must be zero or more seconds.")
        if options["dry_run"]:
            self._dry_run(options["max_events"], batch_size)
            return

        stop = threading.Event()
        previous = self._install_signal_handlers(stop)
        try:
            self._run(stop, batch_size, options)
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    def _run(self, stop: threading.Event, batch_size: int | None, options: dict[str, Any]) -> None:
        tty = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        started = time.monotonic()
        total = FlushResult()

        def progress(result: FlushResult) -> None:
            if tty:
                elapsed = max(time.monotonic() - started, 1e-9)
                self.stdout.write(
                    f"\rsent {total.sent + result.sent}, retried {total.retried + result.retried}, "
                    f"dead {total.dead + result.dead}, "
                    f"{(total.sent + result.sent) / elapsed:.0f} events/s",
                    ending="",
                )
                self.stdout.flush()

        def pause(seconds: float) -> None:
            # A pause for Retry-After waits on the stop event, not time.sleep(): a
            # SIGTERM must not wait out a pause of up to RATE_LIMIT_MAX_WAIT.
            stop.wait(seconds)

        try:
            dispatcher = Dispatcher(
                batch_size=batch_size, should_stop=stop.is_set, on_progress=progress, sleep=pause
            )
        except SyneriseConfigurationError as err:
            raise CommandError(str(err), returncode=1) from err

        remaining_budget = options["max_events"]
        while True:
            try:
                result = dispatcher.flush(max_events=remaining_budget)
            except AuthenticationError as err:
                raise CommandError(
                    f"Synerise refused the credentials: {err}", returncode=1
                ) from err
            except DatabaseError as err:
                if not options["loop"]:
                    raise
                # A dropped connection must not end a long-running worker: the
                # rows it held are released by their lease, the next pass reconnects.
                self.stderr.write(f"database error, reconnecting: {err.__class__.__name__}")
                close_old_connections()
                stop.wait(min(options["interval"], 1.0) or 0.1)
                continue
            total.add(result)
            if not tty and options["loop"] and (result.sent or result.retried or result.dead):
                self.stdout.write(result.summary())
            if remaining_budget is not None:
                remaining_budget -= result.sent + result.retried + result.dead + result.released
                if remaining_budget <= 0:
                    break
            if not options["loop"] or stop.is_set():
                break
            if result.stopped_by in ("drained", "rate_limited"):
                stop.wait(options["interval"])
                if stop.is_set():
                    break
            close_old_connections()
        if tty:
            self.stdout.write("")
        total.duration = time.monotonic() - started
        self.stdout.write(total.summary())

    def _dry_run(self, max_events: int | None, batch_size: int | None) -> None:
        planned = preview(max_events=max_events, batch_size=batch_size)
        count = sum(request.count for request in planned)
        for request in planned:
            kind = f" {request.batch_type}" if request.batch_type else ""
            self.stdout.write(
                f"would send {request.count} events ({request.size} bytes) to "
                f"{request.endpoint}{kind}"
            )
        self.stdout.write(f"dry run: {count} events in {len(planned)} requests; nothing sent")

    def _install_signal_handlers(self, stop: threading.Event) -> dict[int, Any]:
        """Make SIGTERM/SIGINT finish the request in flight, release leases, then exit."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: FrameType | None) -> None:
            if stop.is_set():
                # A second signal: the user means it.
                sys.exit(130)
            stop.set()

        return {
            signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)
        }
