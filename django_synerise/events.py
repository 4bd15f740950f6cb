"""Synerise events as validated value objects, serialized to the exact JSON Synerise expects.

Every event is validated when it is built: a bad field raises
:class:`~django_synerise.exceptions.InvalidEventError` (a ``ValueError``) naming
the field, while the code that made the event is still on the stack. An event
that was built can be sent.

Three kinds of events, three endpoints:

* :class:`CustomEvent` and :class:`DedicatedEvent` (``kind == "event"``) go to
  ``/v4/events/batch``. Custom events carry ``"type": "custom"`` and an
  ``action``; dedicated ones carry the dedicated endpoint's name as ``type``
  (``"added-to-cart"``) and no ``action``: Synerise sets it.
* :class:`Transaction` (``kind == "transaction"``) goes to
  ``/v4/transactions/batch``: only that endpoint creates ``product.buy``.
* :class:`AIEvent` (``kind == "ai"``): ``recommendation.view``,
  ``recommendation.click`` and ``item.search.click`` go to the AI events API,
  one event type per batch.

Each v4 event and transaction gets its ``time`` (or ``recordedAt``) and
``eventSalt`` when it is built. They never change afterwards, so a retried
event overwrites itself at Synerise instead of being counted twice.

Times must be timezone-aware; a naive ``datetime`` raises. (Django users:
``django.utils.timezone.now()`` is aware whenever ``USE_TZ = True``, and
``django_synerise.track`` makes naive times aware in the current time zone
when ``USE_TZ`` is on, following Django's own rule.)

This module imports nothing from Django.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar, Literal

from .exceptions import InvalidEventError

__all__ = [
    "AI_EVENT_TYPES",
    "CLIENT_IDENTIFIERS",
    "DEDICATED_EVENT_TYPES",
    "RESERVED_PARAMS",
    "AIEvent",
    "CustomEvent",
    "DedicatedEvent",
    "Event",
    "Transaction",
    "dumps",
    "format_time",
    "page_visit",
]

#: Dedicated v4 endpoints (``/v4/events/<type>``) and the action Synerise gives them.
DEDICATED_EVENT_TYPES: dict[str, str] = {
    "added-to-cart": "product.addToCart",
    "removed-from-cart": "product.removeFromCart",
    "added-to-favorites": "product.addToFavorite",
    "product-view": "product.view",
    "logged-in": "client.login",
    "logged-out": "client.logout",
    "registered": "client.register",
    "searched": "client.search",
    "shared": "client.shared",
    "hit-timer": "client.hitTimer",
    "visited-screen": "screen.view",
    "application-started": "client.applicationStarted",
    "appeared-in-location": "client.location",
    "assigned-to-company": "client.assignToCompany",
    "cancelled-transaction": "transaction.cancel",
    "push/viewed": "push.view",
    "push/clicked": "push.click",
    "push/received": "push.receive",
    "push/cancelled": "push.cancel",
}

#: Event types of the AI events API.
AI_EVENT_TYPES: tuple[str, ...] = (
    "recommendation.view",
    "recommendation.click",
    "item.search.click",
)

#: Profile identifiers accepted in ``client``; at least one is required.
CLIENT_IDENTIFIERS: tuple[str, ...] = ("id", "customId", "uuid", "email")

#: ``params`` names Synerise reserves for itself (it ignores or overwrites them).
RESERVED_PARAMS: frozenset[str] = frozenset(
    {"modifiedBy", "apiKey", "eventUUID", "ip", "time", "businessProfileId"}
)

#: Actions that must not be sent as custom events, and where they belong instead.
_FORBIDDEN_CUSTOM_ACTIONS: dict[str, str] = {
    "transaction.charge": "send transactions with django_synerise.events.Transaction "
    "(/v4/transactions); the batch endpoint does not create product.buy events",
    **{
        action: "use the AI events API: django_synerise.events.AIEvent" for action in AI_EVENT_TYPES
    },
    # Synerise's batch rule: an event with a dedicated endpoint goes with that
    # endpoint's name as its type and no action.
    **{
        action: f"it has a dedicated endpoint: use DedicatedEvent({name!r}, ...) "
        "with django_synerise.track_event()"
        for name, action in DEDICATED_EVENT_TYPES.items()
    },
}

_ACTION_RE = re.compile(r"^[A-Za-z0-9._-]{2,32}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
_MAX_ID_LENGTH = 512
_TRANSACTION_SOURCES = frozenset(
    {"WEB_DESKTOP", "WEB_MOBILE", "MOBILE_APP", "POS", "MOBILE", "DESKTOP", "MOBILE_WEB"}
)

AITimestampFormat = Literal["unix-ms", "iso8601"]
AIEventsAPI = Literal["events-v1", "ai-compat"]


def format_time(value: dt.datetime) -> str:
    """Format an aware datetime as UTC ISO 8601 with milliseconds: ``2022-05-23T13:00:00.176Z``."""
    utc = value.astimezone(dt.timezone.utc)
    # Not strftime("%Y"): it drops the leading zeros of years before 1000 on glibc.
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def dumps(payload: Any) -> str:
    """Compact JSON as sent to Synerise (UTF-8 text, no NaN/Infinity)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _check_time(field: str, value: Any) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise InvalidEventError(field, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise InvalidEventError(
            field,
            "must be timezone-aware (a naive datetime is ambiguous); "
            "use django.utils.timezone.now() or datetime.now(timezone.utc)",
        )
    try:
        value.astimezone(dt.timezone.utc)
    except OverflowError as err:
        raise InvalidEventError(field, f"is out of range once converted to UTC: {value!r}") from err
    return value


def _check_text(field: str, value: str) -> str:
    """Refuse strings that cannot be stored or sent: lone surrogates and NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidEventError(
            field, "contains an unpaired surrogate (not valid Unicode)"
        ) from err
    return value


def _check_identifier_text(field: str, value: str) -> str:
    # Identifiers are also stored in plain columns; PostgreSQL text cannot hold NUL.
    _check_text(field, value)
    if any(ord(char) < 32 for char in value):
        raise InvalidEventError(field, "must not contain control characters")
    return value


def _clean_json(field: str, value: Any, depth: int = 0) -> Any:
    """Return a JSON-ready copy of ``value``: ``None`` in objects dropped, types checked.

    Synerise asks for absent fields to be omitted rather than sent as ``null``.
    """
    if depth > 20:
        raise InvalidEventError(field, "is nested more than 20 levels deep")
    if isinstance(value, str):
        return _check_text(field, value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEventError(field, f"must be a finite number, not {value!r}")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidEventError(field, f"must be a finite number, not {value!r}")
        exponent = value.as_tuple().exponent
        # Decimal("7") stays an integer; Decimal("7.50") is a price and goes as a float.
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, dt.datetime):
        return format_time(_check_time(field, value))
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidEventError(field, f"keys must be strings, not {key!r}")
            _check_text(f"{field} key", key)
            if item is None:
                continue
            out[key] = _clean_json(f"{field}.{key}", item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        items = []
        for index, item in enumerate(value):
            if item is None:
                raise InvalidEventError(f"{field}[{index}]", "must not be None")
            items.append(_clean_json(f"{field}[{index}]", item, depth + 1))
        return items
    raise InvalidEventError(
        field, f"has a value of type {type(value).__name__}, which cannot be sent as JSON"
    )


def _check_client(client: Any) -> dict[str, Any]:
    if not isinstance(client, Mapping):
        raise InvalidEventError("client", f"must be a dict of identifiers, not {client!r}")
    unknown = sorted(set(client) - set(CLIENT_IDENTIFIERS))
    if unknown:
        raise InvalidEventError(
            "client",
            f"unknown identifier(s) {', '.join(unknown)}; use {', '.join(CLIENT_IDENTIFIERS)}",
        )
    out: dict[str, Any] = {}
    for key in CLIENT_IDENTIFIERS:
        value = client.get(key)
        if value is None or value == "":
            continue
        if key == "id":
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidEventError("client.id", f"must be a positive integer, not {value!r}")
        else:
            if not isinstance(value, str):
                raise InvalidEventError(f"client.{key}", f"must be a string, not {value!r}")
            value = value.strip()
            if not value:
                continue
            _check_identifier_text(f"client.{key}", value)
            if len(value) > _MAX_ID_LENGTH:
                raise InvalidEventError(
                    f"client.{key}", f"must be at most {_MAX_ID_LENGTH} characters"
                )
            if key == "uuid":
                value = _check_uuid(f"client.{key}", value)
            if key == "email" and not _EMAIL_RE.match(value):
                raise InvalidEventError("client.email", f"is not an email address: {value!r}")
        out[key] = value
    if not out:
        raise InvalidEventError("client", f"needs at least one of {', '.join(CLIENT_IDENTIFIERS)}")
    return out


def _check_uuid(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidEventError(field, f"must be a UUID string, not {value!r}")
    try:
        return str(uuid.UUID(value))
    except ValueError as err:
        raise InvalidEventError(field, f"is not a UUID: {value!r}") from err


def _check_label(label: Any, default: str) -> str:
    if label is None:
        return default
    if not isinstance(label, str) or not label.strip():
        raise InvalidEventError("label", "must be a non-empty string")
    return _check_text("label", label)


def _check_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidEventError("params", f"must be a dict, not {type(params).__name__}")
    reserved = sorted(k for k in params if k in RESERVED_PARAMS)
    if reserved:
        raise InvalidEventError(
            f"params.{reserved[0]}",
            f"is reserved by Synerise ({', '.join(sorted(RESERVED_PARAMS))} are); rename it",
        )
    return _clean_json("params", params)  # type: ignore[no-any-return]


def _check_salt(salt: Any) -> str:
    if salt is None:
        return str(uuid.uuid4())
    if not isinstance(salt, str) or not salt or len(salt) > 128:
        raise InvalidEventError("eventSalt", "must be a non-empty string of at most 128 characters")
    return _check_identifier_text("eventSalt", salt)


class Event:
    """Base class of every event. Subclasses fix :attr:`kind` and build :meth:`to_payload`."""

    #: ``"event"`` (``/v4/events/batch``), ``"transaction"`` or ``"ai"``.
    kind: ClassVar[str] = ""

    client: dict[str, Any]
    salt: str | None

    @property
    def batch_type(self) -> str:
        """The batch this event travels in: a v4 ``type``, ``"transaction"``, or an AI type."""
        raise NotImplementedError

    @property
    def action(self) -> str:
        """The Synerise action this event is stored under."""
        raise NotImplementedError

    @property
    def occurred_at(self) -> dt.datetime | None:
        """When the event happened, as fixed at construction."""
        return None

    def to_payload(
        self,
        *,
        ai_api: AIEventsAPI = "events-v1",
        ai_timestamp_format: AITimestampFormat = "unix-ms",
    ) -> dict[str, Any]:
        """The JSON object sent to Synerise for this event (as a batch item)."""
        raise NotImplementedError

    def to_json(self, **options: Any) -> str:
        """:meth:`to_payload` as compact JSON text."""
        return dumps(self.to_payload(**options))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.action} {self.client}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event) or type(other) is not type(self):
            return NotImplemented
        return other.to_payload() == self.to_payload()

    __hash__ = None  # type: ignore[assignment]


class _V4Event(Event):
    kind = "event"

    def __init__(
        self,
        *,
        client: Mapping[str, Any],
        params: Mapping[str, Any] | None,
        label: str | None,
        time: dt.datetime | None,
        salt: str | None,
        default_label: str,
    ) -> None:
        self.client = _check_client(client)
        self.params = _check_params(params)
        self.label = _check_label(label, default_label)
        self.time = _check_time("time", time) if time is not None else _utcnow()
        self.salt = _check_salt(salt)

    @property
    def occurred_at(self) -> dt.datetime:
        return self.time

    def _common(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "label": self.label,
            "client": self.client,
            "time": format_time(self.time),
            "eventSalt": self.salt,
        }
        if self.params:
            body["params"] = self.params
        return body


class CustomEvent(_V4Event):
    """A custom event (``type: "custom"``), e.g. ``CustomEvent("dog.bark", client={"customId": "7"})``.

    ``label`` defaults to the action: Synerise requires a non-empty label but does not store it.
    """

    def __init__(
        self,
        action: str,
        *,
        client: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        label: str | None = None,
        time: dt.datetime | None = None,
        salt: str | None = None,
    ) -> None:
        if not isinstance(action, str) or not _ACTION_RE.match(action):
            raise InvalidEventError(
                "action",
                f"must be 2 to 32 characters of letters, digits, '.', '-' or '_', not {action!r}",
            )
        if action in _FORBIDDEN_CUSTOM_ACTIONS:
            raise InvalidEventError(
                "action",
                f"{action!r} cannot be a custom event: {_FORBIDDEN_CUSTOM_ACTIONS[action]}",
            )
        self._action = action
        super().__init__(
            client=client, params=params, label=label, time=time, salt=salt, default_label=action
        )

    @property
    def batch_type(self) -> str:
        return "custom"

    @property
    def action(self) -> str:
        return self._action

    def to_payload(self, **options: Any) -> dict[str, Any]:
        return {"type": "custom", "action": self._action, **self._common()}


class DedicatedEvent(_V4Event):
    """An event with a dedicated v4 endpoint, e.g. ``DedicatedEvent("added-to-cart", client=...)``.

    ``event_type`` is the endpoint's name (a key of :data:`DEDICATED_EVENT_TYPES`);
    Synerise sets the action from it.
    """

    def __init__(
        self,
        event_type: str,
        *,
        client: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        label: str | None = None,
        time: dt.datetime | None = None,
        salt: str | None = None,
    ) -> None:
        if event_type not in DEDICATED_EVENT_TYPES:
            raise InvalidEventError(
                "type",
                f"{event_type!r} is not a dedicated event type; "
                f"use one of {', '.join(DEDICATED_EVENT_TYPES)} or a CustomEvent",
            )
        self.event_type = event_type
        super().__init__(
            client=client,
            params=params,
            label=label,
            time=time,
            salt=salt,
            default_label=DEDICATED_EVENT_TYPES[event_type],
        )

    @property
    def batch_type(self) -> str:
        return self.event_type

    @property
    def action(self) -> str:
        return DEDICATED_EVENT_TYPES[self.event_type]

    def to_payload(self, **options: Any) -> dict[str, Any]:
        return {"type": self.event_type, **self._common()}


_UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


def page_visit(
    *,
    client: Mapping[str, Any],
    url: str,
    path: str | None = None,
    referrer: str | None = None,
    title: str | None = None,
    utm: Mapping[str, str] | None = None,
    user_agent: str | None = None,
    params: Mapping[str, Any] | None = None,
    time: dt.datetime | None = None,
    salt: str | None = None,
) -> CustomEvent:
    """A ``page.visit`` custom event (Synerise has no dedicated page-visit endpoint).

    Params sent: ``url``, ``path``, ``referrer``, ``title``, the UTM parameters
    by their own names (``utm_source`` ...), ``userAgent``, plus ``params``.
    """
    if not isinstance(url, str) or not url:
        raise InvalidEventError("params.url", "must be a non-empty string")
    merged: dict[str, Any] = {
        "url": url,
        "path": path,
        "referrer": referrer or None,
        "title": title or None,
        "userAgent": user_agent or None,
    }
    for key, value in (utm or {}).items():
        if key in _UTM_KEYS and value:
            merged[key] = value
    if params is not None and not isinstance(params, Mapping):
        raise InvalidEventError("params", f"must be a dict, not {type(params).__name__}")
    if params:
        merged.update(params)
    return CustomEvent("page.visit", client=client, params=merged, time=time, salt=salt)


def _money(field: str, amount: Any, currency: str | None) -> dict[str, Any] | None:
    if amount is None:
        return None
    if isinstance(amount, Mapping):
        amount_value = amount.get("amount")
        currency = amount.get("currency", currency)
    else:
        amount_value = amount
    if isinstance(amount_value, bool) or not isinstance(amount_value, (int, float, Decimal)):
        raise InvalidEventError(field, f"must be a number, not {amount_value!r}")
    if not currency:
        raise InvalidEventError(field, "needs a currency: pass currency='PLN' (ISO 4217)")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise InvalidEventError(f"{field}.currency", f"must be an ISO 4217 code, not {currency!r}")
    return {"amount": _clean_json(field, amount_value), "currency": currency}


_PRODUCT_MONEY = ("finalUnitPrice", "regularPrice", "discountPrice", "netUnitPrice")


def _product(index: int, product: Any, currency: str | None) -> dict[str, Any]:
    field = f"products[{index}]"
    if not isinstance(product, Mapping):
        raise InvalidEventError(field, "must be a dict")
    out = _clean_json(field, {k: v for k, v in product.items() if k not in _PRODUCT_MONEY})
    sku = out.get("sku")
    if not isinstance(sku, str) or not sku:
        raise InvalidEventError(f"{field}.sku", "is required (a non-empty string)")
    quantity = out.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, (int, float)) or quantity <= 0:
        raise InvalidEventError(f"{field}.quantity", f"must be a positive number, not {quantity!r}")
    out["quantity"] = quantity
    for key in _PRODUCT_MONEY:
        money = _money(f"{field}.{key}", product.get(key), currency)
        if money is not None:
            out[key] = money
    if "finalUnitPrice" not in out:
        raise InvalidEventError(f"{field}.finalUnitPrice", "is required")
    return out  # type: ignore[no-any-return]


class Transaction(Event):
    """A transaction for ``/v4/transactions``; Synerise derives ``product.buy`` events from it.

    Money arguments take a number (with ``currency``) or a ready
    ``{"amount": ..., "currency": ...}`` dict. ``recorded_at`` is fixed at
    construction like a v4 event's ``time``; the same ``order_id`` sent twice is
    two transactions at Synerise, only the ``eventSalt`` makes a resend overwrite.
    """

    kind = "transaction"

    def __init__(
        self,
        *,
        client: Mapping[str, Any],
        order_id: str,
        products: Iterable[Mapping[str, Any]] = (),
        revenue: Any = None,
        value: Any = None,
        discount_amount: Any = None,
        currency: str | None = None,
        payment_info: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = "WEB_DESKTOP",
        recorded_at: dt.datetime | None = None,
        salt: str | None = None,
    ) -> None:
        self.client = _check_client(client)
        if isinstance(order_id, int) and not isinstance(order_id, bool):
            order_id = str(order_id)
        if not isinstance(order_id, str) or not order_id.strip():
            raise InvalidEventError("orderId", "is required (a non-empty string)")
        self.order_id = _check_text("orderId", order_id)
        self.products = [_product(i, p, currency) for i, p in enumerate(products)]
        self.revenue = _money("revenue", revenue, currency)
        self.value = _money("value", value, currency)
        self.discount_amount = _money("discountAmount", discount_amount, currency)
        self.payment_info = _clean_json("paymentInfo", payment_info) if payment_info else None
        self.metadata = _clean_json("metadata", metadata) if metadata else None
        if source is not None and source not in _TRANSACTION_SOURCES:
            raise InvalidEventError(
                "source",
                f"must be one of {', '.join(sorted(_TRANSACTION_SOURCES))}, not {source!r}",
            )
        self.source = source
        self.recorded_at = (
            _check_time("recordedAt", recorded_at) if recorded_at is not None else _utcnow()
        )
        self.salt = _check_salt(salt)
        self._check_one_currency()
        if self.revenue is None and self.products:
            total = sum(
                Decimal(str(p["finalUnitPrice"]["amount"])) * Decimal(str(p["quantity"]))
                for p in self.products
            )
            self.revenue = {
                "amount": _clean_json("revenue", total),
                "currency": self.products[0]["finalUnitPrice"]["currency"],
            }
        if self.value is None and self.revenue is not None:
            self.value = dict(self.revenue)

    def _check_one_currency(self) -> None:
        # Synerise takes one currency per transaction; a computed revenue would
        # otherwise add up amounts of different currencies.
        amounts = [
            ("revenue", self.revenue),
            ("value", self.value),
            ("discountAmount", self.discount_amount),
        ] + [
            (f"products[{index}].{key}", product.get(key))
            for index, product in enumerate(self.products)
            for key in _PRODUCT_MONEY
        ]
        first: tuple[str, str] | None = None
        for field, money in amounts:
            if money is None:
                continue
            if first is None:
                first = (field, money["currency"])
            elif money["currency"] != first[1]:
                raise InvalidEventError(
                    f"{field}.currency",
                    f"is {money['currency']} but {first[0]} is in {first[1]}: "
                    "a transaction has one currency",
                )

    @property
    def batch_type(self) -> str:
        return "transaction"

    @property
    def action(self) -> str:
        return "transaction.charge"

    @property
    def occurred_at(self) -> dt.datetime:
        return self.recorded_at

    def to_payload(self, **options: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "client": self.client,
            "orderId": self.order_id,
            "recordedAt": format_time(self.recorded_at),
            "eventSalt": self.salt,
        }
        if self.products:
            body["products"] = self.products
        for key, value in (
            ("revenue", self.revenue),
            ("value", self.value),
            ("discountAmount", self.discount_amount),
            ("paymentInfo", self.payment_info),
            ("metadata", self.metadata),
            ("source", self.source),
        ):
            if value is not None:
                body[key] = value
        return body


_AI_ID_MAX = 256
_AI_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


class AIEvent(Event):
    """A recommendation or search event for Synerise's AI events API.

    ``event_type`` is one of :data:`AI_EVENT_TYPES`; ``client_uuid`` is the
    profile's UUID (the ``_snrs_uuid`` cookie); ``items`` are item ids (sent
    as strings, may be empty); ``position`` (1-based) is for
    ``item.search.click``.
    """

    kind = "ai"

    def __init__(
        self,
        event_type: str,
        *,
        correlation_id: str,
        client_uuid: str,
        items: Iterable[str | int] = (),
        campaign_id: str | None = None,
        timestamp: dt.datetime | None = None,
        position: int | None = None,
    ) -> None:
        if event_type not in AI_EVENT_TYPES:
            raise InvalidEventError(
                "eventType", f"must be one of {', '.join(AI_EVENT_TYPES)}, not {event_type!r}"
            )
        self.event_type = event_type
        self.correlation_id = self._short_id("correlationId", correlation_id)
        self.client_uuid = _check_uuid("clientUUID", client_uuid)
        self.client = {"uuid": self.client_uuid}
        if isinstance(items, (str, bytes)):
            raise InvalidEventError("items", "must be a list of item ids, not a string")
        self.items = [self._short_id(f"items[{i}]", item) for i, item in enumerate(items)]
        if not self.items and event_type != "recommendation.view":
            # A click is on something: without the item the event says nothing.
            raise InvalidEventError("items", f"a {event_type} event needs the clicked item")
        self.campaign_id = (
            self._short_id("campaignId", campaign_id) if campaign_id is not None else None
        )
        self.timestamp = (
            _check_time("eventTimestamp", timestamp) if timestamp is not None else _utcnow()
        )
        if self.timestamp < _AI_EARLIEST:
            # Recommendations did not exist then; and millisecond stamps this small are
            # indistinguishable from a mistake in seconds.
            raise InvalidEventError(
                "eventTimestamp", f"must be after 2000-01-01, not {self.timestamp.isoformat()}"
            )
        if position is not None and (
            isinstance(position, bool) or not isinstance(position, int) or position < 1
        ):
            raise InvalidEventError("position", f"must be a positive integer, not {position!r}")
        self.position = position
        self.salt = None

    @staticmethod
    def _short_id(field: str, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise InvalidEventError(field, "must be a non-empty string")
        if len(value) > _AI_ID_MAX:
            raise InvalidEventError(field, f"must be at most {_AI_ID_MAX} characters")
        return _check_identifier_text(field, value)

    @property
    def batch_type(self) -> str:
        return self.event_type

    @property
    def action(self) -> str:
        return self.event_type

    @property
    def occurred_at(self) -> dt.datetime:
        return self.timestamp

    def to_payload(
        self,
        *,
        ai_api: AIEventsAPI = "events-v1",
        ai_timestamp_format: AITimestampFormat = "unix-ms",
    ) -> dict[str, Any]:
        if ai_timestamp_format == "iso8601":
            stamp: Any = format_time(self.timestamp)
        else:
            stamp = int(self.timestamp.timestamp() * 1000)
        body: dict[str, Any] = {
            "correlationId": self.correlation_id,
            "clientUUID": self.client_uuid,
        }
        if ai_api == "ai-compat" and self.event_type != "recommendation.view":
            # The newer ai-compat API describes click bodies with a single item.
            if self.items:
                body["item"] = self.items[0]
            if self.position is not None:
                body["position"] = self.position
        else:
            body["items"] = list(self.items)
        body["eventTimestamp"] = stamp
        if self.campaign_id is not None:
            body["campaignId"] = self.campaign_id
        return body
