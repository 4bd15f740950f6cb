"""Who a request belongs to, as a Synerise ``client`` object.

Default resolution, in :func:`get_client`:

* for an authenticated user, the identifiers named in
  ``SYNERISE["USER_IDENTIFIERS"]`` (default ``{"customId": "pk", "email":
  "email"}``: the primary key as a string, and the e-mail when the user has one);
* for an anonymous visitor, ``uuid``: the profile UUID from the ``_snrs_uuid``
  cookie that Synerise's JS tracker sets (see :func:`get_cookie_uuid`).

Never both: the cookie is written by the browser, so a uuid sent beside a
user's identifiers would let anyone link a uuid of their choosing (another
visitor's) to their account, or theirs to someone else's. The anonymous
history joins the customer's profile where the site vouches for the link (the
login). ``SYNERISE["CLIENT_RESOLVER"]`` (a dotted path to ``f(request) -> dict
| None``) replaces all of it.

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

import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from django.apps import apps
from django.http import HttpRequest
from django.urls import NoReverseMatch, get_urlconf, reverse

from .conf import on_setting_changed, synerise_settings
from .events import check_identifier
from .exceptions import InvalidEventError

__all__ = [
    "COOKIE_NAME",
    "PARAMS_COOKIE_NAME",
    "get_client",
    "get_cookie_uuid",
    "is_admin_request",
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


def _clean_identifier(user: Any, key: str, attribute: str) -> Any:
    """``user``'s identifier for ``client[key]``, or ``None`` when it has none or a bad one.

    The value goes through :func:`django_synerise.events.check_identifier`, the
    rule events are built with, after the conversions a model attribute needs
    (a method is called, a numeric string or ``Decimal`` primary key becomes
    an ``int``, a ``uuid.UUID`` its text). A value the rule refuses is dropped
    and logged by attribute and user, never by value: it may be personal data.
    """
    value = getattr(user, attribute, None)
    if callable(value):
        value = value()
    if value is None or isinstance(value, bool):
        return None
    if key == "id":
        # A numeric text or Decimal key is the number; other values meet the rule as they are.
        with contextlib.suppress(TypeError, ValueError):
            value = int(value)
    elif key == "uuid":
        # The cookie's rule: nil UUIDs and text around the UUID are not identities.
        value = parse_uuid(str(value)) or "not a UUID"
    else:
        value = str(value)
    try:
        return check_identifier(key, value)
    except InvalidEventError as err:
        logger.warning(
            "USER_IDENTIFIERS: %s of user %s not sent as %s (%s)",
            attribute,
            getattr(user, "pk", None),
            err.field,
            _REASONS.get(key, "not a valid identifier"),
        )
        return None


_REASONS = {
    "id": "not a positive integer",
    "uuid": "not a UUID",
    "email": "not a valid email address",
}


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
        value = _clean_identifier(user, key, attribute)
        if value is not None:
            client[key] = value
    return client or None


# Admin URL prefix per URLconf (a request may carry its own ``urlconf``).
_admin_prefixes: dict[str | None, str | None] = {}
_admin_lock = threading.Lock()


def _admin_prefix() -> str | None:
    urlconf = get_urlconf()
    key = urlconf if isinstance(urlconf, str) or urlconf is None else repr(urlconf)
    try:
        return _admin_prefixes[key]
    except KeyError:
        pass
    prefix: str | None = None
    if apps.is_installed("django.contrib.admin"):
        try:
            prefix = reverse("admin:index", urlconf=urlconf)
        except NoReverseMatch:
            prefix = None
    with _admin_lock:
        _admin_prefixes[key] = prefix
    return prefix


# ROOT_URLCONF and INSTALLED_APPS may change the prefix; forgetting it is cheap.
on_setting_changed(_admin_prefixes.clear, settings=None)


def is_admin_request(request: HttpRequest) -> bool:
    """Whether ``request`` is for Django's admin: staff at work, not a visitor of the site.

    Any ``AdminSite`` (by its URL namespace), or a path under
    ``reverse("admin:index")``. Page visits and auth events skip it.
    """
    match = getattr(request, "resolver_match", None)
    if match is not None and "admin" in match.app_names:
        return True  # any AdminSite, whatever its name or prefix
    prefix = _admin_prefix()
    # An admin mounted at "/" would exclude the whole site; rely on resolver_match then.
    return prefix is not None and prefix != "/" and request.path.startswith(prefix)


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


def _resolve(
    request: HttpRequest, user: Any, *, link_cookie_uuid: bool = False
) -> dict[str, Any] | None:
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
    if user is None:
        user = getattr(request, "user", None)
    known = user_client(user)
    cookie_uuid = get_cookie_uuid(request)
    if known and not link_cookie_uuid:
        # The cookie is the browser's to write: sent beside the user's identifiers,
        # any uuid a client picks (another visitor's) would be linked to this account.
        return known
    client = {"uuid": cookie_uuid} if cookie_uuid is not None else {}
    client.update(known or {})
    return client or None


def resolve_client(
    request: HttpRequest, *, user: Any = None, link_cookie_uuid: bool = False
) -> dict[str, Any] | None:
    """The Synerise ``client`` for this request, or ``None``; errors propagate.

    What :func:`get_client` returns, for callers that handle errors themselves:
    the package's producers log them with the action of the event they were
    recording. Raises whatever ``CLIENT_RESOLVER`` or a ``USER_IDENTIFIERS``
    attribute raises, ``TypeError`` when the resolver returns neither a dict
    nor ``None``, and
    :class:`~django_synerise.exceptions.SyneriseConfigurationError` when it
    cannot be imported.

    ``link_cookie_uuid=True`` sends the cookie's uuid beside a logged-in
    user's identifiers, which links the two profiles in Synerise: only for the
    moment the site vouches for the link (the auth events: login, sign-up).
    """
    return _resolve(request, user, link_cookie_uuid=link_cookie_uuid)


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

    ``SYNERISE["CLIENT_RESOLVER"]``, when set, decides alone. Otherwise:
    :func:`user_client` of ``user`` (default: ``request.user``, which may load
    the session and the user) for a logged-in user, else the cookie UUID
    (:func:`get_cookie_uuid`); never both (see the module docstring).

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
