"""Public signals. Connect receivers to follow what happens to events.

Every signal is sent with ``sender=OutboxEvent``. ``kind`` is the record's
kind as stored in the outbox (``"event"``, ``"transaction"``, ``"ai"``, and
any kind added by a new endpoint); ``endpoint`` names the row of
:data:`django_synerise.endpoints.ENDPOINTS` the records went through, which
carries the same name as the kind. ``batch_type`` is the key a request's
records shared (the AI event type; ``""`` where records of any type travel
together).

``events_enqueued(events=list[OutboxEvent])``
    Sent after rows are written (inside the caller's transaction, so a receiver
    sees rows that may still be rolled back).
``events_dropped(events=list[Event], reason=str)``
    Sent for records that were not written although the package is enabled:
    ``reason`` is ``"before_write"`` (``SYNERISE["BEFORE_WRITE"]`` returned
    ``None``), ``"before_write_error"`` (it raised, and ``RAISE_ERRORS`` is
    false) or ``"max_pending"`` (a page visit or beacon over ``MAX_PENDING``). ``events`` are the
    record objects of :mod:`django_synerise.events` (nothing was written).
``events_sent(ids=list[int], endpoint=str, batch_type=str, kind=str)``
    Sent after Synerise accepted a request.
``events_retried(ids=list[int], endpoint=str, kind=str, error=str)``
    Sent when a failed request's rows are due again after a backoff (the ones
    that ran out of attempts go to ``events_dead`` instead).
``events_dead(ids=list[int], error=str, kind=str | None)``
    Sent when rows are given up on (rejected by Synerise, or out of attempts);
    ``kind`` is ``None`` when the rows may be of several kinds (the admin's
    "mark dead" action).
``api_request_finished(endpoint=str, kind=str, batch_type=str, count=int, duration=float, outcome=str)``
    Sent after each request of a flush pass: ``duration`` in seconds (monotonic
    clock), ``count`` records in the request, ``outcome`` one of ``"sent"``,
    ``"rejected"``, ``"retry"``, ``"rate_limited"``, ``"auth"``, ``"error"``.
``flush_finished(result=FlushResult)``
    Sent at the end of every flush pass, also when it raised, with its
    :class:`~django_synerise.dispatch.FlushResult`.

Receivers run in the process that produced or flushed the events; an
exception in a receiver is logged and never stops a write or a delivery.
:mod:`django_synerise.metrics` builds the Prometheus metrics on these signals;
connect your own receivers the same way to feed OpenTelemetry or StatsD.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

__all__ = [
    "api_request_finished",
    "events_dead",
    "events_dropped",
    "events_enqueued",
    "events_retried",
    "events_sent",
    "flush_finished",
]

logger = logging.getLogger("django_synerise.signals")

events_enqueued = Signal()
events_dropped = Signal()
events_sent = Signal()
events_retried = Signal()
events_dead = Signal()
api_request_finished = Signal()
flush_finished = Signal()


def send_robust(signal: Signal, sender: type, **kwargs: Any) -> None:
    """Send ``signal`` from ``sender`` (``OutboxEvent``); log (never raise) a receiver's exception.

    The sender is passed in so that this module stays below the models in the
    package's layering: it imports nothing of the package.
    """
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "django_synerise signal receiver %r failed: %r", receiver, result, exc_info=result
            )
