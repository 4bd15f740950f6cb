"""One flush pass: claim due rows, pack them into requests, send, record the outcome.

This is the only place that decides what a failure means for an event:

========================  ==========================================================
outcome of a request      what happens to its rows
========================  ==========================================================
2xx                       ``sent`` (or deleted when ``RETAIN_SENT`` is 0)
retryable (network, 5xx)  attempt counted; due again after backoff; ``dead`` after
                          ``MAX_ATTEMPTS``
rate limited (429/503)    released unharmed (no attempt counted), due after
                          ``Retry-After``; the pass pauses, then goes on
rejected (4xx)            split in halves and resent until the events Synerise refuses
                          are alone; only those go ``dead``, with the API's message
authentication failed     that endpoint's rows released unharmed; the pass goes on
                          with the other endpoints (the tracker key of the AI events
                          API may be wrong while the workspace key is fine), then
                          raises :class:`~django_synerise.exceptions.AuthenticationError`
========================  ==========================================================

A pass only claims rows that were due when it started, so an event that fails
is never retried within the same pass: retries wait for their backoff and a
later pass (``synerise_flush --loop``, cron, or the Celery task).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import close_old_connections
from django.db.utils import DatabaseError
from django.utils import timezone

from . import outbox, signals
from .conf import synerise_settings
from .endpoints import API_MAX_ITEMS, Endpoint, endpoint_for
from .exceptions import (
    AuthenticationError,
    RateLimitedError,
    RejectedError,
    RetryableError,
    SyneriseError,
)
from .factory import send_options
from .models import OutboxEvent
from .outbox import ClaimedEvent
from .progress import format_duration

if TYPE_CHECKING:
    from .client import SyneriseClient

__all__ = [
    "MAX_INTERVAL",
    "Dispatcher",
    "FlushOptionError",
    "FlushResult",
    "PlannedRequest",
    "check_batch_size",
    "check_interval",
    "check_max_events",
    "flush",
    "preview",
    "run",
]

#: The result fields that add up over passes (``--loop`` totals).
_COUNTERS = ("sent", "retried", "dead", "released", "requests", "rate_limited")

logger = logging.getLogger("django_synerise.dispatch")


#: The longest wait between passes of a loop: a day is more than any schedule
#: needs, and far below what threading's waits can take.
MAX_INTERVAL = 86_400


class FlushOptionError(ValueError):
    """A flush option out of range, raised before anything is claimed.

    ``option`` is its name (``"batch_size"``), ``problem`` what is allowed and
    what was given (``"must be a whole number between 1 and 1000, not 0"``).
    """

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"{option} {problem}")


def _whole_number(option: str, value: Any, high: int | None) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1 or (high is not None and number > high):
        allowed = f"between 1 and {high}" if high is not None else "1 or more"
        raise FlushOptionError(option, f"must be a whole number {allowed}, not {value!r}")
    return number


def check_batch_size(value: Any) -> int:
    """``batch_size`` (an int or its text): 1 to Synerise's limit of v4 events per request."""
    return _whole_number("batch_size", value, API_MAX_ITEMS)


def check_max_events(value: Any) -> int:
    """``max_events`` (an int or its text): 1 or more."""
    return _whole_number("max_events", value, None)


def check_interval(value: Any) -> float:
    """``interval`` (a number or its text): finite seconds from 0 to :data:`MAX_INTERVAL`.

    ``float()`` takes ``nan`` (a wait that returns at once: a busy loop) and
    ``inf`` (an ``OverflowError`` in the wait), so both are refused.
    """
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_INTERVAL:
        raise FlushOptionError(
            "interval",
            f"must be a number of seconds, zero or more and at most {MAX_INTERVAL} "
            f"(one day), not {value!r}",
        )
    return seconds


@dataclass
class FlushResult:
    """What one pass did. ``remaining`` is the number of pending rows after the pass."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0
    requests: int = 0
    rate_limited: int = 0
    remaining: int | None = None
    duration: float = 0.0
    stopped_by: str = "drained"
    #: Rows due when the pass started (within ``max_events``); counted only for
    #: an ``on_progress`` watcher, which shows what is left and an ETA.
    due: int | None = None
    #: Failed requests that may work later (no answer, 5xx ...), by what went
    #: wrong (the error's message, secrets removed): how many events each held.
    failures: dict[str, int] = field(default_factory=dict)
    #: Endpoints whose credentials Synerise refused, by label (``"v4 events"``):
    #: the error's message, secrets removed. Their rows wait, unharmed.
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def unreachable(self) -> bool:
        """Whether Synerise could not be reached: the pass stopped for it, or nothing got through."""
        return self.stopped_by == "unreachable" or (self.sent == 0 and bool(self.failures))

    @property
    def events_per_second(self) -> float:
        """Sent events per second of the pass."""
        return self.sent / self.duration if self.duration > 0 else 0.0

    @property
    def handled(self) -> int:
        """Rows this pass is done with: recorded (sent, retried, dead) or released."""
        return self.sent + self.retried + self.dead + self.released

    def add(self, other: FlushResult) -> None:
        """Accumulate another pass into this one (for ``--loop`` totals)."""
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.duration += other.duration
        self.remaining = other.remaining
        self.stopped_by = other.stopped_by
        for message, events in other.failures.items():
            self.failures[message] = self.failures.get(message, 0) + events
        self.refused.update(other.refused)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: the counters, ``remaining``, ``duration`` (ms precision), ``stopped_by``."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        data["remaining"] = self.remaining
        data["duration"] = round(self.duration, 3)
        data["stopped_by"] = self.stopped_by
        data["failures"] = dict(self.failures)
        data["refused"] = dict(self.refused)
        return data

    def summary(self) -> str:
        """``sent N, retried N, dead N, remaining N in S s (R events/s)``."""
        remaining = "?" if self.remaining is None else str(self.remaining)
        return (
            f"sent {self.sent}, retried {self.retried}, dead {self.dead}, "
            f"remaining {remaining} in {self.duration:.2f} s "
            f"({self.events_per_second:.0f} events/s)"
        )

    def failure_lines(self) -> list[str]:
        """One sentence per kind of failed request: ``"<what went wrong> (N events, to be retried)"``."""
        return [
            f"{message} ({events} event{'' if events == 1 else 's'}, to be retried)"
            for message, events in self.failures.items()
        ]

    def refusal(self) -> str | None:
        """A sentence naming the endpoints whose credentials Synerise refused, or ``None``."""
        if not self.refused:
            return None
        by_message: dict[str, list[str]] = {}
        for label, message in self.refused.items():
            by_message.setdefault(message, []).append(label)
        reasons = "; ".join(
            f"{' and '.join(labels)}: {message}" for message, labels in by_message.items()
        )
        return (
            f"Synerise refused the credentials for {reasons}. These events wait in the "
            "outbox, unharmed, until the key is fixed."
        )

    def outage(self) -> str | None:
        """A sentence saying Synerise could not be reached (:attr:`unreachable`), or ``None``."""
        if not self.unreachable:
            return None
        left = "?" if self.remaining is None else f"{self.remaining:,}"
        what = (
            f"Synerise looks down: the pass stopped after {synerise_settings.OUTAGE_FAILURES} "
            "failed requests in a row, leaving the rest untried (no attempt charged)"
            if self.stopped_by == "unreachable"
            else "Nothing was delivered: every request failed"
        )
        return f"{what}; {left} events wait in the outbox for the next flush."


@dataclass(frozen=True)
class PlannedRequest:
    """One request a pass would send (``--dry-run``).

    ``endpoint`` is the row's name in :data:`~django_synerise.endpoints.ENDPOINTS`,
    ``group`` the key its items share (the AI event type; ``""`` for endpoints
    that mix), ``path`` where it would go.
    """

    endpoint: str
    group: str
    path: str
    count: int
    size: int
    ids: list[int] = field(repr=False)


def item_limit(endpoint: Endpoint, batch_size: int | None = None) -> int:
    """Items per request to ``endpoint``; ``batch_size`` overrides ``BATCH_SIZE`` where it applies."""
    if batch_size is not None and endpoint.items_setting == "BATCH_SIZE":
        return min(batch_size, endpoint.max_items or batch_size)
    return endpoint.item_limit(synerise_settings)


def pack(
    rows: Sequence[ClaimedEvent], batch_size: int | None = None
) -> Iterator[tuple[Endpoint, str, list[ClaimedEvent]]]:
    """Group rows by endpoint and group key; cut each group into requests within the limits.

    Yields ``(endpoint, group, rows)``, one per request, with the endpoint's
    item and byte limits (:mod:`~django_synerise.endpoints`) kept and the
    order within a group kept. A row too large for any request cannot
    exist: enqueue refuses it.
    """
    groups: dict[tuple[str, str], list[ClaimedEvent]] = {}
    for row in rows:
        endpoint = endpoint_for(row.kind)
        groups.setdefault((endpoint.name, endpoint.group_key(row.batch_type)), []).append(row)
    for (name, group), members in groups.items():
        endpoint = endpoint_for(name)
        max_count = item_limit(endpoint, batch_size)
        max_bytes = endpoint.byte_limit(synerise_settings)
        chunk: list[ClaimedEvent] = []
        chunk_bytes = endpoint.wrapper_bytes
        for row in members:
            # +1 for the comma between items.
            if chunk and (len(chunk) >= max_count or chunk_bytes + row.size + 1 > max_bytes):
                yield endpoint, group, chunk
                chunk, chunk_bytes = [], endpoint.wrapper_bytes
            chunk.append(row)
            chunk_bytes += row.size + 1
        if chunk:
            yield endpoint, group, chunk


#: ``api_request_finished``'s ``outcome`` of a failed request, by error (first match).
_OUTCOMES: dict[type[SyneriseError], str] = {
    AuthenticationError: "auth",
    RateLimitedError: "rate_limited",
    RejectedError: "rejected",
    RetryableError: "retry",
}


class _Abort(Exception):
    """Synerise asked us to slow down: release what is left, pause the pass."""

    def __init__(self, error: RateLimitedError) -> None:
        self.error = error
        super().__init__(str(error))


class _Unreachable(Exception):
    """``OUTAGE_FAILURES`` requests in a row failed: Synerise is down for now."""


class _Refused(Exception):
    """One endpoint refused our credentials; the others may still take their events."""

    def __init__(self, error: AuthenticationError) -> None:
        self.error = error
        super().__init__(str(error))


class Dispatcher:
    """Runs flush passes with one client and one lease owner.

    ``should_stop`` is polled between requests: when it returns true the pass
    finishes the request in flight, releases what it has not sent and returns
    (``stopped_by="stop"``). ``sleep`` is injectable so tests control time;
    a command passes a wait that a signal interrupts.
    """

    def __init__(
        self,
        client: SyneriseClient | None = None,
        *,
        owner: str | None = None,
        batch_size: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_progress: Callable[[FlushResult], None] | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if client is None:
            from .factory import build_client

            client = build_client()
        self.client = client
        self.owner = owner or outbox.make_owner()
        self.batch_size = check_batch_size(batch_size or synerise_settings.BATCH_SIZE)
        self.should_stop = should_stop or (lambda: False)
        self.on_progress = on_progress
        self.sleep = sleep
        self._lease_deadline = timezone.now()
        self._refused: dict[str, AuthenticationError] = {}
        self._failures_in_a_row = 0

    # -- one pass -----------------------------------------------------------

    def flush(self, *, max_events: int | None = None) -> FlushResult:
        """Deliver the rows that are due now, then return what happened.

        Stops when nothing due is left, after ``max_events`` rows, when
        ``should_stop()`` turns true, when Synerise asks for a pause longer
        than ``RATE_LIMIT_MAX_WAIT``, or after ``OUTAGE_FAILURES`` failed
        requests in a row (``stopped_by="unreachable"``: the rows not tried are
        left due, no attempt charged). Raises
        :class:`~django_synerise.exceptions.AuthenticationError` when an
        endpoint refused the credentials, after the other endpoints had their
        events sent; the refused endpoint's rows wait unharmed, the reason in
        their ``last_error``.
        """
        result = self._pass(max_events)
        if self._refused:
            raise next(iter(self._refused.values()))
        return result

    def _pass(self, max_events: int | None) -> FlushResult:
        """:meth:`flush` without raising for refused credentials (see ``result.refused``)."""
        result = FlushResult()
        started = time.monotonic()
        pass_start = timezone.now()
        handled = 0
        if self.on_progress is not None:
            result.due = _due_count(pass_start, max_events)
        # Endpoints that refused the credentials in this pass: their rows are
        # released without another try; flush() raises once the rest is sent.
        self._refused = {}
        self._failures_in_a_row = 0
        # The last row claimed: each claim resumes its walk behind it.
        after: ClaimedEvent | None = None
        # Rows others may wait for were claimed: the walk passed their waiters by,
        # so it starts over once at the end (waiters of sent rows are due then).
        rewalk = False
        try:
            while True:
                if self.should_stop():
                    result.stopped_by = "stop"
                    break
                limit = self.batch_size
                if max_events is not None:
                    limit = min(limit, max_events - handled)
                    if limit <= 0:
                        result.stopped_by = "max_events"
                        break
                # Taken before the claim, so never later than the lease it grants.
                self._lease_deadline = self._deadline()
                rows = outbox.claim(limit, owner=self.owner, due_before=pass_start, after=after)
                if not rows:
                    if rewalk:
                        rewalk, after = False, None
                        continue
                    result.stopped_by = "drained"
                    break
                after = rows[-1]
                rewalk = rewalk or any(endpoint_for(row.kind).awaited for row in rows)
                handled += len(rows)
                try:
                    self._deliver(rows, result)
                except _Abort as abort:
                    wait = self._pause_for(abort.error)
                    if wait > float(synerise_settings.RATE_LIMIT_MAX_WAIT) or self.should_stop():
                        result.stopped_by = "rate_limited"
                        break
                    logger.info("Synerise asked to slow down; pausing %.1f s", wait)
                    self.sleep(wait)
                    # The released rows fell due during the pause: take them in this pass.
                    pass_start = timezone.now()
                    after = None
                except _Unreachable:
                    result.stopped_by = "unreachable"
                    break
            if self._refused:
                result.stopped_by = "auth"
        finally:
            result.duration = time.monotonic() - started
            try:
                result.remaining = outbox.pending_count()
            except Exception:  # the database may be what failed
                result.remaining = None
            fields = result.as_dict()
            logger.log(
                # An idle pass (--loop polls every few seconds) is only worth DEBUG.
                logging.INFO if result.requests or result.released else logging.DEBUG,
                "flush pass: %s",
                " ".join(f"{name}={value}" for name, value in fields.items()),
                extra={"synerise_flush": {**fields, "owner": self.owner}},
            )
            signals.send_robust(signals.flush_finished, OutboxEvent, result=result)
        return result

    def _deadline(self) -> dt.datetime:
        """When to stop starting requests for the rows about to be claimed.

        The lease's end, minus the longest a request may take (connect + read
        timeout), so that no request is still in flight when the rows fall due
        for other workers; at most half the lease is kept back, so that a lease
        shorter than the timeouts still lets requests go.
        """
        lease = float(synerise_settings.LEASE_SECONDS)
        connect, read = synerise_settings.TIMEOUT
        margin = min(float(connect) + float(read), lease / 2)
        return timezone.now() + dt.timedelta(seconds=lease - margin)

    def _pause_for(self, error: SyneriseError) -> float:
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return max(0.0, float(error.retry_after))
        return outbox.backoff_delay(1)

    # -- delivery -----------------------------------------------------------

    def _deliver(self, rows: list[ClaimedEvent], result: FlushResult) -> None:
        """Send claimed rows; on abort release every row not yet recorded."""
        unrecorded = {row.id for row in rows}
        try:
            for endpoint, group, chunk in pack(rows, self.batch_size):
                if endpoint.name not in self._refused:
                    try:
                        self._send(endpoint, group, chunk, result, unrecorded)
                    except _Refused as refused:
                        self._refused[endpoint.name] = refused.error
                        result.refused[endpoint.label] = self.client.redact(refused.error.message)
                        logger.error(
                            "Synerise refused the credentials for %s; their rows wait, the "
                            "other endpoints go on: %s",
                            endpoint.label,
                            self.client.redact(str(refused.error)),
                        )
                if endpoint.name in self._refused:
                    # Due again next pass, unharmed; the admin shows why they wait.
                    ids = sorted(unrecorded.intersection(row.id for row in chunk))
                    reason = self.client.redact(str(self._refused[endpoint.name]))
                    result.released += outbox.release(ids, owner=self.owner, error=reason)
                    unrecorded.difference_update(ids)
                if self.on_progress is not None:
                    self.on_progress(result)
                if self.should_stop() and unrecorded:
                    result.stopped_by = "stop"
                    break
        except _Abort as abort:
            result.rate_limited += 1
            until = timezone.now() + dt.timedelta(seconds=self._pause_for(abort.error))
            result.released += outbox.release(sorted(unrecorded), owner=self.owner, until=until)
            unrecorded.clear()
            raise
        except _Unreachable:
            # Not tried, so not charged: due at once for the next pass.
            result.released += outbox.release(sorted(unrecorded), owner=self.owner)
            unrecorded.clear()
            raise
        except BaseException:
            # Anything unexpected (KeyboardInterrupt, a database error): give the
            # rows back now rather than leaving them to the lease timeout.
            if unrecorded:
                try:
                    result.released += outbox.release(sorted(unrecorded), owner=self.owner)
                except Exception:
                    logger.warning(
                        "could not release %d leased rows; they become due when the lease expires",
                        len(unrecorded),
                    )
            raise
        if unrecorded:
            result.released += outbox.release(sorted(unrecorded), owner=self.owner)

    def _timed_post(self, endpoint: Endpoint, group: str, chunk: Sequence[ClaimedEvent]) -> None:
        """One request for ``chunk``, announced with ``api_request_finished`` (duration, outcome)."""
        outcome = "error"
        started = time.monotonic()
        try:
            self.client.send(endpoint, [row.payload for row in chunk], group=group)
            outcome = "sent"
        except SyneriseError as err:
            for error_type, name in _OUTCOMES.items():
                if isinstance(err, error_type):
                    outcome = name
                    break
            raise
        finally:
            signals.send_robust(
                signals.api_request_finished,
                OutboxEvent,
                endpoint=endpoint.name,
                kind=endpoint.name,
                batch_type=group,
                count=len(chunk),
                duration=time.monotonic() - started,
                outcome=outcome,
            )

    def _send(
        self,
        endpoint: Endpoint,
        group: str,
        chunk: list[ClaimedEvent],
        result: FlushResult,
        unrecorded: set[int],
    ) -> None:
        if timezone.now() >= self._lease_deadline:
            # The lease could run out before this request ends, and another worker
            # may already own these rows (their lease expired while earlier requests
            # were slow). Leave them unrecorded: the end of _deliver releases those
            # still ours; sending them could deliver them twice.
            logger.warning(
                "the lease of %d %s ran out before they were sent; "
                "they are due again for the next pass",
                len(chunk),
                endpoint.label,
            )
            return
        ids = [row.id for row in chunk]
        result.requests += 1
        try:
            self._timed_post(endpoint, group, chunk)
        except AuthenticationError as err:
            raise _Refused(err) from err
        except RateLimitedError as err:
            raise _Abort(err) from err
        except RejectedError as err:
            if len(chunk) > 1:
                # Synerise refuses a whole batch for one bad event: halve until
                # the bad ones are alone, so the good ones still go out.
                middle = len(chunk) // 2
                self._send(endpoint, group, chunk[:middle], result, unrecorded)
                self._send(endpoint, group, chunk[middle:], result, unrecorded)
                return
            message = self.client.redact(str(err))
            result.dead += outbox.mark_dead(ids, message, owner=self.owner)
            unrecorded.difference_update(ids)
            logger.warning("event %s rejected by Synerise: %s", ids[0], message)
            signals.send_robust(
                signals.events_dead, OutboxEvent, ids=ids, error=message, kind=chunk[0].kind
            )
            return
        except SyneriseError as err:
            # Retryable (network, 5xx), or an unclassified API error: safest is to retry.
            message = self.client.redact(str(err))
            retried, dead = outbox.mark_retry(chunk, message, owner=self.owner)
            result.retried += retried
            result.dead += dead
            unrecorded.difference_update(ids)
            self._announce_retry(endpoint, chunk, message, retried, dead)
            if isinstance(err, RetryableError):
                logger.warning(
                    "request of %d %s failed, will retry: %s", len(chunk), endpoint.label, message
                )
                kind = self.client.redact(err.message)
                result.failures[kind] = result.failures.get(kind, 0) + len(chunk)
                self._failures_in_a_row += 1
                limit = int(synerise_settings.OUTAGE_FAILURES)
                if limit and self._failures_in_a_row >= limit:
                    raise _Unreachable from err
            return
        self._failures_in_a_row = 0
        result.sent += outbox.mark_sent(ids, owner=self.owner)
        unrecorded.difference_update(ids)
        signals.send_robust(
            signals.events_sent,
            OutboxEvent,
            ids=ids,
            endpoint=endpoint.name,
            batch_type=group,
            kind=endpoint.name,
        )

    def _announce_retry(
        self,
        endpoint: Endpoint,
        chunk: Sequence[ClaimedEvent],
        message: str,
        retried: int,
        dead: int,
    ) -> None:
        """``events_retried`` for the rows due again, ``events_dead`` for those out of attempts."""
        limit = synerise_settings.MAX_ATTEMPTS
        kind = endpoint.name
        if retried:
            retried_ids = [row.id for row in chunk if row.attempts + 1 < limit]
            signals.send_robust(
                signals.events_retried,
                OutboxEvent,
                ids=retried_ids,
                endpoint=kind,
                kind=kind,
                error=message,
            )
        if dead:
            dead_ids = [row.id for row in chunk if row.attempts + 1 >= limit]
            signals.send_robust(
                signals.events_dead, OutboxEvent, ids=dead_ids, error=message, kind=kind
            )

    # -- many passes --------------------------------------------------------

    def run(
        self,
        *,
        loop: bool = False,
        interval: float = 5.0,
        max_events: int | None = None,
        on_pass: Callable[[FlushResult], None] | None = None,
        report: Callable[[str], None] | None = None,
    ) -> FlushResult:
        """One pass, or with ``loop`` passes until ``should_stop()``; return the totals.

        Never raises for refused credentials: the totals say so in ``refused``
        (the loop ends there, since waiting does not fix a key). Between passes
        a loop waits ``interval`` seconds (through ``sleep``) when nothing due
        was left or Synerise asked to slow down, and goes straight on
        otherwise. While Synerise cannot be reached (:attr:`FlushResult.unreachable`)
        the wait doubles, up to ``OUTAGE_BACKOFF_MAX``; ``report`` hears
        "down" once when that starts and "up again" once when a pass gets
        through. A database error ends a single pass with the error; a loop
        outlives it (the connection is re-opened on the next pass; the rows it
        held are released by their lease) and reports it. ``max_events``
        bounds the rows handled over all passes; ``on_pass`` sees each pass.
        After each pass, old sent rows are purged when due (:func:`purge_if_due`).
        """
        started = time.monotonic()
        total = FlushResult()
        budget = max_events
        down_since: float | None = None
        outage_wait = interval
        while True:
            try:
                result = self._pass(budget)
            except DatabaseError as err:
                if not loop:
                    raise
                if report is not None:
                    report(f"database error, reconnecting: {err.__class__.__name__}")
                close_old_connections()
                self.sleep(min(interval, 1.0) or 0.1)
                if self.should_stop():
                    break
                continue
            total.add(result)
            purge_if_due()
            if on_pass is not None:
                on_pass(result)
            wait = interval if result.stopped_by in ("drained", "rate_limited") else 0.0
            if loop and result.unreachable:
                if down_since is None:
                    down_since = time.monotonic()
                    outage_wait = max(interval, 1.0)
                    self._say(
                        report,
                        logging.WARNING,
                        f"Synerise looks down ({_reasons(result)}); trying less often",
                    )
                else:
                    outage_wait = min(outage_wait * 2, float(synerise_settings.OUTAGE_BACKOFF_MAX))
                wait = outage_wait
            elif loop and down_since is not None and result.sent:
                down_for = format_duration(time.monotonic() - down_since)
                self._say(report, logging.INFO, f"Synerise is up again after {down_for}")
                down_since = None
            if budget is not None:
                budget -= result.handled
                if budget <= 0:
                    break
            if not loop or self.should_stop() or result.refused:
                break
            if wait:
                if loop and down_since is not None and report is not None:
                    logger.info("next try in %s", format_duration(wait))
                self.sleep(wait)
                if self.should_stop():
                    break
            close_old_connections()
        total.duration = time.monotonic() - started
        return total

    @staticmethod
    def _say(report: Callable[[str], None] | None, level: int, message: str) -> None:
        logger.log(level, message)
        if report is not None:
            report(message)


def flush(
    *,
    client: SyneriseClient | None = None,
    batch_size: int | None = None,
    max_events: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[FlushResult], None] | None = None,
) -> FlushResult:
    """Run one flush pass with a client built from settings (or the one given).

    This is what the Celery task calls. Safe to run in many processes at once:
    each claims disjoint rows. Then purges old sent rows when due
    (:func:`purge_if_due`). Raises
    :class:`~django_synerise.exceptions.AuthenticationError` for refused
    credentials (see :meth:`Dispatcher.flush`).
    """
    dispatcher = Dispatcher(
        client, batch_size=batch_size, should_stop=should_stop, on_progress=on_progress
    )
    result = dispatcher.flush(max_events=max_events)
    purge_if_due()
    return result


def run(
    *,
    batch_size: Any = None,
    max_events: Any = None,
    loop: bool = False,
    interval: Any = 5.0,
    client: SyneriseClient | None = None,
    should_stop: Callable[[], bool] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    on_progress: Callable[[FlushResult], None] | None = None,
    on_pass: Callable[[FlushResult], None] | None = None,
    report: Callable[[str], None] | None = None,
) -> FlushResult:
    """What ``manage.py synerise_flush`` runs: one pass, or passes until stopped.

    Checks the options first (:func:`check_batch_size`, :func:`check_max_events`,
    :func:`check_interval`; they accept their text too) and raises
    :class:`FlushOptionError` before anything is claimed; raises
    :class:`~django_synerise.exceptions.SyneriseConfigurationError` when the
    settings cannot build a client. Then :meth:`Dispatcher.run`, which purges
    old sent rows when due, like :func:`flush`, and never raises for refused
    credentials: the totals say so in ``refused``.
    """
    max_events = None if max_events is None else check_max_events(max_events)
    interval = check_interval(interval)
    dispatcher = Dispatcher(
        client,
        batch_size=None if batch_size is None else check_batch_size(batch_size),
        should_stop=should_stop,
        on_progress=on_progress,
        sleep=sleep,
    )
    return dispatcher.run(
        loop=loop, interval=interval, max_events=max_events, on_pass=on_pass, report=report
    )


def purge_if_due() -> None:
    """Purge sent rows older than ``RETAIN_SENT`` days, at most hourly per process.

    Every flusher calls it after each pass (the Celery task, ``synerise_flush``
    and its ``--loop``), so old rows go without a scheduled purge. See
    :func:`django_synerise.outbox.purge_if_due`.
    """
    try:
        outbox.purge_if_due()
    except Exception:
        # Housekeeping: a failed purge is retried next hour and never fails delivery.
        logger.exception("automatic purge of sent outbox rows failed")


def _reasons(result: FlushResult) -> str:
    return "; ".join(result.failures) or "no answer"


def _due_count(now: dt.datetime, limit: int | None) -> int:
    queryset = (
        OutboxEvent.objects.using(outbox.db_alias())
        .filter(status=outbox.PENDING, next_attempt_at__lte=now)
        .exclude(leased_until__gt=now)
    )
    if limit is not None:
        # Counting past the pass's own limit would only cost time.
        return len(queryset.values_list("id", flat=True)[:limit])
    count: int = queryset.count()
    return count


def preview(*, max_events: Any = None, batch_size: Any = None) -> list[PlannedRequest]:
    """The requests a pass would send now, without claiming, sending or changing anything.

    Raises :class:`FlushOptionError` for an option out of range, as :func:`run` does.
    """
    if max_events is not None:
        max_events = check_max_events(max_events)
    if batch_size is not None:
        batch_size = check_batch_size(batch_size)
    queryset = (
        OutboxEvent.objects.using(outbox.db_alias())
        .filter(status="pending", next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at", "id")
        .values_list("id", "kind", "batch_type", "payload", "size", "attempts")
    )
    if max_events is not None:
        queryset = queryset[:max_events]
    rows = [ClaimedEvent(*values) for values in queryset.iterator(chunk_size=2000)]
    options = send_options()
    return [
        PlannedRequest(
            endpoint=endpoint.name,
            group=group,
            path=endpoint.url_path(options, group),
            count=len(chunk),
            size=endpoint.request_size([row.size for row in chunk]),
            ids=[row.id for row in chunk],
        )
        for endpoint, group, chunk in pack(rows, batch_size)
    ]
