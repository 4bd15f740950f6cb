"""Public signals. Connect receivers to follow what happens to events.

``events_enqueued(sender=OutboxEvent, events=list[OutboxEvent])``
    Sent after rows are written (inside the caller's transaction, so a receiver
    sees rows that may still be rolled back).
``events_sent(sender=OutboxEvent, ids=list[int], endpoint=str, batch_type=str)``
    Sent after Synerise accepted a request; ``endpoint`` is ``"events"``,
    ``"transactions"`` or ``"ai"``.
``events_dead(sender=OutboxEvent, ids=list[int], error=str)``
    Sent when rows are given up on (rejected by Synerise, or out of attempts).

Receivers run in the flushing process; an exception in a receiver is logged
and does not stop delivery.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

__all__ = ["events_dead", "events_enqueued", "events_sent"]

logger = logging.getLogger("django_synerise.signals")

events_enqueued = Signal()
events_sent = Signal()
events_dead = Signal()


def send_robust(signal: Signal, **kwargs: Any) -> None:
    """Send ``signal`` from ``OutboxEvent``; log (never raise) a receiver's exception."""
    from .models import OutboxEvent

    for receiver, result in signal.send_robust(sender=OutboxEvent, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "django_synerise signal receiver %r failed: %r", receiver, result, exc_info=result
            )
