"""``manage.py synerise_flush``: send the outbox to Synerise (a thin shell over ``dispatch``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...conf import synerise_settings
from ...dispatch import Dispatcher, FlushResult, preview
from ...endpoints import EVENTS, endpoint_for
from ...exceptions import SyneriseConfigurationError
from ...progress import Progress
from .synerise_outbox import count_text

#: Exit status when Synerise could not be reached or nothing got through
#: (1: settings or credentials; 2: a wrong command line, as argparse has it).
EXIT_UNREACHABLE = 3

#: The longest --interval accepted: a day between passes is already more than any
#: schedule needs, and far below what threading's waits can take.
MAX_INTERVAL = 86_400


@contextlib.contextmanager
def _spoken_for_when_unconfigured(package_logger: logging.Logger) -> Iterator[None]:
    """Keep Python's last-resort handler from printing every failed request.

    Without any logging configured, each WARNING reaches stderr on its own: an
    outage or a refused key would print the same line per batch. The command
    then reports for itself, one line per kind of failure; a project that
    configures logging still gets every record where it sends them.
    """
    if package_logger.hasHandlers():
        yield
        return
    quiet = logging.NullHandler()
    package_logger.addHandler(quiet)
    try:
        yield
    finally:
        package_logger.removeHandler(quiet)


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
    """``--batch-size``: 1 to Synerise's limit of v4 events per request (1000)."""
    return _count(value, EVENTS.max_items)


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

    #: Seconds before a pass shows progress (shorter passes print only the summary),
    #: and between redraws.
    progress_delay = 1.0
    progress_interval = 0.5

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            metavar="N",
            type=_argument(parse_batch_size),
            default=None,
            help="v4 events per request (1-1000; default SYNERISE['BATCH_SIZE']).",
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
        self._bar: Progress | None = None
        self._bar_for: FlushResult | None = None
        try:
            dispatcher = Dispatcher(
                batch_size=batch_size,
                should_stop=stop.is_set,
                on_progress=self._progress if tty else None,
                # A wait a SIGTERM ends at once, not time.sleep().
                sleep=stop.wait,
            )
        except SyneriseConfigurationError as err:
            raise CommandError(str(err), returncode=1) from err

        def each_pass(result: FlushResult) -> None:
            if not tty and options["loop"] and (result.sent or result.retried or result.dead):
                self.stdout.write(result.summary())

        with _spoken_for_when_unconfigured(logging.getLogger("django_synerise")):
            total = dispatcher.run(
                loop=options["loop"],
                interval=options["interval"],
                max_events=options["max_events"],
                on_pass=each_pass,
                report=self.stderr.write,
            )
        if self._bar is not None:
            self._bar.finish()
        self.stdout.write(total.summary())
        self._explain(total, options["loop"])

    def _explain(self, total: FlushResult, loop: bool) -> None:
        """One line per kind of failure; a non-zero exit when the work could not be done."""
        for message, events in total.failures.items():
            self.stderr.write(f"{message} ({count_text(events, 'event')}, to be retried)")
        if total.refused:
            by_message: dict[str, list[str]] = {}
            for label, message in total.refused.items():
                by_message.setdefault(message, []).append(label)
            reasons = "; ".join(
                f"{' and '.join(labels)}: {message}" for message, labels in by_message.items()
            )
            raise CommandError(
                f"Synerise refused the credentials for {reasons}. These events wait in the "
                "outbox, unharmed, until the key is fixed.",
                returncode=1,
            )
        if total.unreachable and not loop:
            stopped = total.stopped_by == "unreachable"
            left = "?" if total.remaining is None else f"{total.remaining:,}"
            raise CommandError(
                (
                    f"Synerise looks down: the pass stopped after "
                    f"{synerise_settings.OUTAGE_FAILURES} failed requests in a row, leaving the "
                    "rest untried (no attempt charged)"
                    if stopped
                    else "Nothing was delivered: every request failed"
                )
                + f"; {left} events wait in the outbox for the next flush.",
                returncode=EXIT_UNREACHABLE,
            )

    def _progress(self, result: FlushResult) -> None:
        # One line per pass, redrawn as its requests go out (a new pass, a new line).
        if self._bar is None or self._bar_for is not result:
            if self._bar is not None:
                self._bar.finish()
            self._bar = Progress(
                self.stdout,
                total=result.due,
                delay=self.progress_delay,
                interval=self.progress_interval,
            )
            self._bar_for = result
        self._bar.update(result.handled)

    def _dry_run(self, max_events: int | None, batch_size: int | None) -> None:
        planned = preview(max_events=max_events, batch_size=batch_size)
        count = sum(request.count for request in planned)
        for request in planned:
            group = f" ({request.group})" if request.group else ""
            label = endpoint_for(request.endpoint).label
            self.stdout.write(
                f"would send {request.count} {label}{group} ({request.size} bytes) "
                f"to {request.path}"
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
