"""The producer API: ``track()``, ``track_event()`` and ``track_many()``.

Each call validates the event first, then writes it to the outbox in the
caller's database transaction. Nothing here talks to Synerise: delivery is
``synerise_flush``'s job, so a slow or failing Synerise never slows or breaks
the code that records an event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from django.utils import timezone

from . import outbox
from .conf import synerise_settings
from .events import CustomEvent, Event
from .models import OutboxEvent

__all__ = ["track", "track_event", "track_many"]


def track(
    action: str,
    *,
    client: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    time: dt.datetime | None = None,
) -> OutboxEvent | None:
    """Record a custom event, e.g. ``track("dog.bark", client={"customId": "7"})``.

    ``client`` needs at least one of ``id``, ``customId``, ``uuid``, ``email``.
    ``label`` defaults to ``action``. ``time`` defaults to now and is fixed
    here, not at delivery; a naive ``time`` is taken in the current Django time
    zone. Writes one outbox row in the current transaction and returns it, or
    returns ``None`` when ``SYNERISE["ENABLED"]`` is false.

    Raises :class:`~django_synerise.exceptions.InvalidEventError` (a
    ``ValueError`` naming the field) before anything is written.
    """
    if time is not None and timezone.is_naive(time):
        time = timezone.make_aware(time)
    event = CustomEvent(action, client=client, params=params, label=label, time=time)
    return outbox.enqueue(event)


def track_event(event: Event) -> OutboxEvent | None:
    """Record any event built with :mod:`django_synerise.events` (dedicated, transaction, AI).

    Same guarantees as :func:`track`: one row in the caller's transaction,
    ``None`` when disabled, errors raised before anything is written.
    """
    return outbox.enqueue(event)


def track_many(events: Iterable[Event]) -> list[OutboxEvent]:
    """Record many events with one ``bulk_create``; all are validated first.

    Returns the rows (``[]`` when disabled).
    """
    if not synerise_settings.ENABLED:
        return []
    return outbox.enqueue_many(list(events))
