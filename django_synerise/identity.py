"""Who a request belongs to, as a Synerise ``client`` object.

Default resolution, in :func:`get_client`:

* ``uuid``: the visitor's profile UUID from the ``_snrs_uuid`` cookie that
  Synerise's JS tracker sets (see :func:`get_cookie_uuid` for how it is read);
* for an authenticated user, the identifiers named in
  ``SYNERISE["USER_IDENTIFIERS"]`` (default ``{"customId": "pk", "email":
  "email"}``: the primary key as a string, and the e-mail when the user has one).

Both are sent when both are known, so Synerise can merge the anonymous
visitor's history into the customer's profile. ``SYNERISE["CLIENT_RESOLVER"]``
(a dotted path to ``f(request) -> dict | None``) replaces all of it.

A malformed identifier is dropped, never sent: a tampered cookie or a user
without a valid e-mail address loses that one identifier, not the event.

Errors (a broken ``CLIENT_RESOLVER``, a ``USER_IDENTIFIERS`` method that
raises): :func:`get_client`, for your code, logs them on
``django_synerise.identity`` and returns ``None``, unless
``SYNERISE["RAISE_ERRORS"]`` is true. :func:`resolve_client` lets them
propagate: the package's own producers (page-visit middleware, auth hooks)
call it and log the error once, with the action of the event they were
recording (``extra={"synerise_action": ...}``).

Cost: reading ``request.user`` loads the session and the user row unless
something earlier in the request already did (Django caches both on the
request). :func:`get_client` and :func:`resolve_client` are the only
functions here that touch them; :func:`get_cookie_uuid` reads cookies only.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from django.http import HttpRequest

from .conf import synerise_settings

__all__ = [
    "COOKIE_NAME",
    "PARAMS_COOKIE_NAME",
    "get_client",
    "get_cookie_uuid",
    "may_track",
    "parse_uuid",
    "resolve_client",
    "resolve_uuid",
    "user_client",
]

logger = logging.getLogger("django_synerise.identity")

#: Cookie in which Synerise's JS tracker keeps the visitor's profile UUID.
COOKIE_NAME = "_snrs_uuid"
#: The tracker's key-value cookie (``host:…&permUuid:…&uuid:…&…``); its ``uuid``
#: field is the fallback Synerise's own PHP SDK uses when ``_snrs_uuid`` is missing.
PARAMS_COOKIE_NAME = "_snrs_p"

# The whole value must be a hyphenated UUID: Synerise's tracker stores the bare
# UUID, and anything around it ("<uuid>;evil", "<uuid> OR 1=1") means the cookie
# was not written by the tracker.
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
# Cookie values are small; anything longer than this is not the tracker's.
_MAX_COOKIE_CHARS = 512
_NIL_UUIDS = frozenset({str(uuid.UUID(int=0)), str(uuid.UUID(int=(1 << 128) - 1))})
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
_MAX_ID_LENGTH = 512


def parse_uuid(value: str | None) -> str | None:
    """Read a profile UUID the way the JS tracker stores it; ``None`` if malformed.

    After percent-decoding (``%2D``), surrounding whitespace and one pair of
    surrounding double quotes are removed; what is left must be exactly one
    hyphenated UUID, in any case. Refused: any other text before or after it
    (``<uuid>;evil``, ``<uuid>:1690668621``), UUIDs without hyphens or in
    braces, the nil and max UUIDs, values longer than 512 characters. The
    result is the canonical lower-case form ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``.
    """
    if not value or not isinstance(value, str) or len(value) > _MAX_COOKIE_CHARS:
        return None
    text = unquote(value).strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    if _UUID_RE.fullmatch(text) is None:
        return None
    canonical = str(uuid.UUID(text))
    if canonical in _NIL_UUIDS:
        return None
    return canonical


def _uuid_from_params_cookie(value: str | None) -> str | None:
    if not value or len(value) > 4 * _MAX_COOKIE_CHARS:
        return None
    for part in unquote(value).split("&"):
        key, sep, field = part.partition(":")
        if sep and key.strip() == "uuid":
            return parse_uuid(field)
    return None


def get_cookie_uuid(request: HttpRequest) -> str | None:
    """The visitor's Synerise profile UUID from the tracker's cookies, or ``None``.

    Reads ``_snrs_uuid`` with :func:`parse_uuid`; when it is missing or
    malformed, falls back to the ``uuid:`` field of the ``_snrs_p`` cookie.
    Never touches the session or the database, never raises.
    """
    cookies = getattr(request, "COOKIES", None) or {}
    found = parse_uuid(cookies.get(COOKIE_NAME))
    if found is None:
        found = _uuid_from_params_cookie(cookies.get(PARAMS_COOKIE_NAME))
    return found


def _clean_identifier(key: str, value: Any) -> Any:
    """The identifier as Synerise accepts it, or ``None`` when it would be refused."""
    if callable(value):
        value = value()
    if value is None or isinstance(value, bool):
        return None
    if key == "id":
        try:
            number = int(value)
        except (TypeError, ValueError):
            return None
        return number if number > 0 else None
    if key == "uuid":
        return parse_uuid(str(value))
    text = str(value).strip()
    if not text or len(text) > _MAX_ID_LENGTH:
        return None
    if key == "email" and not _EMAIL_RE.match(text):
        return None
    return text


def user_client(user: Any) -> dict[str, Any] | None:
    """The identifiers of ``user`` per ``SYNERISE["USER_IDENTIFIERS"]``, or ``None``.

    ``None`` for a missing or anonymous user, or when none of its identifiers
    is usable. An attribute that names a method is called without arguments.
    Works without a request, e.g. as ``client=`` of a hook on the user model.
    """
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    client: dict[str, Any] = {}
    for key, attribute in synerise_settings.USER_IDENTIFIERS.items():
        value = _clean_identifier(key, getattr(user, attribute, None))
        if value is not None:
            client[key] = value
    return client or None


def _refused_by_browser(request: HttpRequest) -> str | None:
    meta = getattr(request, "META", None) or {}
    if synerise_settings.RESPECT_GPC and str(meta.get("HTTP_SEC_GPC", "")).strip() == "1":
        return "Sec-GPC"
    if synerise_settings.RESPECT_DNT and str(meta.get("HTTP_DNT", "")).strip() == "1":
        return "DNT"
    return None


def may_track(request: HttpRequest | None) -> bool:
    """Whether the visitor behind ``request`` may be tracked: the one consent gate.

    Every producer that has a request asks this first (page visits, beacons,
    auth events, ``track(..., request=request)``) and writes nothing when it
    is false. False when any of these holds:

    * ``SYNERISE["RESPECT_GPC"]`` (default ``True``) and the request carries
      ``Sec-GPC: 1`` (Global Privacy Control);
    * ``SYNERISE["RESPECT_DNT"]`` (default ``False``) and it carries ``DNT: 1``;
    * ``SYNERISE["CONSENT"]`` (a callable or dotted path, ``f(request) -> bool``)
      returns a false value.

    ``None`` (no request: a management command, a Celery task, a model hook
    outside a request) is always true: the site decided to record the event.
    Reads headers only, plus whatever ``CONSENT`` reads.

    A ``CONSENT`` that raises counts as a refusal (nothing is tracked without
    consent): the error is logged on ``django_synerise.identity``, or raised
    when ``SYNERISE["RAISE_ERRORS"]`` is true, as is a ``CONSENT`` path that
    cannot be imported
    (:class:`~django_synerise.exceptions.SyneriseConfigurationError`).
    """
    if request is None:
        return True
    if _refused_by_browser(request) is not None:
        return False
    try:
        consent = synerise_settings.import_callable("CONSENT", synerise_settings.CONSENT)
        return True if consent is None else bool(consent(request))
    except Exception:
        if synerise_settings.RAISE_ERRORS:
            raise
        logger.exception("SYNERISE['CONSENT'] raised; the visitor is treated as not consenting")
        return False


def _resolve(request: HttpRequest, user: Any) -> dict[str, Any] | None:
    resolver = synerise_settings.import_callable(
        "CLIENT_RESOLVER", synerise_settings.CLIENT_RESOLVER
    )
    if resolver is not None:
        result = resolver(request)
        if result is None:
            return None
        if not isinstance(result, Mapping):
            raise TypeError(
                f'SYNERISE["CLIENT_RESOLVER"] must return a dict or None, '
                f"not {type(result).__name__}"
            )
        return dict(result) or None
    client: dict[str, Any] = {}
    cookie_uuid = get_cookie_uuid(request)
    if cookie_uuid is not None:
        client["uuid"] = cookie_uuid
    if user is None:
        user = getattr(request, "user", None)
    client.update(user_client(user) or {})
    return client or None


def resolve_client(request: HttpRequest, *, user: Any = None) -> dict[str, Any] | None:
    """The Synerise ``client`` for this request, or ``None``; errors propagate.

    What :func:`get_client` returns, for callers that handle errors themselves:
    the package's producers log them with the action of the event they were
    recording. Raises whatever ``CLIENT_RESOLVER`` or a ``USER_IDENTIFIERS``
    attribute raises, ``TypeError`` when the resolver returns neither a dict
    nor ``None``, and
    :class:`~django_synerise.exceptions.SyneriseConfigurationError` when it
    cannot be imported.
    """
    return _resolve(request, user)


def resolve_uuid(request: HttpRequest) -> str | None:
    """The profile UUID of an event that carries nothing else (a beacon's AI event), or ``None``.

    With ``SYNERISE["CLIENT_RESOLVER"]``: the ``uuid`` of what it returns
    (``None`` when it returns ``None`` or no valid ``uuid``), so a site that
    decides identity itself decides it for beacons too. Without: the
    tracker's cookie (:func:`get_cookie_uuid`), never the session. Errors
    propagate as in :func:`resolve_client`.
    """
    if synerise_settings.CLIENT_RESOLVER is None:
        return get_cookie_uuid(request)
    client = _resolve(request, None)
    return parse_uuid(str(client["uuid"])) if client and client.get("uuid") else None


def get_client(request: HttpRequest, *, user: Any = None) -> dict[str, Any] | None:
    """The Synerise ``client`` for this request, or ``None`` when nobody is identified.

    ``SYNERISE["CLIENT_RESOLVER"]``, when set, decides alone. Otherwise: the
    cookie UUID (:func:`get_cookie_uuid`) plus :func:`user_client` of ``user``
    (default: ``request.user``, which may load the session and the user).

    Never raises: an error is logged on ``django_synerise.identity`` and
    ``None`` returned, unless ``SYNERISE["RAISE_ERRORS"]`` is true. Call it
    from synchronous code (in async code, through ``sync_to_async``).
    """
    try:
        return _resolve(request, user)
    except Exception:
        if synerise_settings.RAISE_ERRORS:
            raise
        logger.exception("django_synerise could not resolve the Synerise client of a request")
        return None
