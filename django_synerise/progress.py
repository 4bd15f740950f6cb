"""Live progress of long work on a terminal, and silence everywhere else.

:class:`Progress` redraws one line (``sent 12,000 of 100,000, 88,000 remaining,
4,100 events/s, ETA 21 s``) while a long job runs, when its output is a
terminal. Under cron, systemd, a pipe or a file (``isatty()`` false) it writes
nothing, so logs keep only the final summary. ``synerise_flush`` uses it; any
command that works through many records can::

    progress = Progress(self.stdout, total=count, verb="loaded", noun="items")
    for done in work():
        progress.update(done)
    progress.finish()
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import OutputWrapper

__all__ = ["PassProgress", "Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 20 s"``, ``"2 h 5 min"``, ``"3 d 4 h"``; ``"?"`` when unknown.

    Whole seconds, truncated: an outbox row 59.9 s old is not yet a minute old.
    """
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


class Progress:
    """One self-rewriting status line for a job of ``total`` records (``None``: unknown).

    Args:
        out: where to draw; a file-like object or a command's ``self.stdout``.
        total: how many records the job will handle, for "remaining" and the ETA.
        verb: what is done to a record (``"sent"``, ``"loaded"``).
        noun: what a record is called in the rate (``"events"`` gives ``events/s``).
        enabled: draw or not; default: whether ``out`` is a terminal.
        delay: seconds before the first line, so short jobs print nothing.
        interval: least seconds between two redraws.
        clock: monotonic seconds; injectable for tests.

    Never raises for a closed or odd stream: progress is a courtesy.
    """

    def __init__(
        self,
        out: Any,
        *,
        total: int | None = None,
        verb: str = "sent",
        noun: str = "events",
        enabled: bool | None = None,
        delay: float = 1.0,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.total = total
        self.verb = verb
        self.noun = noun
        if enabled is None:
            isatty = getattr(out, "isatty", None)
            enabled = bool(isatty()) if callable(isatty) else False
        self.enabled = enabled
        self.delay = delay
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._drawn_at: float | None = None
        self._width = 0

    def line(self, done: int, elapsed: float) -> str:
        """The status text for ``done`` records after ``elapsed`` seconds."""
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.total is None:
            return f"{self.verb} {done:,}, {rate:,.0f} {self.noun}/s"
        remaining = max(self.total - done, 0)
        eta = format_duration(remaining / rate) if rate > 0 else "?"
        return (
            f"{self.verb} {done:,} of {self.total:,}, {remaining:,} remaining, "
            f"{rate:,.0f} {self.noun}/s, ETA {eta}"
        )

    def update(self, done: int) -> None:
        """Redraw for ``done`` records handled so far (throttled; nothing when disabled)."""
        if not self.enabled:
            return
        now = self.clock()
        elapsed = now - self.started
        if elapsed < self.delay:
            return
        if self._drawn_at is not None and now - self._drawn_at < self.interval:
            return
        self._drawn_at = now
        text = self.line(done, elapsed)
        # Pad over what a longer previous line left behind.
        padded = text.ljust(self._width)
        self._width = len(text)
        self._write("\r" + padded)

    def finish(self) -> None:
        """End the line if one was drawn, so the next output starts on its own line."""
        if self.enabled and self._drawn_at is not None:
            self._write("\r" + " " * self._width + "\r")
            self._drawn_at = None
            self._width = 0

    def _write(self, text: str) -> None:
        try:
            if isinstance(self.out, OutputWrapper):
                self.out.write(text, ending="")
            else:
                self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):
            self.enabled = False


class PassProgress:
    """A flush's ``on_progress`` watcher: one :class:`Progress` line per pass.

    Called with each pass's result as its requests go out (anything with
    ``due`` and ``handled``); a new pass finishes the previous line and starts
    its own. Call :meth:`finish` when the flush is over.
    """

    def __init__(self, out: Any, *, delay: float = 1.0, interval: float = 0.5) -> None:
        self.out = out
        self.delay = delay
        self.interval = interval
        self._bar: Progress | None = None
        self._for: Any = None

    def __call__(self, result: Any) -> None:
        if self._bar is None or self._for is not result:
            self.finish()
            self._bar = Progress(
                self.out, total=result.due, delay=self.delay, interval=self.interval
            )
            self._for = result
        self._bar.update(result.handled)

    def finish(self) -> None:
        """End the current line, if any."""
        if self._bar is not None:
            self._bar.finish()
            self._bar = None
