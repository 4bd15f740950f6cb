"""Where each kind of record goes at Synerise: one row per endpoint.

Every module that needs to know something about an endpoint reads it from
:data:`ENDPOINTS`: the outbox (the size check at enqueue), the dispatcher
(grouping rows into requests, the limits of a request), the client (path, auth,
the request body), the system checks and the commands. A new kind of record is
one :class:`Endpoint` row here plus its record class (whose ``kind`` names the row).

======================  ===========================  ==============  ================
row (``kind``)          path                         items/request   one request holds
======================  ===========================  ==============  ================
``event``               ``/v4/events/batch``         ``BATCH_SIZE``  any v4 events
                                                     (at most 1000)
``transaction``         ``/v4/transactions/batch``   ``TRANSACTION   any transactions
                                                     _BATCH_SIZE``
``ai``                  ``AI_EVENTS_API``:           ``AI_BATCH      one event type
                        ``/v4/events/ai-compat/      _SIZE``         (shaped for the
                        batch`` or                                   API when sent)
                        ``/events/v1/batch``
``profile``             ``/v4/clients/batch``        ``PROFILE_      any profiles
                                                     BATCH_SIZE``
                                                     (at most 500)
``catalog``             ``/catalogs/bags/{id}/       ``CATALOG_      one catalog
                        items/batch``                BATCH_SIZE``
======================  ===========================  ==============  ================

A profile record holds one profile, or two for a login's merge (they must
travel together, in order); its stored JSON array is spliced into the
request's array when sent, and 500 records keep a request within Synerise's
1000 profiles. A catalog given by name is turned into its numeric id at send
time (``resolve``), looked up once per process.

Every request is at most ``MAX_BATCH_BYTES`` (at most 1 MB). The row's name is
the value stored in ``OutboxEvent.kind`` and the ``kind`` of its record class,
so one name follows a record from its class to the wire.

This module imports nothing from Django: the client reads it too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .catalog import catalog_path, resolve_catalog

__all__ = [
    "AI_EVENTS",
    "API_MAX_BYTES",
    "API_MAX_ITEMS",
    "CATALOG_ITEMS",
    "ENDPOINTS",
    "EVENTS",
    "PROFILES",
    "TRANSACTIONS",
    "Endpoint",
    "SendOptions",
    "endpoint_for",
    "setting_limits",
]

#: Synerise's documented limit of items in one batch request (v4 events, profiles).
API_MAX_ITEMS = 1000
#: Synerise's documented limit of one batch request's body, in bytes (1 MB).
API_MAX_BYTES = 1_000_000

Auth = Literal["workspace", "ai"]


@dataclass(frozen=True)
class SendOptions:
    """The settings an endpoint's path and send-time shaping may depend on.

    The client holds one, built from ``SYNERISE`` by
    :func:`django_synerise.factory.build_client`; read at send time, so rows
    stored before a settings change are sent the way the settings say now.
    """

    ai_events_api: str = "events-v1"
    ai_timestamp_format: str = "unix-ms"


def _same_group(batch_type: str) -> str:
    return ""


def _by_batch_type(batch_type: str) -> str:
    return batch_type


def _json_array(items: bytes, group: str) -> bytes:
    return items


@dataclass(frozen=True)
class Endpoint:
    """One kind of record and the Synerise endpoint that takes it in batches.

    Attributes:
        name: the row's name; also ``OutboxEvent.kind`` and the record class's ``kind``.
        label: what people call these records in messages (``"v4 events"``).
        path: the request path, or a function of the :class:`SendOptions` and
            the group key (an AI event type, a catalog id) that returns it.
        items_setting: the ``SYNERISE`` key limiting items per request.
        max_items: Synerise's own limit of items per request (``None``: none known).
        bytes_setting: the ``SYNERISE`` key limiting a request's bytes.
        max_bytes: Synerise's own limit of a request's bytes.
        wrapper_bytes: bytes the request body adds around the items' JSON
            (``[`` and ``]`` for a plain array).
        auth: ``"workspace"`` (JWT or Basic) or ``"ai"`` (the tracker key as
            the ``token`` parameter, else the workspace JWT).
        group_key: from a row's ``batch_type``, the key rows must share to
            travel in one request (``""`` for all: any mix goes together).
        grouped_by: what the group key is, for messages (``"event type"``).
        wrap: turns the items' JSON array and the group key into the body.
        shape: send-time shaping of one stored payload (JSON text in, JSON
            text out) for its group key and the current :class:`SendOptions`;
            ``None`` sends the stored text as is, without decoding it.
        awaited: other records may wait for these (``OutboxEvent.wait_for``: a
            login event waits for its profile merge); a pass that claimed some
            walks the due rows once more from the start, so the waiting ones
            go in the same pass.
        resolve: ``f(client, group) -> group`` run by the client before the
            path is built, for a group key that needs a lookup at Synerise
            (a catalog's name into its id); ``None``: the key is used as is.
    """

    name: str
    label: str
    path: str | Callable[[SendOptions, str], str]
    items_setting: str
    max_items: int | None = None
    bytes_setting: str = "MAX_BATCH_BYTES"
    max_bytes: int = API_MAX_BYTES
    wrapper_bytes: int = 2
    auth: Auth = "workspace"
    group_key: Callable[[str], str] = field(default=_same_group)
    grouped_by: str | None = None
    wrap: Callable[[bytes, str], bytes] = field(default=_json_array)
    shape: Callable[[str, str, SendOptions], str] | None = None
    resolve: Callable[[Any, str], str] | None = None
    awaited: bool = False

    def url_path(self, options: SendOptions, group: str = "") -> str:
        """The path to POST to (no query string)."""
        return self.path if isinstance(self.path, str) else self.path(options, group)

    def item_limit(self, settings: Any) -> int:
        """Items per request: the setting's value, never above :attr:`max_items`."""
        value = int(getattr(settings, self.items_setting))
        return min(value, self.max_items) if self.max_items is not None else value

    def byte_limit(self, settings: Any) -> int:
        """Bytes per request: the setting's value, never above :attr:`max_bytes`."""
        return min(int(getattr(settings, self.bytes_setting)), self.max_bytes)

    def body(self, texts: Sequence[str], group: str, options: SendOptions) -> bytes:
        """The request body for stored payloads ``texts`` (shaped if the row shapes)."""
        if self.shape is not None:
            texts = [self.shape(text, group, options) for text in texts]
        return self.wrap(("[" + ",".join(texts) + "]").encode("utf-8"), group)

    def request_size(self, sizes: Sequence[int]) -> int:
        """Bytes of a request holding items of these sizes (commas included)."""
        return self.wrapper_bytes + sum(sizes) + max(len(sizes) - 1, 0)


def _ai_path(options: SendOptions, group: str) -> str:
    if options.ai_events_api == "ai-compat":
        return "/v4/events/ai-compat/batch"
    return "/events/v1/batch"


def _shape_ai(text: str, event_type: str, options: SendOptions) -> str:
    # AI events are stored neutral (see AIEvent.to_payload): the body is made for
    # the API configured now, so changing AI_EVENTS_API strands no pending row.
    from .events import dumps, shape_ai_payload

    body = shape_ai_payload(
        json.loads(text),
        api="ai-compat" if options.ai_events_api == "ai-compat" else "events-v1",
        timestamp_format="iso8601" if options.ai_timestamp_format == "iso8601" else "unix-ms",
        event_type=event_type,
    )
    return dumps(body)


def _ai_wrap(items: bytes, group: str) -> bytes:
    return b'{"eventType":' + json.dumps(group).encode() + b',"items":' + items + b"}"


EVENTS = Endpoint(
    name="event",
    label="v4 events",
    path="/v4/events/batch",
    items_setting="BATCH_SIZE",
    max_items=API_MAX_ITEMS,
)

TRANSACTIONS = Endpoint(
    name="transaction",
    label="transactions",
    path="/v4/transactions/batch",
    items_setting="TRANSACTION_BATCH_SIZE",
)

AI_EVENTS = Endpoint(
    name="ai",
    label="AI events",
    path=_ai_path,
    items_setting="AI_BATCH_SIZE",
    # {"eventType":"<longest type>","items":[...]} with room to spare.
    wrapper_bytes=64,
    auth="ai",
    group_key=_by_batch_type,
    grouped_by="event type",
    wrap=_ai_wrap,
    shape=_shape_ai,
)


def _splice_profiles(text: str, group: str, options: SendOptions) -> str:
    # A merge record is stored as a JSON array of its two profiles.
    return text[1:-1] if text.startswith("[") else text


PROFILES = Endpoint(
    name="profile",
    label="profiles",
    path="/v4/clients/batch",
    items_setting="PROFILE_BATCH_SIZE",
    # Records, not profiles: a merge record holds two, and 1000 profiles is the limit.
    max_items=API_MAX_ITEMS // 2,
    shape=_splice_profiles,
    awaited=True,
)

CATALOG_ITEMS = Endpoint(
    name="catalog",
    label="catalog items",
    path=catalog_path,
    items_setting="CATALOG_BATCH_SIZE",
    max_items=API_MAX_ITEMS,
    group_key=_by_batch_type,
    grouped_by="catalog",
    resolve=resolve_catalog,
)

#: Every endpoint, by name (= ``OutboxEvent.kind`` = the record class's ``kind``).
ENDPOINTS: dict[str, Endpoint] = {
    row.name: row for row in (EVENTS, TRANSACTIONS, AI_EVENTS, PROFILES, CATALOG_ITEMS)
}


def endpoint_for(kind: str) -> Endpoint:
    """The row for a record kind; ``ValueError`` naming the known kinds otherwise."""
    try:
        return ENDPOINTS[kind]
    except KeyError:
        raise ValueError(
            f"no endpoint for records of kind {kind!r}; known kinds: {', '.join(ENDPOINTS)}"
        ) from None


def setting_limits() -> dict[str, int]:
    """``{SYNERISE key: Synerise's own limit}`` for every limit setting that has one."""
    limits: dict[str, int] = {}
    for row in ENDPOINTS.values():
        if row.max_items is not None:
            limits[row.items_setting] = min(
                limits.get(row.items_setting, row.max_items), row.max_items
            )
        limits[row.bytes_setting] = min(limits.get(row.bytes_setting, row.max_bytes), row.max_bytes)
    return limits
