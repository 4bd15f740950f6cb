"""The producer API: ``track()``, ``track_event()``, ``track_many()`` and their async twins.

Each call validates the event first, then writes it to the outbox in the
caller's database transaction. Nothing here talks to Synerise: delivery is
``synerise_flush``'s job, so a slow or failing Synerise never slows or breaks
the code that records an event.

Every write goes through ``SYNERISE["BEFORE_WRITE"]`` when it is set (see
:func:`django_synerise.outbox.before_write`); ``request=`` hands it the request.

Async code (async views under ASGI, ``asyncio.run()``) calls :func:`atrack`,
:func:`atrack_event` and :func:`atrack_many`. Django's database layer is
synchronous (its own ``acreate()`` and ``abulk_create()`` run the synchronous
method through ``sync_to_async``), so these do the same: the event is built
and validated on the event loop, then identity, the hook and the ``INSERT``
run in one ``sync_to_async`` call, in the thread Django gives the current
request's synchronous work, on that thread's database connection. No
transaction is open there unless the caller's own synchronous code (run
through ``sync_to_async``) opened one, so in an async view the row commits at
once, on its own, like ``await Model.objects.acreate(...)``. To tie an event
to a change atomically, write both in one synchronous function under
``transaction.atomic()`` with the synchronous :func:`track`, and await that
function through ``sync_to_async``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from django.utils import timezone

from . import outbox
from .conf import synerise_settings
from .events import (
    CLIENT_IDENTIFIERS,
    UTM_PARAMETERS,
    CustomEvent,
    Event,
    source_from_user_agent,
)
from .exceptions import InvalidEventError
from .identity import may_track, resolve_client
from .middleware import MAX_URL_CHARS, clean_referrer, clean_url
from .models import OutboxEvent

__all__ = [
    "atrack",
    "atrack_event",
    "atrack_many",
    "request_context",
    "track",
    "track_event",
    "track_many",
]

logger = logging.getLogger("django_synerise.tracking")

# Validates an event whose visitor turned out to be anonymous: a misspelt action
# must raise in development even when nobody is logged in.
_PLACEHOLDER_CLIENT = {"customId": "validation"}


def _cap(value: str | None) -> str | None:
    return value[:MAX_URL_CHARS] if value else None


def request_context(request: HttpRequest) -> dict[str, Any]:
    """The context a page visit carries, for a custom event recorded during ``request``.

    ``url``, ``path`` and ``referrer`` as page visits report them (the query
    string reduced to the UTM parameters and ``PAGE_VISITS["KEEP_QUERY_PARAMS"]``,
    ``MASK_PATHS`` applied, a cross-site referrer cut to its origin: see
    :func:`django_synerise.middleware.clean_url`), ``userAgent``, ``source``
    (Synerise's event source: ``WEB_MOBILE`` for a phone or tablet browser, else
    ``WEB_DESKTOP``, see :func:`django_synerise.events.source_from_user_agent`),
    and the UTM parameters by their own names (``utm_source`` ...). Absent
    values are left out; URLs and the user agent are cut to 2,048 characters.
    """
    url = clean_url(request)
    query = request.GET
    user_agent = request.META.get("HTTP_USER_AGENT")
    context: dict[str, Any] = {
        "url": url,
        "path": urlsplit(url).path,
        "referrer": clean_referrer(request),
        "userAgent": _cap(user_agent),
        "source": source_from_user_agent(user_agent),
    }
    for key in UTM_PARAMETERS:
        if query.get(key):
            context[key] = query[key][:MAX_URL_CHARS]
    return {key: value for key, value in context.items() if value}


def _aware(time: dt.datetime | None) -> dt.datetime | None:
    if time is not None and timezone.is_naive(time):
        return timezone.make_aware(time)
    return time


def _custom_event(
    action: str,
    client: Mapping[str, Any] | None,
    params: Mapping[str, Any] | None,
    label: str | None,
    time: dt.datetime | None,
    request: HttpRequest | None,
) -> CustomEvent | None:
    """The validated event, or ``None`` when ``request`` identifies nobody."""
    if client is None and request is None:
        raise InvalidEventError(
            "client",
            f"is required: pass client= (one of {', '.join(CLIENT_IDENTIFIERS)}) "
            "or request= to identify the visitor",
        )
    time = _aware(time)
    if request is not None:
        params = {**request_context(request), **(params or {})}
        if not may_track(request):
            CustomEvent(action, client=_PLACEHOLDER_CLIENT, params=params, label=label, time=time)
            logger.debug("%s skipped: the visitor may not be tracked", action)
            return None
        if client is None:
            client = _resolve(action, request)
        if not client:
            CustomEvent(action, client=_PLACEHOLDER_CLIENT, params=params, label=label, time=time)
            logger.debug("%s skipped: the request identifies nobody", action)
            return None
    assert client is not None
    return CustomEvent(action, client=client, params=params, label=label, time=time)


def _resolve(action: str, request: HttpRequest) -> dict[str, Any] | None:
    try:
        return resolve_client(request)
    except Exception:
        if synerise_settings.RAISE_ERRORS:
            raise
        logger.exception(
            "django_synerise could not identify the visitor of a %s event",
            action,
            extra={"synerise_action": action},
        )
        return None


def track(
    action: str,
    *,
    client: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    time: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> OutboxEvent | None:
    """Record a custom event, e.g. ``track("dog.bark", client={"customId": "7"})``.

    ``client`` needs at least one of ``id``, ``customId``, ``uuid``, ``email``.
    Or pass ``request=`` (in a view): the visitor is identified as page visits
    identify them (:func:`django_synerise.identity.resolve_client`: the
    tracker's cookie, the logged-in user, or ``CLIENT_RESOLVER``), the event
    gets the context of :func:`request_context` (``url``, ``referrer``,
    ``userAgent``, UTM parameters; your ``params`` win over it), and
    ``BEFORE_WRITE`` receives the request. An explicit ``client`` wins over
    the request's. A request whose visitor may not be tracked
    (:func:`django_synerise.identity.may_track`: ``CONSENT``, Global Privacy
    Control, ``RESPECT_DNT``) or that identifies nobody records nothing and
    returns ``None``; an error in identity is logged and swallowed unless
    ``RAISE_ERRORS``, like the page visits' own.

    ``label`` defaults to ``action``. ``time`` defaults to now and is fixed
    here, not at delivery; a naive ``time`` is taken in the current Django time
    zone. Writes one outbox row in the current transaction and returns it, or
    returns ``None`` when ``SYNERISE["ENABLED"]`` is false or ``BEFORE_WRITE``
    dropped the event.

    Raises :class:`~django_synerise.exceptions.InvalidEventError` (a
    ``ValueError`` naming the field) before anything is written.
    """
    event = _custom_event(action, client, params, label, time, request)
    if event is None:
        return None
    return outbox.enqueue(event, request=request)


def track_event(event: Event, *, request: HttpRequest | None = None) -> OutboxEvent | None:
    """Record any event built with :mod:`django_synerise.events` (dedicated, transaction, AI).

    Same guarantees as :func:`track`: one row in the caller's transaction,
    ``None`` when disabled or dropped by ``BEFORE_WRITE``, errors raised
    before anything is written. ``request`` is only handed to ``BEFORE_WRITE``
    (the event already names its profile; check consent there if the event
    needs it).
    """
    return outbox.enqueue(event, request=request)


def track_many(events: Iterable[Event], *, request: HttpRequest | None = None) -> list[OutboxEvent]:
    """Record many events with one ``bulk_create``; all are validated first.

    Returns the rows written (``[]`` when disabled; without the events
    ``BEFORE_WRITE`` dropped).
    """
    if not synerise_settings.ENABLED:
        return []
    return outbox.enqueue_many(list(events), request=request)


async def atrack(
    action: str,
    *,
    client: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    time: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> OutboxEvent | None:
    """:func:`track` for async code: ``await atrack("dog.bark", client=...)``.

    Same arguments, result and errors. Without ``request``, the event is
    validated on the event loop (an invalid one raises before any thread is
    used); with it, identity needs the session and the user, so validation,
    identity and the write share one ``sync_to_async`` call. No transaction is
    open there in an async view: the row commits on its own (see the module
    docstring).
    """
    if not synerise_settings.ENABLED:
        return None
    if request is not None:
        return await sync_to_async(track)(
            action, client=client, params=params, label=label, time=time, request=request
        )
    event = _custom_event(action, client, params, label, time, None)
    if event is None:  # pragma: no cover - only a request can identify nobody
        return None
    return await sync_to_async(outbox.enqueue)(event)


async def atrack_event(event: Event, *, request: HttpRequest | None = None) -> OutboxEvent | None:
    """:func:`track_event` for async code; one ``sync_to_async`` call for the write."""
    if not synerise_settings.ENABLED:
        return None
    return await sync_to_async(outbox.enqueue)(event, request=request)


async def atrack_many(
    events: Iterable[Event], *, request: HttpRequest | None = None
) -> list[OutboxEvent]:
    """:func:`track_many` for async code; one ``sync_to_async`` call for the whole batch.

    ``events`` is read on the event loop, so an async caller may pass a
    generator that must not run in another thread.
    """
    if not synerise_settings.ENABLED:
        return []
    return await sync_to_async(outbox.enqueue_many)(list(events), request=request)
