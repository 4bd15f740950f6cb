"""``manage.py synerise_flush``: send the outbox to Synerise (a thin shell over ``dispatch``)."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections
from django.db.utils import DatabaseError

from ...dispatch import Dispatcher, FlushResult, preview
from ...exceptions import AuthenticationError, SyneriseConfigurationError

#: The longest --interval accepted: a day between passes is already more than any
#: schedule needs, and far below what threading's waits can take.
MAX_INTERVAL = 86_400


def _count(value: Any, high: int | None) -> int:
    """A whole number from 1 (to ``high``); ``ValueError`` says what is allowed."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1 or (high is not None and number > high):
        allowed = f"between 1 and {high}" if high is not None else "1 or more"
        raise ValueError(f"must be a whole number {allowed}, not {value!r}")
    return number


def _interval(value: Any) -> float:
    """Finite seconds from 0 to :data:`MAX_INTERVAL`; ``ValueError`` says what is allowed.

    ``float()`` takes ``nan`` (a wait that returns at once: a busy loop) and
    ``inf`` (an ``OverflowError`` in the wait), so both are refused here.
    """
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_INTERVAL:
        raise ValueError(
            f"must be a number of seconds, zero or more and at most {MAX_INTERVAL} "
            f"(one day), not {value!r}"
        )
    return seconds


def _argument(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """``check`` as an argparse ``type``: its message, not "invalid <function> value"."""

    def convert(value: str) -> Any:
        try:
            return check(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{err}.") from err

    return convert


def parse_batch_size(value: Any) -> int:
    """``--batch-size``: 1 to 1000, Synerise's limit of events per request."""
    return _count(value, 1000)


def parse_max_events(value: Any) -> int:
    """``--max-events``: 1 or more."""
    return _count(value, None)


def parse_interval(value: Any) -> float:
    """``--interval``: finite seconds, 0 to :data:`MAX_INTERVAL`."""
    return _interval(value)


class Command(BaseCommand):
    help = (
        "Send pending outbox events to Synerise. Runs one pass by default; --loop keeps "
        "running until SIGTERM/SIGINT. Safe to run in several processes at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            metavar="N",
            type=_argument(parse_batch_size),
            default=None,
            help="Events per request (1-1000; default SYNERISE['BATCH_SIZE']).",
        )
        parser.add_argument(
            "--max-events",
            metavar="N",
            type=_argument(parse_max_events),
            default=None,
            help="Stop after handling this many events.",
        )
        parser.add_argument("--loop", action="store_true", help="Keep flushing until stopped.")
        parser.add_argument(
            "--interval",
            metavar="SECONDS",
            type=_argument(parse_interval),
            default=5.0,
            help="Seconds between passes with --loop when the outbox is empty (default 5, "
            f"at most {MAX_INTERVAL}).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show what would be sent; send nothing, change nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The parser checked the command line; call_command(batch_size=...) and
        # friends pass their values straight through, so check those here.
        checks = {
            "batch_size": ("--batch-size", parse_batch_size),
            "max_events": ("--max-events", parse_max_events),
            "interval": ("--interval", parse_interval),
        }
        for name, (flag, check) in checks.items():
            if options[name] is not None:
                try:
                    options[name] = check(options[name])
                except ValueError as err:
                    raise CommandError(f"{flag} {err}.") from err
        batch_size = options["batch_size"]
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
