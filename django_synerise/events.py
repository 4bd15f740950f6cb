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
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .exceptions import InvalidEventError

if TYPE_CHECKING:
    from .catalog import CatalogItem
    from .profiles import ProfileUpdate, merge_profiles

__all__ = [
    "AI_EVENT_TYPES",
    "AI_ID_MAX_LENGTH",
    "CLIENT_IDENTIFIERS",
    "DEDICATED_EVENT_TYPES",
    "EVENT_SOURCES",
    "MAX_IDENTIFIER_LENGTH",
    "RESERVED_PARAMS",
    "SEARCH_TYPES",
    "UTM_PARAMETERS",
    "AIEvent",
    "CatalogItem",
    "CustomEvent",
    "DedicatedEvent",
    "Event",
    "ProfileUpdate",
    "Transaction",
    "add_to_cart",
    "add_to_favorites",
    "cancelled_transaction",
    "cart_status",
    "check_identifier",
    "dumps",
    "format_time",
    "item_search_click",
    "merge_profiles",
    "page_visit",
    "product_view",
    "remove_from_cart",
    "shape_ai_payload",
    "source_from_user_agent",
]

# Profiles and catalog items live in their own modules (which build on this one);
# they are imported on first use so that either module can be imported first.
_ELSEWHERE = {
    "CatalogItem": "catalog",
    "ProfileUpdate": "profiles",
    "merge_profiles": "profiles",
}


def __getattr__(name: str) -> Any:
    if name not in _ELSEWHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__package__}.{_ELSEWHERE[name]}"), name)
    globals()[name] = value
    return value


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
    "item-search-click": "item.search.click",
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
#: Longest ``customId``, ``uuid`` or ``email`` accepted in ``client``.
MAX_IDENTIFIER_LENGTH = 512
#: Longest correlation, campaign or item id of an AI event (Synerise's limit);
#: beacons and template tags hold ids to the same limit.
AI_ID_MAX_LENGTH = 256
#: The campaign parameters a page visit carries by their own names.
UTM_PARAMETERS: tuple[str, ...] = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)

#: Where an event or transaction happened: Synerise's ``EventSource`` values
#: (php-sdk ``lib/V4/Models/EventSource.php``).
EVENT_SOURCES: tuple[str, ...] = (
    "WEB_DESKTOP",
    "WEB_MOBILE",
    "MOBILE_APP",
    "POS",
    "MOBILE",
    "DESKTOP",
)

# Spellings accepted for compatibility, and the value sent instead. Earlier
# versions accepted MOBILE_WEB, which is not an EventSource: it keeps working
# and goes on the wire as the value it meant.
_SOURCE_ALIASES: dict[str, str] = {"MOBILE_WEB": "WEB_MOBILE"}

#: ``searchType`` of a search-result click (php-sdk ``lib/V4/Models/SearchType.php``).
SEARCH_TYPES: tuple[str, ...] = ("full-text-search", "autocomplete")

AITimestampFormat = Literal["unix-ms", "iso8601"]
AIEventsAPI = Literal["events-v1", "ai-compat"]

# Phones and tablets, as the SDK's MobileDetect counts them (both are WEB_MOBILE).
_MOBILE_UA_RE = re.compile(
    r"Mobi|Android|iPhone|iPad|iPod|Tablet|Silk/|Kindle|BlackBerry|BB10|Opera Mini|"
    r"IEMobile|Windows Phone|webOS|PlayBook",
    re.IGNORECASE,
)


def source_from_user_agent(user_agent: str | None) -> str:
    """``"WEB_MOBILE"`` for a phone or tablet browser, else ``"WEB_DESKTOP"``.

    The ``source`` of a web event, from the request's ``User-Agent`` header
    (``request.headers.get("User-Agent")``); no or an unknown user agent counts
    as desktop, the default Synerise's own SDK falls back to.
    """
    if user_agent and _MOBILE_UA_RE.search(user_agent):
        return "WEB_MOBILE"
    return "WEB_DESKTOP"


def check_source(value: Any, field: str = "source") -> str:
    """``value`` as one of :data:`EVENT_SOURCES`; raises naming ``field`` otherwise."""
    if isinstance(value, str) and value in _SOURCE_ALIASES:
        return _SOURCE_ALIASES[value]
    if not isinstance(value, str) or value not in EVENT_SOURCES:
        raise InvalidEventError(field, f"must be one of {', '.join(EVENT_SOURCES)}, not {value!r}")
    return value


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


def check_identifier(key: str, value: Any) -> Any:
    """One profile identifier of ``client`` as Synerise accepts it; ``None`` when empty.

    The one rule for identifiers, used by events and by
    :func:`django_synerise.identity.user_client`: ``id`` is a positive integer;
    ``customId``, ``uuid`` and ``email`` are strings (surrounding whitespace
    removed) of at most :data:`MAX_IDENTIFIER_LENGTH` characters without
    control characters, ``uuid`` a UUID (sent in canonical form) and ``email``
    an address. ``None`` and blank strings are empty, not errors. Raises
    :class:`~django_synerise.exceptions.InvalidEventError` naming
    ``client.<key>`` otherwise.
    """
    field = f"client.{key}"
    if key not in CLIENT_IDENTIFIERS:
        raise InvalidEventError(field, f"is not an identifier; use {', '.join(CLIENT_IDENTIFIERS)}")
    if value is None or value == "":
        return None
    if key == "id":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidEventError(field, f"must be a positive integer, not {value!r}")
        return value
    if not isinstance(value, str):
        raise InvalidEventError(field, f"must be a string, not {value!r}")
    value = value.strip()
    if not value:
        return None
    _check_identifier_text(field, value)
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise InvalidEventError(field, f"must be at most {MAX_IDENTIFIER_LENGTH} characters")
    if key == "uuid":
        value = _check_uuid(field, value)
    if key == "email" and not _EMAIL_RE.match(value):
        raise InvalidEventError(field, f"is not an email address: {value!r}")
    return value


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
        value = check_identifier(key, client.get(key))
        if value is not None:
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
    if isinstance(salt, int) and not isinstance(salt, bool):
        salt = str(salt)  # an order number
    if not isinstance(salt, str) or not salt or len(salt) > 128:
        raise InvalidEventError("eventSalt", "must be a non-empty string of at most 128 characters")
    return _check_identifier_text("eventSalt", salt)


def _money_object(field: str, value: Any, *, required: bool = False) -> None:
    """Check a money object already in params: ``{"amount": >= 0, "currency": ISO 4217}``."""
    if value is None:
        if required:
            raise InvalidEventError(field, 'is required: {"amount": ..., "currency": ...}')
        return
    if not isinstance(value, Mapping):
        raise InvalidEventError(field, 'must be {"amount": <number>, "currency": "<ISO 4217>"}')
    amount = value.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise InvalidEventError(f"{field}.amount", f"must be a number, not {amount!r}")
    if amount < 0:
        raise InvalidEventError(f"{field}.amount", f"must be >= 0, not {amount!r}")
    currency = value.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise InvalidEventError(f"{field}.currency", f"must be an ISO 4217 code, not {currency!r}")


def _param_text(params: Mapping[str, Any], key: str) -> None:
    value = params.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidEventError(f"params.{key}", f"is required (a non-empty string), not {value!r}")


def _param_source(params: dict[str, Any], *, required: bool = True) -> None:
    if required or "source" in params:
        params["source"] = check_source(params.get("source"), "params.source")


def _cart_rule(params: dict[str, Any]) -> None:
    # php-sdk CartEventValidator: source, sku, name, quantity, finalUnitPrice.
    _param_source(params)
    _param_text(params, "sku")
    _param_text(params, "name")
    quantity = params.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, (int, float)) or quantity <= 0:
        raise InvalidEventError("params.quantity", f"must be a positive number, not {quantity!r}")
    _money_object("params.finalUnitPrice", params.get("finalUnitPrice"), required=True)
    for key in ("regularUnitPrice", "discountedUnitPrice"):
        _money_object(f"params.{key}", params.get(key))
    for key in ("regularPrice", "discountPrice"):
        if key in params:
            raise InvalidEventError(
                f"params.{key}", "is a transaction field; cart events use *UnitPrice names"
            )


def _product_view_rule(params: dict[str, Any]) -> None:
    # php-sdk ProductViewValidator: source; the product is named by productId.
    _param_source(params)
    if "sku" in params and "productId" not in params:
        raise InvalidEventError("params.productId", "names the product on product-view (not sku)")


def _favorites_rule(params: dict[str, Any]) -> None:
    # php-sdk AddedToFavoritesValidator: params required.
    if not params:
        raise InvalidEventError("params", "are required: the product (sku/productId, name ...)")
    _param_source(params, required=False)


def _search_click_rule(params: dict[str, Any]) -> None:
    # php-sdk ItemSearchClickValidator: correlationId, item, position, searchType.
    _param_text(params, "correlationId")
    _param_text(params, "item")
    _check_position(params.get("position"), "params.position")
    _check_search_type(params.get("searchType"), "params.searchType")
    _param_source(params, required=False)


def _cancelled_rule(params: dict[str, Any]) -> None:
    # php-sdk CancelledTransactionValidator: orderId.
    _param_text(params, "orderId")
    _param_source(params, required=False)


def _cart_status_rule(params: dict[str, Any]) -> None:
    # php-sdk CartStatusValidator: source, total_amount and total_quantity (floats), products.
    _param_source(params)
    for key in ("total_amount", "total_quantity"):
        total = params.get(key)
        if isinstance(total, bool) or not isinstance(total, (int, float)) or total < 0:
            raise InvalidEventError(f"params.{key}", f"must be a number >= 0, not {total!r}")
        params[key] = float(total)
    products = params.get("products")
    if not isinstance(products, list):
        raise InvalidEventError("params.products", "is required: a list of products")
    for index, product in enumerate(products):
        field = f"params.products[{index}]"
        if not isinstance(product, Mapping):
            raise InvalidEventError(field, "must be a dict")
        for key in ("sku", "name"):
            value = product.get(key)
            if not isinstance(value, str) or not value.strip():
                raise InvalidEventError(f"{field}.{key}", "is required (a non-empty string)")
        _money_object(f"{field}.finalUnitPrice", product.get("finalUnitPrice"), required=True)
        for key in _PRODUCT_MONEY[1:]:
            _money_object(f"{field}.{key}", product.get(key))


#: What Synerise's SDK validators require of an event's params, by dedicated type or
#: custom action. The builders in :mod:`django_synerise.shop` produce valid params;
#: an event built by hand is held to the same rules.
_PARAMS_RULES: dict[str, Callable[[dict[str, Any]], None]] = {
    "added-to-cart": _cart_rule,
    "removed-from-cart": _cart_rule,
    "product-view": _product_view_rule,
    "added-to-favorites": _favorites_rule,
    "item-search-click": _search_click_rule,
    "cancelled-transaction": _cancelled_rule,
    "cart.status": _cart_status_rule,
}


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
        ai_api: AIEventsAPI | None = None,
        ai_timestamp_format: AITimestampFormat | None = None,
    ) -> dict[str, Any]:
        """The JSON object stored for this event; sent as a batch item (AI events: shaped first)."""
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
        if action in _PARAMS_RULES:
            _PARAMS_RULES[action](self.params)

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
        if event_type in _PARAMS_RULES:
            _PARAMS_RULES[event_type](self.params)

    @property
    def batch_type(self) -> str:
        return self.event_type

    @property
    def action(self) -> str:
        return DEDICATED_EVENT_TYPES[self.event_type]

    def to_payload(self, **options: Any) -> dict[str, Any]:
        return {"type": self.event_type, **self._common()}


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
        if key in UTM_PARAMETERS and value:
            merged[key] = value
    if params is not None and not isinstance(params, Mapping):
        raise InvalidEventError("params", f"must be a dict, not {type(params).__name__}")
    if params:
        merged.update(params)
    return CustomEvent("page.visit", client=client, params=merged, time=time, salt=salt)


def _money(field: str, amount: Any, currency: str | None) -> dict[str, Any] | None:
    """``{"amount": ..., "currency": ...}`` from a number or such a dict; ``None`` stays absent.

    Amounts must be >= 0: Synerise's transactions API says so of every
    monetary value. A price of 0 (a free item) is allowed.
    """
    if amount is None:
        return None
    if isinstance(amount, Mapping):
        amount_value = amount.get("amount")
        currency = amount.get("currency", currency)
    else:
        amount_value = amount
    if isinstance(amount_value, bool) or not isinstance(amount_value, (int, float, Decimal)):
        raise InvalidEventError(field, f"must be a number, not {amount_value!r}")
    cleaned = _clean_json(field, amount_value)
    if cleaned < 0:
        raise InvalidEventError(field, f"must be >= 0, not {amount_value!r}")
    if not currency:
        raise InvalidEventError(field, "needs a currency: pass currency='PLN' (ISO 4217)")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise InvalidEventError(f"{field}.currency", f"must be an ISO 4217 code, not {currency!r}")
    return {"amount": cleaned, "currency": currency}


#: Money fields of a product dict, by their transaction names.
_PRODUCT_MONEY = ("finalUnitPrice", "regularPrice", "discountPrice", "netUnitPrice")


def _required_text(field: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidEventError(field, f"is required (a non-empty string), not {value!r}")
    return _check_text(field, value)


def _product(
    field: str, product: Any, currency: str | None, *, money: tuple[str, ...] = _PRODUCT_MONEY
) -> dict[str, Any]:
    """A product dict checked the way Synerise's ``ProductValidator`` does.

    ``sku`` and ``name`` are required, ``quantity`` is a positive number
    (default 1), ``finalUnitPrice`` is required; every key in ``money`` becomes
    a money object (>= 0) in ``currency``. Other keys pass through unchanged.
    """
    if not isinstance(product, Mapping):
        raise InvalidEventError(field, "must be a dict")
    out = _clean_json(field, {k: v for k, v in product.items() if k not in money})
    out["sku"] = _required_text(f"{field}.sku", out.get("sku"))
    out["name"] = _required_text(f"{field}.name", out.get("name"))
    quantity = out.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, (int, float)) or quantity <= 0:
        raise InvalidEventError(f"{field}.quantity", f"must be a positive number, not {quantity!r}")
    out["quantity"] = quantity
    for key in money:
        amount = _money(f"{field}.{key}", product.get(key), currency)
        if amount is not None:
            out[key] = amount
    if "finalUnitPrice" not in out:
        raise InvalidEventError(f"{field}.finalUnitPrice", "is required")
    return out  # type: ignore[no-any-return]


def _one_currency(amounts: Iterable[tuple[str, dict[str, Any] | None]]) -> None:
    # Synerise takes one currency per transaction (and per cart); a computed
    # total would otherwise add up amounts of different currencies.
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
                "an order or a cart has one currency",
            )


def _product_amounts(
    products: list[dict[str, Any]], keys: tuple[str, ...] = _PRODUCT_MONEY
) -> list[tuple[str, dict[str, Any] | None]]:
    return [
        (f"products[{index}].{key}", product.get(key))
        for index, product in enumerate(products)
        for key in keys
    ]


def _total(products: list[dict[str, Any]]) -> Decimal:
    return sum(
        (
            Decimal(str(p["finalUnitPrice"]["amount"])) * Decimal(str(p["quantity"]))
            for p in products
        ),
        Decimal(0),
    )


class Transaction(Event):
    """A transaction for ``/v4/transactions``; Synerise derives ``product.buy`` events from it.

    Money arguments take a number (with ``currency``) or a ready
    ``{"amount": ..., "currency": ...}`` dict; every amount must be >= 0 and
    in one currency. ``discount_amount`` of 0 is left out (Synerise wants it
    > 0 or absent). Each product needs ``sku``, ``name`` and
    ``finalUnitPrice`` (see :func:`product_view` for the full product dict).
    ``revenue`` defaults to the products' total, ``value`` to ``revenue``.
    ``source`` is one of :data:`EVENT_SOURCES` (``"MOBILE_WEB"``, accepted by
    earlier versions, is sent as ``"WEB_MOBILE"``).

    **Updating an order.** Synerise overwrites a transaction only when both
    ``eventSalt`` and ``recordedAt`` match the stored one; the same
    ``order_id`` sent twice is otherwise two transactions. To re-send an
    order after a change, derive both from the order itself:
    ``Transaction(..., salt=order.number, recorded_at=order.placed_at)``.
    Without them, ``salt`` is a new UUID and ``recorded_at`` is now, fixed at
    construction (so a retry of *this* object still overwrites itself).
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
        salt: str | int | None = None,
    ) -> None:
        self.client = _check_client(client)
        self.order_id = _required_text("orderId", order_id)
        if isinstance(products, (str, bytes, Mapping)):
            raise InvalidEventError("products", "must be a list of product dicts")
        self.products = [_product(f"products[{i}]", p, currency) for i, p in enumerate(products)]
        self.revenue = _money("revenue", revenue, currency)
        self.value = _money("value", value, currency)
        self.discount_amount = _money("discountAmount", discount_amount, currency)
        if self.discount_amount is not None and self.discount_amount["amount"] == 0:
            self.discount_amount = None
        self.payment_info = _clean_json("paymentInfo", payment_info) if payment_info else None
        self.metadata = _clean_json("metadata", metadata) if metadata else None
        self.source = check_source(source) if source is not None else None
        self.recorded_at = (
            _check_time("recordedAt", recorded_at) if recorded_at is not None else _utcnow()
        )
        self.salt = _check_salt(salt)
        _one_currency(
            [
                ("revenue", self.revenue),
                ("value", self.value),
                ("discountAmount", self.discount_amount),
                *_product_amounts(self.products),
            ]
        )
        if self.revenue is None and self.products:
            self.revenue = {
                "amount": _clean_json("revenue", _total(self.products)),
                "currency": self.products[0]["finalUnitPrice"]["currency"],
            }
        if self.value is None and self.revenue is not None:
            self.value = dict(self.revenue)

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


_AI_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


def _short_id(field: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidEventError(field, "must be a non-empty string")
    if len(value) > AI_ID_MAX_LENGTH:
        raise InvalidEventError(field, f"must be at most {AI_ID_MAX_LENGTH} characters")
    return _check_identifier_text(field, value)


def _check_position(position: Any, field: str = "position") -> int:
    if isinstance(position, bool) or not isinstance(position, int) or position < 1:
        raise InvalidEventError(field, f"must be a positive integer (1-based), not {position!r}")
    return position


def _check_search_type(search_type: Any, field: str = "searchType") -> str:
    if search_type not in SEARCH_TYPES:
        raise InvalidEventError(
            field, f"must be one of {', '.join(SEARCH_TYPES)}, not {search_type!r}"
        )
    return str(search_type)


class AIEvent(Event):
    """A recommendation or search event for Synerise's AI events API.

    ``event_type`` is one of :data:`AI_EVENT_TYPES`; ``client_uuid`` is the
    profile's UUID (the ``_snrs_uuid`` cookie); ``items`` are item ids (sent
    as strings; a view may have none, a click needs the clicked item).
    ``item.search.click`` also needs ``position`` (1-based) and takes
    ``search_type`` (:data:`SEARCH_TYPES`, default ``"full-text-search"``).

    :meth:`to_payload` without options is the *neutral* form the outbox
    stores: every field, the time as ISO 8601. :func:`shape_ai_payload` turns
    it into the body of the API configured when it is sent, so changing
    ``SYNERISE["AI_EVENTS_API"]`` never strands pending events.
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
        search_type: str | None = None,
    ) -> None:
        if event_type not in AI_EVENT_TYPES:
            raise InvalidEventError(
                "eventType", f"must be one of {', '.join(AI_EVENT_TYPES)}, not {event_type!r}"
            )
        self.event_type = event_type
        self.correlation_id = _short_id("correlationId", correlation_id)
        self.client_uuid = _check_uuid("clientUUID", client_uuid)
        self.client = {"uuid": self.client_uuid}
        if isinstance(items, (str, bytes)):
            raise InvalidEventError("items", "must be a list of item ids, not a string")
        self.items = [_short_id(f"items[{i}]", item) for i, item in enumerate(items)]
        if not self.items and event_type != "recommendation.view":
            # A click is on something: without the item the event says nothing.
            raise InvalidEventError("items", f"a {event_type} event needs the clicked item")
        self.campaign_id = _short_id("campaignId", campaign_id) if campaign_id is not None else None
        self.timestamp = (
            _check_time("eventTimestamp", timestamp) if timestamp is not None else _utcnow()
        )
        if self.timestamp < _AI_EARLIEST:
            # Recommendations did not exist then; and millisecond stamps this small are
            # indistinguishable from a mistake in seconds.
            raise InvalidEventError(
                "eventTimestamp", f"must be after 2000-01-01, not {self.timestamp.isoformat()}"
            )
        self.position: int | None = None
        self.search_type: str | None = None
        if event_type == "item.search.click":
            # Synerise's ItemSearchClickValidator requires both.
            if position is None:
                raise InvalidEventError("position", "is required for item.search.click (1-based)")
            self.position = _check_position(position)
            self.search_type = _check_search_type(search_type or "full-text-search")
        else:
            if position is not None:
                raise InvalidEventError(
                    "position", f"is only for item.search.click, not {event_type}"
                )
            if search_type is not None:
                raise InvalidEventError(
                    "searchType", f"is only for item.search.click, not {event_type}"
                )
        self.salt = None

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
        ai_api: AIEventsAPI | None = None,
        ai_timestamp_format: AITimestampFormat | None = None,
    ) -> dict[str, Any]:
        """The neutral stored form, or with ``ai_api`` the body for that API."""
        body: dict[str, Any] = {
            "eventType": self.event_type,
            "correlationId": self.correlation_id,
            "clientUUID": self.client_uuid,
            "items": list(self.items),
            "eventTimestamp": format_time(self.timestamp),
        }
        for key, value in (
            ("campaignId", self.campaign_id),
            ("position", self.position),
            ("searchType", self.search_type),
        ):
            if value is not None:
                body[key] = value
        if ai_api is None:
            return body
        return shape_ai_payload(body, api=ai_api, timestamp_format=ai_timestamp_format)


def _parse_stored_time(value: Any) -> dt.datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def shape_ai_payload(
    payload: Mapping[str, Any],
    *,
    api: AIEventsAPI,
    timestamp_format: AITimestampFormat | None = None,
    event_type: str | None = None,
) -> dict[str, Any]:
    """The body of one AI event for ``api``, from its stored (neutral) payload.

    ``"ai-compat"`` (``/v4/events/ai-compat/...``, the API Synerise documents
    today): a click carries the single clicked ``item``, a view its
    ``items``; ``eventTimestamp`` is an ISO 8601 string, whatever
    ``timestamp_format`` says; ``item.search.click`` carries ``position`` and
    ``searchType`` and no ``campaignId``.

    ``"events-v1"`` (``/events/v1/...``): ``items`` for every type;
    ``eventTimestamp`` in ``timestamp_format`` (``"unix-ms"``, the default,
    as the page's text says, or ``"iso8601"``); ``item.search.click`` keeps
    ``position`` and ``searchType``.

    The key is spelled ``eventTimestamp`` in both, as Synerise's docs spell
    it (the PHP SDK's generated models write ``EventTimestamp``, alone among
    their camelCase keys).

    Rows stored by earlier versions, already shaped for one API, are read
    too: ``item`` or ``items``, a millisecond or ISO time. ``event_type`` is
    needed only for those (the neutral form names its type).
    """
    kind = str(payload.get("eventType") or event_type or "")
    items = payload.get("items")
    if items is None:
        items = [payload["item"]] if "item" in payload else []
    body: dict[str, Any] = {
        "correlationId": payload["correlationId"],
        "clientUUID": payload["clientUUID"],
    }
    click = kind in ("recommendation.click", "item.search.click")
    if api == "ai-compat" and click:
        if items:
            body["item"] = items[0]
    else:
        body["items"] = list(items)
    stamp = _parse_stored_time(payload.get("eventTimestamp"))
    if stamp is not None:
        if api == "events-v1" and timestamp_format != "iso8601":
            body["eventTimestamp"] = int(stamp.timestamp() * 1000)
        else:
            body["eventTimestamp"] = format_time(stamp)
    if "campaignId" in payload and not (api == "ai-compat" and kind == "item.search.click"):
        body["campaignId"] = payload["campaignId"]
    if kind == "item.search.click":
        if "position" in payload:
            body["position"] = payload["position"]
        # Rows from before searchType existed were results-page clicks.
        body["searchType"] = payload.get("searchType", "full-text-search")
    return body


# The shop vocabulary lives in its own module and is part of this one's API.
from .shop import (  # noqa: E402
    add_to_cart,
    add_to_favorites,
    cancelled_transaction,
    cart_status,
    item_search_click,
    product_view,
    remove_from_cart,
)
