"""Tests of django_synerise.progress: a status line on terminals, nothing elsewhere."""

from __future__ import annotations

import io

from django.core.management.base import OutputWrapper

from django_synerise.progress import PassProgress, Progress, format_duration


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 42.4, 200, 7500)] == [
        "0 s",
        "42 s",
        "3 min 20 s",
        "2 h 5 min",
    ]
    assert format_duration(float("inf")) == "?"
    # The outbox's ages too (synerise_outbox stats): days, and not a minute before it is one.
    assert format_duration(59.9) == "59 s"
    assert format_duration(3 * 86_400 + 4 * 3600 + 59) == "3 d 4 h"


def test_draws_sent_remaining_rate_and_eta_on_a_terminal() -> None:
    out, clock = Tty(), Clock()
    progress = Progress(out, total=10_000, clock=clock)
    clock.now += 2
    progress.update(4_000)
    line = "sent 4,000 of 10,000, 6,000 remaining, 2,000 events/s, ETA 3 s"
    assert out.getvalue() == "\r" + line
    progress.finish()
    assert out.getvalue() == "\r" + line + "\r" + " " * len(line) + "\r"


def test_silent_when_not_a_terminal() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, total=10, clock=clock)
    clock.now += 5
    progress.update(5)
    progress.finish()
    assert out.getvalue() == ""


def test_short_jobs_and_fast_updates_draw_little() -> None:
    out, clock = Tty(), Clock()
    progress = Progress(out, total=None, clock=clock, delay=1.0, interval=0.5)
    progress.update(10)  # before the delay: nothing
    assert out.getvalue() == ""
    clock.now += 1.0
    progress.update(100)
    clock.now += 0.1
    progress.update(110)  # within the interval: not redrawn
    assert out.getvalue() == "\rsent 100, 100 events/s"
    progress.finish()
    out.truncate(0)
    progress.finish()  # nothing drawn since: nothing to clear
    assert out.getvalue().strip("\x00") == ""


def test_a_shorter_line_covers_the_longer_one() -> None:
    out, clock = Tty(), Clock()
    progress = Progress(out, total=None, verb="loaded", noun="items", clock=clock, delay=0)
    clock.now += 1
    progress.update(123_456)
    clock.now += 100
    progress.update(123_457)
    first, second = out.getvalue().split("\r")[1:]
    assert first == "loaded 123,456, 123,456 items/s"
    assert second.rstrip() == "loaded 123,457, 1,222 items/s"
    assert len(second) == len(first)


def test_writes_through_a_command_output_wrapper_without_newlines() -> None:
    raw, clock = Tty(), Clock()
    progress = Progress(OutputWrapper(raw), total=2, clock=clock, delay=0)
    clock.now += 1
    progress.update(1)
    assert "\n" not in raw.getvalue()
    assert raw.getvalue().startswith("\rsent 1 of 2, 1 remaining")


def test_pass_progress_draws_one_line_per_pass() -> None:
    from django_synerise.dispatch import FlushResult

    out = Tty()
    watch = PassProgress(out, delay=0.0, interval=0.0)
    first, second = FlushResult(due=10), FlushResult(due=4)
    first.sent = 5
    watch(first)
    second.sent = 1
    watch(second)  # a new pass: the first line is cleared, the second starts
    watch.finish()
    text = out.getvalue()
    assert "sent 5 of 10, 5 remaining" in text
    assert "sent 1 of 4, 3 remaining" in text
    assert text.index("sent 5 of 10") < text.index("\r ") < text.index("sent 1 of 4")
    assert text.endswith("\r")
