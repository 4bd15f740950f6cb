"""In-process flush passes over real HTTP with a controllable clock (``time_machine``).

:class:`Harness` runs :class:`~django_synerise.dispatch.Dispatcher` passes with
the real client against a :class:`~django_synerise.testing.LocalSynerise`. A
pause for ``Retry-After`` moves the clock instead of sleeping, and
:meth:`Harness.drain` jumps the clock to the moment the next row falls due, so
retries, backoffs and outages cost no wall-clock time.
"""

from __future__ import annotations

import datetime as dt

import time_machine
from django.db.models import Min
from django.utils import timezone

from django_synerise import outbox
from django_synerise.dispatch import Dispatcher, FlushResult
from django_synerise.factory import build_client
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise


class Harness:
    """A stand-in, settings pointing at it, a controllable clock and a drain loop."""

    def __init__(self, server: LocalSynerise, clock: time_machine.Coordinates) -> None:
        self.server = server
        self.clock = clock
        self.sleeps: list[float] = []
        self.results: list[FlushResult] = []
        self.client = build_client()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.shift(dt.timedelta(seconds=seconds))

    def flush(self, **kwargs) -> FlushResult:
        result = Dispatcher(self.client, sleep=self.sleep, **kwargs).flush()
        self.results.append(result)
        return result

    def drain(self, max_passes: int = 200, **kwargs) -> None:
        """Run passes until nothing is pending, jumping the clock to each next due row."""
        for _ in range(max_passes):
            self.flush(**kwargs)
            due = OutboxEvent.objects.filter(status="pending").aggregate(at=Min("next_attempt_at"))
            if due["at"] is None:
                return
            if due["at"] > timezone.now():
                self.clock.move_to(due["at"] + dt.timedelta(milliseconds=1))
        raise AssertionError(f"still {outbox.pending_count()} pending after {max_passes} passes")


def settings_for(server: LocalSynerise, **overrides: object) -> dict[str, object]:
    """A ``SYNERISE`` dict pointing at ``server``, plus ``overrides``."""
    return {
        "API_BASE_URL": server.url,
        "API_KEY": server.api_key,
        "TRACKER_KEY": server.tracker_key,
        "RAISE_ERRORS": True,
        **overrides,
    }
