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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.utils import timezone

from . import outbox, signals
from .conf import synerise_settings
from .exceptions import (
    AuthenticationError,
    RateLimitedError,
    RejectedError,
    RetryableError,
    SyneriseError,
)
from .models import OutboxEvent
from .outbox import AI_BATCH_OVERHEAD, ClaimedEvent

if TYPE_CHECKING:
    from .client import SyneriseClient

__all__ = ["Dispatcher", "FlushResult", "PlannedRequest", "flush", "preview"]

logger = logging.getLogger("django_synerise.dispatch")


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

    @property
    def events_per_second(self) -> float:
        """Sent events per second of the pass."""
        return self.sent / self.duration if self.duration > 0 else 0.0

    def add(self, other: FlushResult) -> None:
        """Accumulate another pass into this one (for ``--loop`` totals)."""
        for name in ("sent", "retried", "dead", "released", "requests", "rate_limited"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.duration += other.duration
        self.remaining = other.remaining

    def summary(self) -> str:
        """``sent N, retried N, dead N, remaining N in S s (R events/s)``."""
        remaining = "?" if self.remaining is None else str(self.remaining)
        return (
            f"sent {self.sent}, retried {self.retried}, dead {self.dead}, "
            f"remaining {remaining} in {self.duration:.2f} s "
            f"({self.events_per_second:.0f} events/s)"
        )


@dataclass(frozen=True)
class PlannedRequest:
    """One request a pass would send (``--dry-run``)."""

    endpoint: str
    batch_type: str
    count: int
    size: int
    ids: list[int] = field(repr=False)


def _endpoint(row: ClaimedEvent) -> tuple[str, str]:
    if row.kind == "event":
        return ("events", "")
    if row.kind == "transaction":
        return ("transactions", "")
    return ("ai", row.batch_type)


def _limits(endpoint: str, batch_size: int) -> tuple[int, int, int]:
    """(max events, max bytes, bytes of the request wrapper) for an endpoint."""
    max_bytes = int(synerise_settings.MAX_BATCH_BYTES)
    if endpoint == "events":
        return (batch_size, max_bytes, 2)
    if endpoint == "transactions":
        return (int(synerise_settings.TRANSACTION_BATCH_SIZE), max_bytes, 2)
    return (int(synerise_settings.AI_BATCH_SIZE), max_bytes, AI_BATCH_OVERHEAD)


def pack(
    rows: Sequence[ClaimedEvent], batch_size: int
) -> Iterator[tuple[str, str, list[ClaimedEvent]]]:
    """Group rows by endpoint and cut each group into requests within count and byte limits.

    Yields ``(endpoint, batch_type, rows)``; ``batch_type`` is the AI event type
    for AI batches (one type per request), ``""`` otherwise. Order within a
    group is kept. A row too large for any request cannot exist: enqueue
    refuses it.
    """
    groups: dict[tuple[str, str], list[ClaimedEvent]] = {}
    for row in rows:
        groups.setdefault(_endpoint(row), []).append(row)
    for (endpoint, batch_type), members in groups.items():
        max_count, max_bytes, wrapper = _limits(endpoint, batch_size)
        chunk: list[ClaimedEvent] = []
        chunk_bytes = wrapper
        for row in members:
            # +1 for the comma between items.
            if chunk and (len(chunk) >= max_count or chunk_bytes + row.size + 1 > max_bytes):
                yield endpoint, batch_type, chunk
                chunk, chunk_bytes = [], wrapper
            chunk.append(row)
            chunk_bytes += row.size + 1
        if chunk:
            yield endpoint, batch_type, chunk


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


class _Refused(Exception):
    """One endpoint refused our credentials; the others may still take their events."""

    def __init__(self, error: AuthenticationError) -> None:
        self.error = error
        super().__init__(str(error))


class Dispatcher:
    """Runs flush passes with one client and one lease owner.

    ``should_stop`` is polled between requests: when it returns true the pass
    finishes the request in flight, releases what it has not sent and returns
    (``stopped_by="stop"``). ``sleep`` is injectable so tests control time.
    """

    def __init__(
        self,
        client: SyneriseClient | None = None,
        *,
        owner: str | None = None,
        batch_size: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_progress: Callable[[FlushResult], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if client is None:
            from .transport import build_client

            client = build_client()
        self.client = client
        self.owner = owner or outbox.make_owner()
        self.batch_size = int(batch_size or synerise_settings.BATCH_SIZE)
        if not 1 <= self.batch_size <= 1000:
            raise ValueError(f"batch_size must be between 1 and 1000, not {self.batch_size}")
        self.should_stop = should_stop or (lambda: False)
        self.on_progress = on_progress
        self.sleep = sleep
        self._lease_deadline = timezone.now()
        self._refused: dict[str, AuthenticationError] = {}
        self._secrets = [
            s
            for s in (
                synerise_settings.API_KEY,
                synerise_settings.TRACKER_KEY,
                synerise_settings.WORKSPACE_GUID,
            )
            if s
        ]

    # -- one pass -----------------------------------------------------------

    def flush(self, *, max_events: int | None = None) -> FlushResult:
        """Deliver the rows that are due now, then return what happened.

        Stops when nothing due is left, after ``max_events`` rows, when
        ``should_stop()`` turns true, or when Synerise asks for a pause longer
        than ``RATE_LIMIT_MAX_WAIT``. Raises
        :class:`~django_synerise.exceptions.AuthenticationError` when an
        endpoint refused the credentials, after the other endpoints had their
        events sent; the refused endpoint's rows are released unharmed.
        """
        result = FlushResult()
        started = time.monotonic()
        pass_start = timezone.now()
        handled = 0
        # Endpoints that refused the credentials in this pass: their rows are
        # released without another try; the pass raises once the rest is sent.
        self._refused = {}
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
                rows = outbox.claim(limit, owner=self.owner, due_before=pass_start)
                if not rows:
                    result.stopped_by = "drained"
                    break
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
            if self._refused:
                result.stopped_by = "auth"
                raise next(iter(self._refused.values()))
        finally:
            result.duration = time.monotonic() - started
            try:
                result.remaining = outbox.pending_count()
            except Exception:  # the database may be what failed
                result.remaining = None
            logger.log(
                # An idle pass (--loop polls every few seconds) is only worth DEBUG.
                logging.INFO if result.requests or result.released else logging.DEBUG,
                "flush pass: sent=%d retried=%d dead=%d released=%d requests=%d "
                "rate_limited=%d remaining=%s duration=%.3fs stopped_by=%s",
                result.sent,
                result.retried,
                result.dead,
                result.released,
                result.requests,
                result.rate_limited,
                result.remaining,
                result.duration,
                result.stopped_by,
                extra={
                    "synerise_flush": {
                        "sent": result.sent,
                        "retried": result.retried,
                        "dead": result.dead,
                        "released": result.released,
                        "requests": result.requests,
                        "rate_limited": result.rate_limited,
                        "remaining": result.remaining,
                        "duration": round(result.duration, 3),
                        "stopped_by": result.stopped_by,
                        "owner": self.owner,
                    }
                },
            )
            signals.send_robust(signals.flush_finished, result=result)
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
            for endpoint, batch_type, chunk in pack(rows, self.batch_size):
                if endpoint in self._refused:
                    continue  # left unrecorded: released below, due again next pass
                try:
                    self._send(endpoint, batch_type, chunk, result, unrecorded)
                except _Refused as refused:
                    self._refused[endpoint] = refused.error
                    logger.error(
                        "Synerise refused the credentials for %s events; their rows are "
                        "released, the other endpoints go on: %s",
                        endpoint,
                        refused.error,
                    )
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

    def _timed_post(self, endpoint: str, batch_type: str, chunk: Sequence[ClaimedEvent]) -> None:
        """:meth:`_post`, announced with ``api_request_finished`` (its duration and outcome)."""
        outcome = "error"
        started = time.monotonic()
        try:
            self._post(endpoint, batch_type, chunk)
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
                endpoint=endpoint,
                kind=chunk[0].kind,
                batch_type=batch_type,
                count=len(chunk),
                duration=time.monotonic() - started,
                outcome=outcome,
            )

    def _post(self, endpoint: str, batch_type: str, chunk: Sequence[ClaimedEvent]) -> None:
        texts = [row.payload for row in chunk]
        if endpoint == "events":
            self.client.send_batch(texts)
        elif endpoint == "transactions":
            self.client.send_transactions(texts)
        else:
            self.client.send_ai_batch(batch_type, texts)

    def _send(
        self,
        endpoint: str,
        batch_type: str,
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
                "the lease of %d %s events ran out before they were sent; "
                "they are due again for the next pass",
                len(chunk),
                endpoint,
            )
            return
        ids = [row.id for row in chunk]
        result.requests += 1
        try:
            self._timed_post(endpoint, batch_type, chunk)
        except AuthenticationError as err:
            raise _Refused(err) from err
        except RateLimitedError as err:
            raise _Abort(err) from err
        except RejectedError as err:
            if len(chunk) > 1:
                # Synerise refuses a whole batch for one bad event: halve until
                # the bad ones are alone, so the good ones still go out.
                middle = len(chunk) // 2
                self._send(endpoint, batch_type, chunk[:middle], result, unrecorded)
                self._send(endpoint, batch_type, chunk[middle:], result, unrecorded)
                return
            message = self._scrub(str(err))
            result.dead += outbox.mark_dead(ids, message, owner=self.owner)
            unrecorded.difference_update(ids)
            logger.warning("event %s rejected by Synerise: %s", ids[0], message)
            signals.send_robust(signals.events_dead, ids=ids, error=message, kind=chunk[0].kind)
            return
        except RetryableError as err:
            message = self._scrub(str(err))
            retried, dead = outbox.mark_retry(chunk, message, owner=self.owner)
            result.retried += retried
            result.dead += dead
            unrecorded.difference_update(ids)
            logger.warning(
                "%s request of %d events failed, will retry: %s", endpoint, len(chunk), message
            )
            self._announce_retry(endpoint, chunk, message, retried, dead)
            return
        except SyneriseError as err:  # an unclassified API error: safest is to retry
            message = self._scrub(str(err))
            retried, dead = outbox.mark_retry(chunk, message, owner=self.owner)
            result.retried += retried
            result.dead += dead
            unrecorded.difference_update(ids)
            self._announce_retry(endpoint, chunk, message, retried, dead)
            return
        result.sent += outbox.mark_sent(ids, owner=self.owner)
        unrecorded.difference_update(ids)
        signals.send_robust(
            signals.events_sent,
            ids=ids,
            endpoint=endpoint,
            batch_type=batch_type,
            kind=chunk[0].kind,
        )

    def _announce_retry(
        self, endpoint: str, chunk: Sequence[ClaimedEvent], message: str, retried: int, dead: int
    ) -> None:
        """``events_retried`` for the rows due again, ``events_dead`` for those out of attempts."""
        limit = synerise_settings.MAX_ATTEMPTS
        kind = chunk[0].kind
        if retried:
            retried_ids = [row.id for row in chunk if row.attempts + 1 < limit]
            signals.send_robust(
                signals.events_retried, ids=retried_ids, endpoint=endpoint, kind=kind, error=message
            )
        if dead:
            dead_ids = [row.id for row in chunk if row.attempts + 1 >= limit]
            signals.send_robust(signals.events_dead, ids=dead_ids, error=message, kind=kind)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


def flush(
    *,
    client: SyneriseClient | None = None,
    batch_size: int | None = None,
    max_events: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[FlushResult], None] | None = None,
) -> FlushResult:
    """Run one flush pass with a client built from settings (or the one given).

    This is what ``manage.py synerise_flush`` and the Celery task call. Safe to
    run in many processes at once: each claims disjoint rows. Once an hour per
    process it also purges sent rows older than ``RETAIN_SENT`` days
    (:func:`~django_synerise.outbox.purge_if_due`).
    """
    dispatcher = Dispatcher(
        client, batch_size=batch_size, should_stop=should_stop, on_progress=on_progress
    )
    result = dispatcher.flush(max_events=max_events)
    try:
        outbox.purge_if_due()
    except Exception:
        # Housekeeping: a failed purge is retried next hour and never fails delivery.
        logger.exception("automatic purge of sent outbox rows failed")
    return result


def preview(
    *, max_events: int | None = None, batch_size: int | None = None
) -> list[PlannedRequest]:
    """The requests a pass would send now, without claiming, sending or changing anything."""
    size = int(batch_size or synerise_settings.BATCH_SIZE)
    queryset = (
        OutboxEvent.objects.using(outbox.db_alias())
        .filter(status="pending", next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at", "id")
        .values_list("id", "kind", "batch_type", "payload", "size", "attempts")
    )
    if max_events is not None:
        queryset = queryset[:max_events]
    rows = [ClaimedEvent(*values) for values in queryset.iterator(chunk_size=2000)]
    _, _, ai_wrapper = _limits("ai", size)
    planned = []
    for endpoint, batch_type, chunk in pack(rows, size):
        wrapper = ai_wrapper if endpoint == "ai" else 2
        planned.append(
            PlannedRequest(
                endpoint=endpoint,
                batch_type=batch_type,
                count=len(chunk),
                size=wrapper + sum(row.size + 1 for row in chunk) - 1,
                ids=[row.id for row in chunk],
            )
        )
    return planned
