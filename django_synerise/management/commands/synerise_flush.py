"""``manage.py synerise_flush``: send the outbox to Synerise (a thin shell over ``dispatch``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import dispatch
from ...dispatch import FlushOptionError, FlushResult
from ...endpoints import API_MAX_ITEMS, endpoint_for
from ...exceptions import SyneriseConfigurationError
from ...progress import PassProgress

#: Exit status when Synerise could not be reached or nothing got through
#: (1: settings or credentials; 2: a wrong command line, as argparse has it).
EXIT_UNREACHABLE = 3


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


def _argument(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """A :mod:`~django_synerise.dispatch` check as an argparse ``type``, with its message."""

    def convert(value: str) -> Any:
        try:
            return check(value)
        except FlushOptionError as err:
            raise argparse.ArgumentTypeError(f"{err.problem}.") from err

    return convert


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
            type=_argument(dispatch.check_batch_size),
            default=None,
            help=f"v4 events per request (1-{API_MAX_ITEMS}; default SYNERISE['BATCH_SIZE']).",
        )
        parser.add_argument(
            "--max-events",
            metavar="N",
            type=_argument(dispatch.check_max_events),
            default=None,
            help="Stop after handling this many events.",
        )
        parser.add_argument("--loop", action="store_true", help="Keep flushing until stopped.")
        parser.add_argument(
            "--interval",
            metavar="SECONDS",
            type=_argument(dispatch.check_interval),
            default=5.0,
            help="Seconds between passes with --loop when the outbox is empty (default 5, "
            f"at most {dispatch.MAX_INTERVAL}).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show what would be sent; send nothing, change nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["dry_run"]:
                self._dry_run(options["max_events"], options["batch_size"])
            else:
                with _stop_on_signals() as stop:
                    self._run(stop, options)
        except FlushOptionError as err:
            # call_command(batch_size=...) and friends bypass the parser's checks.
            flag = "--" + err.option.replace("_", "-")
            raise CommandError(f"{flag} {err.problem}.") from err
        except SyneriseConfigurationError as err:
            raise CommandError(str(err), returncode=1) from err

    def _run(self, stop: threading.Event, options: dict[str, Any]) -> None:
        tty = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        progress = PassProgress(
            self.stdout, delay=self.progress_delay, interval=self.progress_interval
        )

        def each_pass(result: FlushResult) -> None:
            if not tty and options["loop"] and (result.sent or result.retried or result.dead):
                self.stdout.write(result.summary())

        with _spoken_for_when_unconfigured(logging.getLogger("django_synerise")):
            total = dispatch.run(
                batch_size=options["batch_size"],
                max_events=options["max_events"],
                loop=options["loop"],
                interval=options["interval"],
                should_stop=stop.is_set,
                # A wait a SIGTERM ends at once, not time.sleep().
                sleep=stop.wait,
                on_progress=progress if tty else None,
                on_pass=each_pass,
                report=self.stderr.write,
            )
        progress.finish()
        self.stdout.write(total.summary())
        # One line per kind of failure; a non-zero exit when the work could not be done.
        for line in total.failure_lines():
            self.stderr.write(line)
        if refusal := total.refusal():
            raise CommandError(refusal, returncode=1)
        if not options["loop"] and (outage := total.outage()):
            raise CommandError(outage, returncode=EXIT_UNREACHABLE)

    def _dry_run(self, max_events: Any, batch_size: Any) -> None:
        planned = dispatch.preview(max_events=max_events, batch_size=batch_size)
        count = sum(request.count for request in planned)
        for request in planned:
            group = f" ({request.group})" if request.group else ""
            label = endpoint_for(request.endpoint).label
            self.stdout.write(
                f"would send {request.count} {label}{group} ({request.size} bytes) "
                f"to {request.path}"
            )
        self.stdout.write(f"dry run: {count} events in {len(planned)} requests; nothing sent")


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event SIGTERM/SIGINT set: the pass finishes the request in flight, releases its
    leases, then returns. A second signal exits at once (the user means it)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            sys.exit(130)
        stop.set()

    previous = {
        signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
