"""A local stand-in for the Synerise API: real HTTP on loopback, strict validation, faults.

:class:`LocalSynerise` serves the endpoints django-synerise calls, on
``127.0.0.1`` and a free port, from daemon threads::

    with LocalSynerise() as server:
        client = make_client(base_url=server.url, api_key=server.api_key)
        client.send(EVENTS, events)
        assert server.count == len(events)

What it checks, like the real API (and a little stricter where the real API
is undocumented, so that a client bug shows up here rather than in
production):

* headers: ``Content-Type: application/json`` on every POST (else 415), or
  ``text/plain`` (UTF-8) on the AI endpoints (see ``ai_text_plain``);
  ``Api-Version`` on login, v4 event and transaction calls (else 400);
* CORS on the AI endpoints, which browsers call directly: a preflight
  (``OPTIONS``) gets 204 with the ``Access-Control-Allow-*`` headers, and
  every answer echoes the request's ``Origin`` in ``Access-Control-Allow-Origin``;
* auth: workspace login with the API key returns a JWT with an ``exp``
  claim; v4 calls need ``Authorization: Bearer <issued, unexpired token>`` or,
  when ``workspace_guid`` is set, ``Basic base64(guid:api_key)`` (else 401);
  AI calls need ``?token=<tracker key>`` (missing 401, wrong 403) or a JWT;
* body: valid JSON, no ``null`` anywhere, no NaN/Infinity, at most
  ``max_body_bytes`` (else 413) and ``max_batch_items`` items per batch;
* shape: every rule of ``sending-events.txt`` and ``synerise-api.md`` (see the
  ``_check_*`` functions; each error names the item index and the field), also for
  profiles (``/v4/clients/batch``: flat, ``clientId``, boolean agreements) and catalog
  items (``/catalogs/bags/{numeric id}/items/batch``; ``GET /catalogs/bags?searchBy=``
  finds the ``catalogs`` given, see :meth:`LocalSynerise.add_catalog`).

An invalid item fails the whole request with 400 and Synerise's error body;
nothing of that request is recorded as accepted.

Faults (:meth:`LocalSynerise.inject`) and poison events
(:meth:`LocalSynerise.reject`) let tests drive every error path of a client.

Two endpoints of its own, outside the Synerise API, serve scripts that run it
in another process: ``GET /__local__/health`` and ``GET /__local__/summary``
(accepted counts per endpoint and type, as JSON).

This module uses the standard library only and imports nothing from Django,
so it also runs as ``python -m django_synerise.testing`` beside any process.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import random
import re
import secrets
import selectors
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any, Literal, TypedDict, TypeGuard
from urllib.parse import parse_qsl

__all__ = [
    "AI_EVENT_TYPES",
    "DEDICATED_EVENT_TYPES",
    "FAULT_KINDS",
    "AcceptedEvent",
    "Fault",
    "LocalSynerise",
    "RecordedRequest",
]

# The API's own vocabulary, copied rather than imported from django_synerise.events:
# the stand-in must judge the client's event model, not share its mistakes.
# tests/test_testing.py checks that both lists agree.

#: Dedicated v4 endpoints (``/v4/events/<name>``, also the batch ``type``) and the
#: action Synerise stores their events under.
DEDICATED_EVENT_TYPES: Mapping[str, str] = MappingProxyType(
    {
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
)

#: Event types of the AI events API.
AI_EVENT_TYPES: frozenset[str] = frozenset(
    {"recommendation.view", "recommendation.click", "item.search.click"}
)

#: What :meth:`LocalSynerise.inject` accepts.
FAULT_KINDS: frozenset[str] = frozenset(
    {
        "500",
        "502",
        "503",
        "429",
        "404",
        "415",
        "timeout",
        "slow",
        "drop",
        "malformed",
        "expire_tokens",
    }
)

RecordMode = Literal["full", "salts", "count"]

LOGIN_PATH = "/uauth/v2/auth/login/profile"
#: Path prefixes of the AI events API: the endpoints a browser calls directly.
AI_PATH_PREFIXES = ("/events/v1/", "/v4/events/ai-compat/")
#: Introspection endpoints of the stand-in itself (not part of the Synerise API).
ADMIN_PREFIX = "/__local__/"
# A query's token= value (the tracker key of AI events), kept out of the verbose log.
_QUERY_TOKEN = re.compile(r"(?i)([?&]token=)[^&\s\"']+")

_V4_EVENT_KEYS = frozenset({"type", "action", "client", "label", "time", "params", "eventSalt"})
_CLIENT_KEYS = frozenset({"id", "customId", "uuid", "email"})
_CLIENT_KEYS_TEXT = "id, customId, uuid, email"
_AI_V1_KEYS = frozenset(
    {"eventType", "correlationId", "clientUUID", "items", "eventTimestamp", "campaignId"}
)
_AI_COMPAT_KEYS = _AI_V1_KEYS | {"item", "position", "sessionId", "searchType", "EventTimestamp"}
_AI_CLICK_TYPES = frozenset({"recommendation.click", "item.search.click"})
_AI_SEARCH_KEYS = frozenset({"position", "searchType"})
#: ``searchType`` of a search-result click (php-sdk ``lib/V4/Models/SearchType.php``).
_SEARCH_TYPES = frozenset({"full-text-search", "autocomplete"})
#: Synerise's ``EventSource`` (php-sdk ``lib/V4/Models/EventSource.php``): no MOBILE_WEB.
_EVENT_SOURCES = frozenset({"WEB_DESKTOP", "WEB_MOBILE", "MOBILE_APP", "POS", "MOBILE", "DESKTOP"})
_TX_MONEY = ("revenue", "value", "discountAmount")
_PRODUCT_MONEY = ("finalUnitPrice", "regularPrice", "discountPrice", "netUnitPrice")
_FORBIDDEN_CUSTOM_ACTIONS = {
    "transaction.charge": "transactions must be sent to /v4/transactions; "
    "the events endpoints do not create product.buy events",
    **{
        event_type: "recommendation events must be sent to the AI events API (/events/v1)"
        for event_type in AI_EVENT_TYPES
    },
    # "If the event has a dedicated endpoint: add the type ... remove the action."
    **{
        action: f"has a dedicated endpoint: send it with type {name!r} and no action"
        for name, action in DEDICATED_EVENT_TYPES.items()
    },
}

_ACTION_RE = re.compile(r"[A-Za-z0-9._-]{2,32}\Z")
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)
_CURRENCY_RE = re.compile(r"[A-Z]{3}\Z")
_API_VERSION_RE = re.compile(r"\d+(\.\d+)*\Z")
# ISO 8601 date-time with a mandatory offset: a time without one is ambiguous,
# and the real API documents only ``Z`` and ``±hh:mm`` forms.
_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)\Z"
)
# A Unix time in milliseconds is past 10**11 for any date after March 1973; a smaller
# value is almost certainly seconds, the classic eventTimestamp mistake.
_MIN_UNIX_MS = 10**11
# Bodies above this are not even read: the connection is closed after the 413.
_HARD_BODY_CAP = 64 * 1024 * 1024
# How long a browser may cache a preflight answer (Chromium caps it at two hours).
_PREFLIGHT_MAX_AGE = "7200"
_MAX_ERRORS = 100

Errors = list[tuple[str, str]]


class AcceptedEventBase(TypedDict):
    """Keys every accepted-event record has (see :class:`AcceptedEvent`)."""

    endpoint: str
    type: str
    action: str
    salt: str | None
    correlation: str | None
    time_replaced: bool


class AcceptedEvent(AcceptedEventBase, total=False):
    """One event the stand-in accepted, as kept in :attr:`LocalSynerise.events`.

    ``endpoint`` is ``v4-batch``, ``v4-custom``, ``v4-dedicated``, ``transactions``,
    ``transactions-batch``, ``ai-batch``, ``ai-single``, ``ai-compat-batch`` or
    ``ai-compat-single``; ``type`` the batch ``type`` (``custom``, ``added-to-cart``),
    ``transaction`` or the AI ``eventType``; ``salt`` the ``eventSalt``;
    ``correlation`` an AI event's ``correlationId``; ``time_replaced`` is true when
    a v4 event's ``time`` was in the future (Synerise stores the receive time
    instead). ``body`` (the item as sent) is kept in ``record="full"`` mode only.
    """

    body: dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the stand-in answered (or dropped), secrets redacted.

    ``headers`` has lower-cased names; ``authorization`` keeps only its scheme
    (``"Bearer <redacted>"``) and a ``token`` query parameter reads
    ``<redacted>``. ``status`` is ``None`` when the connection was dropped.
    ``body`` is the parsed JSON body in ``record="full"`` mode, else ``None``.
    """

    method: str
    path: str
    query: dict[str, str]
    status: int | None
    headers: dict[str, str]
    size: int
    body: Any
    fault: str | None
    request_id: str
    errors: tuple[tuple[str, str], ...] = ()


@dataclass
class Fault:
    """An injected fault (see :meth:`LocalSynerise.inject`); ``fired`` counts its uses."""

    kind: str
    times: int | None = None
    probability: float | None = None
    paths: tuple[str, ...] | None = None
    retry_after: float | str | None = None
    delay: float = 30.0
    fired: int = 0

    @property
    def exhausted(self) -> bool:
        """True once a ``times=n`` fault has fired n times."""
        return self.times is not None and self.fired >= self.times

    def matches(self, path: str, bearer: bool) -> bool:
        """Whether a request to ``path`` is a candidate for this fault."""
        if self.kind == "expire_tokens" and not bearer:
            return False
        if self.paths is None:
            # The login call and the stand-in's own endpoints are faulted only when named,
            # so that ``inject("503", times=1)`` hits the event send, not the login before it.
            return path != LOGIN_PATH and not path.startswith(ADMIN_PREFIX)
        return any(path.startswith(prefix) for prefix in self.paths)


@dataclass
class _Reply:
    """What the handler writes back."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False  # close the socket without any response
    delay: float = 0.0  # wait this long before answering (cut short by stop())


class _Rejected(Exception):
    """A request the API refuses; turned into Synerise's error body."""

    def __init__(self, status: int, message: str, errors: Errors | None = None) -> None:
        self.status = status
        self.message = message
        self.errors = errors or []
        super().__init__(message)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_iso_portable(value: str) -> float | None:
    match = _ISO_RE.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        stamp = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            tzinfo=dt.timezone.utc,
        ).timestamp()
    except ValueError:
        return None
    if fraction:
        stamp += int(fraction) / 10 ** len(fraction)
    if offset != "Z":
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        if hours > 23 or minutes > 59:
            return None
        shift = hours * 3600 + minutes * 60
        stamp = stamp - shift if offset[0] == "+" else stamp + shift
    return stamp


def _parse_iso(value: Any) -> float | None:
    """Return the Unix time of an ISO 8601 date-time string, or None when it is not one."""
    if type(value) is not str:
        return None
    if sys.version_info >= (3, 11):
        # The regex fixes the accepted grammar; the C parser (complete ISO 8601 only
        # from 3.11) checks the ranges about ten times faster than building it by hand.
        if _ISO_RE.match(value) is None:
            return None
        try:
            return dt.datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return _parse_iso_portable(value)


def _find_nulls(value: Any, path: str, errors: Errors) -> None:
    if len(errors) >= _MAX_ERRORS:
        return
    if value is None:
        errors.append((path or "body", "must not be null: omit a field that has no value"))
    elif type(value) is dict:
        for key, item in value.items():
            _find_nulls(item, f"{path}.{key}" if path else key, errors)
    elif type(value) is list:
        for index, item in enumerate(value):
            _find_nulls(item, f"{path}[{index}]", errors)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return type(value) is int or type(value) is float


def _check_client(client: Any, at: str, errors: Errors) -> None:
    where = at + "client"
    if type(client) is not dict:
        if client is None:
            errors.append((where, f"is required: an object with one of {_CLIENT_KEYS_TEXT}"))
        else:
            errors.append((where, f"must be an object with one of {_CLIENT_KEYS_TEXT}"))
        return
    if not client:
        errors.append((where, f"needs at least one of {_CLIENT_KEYS_TEXT}"))
        return
    if not client.keys() <= _CLIENT_KEYS:
        unknown = ", ".join(sorted(set(client) - _CLIENT_KEYS))
        errors.append((where, f"has unknown identifier(s) {unknown}; use {_CLIENT_KEYS_TEXT}"))
    for key, value in client.items():
        if key == "id":
            if type(value) is not int or value <= 0:
                errors.append((f"{where}.id", "must be a positive integer"))
        elif key in _CLIENT_KEYS:
            if type(value) is not str or not value.strip():
                errors.append((f"{where}.{key}", "must be a non-empty string"))
            elif key == "uuid" and not _UUID_RE.match(value):
                errors.append((f"{where}.uuid", f"is not a UUID: {value!r}"))
            elif key == "email" and "@" not in value:
                errors.append((f"{where}.email", f"is not an email address: {value!r}"))


def _check_v4_event(
    item: Any, at: str, route: str, now: float, errors: Errors
) -> tuple[str, str, bool] | None:
    """Validate one v4 event; return (type, action, time_replaced), or None after errors.

    ``route`` is ``"batch"``, ``"custom"`` or the dedicated endpoint's name.
    ``at`` prefixes field names (``"[3]."`` in a batch, ``""`` for a single event).
    """
    if type(item) is not dict:
        errors.append((at.rstrip(".") or "body", "must be a JSON object (an event)"))
        return None
    before = len(errors)
    if not item.keys() <= _V4_EVENT_KEYS:
        for key in sorted(set(item) - _V4_EVENT_KEYS):
            errors.append(
                (
                    at + key,
                    "is not a field of a v4 event (type, action, client, label, "
                    "time, params, eventSalt)",
                )
            )
    event_type = item.get("type")
    action = item.get("action")
    if route == "batch":
        if event_type is None:
            errors.append((at + "type", "is required in a batch: 'custom' or a dedicated type"))
            event_type = "custom" if action is not None else "?"
        elif event_type != "custom" and (
            type(event_type) is not str or event_type not in DEDICATED_EVENT_TYPES
        ):
            errors.append(
                (at + "type", f"{event_type!r} is neither 'custom' nor a dedicated event type")
            )
    elif route == "custom":
        if event_type is not None and event_type != "custom":
            errors.append((at + "type", "must be 'custom' (or absent) on /v4/events/custom"))
        event_type = "custom"
    else:
        if event_type is not None and event_type != route:
            errors.append((at + "type", f"must be {route!r} (or absent) on /v4/events/{route}"))
        event_type = route
    if event_type == "custom":
        if action is None:
            errors.append((at + "action", "is required for a custom event"))
        elif type(action) is not str or not _ACTION_RE.match(action):
            errors.append(
                (at + "action", "must be 2 to 32 characters of letters, digits, '.', '-', '_'")
            )
        elif action in _FORBIDDEN_CUSTOM_ACTIONS:
            errors.append((at + "action", f"{action!r}: {_FORBIDDEN_CUSTOM_ACTIONS[action]}"))
    elif action is not None:
        errors.append(
            (at + "action", f"must not be sent with type {event_type!r}: the endpoint sets it")
        )
    _check_client(item.get("client"), at, errors)
    label = item.get("label")
    if type(label) is not str or not label.strip():
        errors.append((at + "label", "is required: a non-empty string"))
    time_replaced = False
    when = item.get("time")
    if when is not None:
        stamp = _parse_iso(when)
        if stamp is None:
            errors.append((at + "time", f"is not an ISO 8601 date-time with offset: {when!r}"))
        elif stamp > now:
            # Synerise ignores a future time and stores the receive time instead.
            time_replaced = True
    params = item.get("params")
    if params is not None and type(params) is not dict:
        errors.append((at + "params", "must be an object"))
    elif len(errors) == before:
        rule = _PARAMS_RULES.get(str(event_type if event_type != "custom" else action))
        if rule is not None:
            if params is None:
                errors.append((at + "params", "are required for this event"))
            else:
                rule(params, at + "params.", errors)
    salt = item.get("eventSalt")
    if salt is not None and (type(salt) is not str or not salt):
        errors.append((at + "eventSalt", "must be a non-empty string"))
    if len(errors) > before:
        return None
    # Past the checks above, type and action are valid strings.
    if event_type == "custom":
        return "custom", str(action), time_replaced
    return str(event_type), DEDICATED_EVENT_TYPES[event_type], time_replaced


def _check_money(value: Any, where: str, errors: Errors, *, positive: bool = False) -> None:
    """A money object; its amount >= 0 ("All monetary values must ... be greater than
    or equal to zero"), or > 0 with ``positive`` (``discountAmount``)."""
    if type(value) is not dict:
        errors.append((where, 'must be an object {"amount": <number>, "currency": "<ISO 4217>"}'))
        return
    amount = value.get("amount")
    if not _is_number(amount):
        errors.append((f"{where}.amount", "is required: a number"))
    elif positive and amount <= 0:
        errors.append((f"{where}.amount", "must be greater than zero, or the field omitted"))
    elif amount < 0:
        errors.append((f"{where}.amount", "must be greater than or equal to zero"))
    currency = value.get("currency")
    if type(currency) is not str or not _CURRENCY_RE.match(currency):
        errors.append((f"{where}.currency", "is required: a 3-letter ISO 4217 code"))


def _check_source(value: Any, where: str, errors: Errors) -> None:
    if value not in _EVENT_SOURCES:
        errors.append((where, f"must be one of {', '.join(sorted(_EVENT_SOURCES))}, not {value!r}"))


def _need_text(params: dict[str, Any], key: str, at: str, errors: Errors) -> None:
    value = params.get(key)
    if type(value) is not str or not value.strip():
        errors.append((at + key, "is required: a non-empty string"))


def _need_positive(params: dict[str, Any], key: str, at: str, errors: Errors) -> None:
    value = params.get(key)
    if not _is_number(value) or value <= 0:
        errors.append((at + key, "is required: a positive number"))


def _check_product(product: Any, where: str, errors: Errors) -> None:
    """A transaction product (php-sdk ``ProductValidator``): sku, name, finalUnitPrice."""
    if type(product) is not dict:
        errors.append((where, "must be an object"))
        return
    _need_text(product, "sku", where + ".", errors)
    _need_text(product, "name", where + ".", errors)
    if "finalUnitPrice" not in product:
        errors.append((f"{where}.finalUnitPrice", "is required: a money object"))
    for key in _PRODUCT_MONEY:
        if key in product:
            _check_money(product[key], f"{where}.{key}", errors)
    if "quantity" in product and (not _is_number(product["quantity"]) or product["quantity"] <= 0):
        errors.append((f"{where}.quantity", "must be a positive number"))


def _cart_params(params: dict[str, Any], at: str, errors: Errors) -> None:
    """``added-to-cart`` / ``removed-from-cart`` (php-sdk ``CartEventValidator``)."""
    _check_source(params.get("source"), at + "source", errors)
    _need_text(params, "sku", at, errors)
    _need_text(params, "name", at, errors)
    _need_positive(params, "quantity", at, errors)
    if "finalUnitPrice" not in params:
        errors.append((at + "finalUnitPrice", "is required: a money object"))
    for key in ("finalUnitPrice", "regularUnitPrice", "discountedUnitPrice"):
        if key in params:
            _check_money(params[key], at + key, errors)
    for key in ("regularPrice", "discountPrice"):
        if key in params:
            errors.append((at + key, "is a transaction field; cart events use *UnitPrice names"))


def _product_view_params(params: dict[str, Any], at: str, errors: Errors) -> None:
    """``product-view`` (php-sdk ``ProductViewValidator``): source required; productId, name."""
    _check_source(params.get("source"), at + "source", errors)
    for key in ("productId", "name"):
        if key in params and (type(params[key]) is not str or not params[key].strip()):
            errors.append((at + key, "must be a non-empty string"))
    if "sku" in params and "productId" not in params:
        errors.append((at + "productId", "is the product's id on product-view (not sku)"))


def _favorites_params(params: dict[str, Any], at: str, errors: Errors) -> None:
    """``added-to-favorites`` (php-sdk ``AddedToFavoritesValidator``: params required)."""
    if not params:
        errors.append((at.rstrip("."), "are required"))
    if "source" in params:
        _check_source(params["source"], at + "source", errors)


def _search_click_params(params: dict[str, Any], at: str, errors: Errors) -> None:
    """``item-search-click`` (php-sdk ``ItemSearchClickValidator``)."""
    _need_text(params, "correlationId", at, errors)
    _need_text(params, "item", at, errors)
    position = params.get("position")
    if type(position) is not int or position < 1:
        errors.append((at + "position", "is required: a positive integer (1-based)"))
    if params.get("searchType") not in _SEARCH_TYPES:
        errors.append(
            (at + "searchType", f"is required: one of {', '.join(sorted(_SEARCH_TYPES))}")
        )
    if "source" in params:
        _check_source(params["source"], at + "source", errors)


def _cancelled_params(params: dict[str, Any], at: str, errors: Errors) -> None:
    """``cancelled-transaction`` (php-sdk ``CancelledTransactionValidator``): orderId."""
    _need_text(params, "orderId", at, errors)
    if "source" in params:
        _check_source(params["source"], at + "source", errors)
    for key in ("revenue", "value"):
        if key in params:
            _check_money(params[key], at + key, errors)
    products = params.get("products")
    if products is not None:
        if type(products) is not list:
            errors.append((at + "products", "must be an array"))
        else:
            for index, product in enumerate(products):
                _check_product(product, f"{at}products[{index}]", errors)


def _cart_status_params(params: dict[str, Any], at: str, errors: Errors) -> None:
    """Custom ``cart.status`` (php-sdk ``CartStatusValidator``)."""
    if "source" not in params:
        errors.append((at + "source", "is required"))
    else:
        _check_source(params["source"], at + "source", errors)
    for key in ("total_amount", "total_quantity"):
        total = params.get(key)
        if type(total) is not float:
            errors.append((at + key, "is required: a float"))
        elif total < 0:
            errors.append((at + key, "must be >= 0"))
    products = params.get("products")
    if type(products) is not list:
        errors.append((at + "products", "is required: an array of products"))
    else:
        for index, product in enumerate(products):
            _check_product(product, f"{at}products[{index}]", errors)


# Params rules by dedicated type, or by custom action.
_PARAMS_RULES: dict[str, Callable[[dict[str, Any], str, Errors], None]] = {
    "added-to-cart": _cart_params,
    "removed-from-cart": _cart_params,
    "product-view": _product_view_params,
    "added-to-favorites": _favorites_params,
    "item-search-click": _search_click_params,
    "cancelled-transaction": _cancelled_params,
    "cart.status": _cart_status_params,
}


def _check_transaction(tx: Any, at: str, errors: Errors) -> bool:
    """Validate one transaction; return whether it is valid."""
    if type(tx) is not dict:
        errors.append((at.rstrip(".") or "body", "must be a JSON object (a transaction)"))
        return False
    before = len(errors)
    _check_client(tx.get("client"), at, errors)
    order_id = tx.get("orderId")
    if type(order_id) is not str or not order_id.strip():
        errors.append((at + "orderId", "is required: a non-empty string"))
    for key in _TX_MONEY:
        if key in tx:
            _check_money(tx[key], at + key, errors, positive=key == "discountAmount")
    if "recordedAt" in tx and _parse_iso(tx["recordedAt"]) is None:
        errors.append((at + "recordedAt", "is not an ISO 8601 date-time with offset"))
    for key in ("metadata", "paymentInfo"):
        if key in tx and type(tx[key]) is not dict:
            errors.append((at + key, "must be an object"))
    if "source" in tx:
        _check_source(tx["source"], at + "source", errors)
    salt = tx.get("eventSalt")
    if salt is not None and (type(salt) is not str or not salt):
        errors.append((at + "eventSalt", "must be a non-empty string"))
    products = tx.get("products")
    if products is not None:
        if type(products) is not list:
            errors.append((at + "products", "must be an array"))
        else:
            for index, product in enumerate(products):
                _check_product(product, f"{at}products[{index}]", errors)
    currencies = {
        money["currency"]
        for money in _money_fields(tx)
        if type(money) is dict and type(money.get("currency")) is str
    }
    if len(currencies) > 1:
        errors.append((at.rstrip(".") or "body", f"mixes currencies {sorted(currencies)}: use one"))
    return len(errors) == before


def _money_fields(tx: dict[str, Any]) -> list[Any]:
    fields = [tx[key] for key in _TX_MONEY if key in tx]
    products = tx.get("products")
    if type(products) is list:
        fields += [
            product[key]
            for product in products
            if type(product) is dict
            for key in _PRODUCT_MONEY
            if key in product
        ]
    return fields


def _check_ai_event(item: Any, at: str, event_type: str, compat: bool, errors: Errors) -> bool:
    """Validate one AI event body for ``event_type``; return whether it is valid."""
    if type(item) is not dict:
        errors.append((at.rstrip(".") or "body", "must be a JSON object (an AI event)"))
        return False
    before = len(errors)
    allowed = _AI_COMPAT_KEYS if compat else _AI_V1_KEYS | _AI_SEARCH_KEYS
    if not item.keys() <= allowed:
        for key in sorted(set(item) - allowed):
            errors.append((at + key, "is not a field of this AI event"))
    own_type = item.get("eventType")
    if own_type is not None and own_type != event_type:
        errors.append((at + "eventType", f"must be {event_type!r}: one event type per request"))
    correlation = item.get("correlationId")
    if type(correlation) is not str or not correlation.strip():
        errors.append((at + "correlationId", "is required: a non-empty string"))
    client_uuid = item.get("clientUUID")
    if type(client_uuid) is not str or not _UUID_RE.match(client_uuid):
        errors.append((at + "clientUUID", "is required: a UUID string"))
    click_with_item = compat and event_type in _AI_CLICK_TYPES
    if "item" in item:
        if not click_with_item:
            errors.append((at + "item", "is only for click events; send items"))
        elif type(item["item"]) is not str or not item["item"]:
            errors.append((at + "item", "must be a non-empty string (an item id)"))
    items = item.get("items")
    if items is None:
        if not (click_with_item and "item" in item):
            errors.append(
                (at + "items", "is required: an array of item ids (strings), possibly empty")
                if not click_with_item
                else (at + "item", "is required: the clicked item id (or items)")
            )
    elif type(items) is not list:
        errors.append((at + "items", "must be an array of item ids (strings)"))
    else:
        for index, value in enumerate(items):
            if type(value) is not str or not value:
                errors.append((f"{at}items[{index}]", "must be a non-empty string (an item id)"))
                break
    if "EventTimestamp" in item and "eventTimestamp" in item:
        errors.append((at + "EventTimestamp", "is eventTimestamp spelled twice: send one"))
    # ai-compat's models (php-sdk RecommendationClickEventDataCompat ...) spell the key
    # EventTimestamp; its docs eventTimestamp: both are read, and both must be ISO 8601.
    stamp_key = "EventTimestamp" if "EventTimestamp" in item else "eventTimestamp"
    stamp = item.get(stamp_key)
    if stamp is not None and compat:
        if type(stamp) is not str or _parse_iso(stamp) is None:
            errors.append((at + stamp_key, "must be an ISO 8601 date-time string on ai-compat"))
    elif stamp is not None:
        if type(stamp) is int:
            if stamp < _MIN_UNIX_MS:
                errors.append(
                    (
                        at + "eventTimestamp",
                        "must be Unix time in milliseconds (looks like seconds)",
                    )
                )
        elif _parse_iso(stamp) is None:
            errors.append(
                (at + "eventTimestamp", "must be Unix time in ms or an ISO 8601 date-time string")
            )
    for key in ("campaignId", "sessionId"):
        if key in item and (type(item[key]) is not str or not item[key]):
            errors.append((at + key, "must be a non-empty string"))
    if event_type == "item.search.click":
        # ItemSearchClickValidator requires both; events-v1 documents neither, so there
        # they are checked only when sent.
        if compat or "position" in item:
            position = item.get("position")
            if type(position) is not int or position < 1:
                errors.append((at + "position", "is required: a positive integer (1-based)"))
        search_type = item.get("searchType")
        if (compat or "searchType" in item) and search_type not in _SEARCH_TYPES:
            errors.append(
                (at + "searchType", f"is required: one of {', '.join(sorted(_SEARCH_TYPES))}")
            )
        if compat and "campaignId" in item:
            errors.append((at + "campaignId", "is not a field of an item.search.click"))
    else:
        for key in sorted(_AI_SEARCH_KEYS & item.keys()):
            errors.append((at + key, "is only for item.search.click"))
    return len(errors) == before


def _is_utf8_text_plain(media_type: str, parameters: str) -> bool:
    """Whether a Content-Type is ``text/plain``, bare or with ``charset=UTF-8``."""
    if media_type != "text/plain":
        return False
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


# -- profiles and catalogs --------------------------------------------------------------
# From the PHP SDK's generated models (lib/V4/Models/CreateClientRequestBody.php,
# Agreements.php; lib/Catalogs/Models/AddItem.php), copied rather than imported for
# the same reason as the event vocabulary above.

PROFILES_PATH = "/v4/clients/batch"
CATALOGS_PATH = "/catalogs/bags"
_CATALOG_ITEMS_RE = re.compile(r"/catalogs/bags/([^/]+)/items/batch\Z")
_PROFILE_IDENTIFIERS = ("clientId", "customId", "uuid", "email")
_PROFILE_TEXT = frozenset(
    {
        "address",
        "avatarUrl",
        "city",
        "company",
        "displayName",
        "firstName",
        "lastName",
        "province",
        "zipCode",
        "countryCode",
        "phone",
    }
)
_PROFILE_KEYS = (
    frozenset(_PROFILE_IDENTIFIERS)
    | _PROFILE_TEXT
    | {"agreements", "attributes", "birthDate", "sex", "tags"}
)
_AGREEMENT_KEYS = frozenset({"bluetooth", "email", "push", "rfid", "sms", "webPush", "wifi"})
_SEXES = frozenset({"FEMALE", "MALE", "NOT_SPECIFIED", "OTHER"})
_PHONE_RE = re.compile(r"(\+[0-9 \-()/]{6,19}|[0-9 \-()/]{6,20})\Z")
_BIRTH_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def _check_profile(item: Any, at: str, errors: Errors) -> None:
    """One flat profile of ``/v4/clients/batch``: identifiers and fields side by side."""
    if type(item) is not dict:
        errors.append((at.rstrip(".") or "profile", "must be an object"))
        return
    if "id" in item:
        errors.append((at + "id", "is not a profile field: the numeric identifier is clientId"))
    if "client" in item:
        errors.append((at + "client", "profiles are flat: put identifiers beside the fields"))
    unknown = sorted(set(item) - _PROFILE_KEYS - {"id", "client"})
    for key in unknown:
        errors.append((at + key, "is not a profile field"))
    if not any(key in item for key in _PROFILE_IDENTIFIERS):
        errors.append((at.rstrip(".") or "profile", "needs one of clientId, customId, uuid, email"))
    for key, value in item.items():
        where = at + key
        if key == "clientId":
            if type(value) is not int or value <= 0:
                errors.append((where, "must be a positive integer"))
        elif key in ("customId", "uuid", "email") or key in _PROFILE_TEXT:
            if type(value) is not str or (key in _PROFILE_IDENTIFIERS and not value.strip()):
                errors.append(
                    (
                        where,
                        "must be a non-empty string"
                        if key in _PROFILE_IDENTIFIERS
                        else "must be a string",
                    )
                )
            elif "\x00" in value:
                errors.append((where, "must not contain NUL"))
            elif key == "uuid" and not _UUID_RE.match(value):
                errors.append((where, f"is not a UUID: {value!r}"))
            elif key == "email" and "@" not in value:
                errors.append((where, f"is not an email address: {value!r}"))
            elif key == "phone" and not _PHONE_RE.match(value):
                errors.append((where, f"is not a phone number: {value!r}"))
        elif key == "birthDate":
            valid = type(value) is str and _BIRTH_DATE_RE.match(value) is not None
            if valid:
                try:
                    valid = dt.date.fromisoformat(value) > dt.date(1900, 1, 1)
                except ValueError:
                    valid = False
            if not valid:
                errors.append((where, "must be a date yyyy-mm-dd later than 1900-01-01"))
        elif key == "sex":
            if value not in _SEXES:
                errors.append((where, f"must be one of {', '.join(sorted(_SEXES))}"))
        elif key == "tags":
            if type(value) is not list or any(type(tag) is not str for tag in value):
                errors.append((where, "must be an array of strings"))
        elif key == "agreements":
            if type(value) is not dict:
                errors.append((where, "must be an object of booleans"))
                continue
            for name, flag in value.items():
                if name not in _AGREEMENT_KEYS:
                    errors.append((f"{where}.{name}", "is not an agreement"))
                elif type(flag) is not bool:
                    errors.append((f"{where}.{name}", "must be true or false"))
        elif key == "attributes" and type(value) is not dict:
            errors.append((where, "must be an object"))


def _check_catalog_item(item: Any, at: str, errors: Errors) -> None:
    """One ``{"itemKey": ..., "value": {...}}`` of a catalog items batch."""
    if type(item) is not dict:
        errors.append((at.rstrip(".") or "item", "must be an object"))
        return
    for key in sorted(set(item) - {"itemKey", "value"}):
        errors.append((at + key, "is not a field of a catalog item (itemKey, value)"))
    key = item.get("itemKey")
    if type(key) is not str or not key.strip():
        errors.append((at + "itemKey", "is required: a non-empty string"))
    if type(item.get("value")) is not dict:
        errors.append((at + "value", "is required: an object (may be empty)"))


def _error_body(status: int, message: str, path: str, errors: Errors) -> bytes:
    return json.dumps(
        {
            "error": HTTPStatus(status).phrase,
            "errors": [{"field": name, "message": text} for name, text in errors],
            "message": message,
            "path": path,
            "status": status,
            "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
        }
    ).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # stop() must not wait for handlers sleeping in a "timeout" fault or idling in keep-alive.
    block_on_close = False
    # Benchmarks open many connections at once; the default backlog of 5 drops SYNs.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], stand_in: LocalSynerise) -> None:
        self.stand_in = stand_in
        self._closing = False
        # Before super().__init__: when binding fails it calls server_close(), which
        # closes these too.
        self._wake_reader, self._wake_writer = socket.socketpair()
        super().__init__(address, _Handler)

    def serve_until_closed(self) -> None:
        """Accept connections until :meth:`close_now`.

        Unlike ``serve_forever``, which notices ``shutdown()`` only at its next poll,
        this loop is woken at once: a fixture-per-test suite starts and stops
        hundreds of servers.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._closing:
                for key, _events in selector.select():
                    if key.fileobj is self and not self._closing:
                        self._accept_one()

    def _accept_one(self) -> None:
        # What BaseServer._handle_request_noblock does, through public methods only.
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)

    def close_now(self) -> None:
        """Stop the accept loop (without waiting for it) and close the listening socket."""
        self._closing = True
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeout, dropped fault) is business as usual here.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalSynerise/1.0"
    # Headers and body go out in one write, and without Nagle's delay on keep-alive.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.stand_in._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.stand_in._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.stand_in.verbose:
            # The request line carries the AI events' ?token= (the tracker key).
            super().log_message("%s", _QUERY_TOKEN.sub(r"\1***", format % args))

    def send_response(self, code: int, message: str | None = None) -> None:
        # Used by the stdlib's own error replies (malformed HTTP): keep X-Request-Id there too.
        super().send_response(code, message)
        self.send_header("X-Request-Id", str(uuid.uuid4()))

    def do_POST(self) -> None:
        self._serve("POST")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def _read_body(self) -> bytes | None:
        """The request body, or None when it cannot be read (the connection then closes)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > _HARD_BODY_CAP:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            return None
        if size < 0 or size > _HARD_BODY_CAP:
            return None
        return self.rfile.read(size) if size else b""

    def _serve(self, method: str) -> None:
        stand_in = self.server.stand_in
        request_id = str(uuid.uuid4())
        body = self._read_body()
        if body is None:
            self.close_connection = True
            reply = stand_in._error(
                413 if self.headers.get("Content-Length", "").isdigit() else 400,
                "Request body too large or unreadable",
                self.path.partition("?")[0],
            )
            stand_in._record_plain(method, self.path, self.headers, reply.status, 0, request_id)
        else:
            reply = stand_in._handle(method, self.path, self.headers, body, request_id)
        if reply.delay:
            stand_in._stopping.wait(reply.delay)
            if stand_in._stopping.is_set():
                reply.drop = True
        if reply.drop:
            self.close_connection = True
            return
        self._write(reply, request_id)

    def _write(self, reply: _Reply, request_id: str) -> None:
        status = reply.status
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"X-Request-Id: {request_id}",
        ]
        if status != 204:  # RFC 9110: a 204 carries no Content-Length
            lines.append(f"Content-Length: {len(reply.body)}")
        if reply.body:
            lines.append(f"Content-Type: {reply.content_type}")
        lines.extend(f"{name}: {value}" for name, value in reply.headers)
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + reply.body)
        if self.server.stand_in.verbose:
            self.log_request(status, len(reply.body))


class LocalSynerise:
    """A Synerise API stand-in on ``127.0.0.1``, for tests, benchmarks and demos.

    Args:
        api_key: the workspace API key the login endpoint accepts.
        tracker_key: the ``token`` the AI events endpoints accept.
        workspace_guid: enables HTTP Basic auth ``base64(guid:api_key)`` when set.
        token_ttl: lifetime in seconds of issued JWTs (their ``exp`` claim).
        record: ``"full"`` keeps every accepted event with its body; ``"salts"``
            keeps each event's endpoint, type, action, salt and correlation id only;
            ``"count"`` keeps counters only (large benchmarks).
        seed: seeds the random generator of probabilistic faults.
        port: the port to listen on; 0 (the default) picks a free one.
        host: the address to listen on.
        success_status: per family (``"events"``, ``"transactions"``, ``"ai"``), the
            2xx status of a success; defaults 202, 202 and 200.
        max_batch_items, max_body_bytes: the API's documented limits.
        ai_text_plain: accept ``Content-Type: text/plain`` (bare or with
            ``charset=UTF-8``) on the AI endpoints and parse the body as JSON, as a
            browser posting straight to Synerise sends it (a string body keeps the
            request a CORS "simple request", with no preflight). Whether the real
            API accepts that is not documented, hence the option; turned off, the
            AI endpoints want ``application/json`` like the v4 ones (else 415).
            The v4 event, transaction and login endpoints always do.
        catalogs: the workspace's catalogs, name -> numeric id, for
            ``GET /catalogs/bags?searchBy=`` and the items batch endpoint (more
            with :meth:`add_catalog`).
        verbose: log each request to stderr.

    Use :meth:`start`/:meth:`stop` or ``with``. All recording attributes are
    safe to read from the test thread while the server runs.
    """

    def __init__(
        self,
        *,
        api_key: str = "test-api-key",
        tracker_key: str = "test-tracker-key",
        workspace_guid: str | None = None,
        token_ttl: float = 3600,
        record: RecordMode = "full",
        seed: int | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        success_status: Mapping[str, int] | None = None,
        max_batch_items: int = 1000,
        max_body_bytes: int = 1_000_000,
        ai_text_plain: bool = True,
        catalogs: Mapping[str, int] | None = None,
        verbose: bool = False,
    ) -> None:
        if record not in ("full", "salts", "count"):
            raise ValueError(f"record must be 'full', 'salts' or 'count', not {record!r}")
        self.api_key = api_key
        self.tracker_key = tracker_key
        self.workspace_guid = workspace_guid
        self.token_ttl = token_ttl
        self.record = record
        self.port = port
        self.host = host
        self.max_batch_items = max_batch_items
        self.max_body_bytes = max_body_bytes
        self.ai_text_plain = ai_text_plain
        self.verbose = verbose
        #: Success status per endpoint family; tests may change it at any time.
        self.success_status: dict[str, int] = {
            "events": 202,
            "transactions": 202,
            "ai": 200,
            "profiles": 202,
            "catalogs": 200,
        }
        for family, status in (success_status or {}).items():
            if family not in self.success_status:
                raise ValueError(
                    f"unknown endpoint family {family!r}; use {', '.join(self.success_status)}"
                )
            if not 200 <= status < 300:
                raise ValueError(f"a success status must be 2xx, not {status}")
            self.success_status[family] = status
        self._secret = secrets.token_bytes(32)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._accepted = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._open_sockets: set[socket.socket] = set()
        self._tokens: dict[str, float] = {}
        self._faults: list[Fault] = []
        self._predicates: list[Callable[[dict[str, Any]], bool]] = []
        #: Every request answered, in order (see :class:`RecordedRequest`).
        self.requests: list[RecordedRequest] = []
        #: Accepted events in arrival order (empty in ``record="count"`` mode).
        self.events: list[AcceptedEvent] = []
        #: Faults injected so far, by kind.
        self.faults_injected: collections.Counter[str] = collections.Counter()
        #: TCP connections accepted since start (keep-alive reuses one).
        self.connections = 0
        #: JWTs issued by the login endpoint.
        self.logins = 0
        self._summary: dict[str, collections.Counter[str]] = {}
        self._count = 0
        #: Catalogs of the workspace, name -> numeric id (see :meth:`add_catalog`).
        self.catalogs: dict[str, int] = {}
        for name, catalog_id in (catalogs or {}).items():
            self.add_catalog(name, catalog_id)

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> LocalSynerise:
        """Bind and serve from a daemon thread; return ``self``. Idempotent."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), self)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_until_closed,
            name=f"LocalSynerise:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; never waits on a sleeping fault."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.close_now()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        httpd.server_close()
        with self._lock:
            sockets = list(self._open_sockets)
        for sock in sockets:
            # Wakes handler threads blocked reading the next keep-alive request.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> LocalSynerise:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("LocalSynerise is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "stopped"
        return f"<LocalSynerise {where} events={self._count}>"

    # -- recording ----------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Accepted events so far (all endpoints, every record mode)."""
        return self._count

    def events_of(
        self, type: str | None = None, endpoint: str | None = None
    ) -> list[AcceptedEvent]:
        """Accepted events of a ``type`` and/or from an ``endpoint`` (not in ``count`` mode)."""
        self._need_events("events_of()")
        with self._lock:
            return [
                event
                for event in self.events
                if (type is None or event["type"] == type)
                and (endpoint is None or event["endpoint"] == endpoint)
            ]

    def salt_counts(self) -> collections.Counter[str]:
        """How many times each ``eventSalt`` was accepted; a count above 1 is a resend.

        Events without a salt (AI events) are left out. Raises in ``count`` mode,
        where salts are not kept, rather than report "no duplicates" falsely.
        """
        self._need_events("salt_counts()")
        with self._lock:
            return collections.Counter(e["salt"] for e in self.events if e["salt"] is not None)

    def summary(self) -> dict[str, dict[str, int]]:
        """Accepted events per endpoint and type: ``{"v4-batch": {"custom": 12}}``."""
        with self._lock:
            return {endpoint: dict(types) for endpoint, types in self._summary.items()}

    def report(self) -> str:
        """:meth:`summary` as a printable table, with totals and injected faults."""
        summary = self.summary()
        rows = [
            (endpoint, event_type, count)
            for endpoint in sorted(summary)
            for event_type, count in sorted(summary[endpoint].items())
        ]
        width_endpoint = max([len("endpoint")] + [len(r[0]) for r in rows])
        width_type = max([len("type")] + [len(r[1]) for r in rows])
        lines = [
            f"{'endpoint':<{width_endpoint}}  {'type':<{width_type}}  {'events':>8}",
            f"{'-' * width_endpoint}  {'-' * width_type}  {'-' * 8}",
        ]
        lines += [f"{e:<{width_endpoint}}  {t:<{width_type}}  {c:>8}" for e, t, c in rows]
        lines.append(f"{'total':<{width_endpoint}}  {'':<{width_type}}  {self.count:>8}")
        with self._lock:
            requests = len(self.requests)
            faults = dict(self.faults_injected)
        lines.append(
            f"requests: {requests}, logins: {self.logins}, connections: {self.connections}"
        )
        if faults:
            lines.append(
                "faults injected: " + ", ".join(f"{k}={v}" for k, v in sorted(faults.items()))
            )
        return "\n".join(lines)

    def wait_for_events(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` events were accepted; False on timeout."""
        with self._accepted:
            return self._accepted.wait_for(lambda: self._count >= count, timeout)

    def reset(self) -> None:
        """Forget recorded requests, events, counters and fault counts (not faults or tokens)."""
        with self._lock:
            self.requests.clear()
            self.events.clear()
            self._summary.clear()
            self._count = 0
            self.faults_injected.clear()
            self.logins = 0

    def _need_events(self, what: str) -> None:
        if self.record == "count":
            raise RuntimeError(f"{what} needs record='full' or 'salts'; this server counts only")

    # -- faults -------------------------------------------------------------------------

    def inject(
        self,
        fault: str,
        *,
        times: int | None = None,
        probability: float | None = None,
        paths: Iterable[str] | str | None = None,
        retry_after: float | str | None = None,
        delay: float | None = None,
    ) -> Fault:
        """Make matching requests fail with ``fault``; return the :class:`Fault`.

        Kinds: ``"500"``, ``"502"``, ``"503"``, ``"429"``, ``"404"``, ``"415"`` (that
        status with an error body, as a misrouting proxy would answer); ``"malformed"`` (500 with an HTML body); ``"timeout"`` (wait ``delay``
        seconds, default 30, then 504, nothing accepted); ``"slow"`` (accept the
        request, then wait ``delay`` seconds before answering: the client times out
        although the events were stored, as happens in production); ``"drop"``
        (read the request, close the socket, no response); ``"expire_tokens"``
        (invalidate every issued JWT: without ``times``/``probability`` at once,
        otherwise just before each matching Bearer request, which then gets 401).

        ``times=n`` fires on the next n matching requests; ``probability=p`` on each
        matching request with chance p (seeded by ``seed``); both: at most n times;
        neither: on every matching request until :meth:`clear_faults`. ``paths``
        are path prefixes; by default every endpoint except the login matches.
        ``retry_after`` (seconds, or a verbatim string such as an HTTP date) adds a
        ``Retry-After`` header. Faults are tried in the order injected.
        """
        if fault not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault {fault!r}; use one of {', '.join(sorted(FAULT_KINDS))}"
            )
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        if probability is not None and not 0 <= probability <= 1:
            raise ValueError("probability must be between 0 and 1")
        if isinstance(paths, str):
            paths = (paths,)
        entry = Fault(
            kind=fault,
            times=times,
            probability=probability,
            paths=tuple(paths) if paths is not None else None,
            retry_after=retry_after,
            delay=30.0 if delay is None else delay,
        )
        if fault == "expire_tokens" and times is None and probability is None:
            self.expire_tokens()
            with self._lock:
                entry.fired = 1
                self.faults_injected[fault] += 1
            return entry
        with self._lock:
            self._faults.append(entry)
        return entry

    def reject(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        """Treat every item for which ``predicate(item)`` is true as invalid (a poison event).

        The predicate sees each v4 event, transaction and AI event as sent (a
        batch's items one by one). A request holding one gets 400 naming the item's
        index, and none of its items is accepted. Cleared by :meth:`clear_faults`.
        """
        with self._lock:
            self._predicates.append(predicate)

    def clear_faults(self) -> None:
        """Remove every injected fault and :meth:`reject` predicate."""
        with self._lock:
            self._faults.clear()
            self._predicates.clear()

    def expire_tokens(self) -> None:
        """Invalidate every JWT issued so far: the next Bearer call gets 401."""
        with self._lock:
            self._tokens.clear()

    def issue_token(self) -> str:
        """Issue a JWT as the login endpoint does (for tests that skip the login)."""
        now = int(time.time())
        header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
        claims = {
            "sub": hashlib.sha256(self.api_key.encode()).hexdigest()[:16],
            "aud": "API",
            "rlm": "business_profile",
            "iss": "LocalSynerise",
            "iat": now,
            "exp": now + int(self.token_ttl),
            "jti": str(uuid.uuid4()),
        }
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode("ascii")
        signature = _b64url(hmac.new(self._secret, signing_input, hashlib.sha256).digest())
        token = f"{header}.{payload}.{signature}"
        with self._lock:
            self._tokens[token] = time.time() + self.token_ttl
            self.logins += 1
        return token

    def _pick_fault(self, path: str, bearer: bool) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(path, bearer):
                    continue
                if fault.probability is not None and self._random.random() >= fault.probability:
                    continue
                fault.fired += 1
                self.faults_injected[fault.kind] += 1
                if fault.exhausted:
                    self._faults.remove(fault)
                return fault
        return None

    # -- connections --------------------------------------------------------------------

    def _connection_opened(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self._open_sockets.add(sock)

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_sockets.discard(sock)

    # -- request handling ---------------------------------------------------------------

    def _error(self, status: int, message: str, path: str, errors: Errors | None = None) -> _Reply:
        return _Reply(status, _error_body(status, message, path, errors or []))

    def _record_plain(
        self,
        method: str,
        raw_path: str,
        headers: Any,
        status: int | None,
        size: int,
        request_id: str,
    ) -> None:
        path, _, query = raw_path.partition("?")
        self._record_request(
            RecordedRequest(
                method=method,
                path=path,
                query=self._redacted_query(query),
                status=status,
                headers=self._redacted_headers(headers),
                size=size,
                body=None,
                fault=None,
                request_id=request_id,
            )
        )

    @staticmethod
    def _redacted_query(query: str) -> dict[str, str]:
        pairs = dict(parse_qsl(query, keep_blank_values=True))
        if "token" in pairs:
            pairs["token"] = "<redacted>"
        return pairs

    @staticmethod
    def _redacted_headers(headers: Any) -> dict[str, str]:
        out = {name.lower(): value for name, value in headers.items()}
        if "authorization" in out:
            out["authorization"] = out["authorization"].split(" ", 1)[0] + " <redacted>"
        return out

    def _record_request(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)

    def _handle(
        self, method: str, raw_path: str, headers: Any, body: bytes, request_id: str
    ) -> _Reply:
        path, _, query_string = raw_path.partition("?")
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        authorization = headers.get("Authorization", "")
        state: dict[str, Any] = {"parsed": None, "fault": None, "errors": [], "delay": 0.0}
        try:
            reply = self._route(method, path, query, headers, body, authorization, state)
        except _Rejected as rejected:
            state["errors"] = rejected.errors
            reply = self._error(rejected.status, rejected.message, path, rejected.errors)
        except RecursionError:
            # JSON nested deeper than the validators recurse: the client's fault, as Synerise says.
            reply = self._error(400, "Request body is nested too deeply", path)
        except Exception as err:
            # A bug here (or in a reject() predicate) must reach the test as a 500, not a hang.
            traceback.print_exc()
            reply = self._error(500, f"LocalSynerise internal error: {err!r}", path)
        if state["delay"]:
            reply.delay = state["delay"]
        if path.startswith(AI_PATH_PREFIXES):
            # Errors too: a page's script may read why its event was refused.
            origin = headers.get("Origin")
            if origin is not None:
                reply.headers.append(("Access-Control-Allow-Origin", origin))
            reply.headers.append(("Vary", "Origin"))
        self._record_request(
            RecordedRequest(
                method=method,
                path=path,
                query=self._redacted_query(query_string),
                status=None if reply.drop else reply.status,
                headers=self._redacted_headers(headers),
                size=len(body),
                body=state["parsed"] if self.record == "full" else None,
                fault=state["fault"],
                request_id=request_id,
                errors=tuple(state["errors"][:_MAX_ERRORS]),
            )
        )
        return reply

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Any,
        body: bytes,
        authorization: str,
        state: dict[str, Any],
    ) -> _Reply:
        if path.startswith(ADMIN_PREFIX):
            return self._admin(method, path)
        if method == "OPTIONS" and path.startswith(AI_PATH_PREFIXES):
            # A CORS preflight is answered before any fault: in production an edge
            # answers it, and a ``times=1`` fault is meant for the POST that follows.
            return _Reply(
                204,
                headers=[
                    ("Access-Control-Allow-Methods", "POST, OPTIONS"),
                    ("Access-Control-Allow-Headers", "Content-Type"),
                    ("Access-Control-Max-Age", _PREFLIGHT_MAX_AGE),
                ],
            )
        fault = self._pick_fault(path, authorization.startswith("Bearer "))
        if fault is not None:
            state["fault"] = fault.kind
            if fault.kind == "expire_tokens":
                self.expire_tokens()
            elif fault.kind == "slow":
                state["delay"] = fault.delay  # answered late, whatever the answer
            else:
                return self._fault_reply(fault, path)
        return self._endpoint(method, path, query, headers, body, authorization, state)

    def _fault_reply(self, fault: Fault, path: str) -> _Reply:
        if fault.kind == "drop":
            return _Reply(0, drop=True)
        if fault.kind == "timeout":
            return _Reply(
                504,
                _error_body(504, "Gateway Timeout (LocalSynerise: injected timeout)", path, []),
                delay=fault.delay,
            )
        if fault.kind == "malformed":
            html = b"<html><head><title>500 Internal Server Error</title></head><body>oops</body></html>"
            return _Reply(500, html, content_type="text/html")
        status = int(fault.kind)
        reply = self._error(status, f"{HTTPStatus(status).phrase} (LocalSynerise: injected)", path)
        if fault.retry_after is not None:
            value = fault.retry_after
            text = value if isinstance(value, str) else f"{value:g}"
            reply.headers.append(("Retry-After", text))
        return reply

    def _admin(self, method: str, path: str) -> _Reply:
        if method != "GET":
            raise _Rejected(405, f"{method} is not allowed here")
        if path == ADMIN_PREFIX + "health":
            return _Reply(200, b'{"status":"ok"}')
        if path == ADMIN_PREFIX + "summary":
            data = {
                "count": self.count,
                "summary": self.summary(),
                "faults_injected": dict(self.faults_injected),
            }
            return _Reply(200, json.dumps(data).encode())
        raise _Rejected(404, f"No such endpoint: {path}")

    def _endpoint(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Any,
        body: bytes,
        authorization: str,
        state: dict[str, Any],
    ) -> _Reply:
        if path == PROFILES_PATH or path.startswith(CATALOGS_PATH):
            family, kind = self._profiles_or_catalogs_route(method, path)
            if method == "GET":
                self._check_v4_auth(authorization)
                return self._catalog_search(query)
        elif path == LOGIN_PATH:
            family, kind = "auth", ""
        elif path.startswith("/v4/events/ai-compat/"):
            family, kind = "ai", path[len("/v4/events/ai-compat/") :]
        elif path.startswith("/v4/events/"):
            family, kind = "events", path[len("/v4/events/") :]
            if kind not in ("batch", "custom") and kind not in DEDICATED_EVENT_TYPES:
                raise _Rejected(404, f"No such endpoint: {path}")
        elif path in ("/v4/transactions", "/v4/transactions/batch"):
            family, kind = "transactions", path
        elif path == "/events/v1/batch":
            family, kind = "ai", "batch"
        elif path.startswith("/events/v1/single/"):
            family, kind = "ai", path[len("/events/v1/single/") :]
        else:
            raise _Rejected(404, f"No such endpoint: {path}")
        if method != "POST":
            raise _Rejected(405, f"Request method {method!r} not supported; use POST")
        if len(body) > self.max_body_bytes:
            raise _Rejected(
                413, f"Request body is {len(body)} bytes; the limit is {self.max_body_bytes}"
            )
        if family == "ai":
            self._check_ai_auth(query, authorization)
        elif family != "auth":
            self._check_v4_auth(authorization)
        compat = path.startswith("/v4/events/ai-compat/")
        # The AI endpoints authenticate with a tracker key, as browsers call them,
        # and document no Api-Version header (nor does the catalogs API); every
        # other call needs one.
        if family not in ("ai", "catalogs"):
            version = headers.get("Api-Version")
            if not version:
                raise _Rejected(400, "Missing required header: Api-Version (e.g. 4.4)")
            if not _API_VERSION_RE.match(version):
                raise _Rejected(400, f"Unsupported Api-Version: {version!r}")
        content_type = headers.get("Content-Type", "")
        media_type, _, parameters = content_type.partition(";")
        media_type = media_type.strip().lower()
        if media_type != "application/json" and not (
            family == "ai" and self.ai_text_plain and _is_utf8_text_plain(media_type, parameters)
        ):
            accepted = "application/json"
            if family == "ai" and self.ai_text_plain:
                accepted += " or text/plain;charset=UTF-8"
            raise _Rejected(
                415,
                f"Content-Type {content_type or '(none)'!r} is not supported; use {accepted}",
            )
        try:
            parsed = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as err:
            raise _Rejected(400, f"Request body is not valid JSON: {err}") from err
        except RecursionError as err:
            raise _Rejected(400, "Request body is nested too deeply") from err
        state["parsed"] = parsed
        # Searching the raw bytes first keeps the common, null-free case cheap.
        if b"null" in body:
            nulls: Errors = []
            _find_nulls(parsed, "", nulls)
            if nulls:
                raise _Rejected(400, self._invalid_message(nulls), nulls)
        if family == "auth":
            return self._login(parsed)
        if family == "profiles":
            return self._profiles(parsed)
        if family == "catalogs":
            return self._catalog_items(kind, parsed)
        if family == "events":
            return self._v4_events(kind, parsed)
        if family == "transactions":
            return self._transactions(kind == "/v4/transactions/batch", parsed)
        return self._ai_events(kind, compat, parsed)

    @staticmethod
    def _invalid_message(errors: Errors) -> str:
        name, text = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"Validation failed: {name} {text}{more}"

    def _check_v4_auth(self, authorization: str) -> None:
        if not authorization:
            raise _Rejected(401, "Missing Authorization header")
        scheme, _, credentials = authorization.partition(" ")
        if scheme == "Bearer":
            with self._lock:
                expires = self._tokens.get(credentials.strip())
            if expires is None:
                raise _Rejected(401, "Invalid token")
            if expires <= time.time():
                raise _Rejected(401, "Token expired")
            return
        if scheme == "Basic":
            if self.workspace_guid is None:
                raise _Rejected(401, "Basic authentication is not enabled for this workspace")
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as err:
                raise _Rejected(401, "Malformed Basic credentials") from err
            expected = f"{self.workspace_guid}:{self.api_key}"
            if not hmac.compare_digest(decoded.encode(), expected.encode()):
                raise _Rejected(401, "Invalid workspace credentials")
            return
        raise _Rejected(401, f"Unsupported authorization scheme {scheme!r}")

    def _check_ai_auth(self, query: dict[str, str], authorization: str) -> None:
        token = query.get("token")
        if token is None:
            if authorization.startswith("Bearer "):
                self._check_v4_auth(authorization)
                return
            raise _Rejected(401, "Missing token: pass the tracker key as ?token=")
        if not hmac.compare_digest(token.encode(), self.tracker_key.encode()):
            raise _Rejected(403, "Invalid tracker key")

    def _login(self, parsed: Any) -> _Reply:
        if type(parsed) is not dict or type(parsed.get("apiKey")) is not str:
            raise _Rejected(
                400, 'Body must be {"apiKey": "<API key>"}', [("apiKey", "is required")]
            )
        if not hmac.compare_digest(parsed["apiKey"].encode(), self.api_key.encode()):
            raise _Rejected(401, "Invalid API key")
        return _Reply(200, json.dumps({"token": self.issue_token()}).encode())

    def _check_predicates(self, items: list[Any], prefix: Callable[[int], str]) -> None:
        with self._lock:
            predicates = list(self._predicates)
        if not predicates:
            return
        errors: Errors = []
        for index, item in enumerate(items):
            if any(predicate(item) for predicate in predicates):
                errors.append((prefix(index), "was rejected (LocalSynerise.reject predicate)"))
        if errors:
            raise _Rejected(400, self._invalid_message(errors), errors)

    def _batch_items(self, parsed: Any, what: str) -> list[Any]:
        if type(parsed) is not list:
            raise _Rejected(
                400, f"Body must be a JSON array of {what}", [("body", "must be an array")]
            )
        if not parsed:
            raise _Rejected(400, "The batch is empty", [("body", "must hold at least one item")])
        if len(parsed) > self.max_batch_items:
            raise _Rejected(
                400,
                f"The batch holds {len(parsed)} items; the limit is {self.max_batch_items}",
                [("body", f"must hold at most {self.max_batch_items} items")],
            )
        return parsed

    def _v4_events(self, kind: str, parsed: Any) -> _Reply:
        now = time.time()
        errors: Errors = []
        accepted: list[tuple[str, str, bool]] = []
        if kind == "batch":
            items = self._batch_items(parsed, "events")
            endpoint = "v4-batch"
            for index, item in enumerate(items):
                result = _check_v4_event(item, f"[{index}].", "batch", now, errors)
                if result is not None:
                    accepted.append(result)
                elif len(errors) >= _MAX_ERRORS:
                    break
            prefix: Callable[[int], str] = lambda index: f"[{index}]"  # noqa: E731
        else:
            items = [parsed]
            endpoint = "v4-custom" if kind == "custom" else "v4-dedicated"
            result = _check_v4_event(parsed, "", kind, now, errors)
            if result is not None:
                accepted.append(result)
            prefix = lambda index: "event"  # noqa: E731
        if errors:
            raise _Rejected(400, self._invalid_message(errors), errors)
        self._check_predicates(items, prefix)
        self._accept(
            endpoint,
            [
                (event_type, action, item.get("eventSalt"), None, replaced, item)
                for (event_type, action, replaced), item in zip(accepted, items, strict=True)
            ],
        )
        return self._success("events")

    def _transactions(self, batch: bool, parsed: Any) -> _Reply:
        errors: Errors = []
        if batch:
            items = self._batch_items(parsed, "transactions")
            for index, item in enumerate(items):
                _check_transaction(item, f"[{index}].", errors)
                if len(errors) >= _MAX_ERRORS:
                    break
            prefix: Callable[[int], str] = lambda index: f"[{index}]"  # noqa: E731
        else:
            items = [parsed]
            _check_transaction(parsed, "", errors)
            prefix = lambda index: "transaction"  # noqa: E731
        if errors:
            raise _Rejected(400, self._invalid_message(errors), errors)
        self._check_predicates(items, prefix)
        self._accept(
            "transactions-batch" if batch else "transactions",
            [
                ("transaction", "transaction.charge", item.get("eventSalt"), None, False, item)
                for item in items
            ],
        )
        return self._success("transactions")

    def _ai_events(self, kind: str, compat: bool, parsed: Any) -> _Reply:
        errors: Errors = []
        name = "ai-compat" if compat else "ai"
        if kind == "batch":
            if type(parsed) is not dict:
                raise _Rejected(
                    400,
                    'Body must be {"eventType": ..., "items": [...]}',
                    [("body", "must be an object")],
                )
            unknown = sorted(set(parsed) - {"eventType", "items"})
            if unknown:
                errors.extend((key, "is not a field of an AI events batch") for key in unknown)
            event_type = parsed.get("eventType")
            if type(event_type) is not str or event_type not in AI_EVENT_TYPES:
                raise _Rejected(
                    400,
                    f"eventType must be one of {', '.join(sorted(AI_EVENT_TYPES))}",
                    [("eventType", f"unknown or missing event type: {event_type!r}")],
                )
            raw_items = parsed.get("items")
            if type(raw_items) is not list:
                raise _Rejected(
                    400, "items must be an array of events", [("items", "must be an array")]
                )
            items = self._batch_items(raw_items, "AI events")
            for index, item in enumerate(items):
                _check_ai_event(item, f"items[{index}].", event_type, compat, errors)
                if len(errors) >= _MAX_ERRORS:
                    break
            endpoint = f"{name}-batch"
            prefix: Callable[[int], str] = lambda index: f"items[{index}]"  # noqa: E731
        else:
            event_type = kind
            if event_type not in AI_EVENT_TYPES:
                raise _Rejected(
                    400,
                    f"Unknown AI event type {event_type!r}; use one of {', '.join(sorted(AI_EVENT_TYPES))}",
                    [("eventType", f"unknown event type: {event_type!r}")],
                )
            items = [parsed]
            _check_ai_event(parsed, "", event_type, compat, errors)
            endpoint = f"{name}-single"
            prefix = lambda index: "event"  # noqa: E731
        if errors:
            raise _Rejected(400, self._invalid_message(errors), errors)
        self._check_predicates(items, prefix)
        self._accept(
            endpoint,
            [
                (event_type, event_type, None, item.get("correlationId"), False, item)
                for item in items
            ],
        )
        return self._success("ai")

    # -- profiles and catalogs ----------------------------------------------------------

    def add_catalog(self, name: str, catalog_id: int | None = None) -> int:
        """Create a catalog named ``name`` (id ``catalog_id`` or the next free one); return its id."""
        with self._lock:
            if catalog_id is None:
                catalog_id = max(self.catalogs.values(), default=100) + 1
            if type(catalog_id) is not int or catalog_id <= 0:
                raise ValueError(f"a catalog id is a positive integer, not {catalog_id!r}")
            self.catalogs[name] = catalog_id
        return catalog_id

    def profiles(self) -> list[dict[str, Any]]:
        """Profiles accepted by ``/v4/clients/batch``, in arrival order (``record="full"``)."""
        return [event["body"] for event in self.events_of(endpoint="clients-batch")]

    def catalog_items(self, catalog_id: int | None = None) -> list[dict[str, Any]]:
        """Catalog items accepted, each ``{"catalogId", "itemKey", "value"}`` (``record="full"``)."""
        return [
            {"catalogId": int(event["type"].partition(":")[2]), **event["body"]}
            for event in self.events_of(endpoint="catalog-items-batch")
            if catalog_id is None or event["type"] == f"catalog:{catalog_id}"
        ]

    @staticmethod
    def _profiles_or_catalogs_route(method: str, path: str) -> tuple[str, str]:
        if path == PROFILES_PATH:
            return "profiles", ""
        if path == CATALOGS_PATH:
            if method != "GET":
                raise _Rejected(405, f"Request method {method!r} not supported here; use GET")
            return "catalogs", "search"
        match = _CATALOG_ITEMS_RE.match(path)
        if match is None:
            raise _Rejected(404, f"No such endpoint: {path}")
        return "catalogs", match.group(1)

    def _catalog_search(self, query: dict[str, str]) -> _Reply:
        # Synerise searches catalog names (and their authors' names) for the text.
        text = query.get("searchBy", "").lower()
        with self._lock:
            found = [
                {"id": catalog_id, "name": name}
                for name, catalog_id in sorted(self.catalogs.items(), key=lambda kv: kv[1])
                if text in name.lower()
            ]
        body = {"data": found, "metaData": {"count": len(found)}}
        return _Reply(200, json.dumps(body).encode())

    def _profiles(self, parsed: Any) -> _Reply:
        items = self._batch_items(parsed, "profiles")
        errors: Errors = []
        for index, item in enumerate(items):
            _check_profile(item, f"[{index}].", errors)
            if len(errors) >= _MAX_ERRORS:
                break
        if errors:
            raise _Rejected(400, self._invalid_message(errors), errors)
        self._check_predicates(items, lambda index: f"[{index}]")
        self._accept(
            "clients-batch",
            [("profile", "client.update", None, None, False, item) for item in items],
        )
        return self._success("profiles")

    def _catalog_items(self, catalog: str, parsed: Any) -> _Reply:
        if not catalog.isdigit() or catalog.startswith("0"):
            raise _Rejected(
                400,
                f"catalogId must be a number, not {catalog!r}",
                [("catalogId", "must be a positive integer: look the id up by name first")],
            )
        with self._lock:
            known = int(catalog) in self.catalogs.values()
        if not known:
            raise _Rejected(404, f"Catalog {catalog} not found")
        items = self._batch_items(parsed, "catalog items")
        errors: Errors = []
        for index, item in enumerate(items):
            _check_catalog_item(item, f"[{index}].", errors)
            if len(errors) >= _MAX_ERRORS:
                break
        if errors:
            raise _Rejected(400, self._invalid_message(errors), errors)
        self._check_predicates(items, lambda index: f"[{index}]")
        self._accept(
            "catalog-items-batch",
            [(f"catalog:{catalog}", "catalog.item", None, None, False, item) for item in items],
        )
        return self._success("catalogs")

    def _success(self, family: str) -> _Reply:
        status = self.success_status[family]
        # v4 calls answer with no body; the AI API with an empty object. 204 never has a body.
        body = b"{}" if family == "ai" and status != 204 else b""
        if family == "catalogs" and status != 204:
            body = b"true"  # the SDK reads the items batch answer as a boolean
        return _Reply(status, body)

    def _accept(
        self,
        endpoint: str,
        rows: list[tuple[str, str, str | None, str | None, bool, dict[str, Any]]],
    ) -> None:
        counts: collections.Counter[str] = collections.Counter(row[0] for row in rows)
        records: list[AcceptedEvent] = []
        if self.record == "full":
            records = [
                {
                    "endpoint": endpoint,
                    "type": event_type,
                    "action": action,
                    "salt": salt,
                    "correlation": correlation,
                    "time_replaced": replaced,
                    "body": item,
                }
                for event_type, action, salt, correlation, replaced, item in rows
            ]
        elif self.record == "salts":
            records = [
                {
                    "endpoint": endpoint,
                    "type": event_type,
                    "action": action,
                    "salt": salt,
                    "correlation": correlation,
                    "time_replaced": replaced,
                }
                for event_type, action, salt, correlation, replaced, _item in rows
            ]
        with self._accepted:
            self.events.extend(records)
            self._summary.setdefault(endpoint, collections.Counter()).update(counts)
            self._count += len(rows)
            self._accepted.notify_all()
