"""HTTP client for the Synerise API: authentication, one attempt per call, classified errors.

:class:`SyneriseClient` takes everything it needs through its constructor and
imports nothing from Django, so it can be used (and tested) on its own;
:func:`django_synerise.transport.build_client` builds one from the
``SYNERISE`` settings.

Contract of every ``send_*`` method:

* exactly one HTTP attempt, except that a workspace token refused with 401 is
  replaced by a fresh login and the call is repeated once;
* any 2xx is success (the body is ignored, Synerise documents none);
* every failure raises one :class:`~django_synerise.exceptions.SyneriseError`
  subclass, chosen by what the caller can do about it:

  ===============================================  ==============================
  network error, timeout, broken response          :class:`RetryableError`
  408, 500, 502, 504, any other 5xx, 503 without   :class:`RetryableError`
  ``Retry-After``, unexpected 3xx, 404, 405, 415
  429, 503 with ``Retry-After``                    :class:`RateLimitedError`
  401 after a fresh login, 403, refused login      :class:`AuthenticationError`
  any other 4xx (400, 409, 413, 422 ...)           :class:`RejectedError`
  ===============================================  ==============================

Retrying is the caller's business (the outbox dispatcher backs off and
honours ``retry_after``).

No secret (API key, tracker key, JWT, Basic credentials) ever reaches an
exception, a stored response text or a log record: everything that leaves this
module goes through :func:`redact`, and endpoints are reported without their
query string (which carries the tracker key).
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import email.utils
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from types import TracebackType
from typing import Any, Literal, Protocol, TypeAlias
from urllib.parse import quote, quote_plus

import requests

from .events import (
    AI_EVENT_TYPES,
    DEDICATED_EVENT_TYPES,
    AIEvent,
    AIEventsAPI,
    AITimestampFormat,
    CustomEvent,
    DedicatedEvent,
    Event,
    Transaction,
    dumps,
)
from .exceptions import (
    AuthenticationError,
    RateLimitedError,
    RejectedError,
    RetryableError,
    SyneriseError,
)

__all__ = [
    "LOGIN_PATH",
    "MAX_RESPONSE_CHARS",
    "AuthMode",
    "CallAuth",
    "MemoryTokenCache",
    "Payload",
    "SyneriseClient",
    "TokenCache",
    "default_user_agent",
    "jwt_expiry",
    "parse_retry_after",
    "redact",
]

logger = logging.getLogger("django_synerise.client")

#: Workspace login endpoint (the older ``/v4/auth/login/profile`` is deprecated).
LOGIN_PATH = "/uauth/v2/auth/login/profile"

#: Longest response text kept on an exception (after redaction).
MAX_RESPONSE_CHARS = 2000

#: Longest request body written to the DEBUG log.
_MAX_LOGGED_BODY_CHARS = 2000
#: Statuses that say the endpoint or the media type is wrong, not any one event
#: (404 Not Found, 405 Method Not Allowed, 415 Unsupported Media Type).
_ENDPOINT_STATUSES = frozenset({404, 405, 415})

_REDACTED = "***"

AuthMode = Literal["jwt", "basic"]
CallAuth = Literal["workspace", "jwt", "tracker"]

#: What the batch methods accept per item: an event object, its payload dict,
#: or its JSON text exactly as :meth:`Event.to_json` produced it (the outbox
#: stores that text; it is sent as is, without decoding).
Payload: TypeAlias = Event | Mapping[str, Any] | str

Timeout: TypeAlias = float | tuple[float, float]


class TokenCache(Protocol):
    """Where the workspace JWT is kept between calls.

    Share one cache between processes (Django's cache, see
    :class:`django_synerise.transport.DjangoTokenCache`) so that a fleet of
    workers logs in once per token lifetime rather than once per process.
    """

    def get(self, key: str) -> str | None:
        """The cached value, or ``None`` when absent or expired."""

    def set(self, key: str, value: str, timeout: float) -> None:
        """Store ``value`` for ``timeout`` seconds (always > 0)."""

    def delete(self, key: str) -> None:
        """Forget ``key``; absent keys are not an error."""


class MemoryTokenCache:
    """A thread-safe in-process :class:`TokenCache` whose entries expire after their timeout.

    ``clock`` (default :func:`time.monotonic`, immune to wall-clock jumps) is
    injectable for tests.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float]] = {}

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, expires_at = entry
            if self._clock() >= expires_at:
                del self._entries[key]
                return None
            return value

    def set(self, key: str, value: str, timeout: float) -> None:
        with self._lock:
            self._entries[key] = (value, self._clock() + timeout)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


# ---------------------------------------------------------------------------
# Helpers (public because the dispatcher and tests use them too)
# ---------------------------------------------------------------------------

# Credentials that may show up in text we did not write (an echoed request,
# a URL in a library's exception), whatever their value.
_QUERY_TOKEN_PATTERN = (re.compile(r"(?i)([?&]token=)[^&\s\"'<>]+"), r"\1" + _REDACTED)
_CREDENTIAL_PATTERNS = (
    _QUERY_TOKEN_PATTERN,
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + _REDACTED),
)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return ``text`` with every secret replaced by ``***``.

    Each secret is removed as written, URL-encoded and JSON-escaped (the forms
    in which a URL, a form or an echoed request body would carry it). Any
    ``token=`` query value and any ``Bearer``/``Basic`` credential is removed
    too, known or not. Empty and ``None`` secrets are ignored.
    """
    variants: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        variants.add(secret)
        variants.add(quote(secret, safe=""))
        variants.add(quote_plus(secret, safe=""))
        variants.add(json.dumps(secret)[1:-1])
    # Longest first, so a secret containing another is removed whole.
    for variant in sorted(variants, key=len, reverse=True):
        if variant:
            text = text.replace(variant, _REDACTED)
    for pattern, replacement in _CREDENTIAL_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class _RedactQueryTokens(logging.Filter):
    """Remove ``token=`` query values from urllib3's own log lines.

    urllib3 logs every request line at DEBUG (``"POST /events/v1/batch?token=..."``)
    and retried URLs at WARNING; the AI events API carries the tracker key
    there. Installed once on urllib3's loggers when a client is built.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        pattern, replacement = _QUERY_TOKEN_PATTERN
        cleaned = pattern.sub(replacement, message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")
_query_token_filter = _RedactQueryTokens()


def _install_urllib3_filter() -> None:
    for name in _URLLIB3_LOGGERS:
        library_logger = logging.getLogger(name)
        if _query_token_filter not in library_logger.filters:
            library_logger.addFilter(_query_token_filter)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header, or ``None``.

    Accepts delta-seconds (``"120"``; a decimal is tolerated) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``; a date in the past means ``0``).
    Anything else (absent, empty, negative, not finite, unparsable) is ``None``
    so that the caller falls back to its own backoff.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # pragma: no cover - Python < 3.10 returned None
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=dt.timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (Unix seconds) of a JWT, or ``None`` when it has no readable one.

    The signature is not checked: the token came straight from Synerise over
    TLS, and ``exp`` only tells us when to fetch the next one.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        payload = json.loads(base64.urlsafe_b64decode(segment.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not isinstance(payload, dict):
        return None
    exp = payload.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not math.isfinite(exp):
        return None
    return float(exp)


def default_user_agent() -> str:
    """``django-synerise/<version> python-requests/<version>``."""
    try:
        version = metadata.version("django-synerise")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    return f"django-synerise/{version} python-requests/{requests.__version__}"


def _network_reason(err: requests.RequestException) -> str:
    """A short reason for a failed request, built by us: requests' own text holds the URL."""
    if isinstance(err, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(err, requests.ReadTimeout):
        return "no response before the read timeout"
    if isinstance(err, requests.Timeout):
        return "timed out"
    if isinstance(err, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(err, requests.exceptions.ProxyError):
        return "proxy error"
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "the response was cut off"
    if isinstance(err, requests.exceptions.ContentDecodingError):
        return "the response could not be decoded"
    if isinstance(err, requests.ConnectionError):
        cause = _root_cause(err)
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if cause is not None and type(cause).__name__ == "RemoteDisconnected":
            return "connection closed without a response"
        if cause is not None and type(cause).__name__ in ("gaierror", "NameResolutionError"):
            return "host name could not be resolved"
        return "connection failed"
    return f"request failed ({type(err).__name__})"


def _root_cause(err: BaseException) -> BaseException | None:
    """The innermost exception urllib3/requests wrapped (via args, ``reason`` and chaining)."""
    seen: set[int] = set()
    stack: list[BaseException] = [err]
    found: BaseException | None = None
    while stack and len(seen) < 20:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current is not err:
            found = current
            if isinstance(current, (ConnectionRefusedError, ConnectionResetError)):
                return current
            if type(current).__name__ in ("RemoteDisconnected", "gaierror", "NameResolutionError"):
                return current
        for nested in (
            *current.args,
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
        ):
            if isinstance(nested, BaseException):
                stack.append(nested)
    return found


def _scrubbed(err: requests.RequestException, secrets: Iterable[str | None]) -> BaseException:
    """A traceback-free copy of ``err`` with secrets removed, to chain from.

    ``raise ... from err`` would put requests' text (the full URL, with the
    tracker key) into every logged traceback.
    """
    text = redact(str(err), secrets)
    try:
        return type(err)(text)
    except Exception:  # an exotic __init__: any RequestException will do
        return requests.RequestException(text)


def _error_detail(body: Any) -> tuple[str | None, list[Any]]:
    """The API's message and ``errors[]`` from a JSON error body (``message``, else ``error``)."""
    if not isinstance(body, dict):
        return None, []
    message = None
    for key in ("message", "error", "error_description", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            message = value.strip()
            break
    errors = body.get("errors")
    if not isinstance(errors, list):
        errors = []
    if errors:
        shown = "; ".join(_describe_error(item) for item in errors[:3])
        if len(errors) > 3:
            shown += f" (+{len(errors) - 3} more)"
        message = f"{message}: {shown}" if message else shown
    return message, errors


def _describe_error(item: Any) -> str:
    if isinstance(item, dict):
        field = item.get("field") or item.get("path") or item.get("property")
        text = item.get("message") or item.get("defaultMessage") or item.get("error")
        if field and text:
            return f"{field}: {text}"
        if text:
            return str(text)
        return json.dumps(item, ensure_ascii=False, default=str)
    return str(item)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------


class SyneriseClient:
    """A connection to one Synerise workspace.

    Args (all keyword-only):
        base_url: API host, e.g. ``https://api.synerise.com`` (no trailing path).
        api_key: workspace API key; needed for every v4 call.
        tracker_key: web tracker key; authorizes AI (recommendation) events
            as the ``token`` query parameter. Without one they are sent with
            the workspace JWT, which the AI events API also takes.
        auth: ``"jwt"`` logs in at :data:`LOGIN_PATH` and sends
            ``Authorization: Bearer``; ``"basic"`` sends
            ``Basic base64(workspace_guid:api_key)`` and never logs in.
        workspace_guid: needed for ``auth="basic"``.
        api_version: the ``Api-Version`` header.
        timeout: ``(connect, read)`` seconds, or one number for both.
        session: a :class:`requests.Session` to use; one is created (and
            closed by :meth:`close`) when ``None``. Every call goes through
            it so connections are kept alive.
        token_cache: where the JWT is kept; default an in-process
            :class:`MemoryTokenCache`. Its key is a hash of the base URL and
            API key, never the key itself.
        token_refresh_margin: seconds before the JWT's ``exp`` at which it is
            renewed.
        token_lifetime: seconds a JWT is trusted when its ``exp`` is unreadable.
        user_agent: ``User-Agent`` header; default :func:`default_user_agent`.
        ai_events_api: ``"events-v1"`` (``/events/v1/...``) or ``"ai-compat"``
            (``/v4/events/ai-compat/...``).
        ai_timestamp_format: ``eventTimestamp`` of AI events built from
            :class:`AIEvent` objects: ``"unix-ms"`` or ``"iso8601"``.

    Raises :class:`ValueError` for an impossible argument. A missing key is
    only an error when a call needs it (a client may serve AI events only).
    Thread-safe: threads may share one client.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        tracker_key: str | None = None,
        auth: AuthMode = "jwt",
        workspace_guid: str | None = None,
        api_version: str = "4.4",
        timeout: Timeout = (3.05, 10.0),
        session: requests.Session | None = None,
        token_cache: TokenCache | None = None,
        token_refresh_margin: float = 60,
        token_lifetime: float = 3550,
        user_agent: str | None = None,
        ai_events_api: AIEventsAPI = "events-v1",
        ai_timestamp_format: AITimestampFormat = "unix-ms",
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with https:// or http://, not {base_url!r}")
        if auth not in ("jwt", "basic"):
            raise ValueError(f'auth must be "jwt" or "basic", not {auth!r}')
        if ai_events_api not in ("events-v1", "ai-compat"):
            raise ValueError(
                f'ai_events_api must be "events-v1" or "ai-compat", not {ai_events_api!r}'
            )
        if ai_timestamp_format not in ("unix-ms", "iso8601"):
            raise ValueError(
                f'ai_timestamp_format must be "unix-ms" or "iso8601", not {ai_timestamp_format!r}'
            )
        if token_lifetime <= 0:
            raise ValueError(f"token_lifetime must be positive, not {token_lifetime!r}")
        if token_refresh_margin < 0:
            raise ValueError(
                f"token_refresh_margin must not be negative, not {token_refresh_margin!r}"
            )
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self._tracker_key = tracker_key or None
        self.auth: AuthMode = auth
        self.workspace_guid = workspace_guid or None
        self.api_version = api_version
        self.timeout = timeout
        self._owns_session = session is None
        self.session = session if session is not None else requests.Session()
        self.token_cache: TokenCache = (
            token_cache if token_cache is not None else MemoryTokenCache()
        )
        self.token_refresh_margin = float(token_refresh_margin)
        self.token_lifetime = float(token_lifetime)
        self.user_agent = user_agent or default_user_agent()
        self.ai_events_api: AIEventsAPI = ai_events_api
        self.ai_timestamp_format: AITimestampFormat = ai_timestamp_format
        digest = hashlib.sha256(f"{self.base_url}\n{self._api_key or ''}".encode()).hexdigest()
        #: Key of this workspace's JWT in :attr:`token_cache`.
        self.token_cache_key = f"django_synerise:jwt:{digest[:40]}"
        self._basic_credentials: str | None = None
        if self._api_key and self.workspace_guid:
            raw = f"{self.workspace_guid}:{self._api_key}".encode()
            self._basic_credentials = base64.b64encode(raw).decode("ascii")
        # Serializes logins within this process; other processes may log in
        # concurrently, which costs a spare token and nothing else.
        self._login_lock = threading.Lock()
        # Recent JWTs (ours or read from a shared cache), for redaction.
        self._tokens: collections.deque[str] = collections.deque(maxlen=8)
        self._tokens_lock = threading.Lock()
        _install_urllib3_filter()

    def __repr__(self) -> str:
        return f"<SyneriseClient {self.base_url} auth={self.auth}>"

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Close the session if this client created it (a session passed in stays open)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> SyneriseClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- v4 events -----------------------------------------------------------

    def send_batch(self, events: Iterable[Payload]) -> None:
        """``POST /v4/events/batch`` with the events as a JSON array.

        Items are :class:`CustomEvent`/:class:`DedicatedEvent` objects,
        payload dicts (with ``type``), or JSON texts from :meth:`Event.to_json`;
        texts are joined without re-encoding. Up to 1000 events and 1 MB
        (Synerise's limits) is the caller's job. An empty batch sends nothing.
        Raises :class:`ValueError` for an event of another kind, and a
        :class:`SyneriseError` subclass when the call fails.
        """
        body, count = self._array_body(events, kind="event")
        if count:
            self.post_json("/v4/events/batch", body, auth="workspace", count=count)

    def send_custom(self, event: CustomEvent | Mapping[str, Any]) -> None:
        """``POST /v4/events/custom`` with one custom event (sent without ``type``)."""
        payload = self._single_payload(event, kind="event")
        event_type = payload.pop("type", "custom")
        if event_type != "custom":
            raise ValueError(
                f"send_custom() takes custom events; {event_type!r} goes to its dedicated "
                "endpoint: use send_event()"
            )
        self.post_json("/v4/events/custom", _encode(payload), auth="workspace", count=1)

    def send_event(self, event: CustomEvent | DedicatedEvent | Mapping[str, Any]) -> None:
        """Send one v4 event to its own endpoint.

        A dedicated event (``type`` ``"added-to-cart"`` ...) goes to
        ``/v4/events/<type>``, a custom one to ``/v4/events/custom``; the body
        carries no ``type``.
        """
        payload = self._single_payload(event, kind="event")
        event_type = payload.pop("type", None)
        if event_type == "custom":
            path = "/v4/events/custom"
        elif isinstance(event_type, str) and event_type in DEDICATED_EVENT_TYPES:
            path = f"/v4/events/{event_type}"
        else:
            raise ValueError(
                f"event type {event_type!r} is neither 'custom' nor a dedicated event type "
                f"({', '.join(DEDICATED_EVENT_TYPES)})"
            )
        self.post_json(path, _encode(payload), auth="workspace", count=1)

    # -- transactions --------------------------------------------------------

    def send_transactions(
        self, transactions: Iterable[Transaction | Mapping[str, Any] | str]
    ) -> None:
        """``POST /v4/transactions/batch`` with the transactions as a JSON array.

        Same three input forms as :meth:`send_batch`; an empty batch sends nothing.
        """
        body, count = self._array_body(transactions, kind="transaction")
        if count:
            self.post_json("/v4/transactions/batch", body, auth="workspace", count=count)

    def send_transaction(self, transaction: Transaction | Mapping[str, Any]) -> None:
        """``POST /v4/transactions`` with one transaction."""
        payload = self._single_payload(transaction, kind="transaction")
        self.post_json("/v4/transactions", _encode(payload), auth="workspace", count=1)

    # -- AI (recommendation) events ------------------------------------------

    def send_ai_batch(
        self, event_type: str, events: Iterable[AIEvent | Mapping[str, Any] | str]
    ) -> None:
        """Send AI events of one type in one request, authorized by the tracker key (or JWT).

        ``events-v1``: ``POST /events/v1/batch?token=...``; ``ai-compat``:
        ``POST /v4/events/ai-compat/batch?token=...``; body
        ``{"eventType": event_type, "items": [...]}``. Items are
        :class:`AIEvent` objects (serialized with this client's
        ``ai_events_api`` and ``ai_timestamp_format``), payload dicts or JSON
        texts. Raises :class:`ValueError` for an unknown ``event_type``, an
        :class:`AIEvent` of another type, or when neither a tracker key nor an
        API key is set. An empty batch sends nothing.
        """
        _check_ai_type(event_type)
        items, count = self._array_body(events, kind="ai", ai_type=event_type)
        if not count:
            return
        body = b'{"eventType":' + _encode(event_type) + b',"items":' + items + b"}"
        path = (
            "/events/v1/batch"
            if self.ai_events_api == "events-v1"
            else "/v4/events/ai-compat/batch"
        )
        self.post_json(path, body, auth=self._ai_auth(), count=count)

    def send_ai_event(
        self, event: AIEvent | Mapping[str, Any], *, event_type: str | None = None
    ) -> None:
        """Send one AI event: ``/events/v1/single/<type>`` or ``/v4/events/ai-compat/<type>``.

        ``event_type`` is required with a payload dict and must match an
        :class:`AIEvent`'s own type when given.
        """
        if isinstance(event, AIEvent):
            if event_type is not None and event_type != event.event_type:
                raise ValueError(f"event is a {event.event_type!r} event, not {event_type!r}")
            event_type = event.event_type
        elif event_type is None:
            raise ValueError("event_type is required when the event is a payload dict")
        _check_ai_type(event_type)
        payload = self._single_payload(event, kind="ai")
        if self.ai_events_api == "events-v1":
            path = f"/events/v1/single/{event_type}"
        else:
            path = f"/v4/events/ai-compat/{event_type}"
        self.post_json(path, _encode(payload), auth=self._ai_auth(), count=1)

    # -- the one HTTP path every call takes ----------------------------------

    def post_json(
        self,
        path: str,
        body: bytes,
        *,
        auth: CallAuth = "workspace",
        count: int | None = None,
    ) -> requests.Response:
        """POST a ready JSON ``body`` to ``path`` and return the 2xx response.

        ``path`` starts with ``/`` and has no query string. ``auth="workspace"``
        sends ``Api-Version`` and the workspace credentials (a JWT is fetched or
        reused, and replaced once on a 401; HTTP Basic with ``auth="basic"``);
        ``auth="jwt"`` sends the JWT whatever the client's auth mode;
        ``auth="tracker"`` adds the tracker key as the ``token`` query
        parameter and sends no credentials header. ``count`` (events in the
        body) is only used for logging.

        Raises a :class:`SyneriseError` subclass for any failure (see the
        module docstring), :class:`ValueError` when a needed key is missing.
        """
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError(f"path must start with / and carry no query string, not {path!r}")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": self.user_agent,
        }
        if auth == "tracker":
            params = {"token": self._require_tracker_key()}
            if path.startswith("/v4/"):
                headers["Api-Version"] = self.api_version
            response = self._send(path, body, headers, params, count)
            if response.status_code in (401, 403):
                raise self._failure(
                    AuthenticationError,
                    "Synerise refused the tracker key",
                    response,
                    path,
                    hint='check SYNERISE["TRACKER_KEY"]',
                )
            self._raise_for_status(response, path)
            return response
        if auth not in ("workspace", "jwt"):
            raise ValueError(f'auth must be "workspace", "jwt" or "tracker", not {auth!r}')

        headers["Api-Version"] = self.api_version
        if auth == "workspace" and self.auth == "basic":
            headers["Authorization"] = f"Basic {self._require_basic_credentials()}"
            response = self._send(path, body, headers, None, count)
            if response.status_code == 401:
                raise self._failure(
                    AuthenticationError,
                    "Synerise refused the Basic credentials",
                    response,
                    path,
                    hint='check SYNERISE["WORKSPACE_GUID"] and SYNERISE["API_KEY"], and that '
                    "Basic auth is enabled for the key",
                )
            self._raise_for_status(response, path)
            return response

        token = self._get_token()
        headers["Authorization"] = f"Bearer {token}"
        response = self._send(path, body, headers, None, count)
        if response.status_code == 401:
            # The token expired early or was revoked: the PHP SDK's recipe,
            # forget it, log in again, repeat the call once.
            logger.info("Synerise refused the workspace token on %s; logging in again", path)
            token = self._refresh_token(token)
            headers["Authorization"] = f"Bearer {token}"
            response = self._send(path, body, headers, None, count)
            if response.status_code == 401:
                raise self._failure(
                    AuthenticationError,
                    "Synerise refused a freshly issued workspace token",
                    response,
                    path,
                    hint="check the API key's permissions",
                )
        self._raise_for_status(response, path)
        return response

    # -- authentication ------------------------------------------------------

    def _ai_auth(self) -> CallAuth:
        # The AI events API takes the tracker key or a workspace JWT (Basic is not
        # among its methods): without a tracker key, first-party beacons still go.
        return "tracker" if self._tracker_key else "jwt"

    def _require_api_key(self) -> str:
        if not self._api_key:
            raise ValueError(
                "api_key is required for v4 calls (events, transactions) and for AI events "
                'when no tracker_key is set; set SYNERISE["API_KEY"]'
            )
        return self._api_key

    def _require_tracker_key(self) -> str:
        if not self._tracker_key:
            raise ValueError(
                "tracker_key is required for AI events (recommendation.view, recommendation.click, "
                'item.search.click); set SYNERISE["TRACKER_KEY"]'
            )
        return self._tracker_key

    def _require_basic_credentials(self) -> str:
        if not self._basic_credentials:
            raise ValueError(
                'auth="basic" needs workspace_guid and api_key; set SYNERISE["WORKSPACE_GUID"] '
                'and SYNERISE["API_KEY"]'
            )
        return self._basic_credentials

    def _get_token(self) -> str:
        """A JWT for this workspace: the cached one, or a fresh login."""
        self._require_api_key()
        token = self._cache_get()
        if token:
            return token
        with self._login_lock:
            # Another thread may have logged in while we waited.
            token = self._cache_get()
            if token:
                return token
            return self._login_and_cache()

    def _refresh_token(self, stale: str) -> str:
        """Replace a JWT Synerise refused, unless another worker already did."""
        with self._login_lock:
            current = self._cache_get()
            if current and current != stale:
                return current
            self._cache_call("delete", self.token_cache_key)
            return self._login_and_cache()

    def _login_and_cache(self) -> str:
        token = self._login()
        self._cache_call("set", self.token_cache_key, token, self._token_timeout(token))
        return token

    def _token_timeout(self, token: str) -> float:
        """How long to cache ``token``: until ``exp`` minus the margin, else ``token_lifetime``."""
        exp = jwt_expiry(token)
        if exp is None:
            return self.token_lifetime
        remaining = exp - time.time()
        if remaining <= 0:
            # Already expired by our clock: more likely our clock is off than
            # Synerise issuing dead tokens. A 401 still triggers a new login.
            logger.warning(
                "The Synerise token's exp is %.0f s in the past by this machine's clock; "
                "check the system time. Trusting the token for %.0f s.",
                -remaining,
                self.token_lifetime,
            )
            return self.token_lifetime
        if remaining > self.token_refresh_margin:
            return remaining - self.token_refresh_margin
        # Shorter-lived than the margin: keep it for half its life.
        return max(1.0, remaining / 2)

    def _login(self) -> str:
        """``POST /uauth/v2/auth/login/profile``; return the JWT.

        Raises :class:`AuthenticationError` when Synerise refuses the key,
        :class:`RateLimitedError`/:class:`RetryableError` when it may work later.
        """
        api_key = self._require_api_key()
        path = LOGIN_PATH
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Api-Version": self.api_version,
            "User-Agent": self.user_agent,
        }
        response = self._send(path, _encode({"apiKey": api_key}), headers, None, None)
        status = response.status_code
        if 200 <= status < 300:
            token = None
            try:
                data = response.json()
            except ValueError:
                data = None
            if isinstance(data, dict):
                token = data.get("token")
            if not isinstance(token, str) or not token.strip():
                raise self._failure(
                    RetryableError,
                    "Synerise's login response carried no token",
                    response,
                    path,
                )
            token = token.strip()
            self._remember_token(token)
            logger.debug("Logged in to Synerise (%s)", self.base_url)
            return token
        if status in (400, 401, 403):
            raise self._failure(
                AuthenticationError,
                "Synerise refused the API key",
                response,
                path,
                hint='check SYNERISE["API_KEY"]',
            )
        if 400 <= status < 500 and status not in (408, 429):
            raise self._failure(
                AuthenticationError,
                "Synerise login failed",
                response,
                path,
                hint='check SYNERISE["API_BASE_URL"] and SYNERISE["API_KEY"]',
            )
        self._raise_for_status(response, path)
        raise self._failure(  # pragma: no cover - _raise_for_status handles every non-2xx
            RetryableError, "Synerise login failed", response, path
        )

    def _cache_get(self) -> str | None:
        value = self._cache_call("get", self.token_cache_key)
        if isinstance(value, str) and value:
            self._remember_token(value)
            return value
        return None

    def _remember_token(self, token: str) -> None:
        with self._tokens_lock:
            if token not in self._tokens:
                self._tokens.append(token)

    def _cache_call(self, method: str, *args: Any) -> Any:
        # A broken shared cache (Redis down) must not stop delivery: without
        # it we merely log in more often.
        try:
            return getattr(self.token_cache, method)(*args)
        except Exception as err:
            logger.warning(
                "Synerise token cache %s failed (%s); continuing without it",
                method,
                type(err).__name__,
            )
            return None

    # -- HTTP and classification ---------------------------------------------

    def _secrets(self) -> list[str | None]:
        with self._tokens_lock:
            tokens = list(self._tokens)
        return [self._api_key, self._tracker_key, self._basic_credentials, *tokens]

    def _send(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str],
        params: dict[str, str] | None,
        count: int | None,
    ) -> requests.Response:
        """One HTTP attempt; network failures become :class:`RetryableError`."""
        if logger.isEnabledFor(logging.DEBUG):
            events = f"{count} event(s), " if count is not None else ""
            logger.debug("POST %s: %s%d bytes", path, events, len(body))
            # Redact before truncating, so that no half secret survives the cut.
            text = redact(body.decode("utf-8", errors="replace"), self._secrets())
            logger.debug("POST %s body: %s", path, _truncate(text, _MAX_LOGGED_BODY_CHARS))
        try:
            return self.session.post(
                self.base_url + path,
                data=body,
                headers=headers,
                params=params,
                timeout=self.timeout,
                # A redirect would be a misconfigured base URL; following it
                # could turn the POST into a GET or send credentials elsewhere.
                allow_redirects=False,
            )
        except requests.RequestException as err:
            exc = RetryableError(f"could not reach Synerise: {_network_reason(err)}", endpoint=path)
            cause = _scrubbed(err, self._secrets())
        # Raised outside the except block so that requests' exception (its text
        # and its request carry the URL and the credentials) is not kept as
        # __context__; the scrubbed copy stands in as the cause.
        self._log_failure(exc)
        raise exc from cause

    def _raise_for_status(self, response: requests.Response, path: str) -> None:
        """Return for a 2xx; otherwise raise the exception the status calls for."""
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 429:
            raise self._failure(
                RateLimitedError, "Synerise is rate limiting requests", response, path
            )
        if status == 503:
            if response.headers.get("Retry-After") is not None:
                raise self._failure(RateLimitedError, "Synerise is unavailable", response, path)
            raise self._failure(RetryableError, "Synerise is unavailable", response, path)
        if status >= 500:
            raise self._failure(RetryableError, "Synerise had a server error", response, path)
        if status == 408:
            raise self._failure(RetryableError, "Synerise timed out the request", response, path)
        if status in (401, 403):
            raise self._failure(
                AuthenticationError,
                "Synerise denied access",
                response,
                path,
                hint="check the API key and its permissions",
            )
        if status in _ENDPOINT_STATUSES:
            # About no single event: the URL or the request's media type is wrong for
            # this server (API_BASE_URL, AI_EVENTS_API, a proxy in between). As a
            # rejection, the dispatcher would split every batch down to single events
            # and bury them all as dead; as a retry they wait, with backoff, for the fix.
            raise self._failure(
                RetryableError,
                "Synerise did not accept requests at this endpoint",
                response,
                path,
                hint="check API_BASE_URL and AI_EVENTS_API",
            )
        if 400 <= status < 500:
            raise self._failure(RejectedError, "Synerise rejected the request", response, path)
        # 1xx/3xx (redirects are not followed): the base URL is probably wrong.
        raise self._failure(
            RetryableError,
            "Synerise answered with an unexpected status",
            response,
            path,
            hint="check the API base URL",
        )

    def _failure(
        self,
        cls: type[SyneriseError],
        summary: str,
        response: requests.Response,
        path: str,
        *,
        hint: str | None = None,
    ) -> SyneriseError:
        """Build (and log) the exception for a non-2xx ``response``; secrets removed."""
        secrets = self._secrets()
        text = redact(response.text or "", secrets)
        try:
            data: Any = json.loads(text) if text.strip() else None
        except ValueError:
            data = None
        api_message, errors = _error_detail(data)
        message = summary
        if api_message:
            message += f": {_truncate(api_message, 500)}"
        if hint:
            message += f" ({hint})" if not api_message else f"; {hint}"
        request_id = response.headers.get("X-Request-Id") or response.headers.get(
            "X-Correlation-Id"
        )
        kwargs: dict[str, Any] = {
            "status_code": response.status_code,
            "response": _truncate(text, MAX_RESPONSE_CHARS),
            "request_id": _truncate(redact(request_id, secrets), 200) if request_id else None,
            "endpoint": path,
        }
        exc: SyneriseError
        if issubclass(cls, RateLimitedError):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                message += f"; retry after {retry_after:g} s"
            exc = cls(message, retry_after=retry_after, **kwargs)
        elif issubclass(cls, RejectedError):
            exc = cls(message, errors=errors, **kwargs)
        else:
            exc = cls(message, **kwargs)
        self._log_failure(exc)
        return exc

    @staticmethod
    def _log_failure(exc: SyneriseError) -> None:
        logger.warning(
            "Synerise call failed: POST %s: %s (HTTP %s, request id %s)",
            exc.endpoint,
            exc.message,
            exc.status_code if exc.status_code is not None else "-",
            exc.request_id or "-",
            extra={
                "synerise_failure": {
                    "endpoint": exc.endpoint,
                    "status": exc.status_code,
                    "message": exc.message,
                    "request_id": exc.request_id,
                    "error": type(exc).__name__,
                }
            },
        )

    # -- serialization -------------------------------------------------------

    def _serialize(self, event: Event) -> str:
        if isinstance(event, AIEvent):
            return event.to_json(
                ai_api=self.ai_events_api, ai_timestamp_format=self.ai_timestamp_format
            )
        return event.to_json()

    def _array_body(
        self,
        items: Iterable[Payload],
        *,
        kind: str,
        ai_type: str | None = None,
    ) -> tuple[bytes, int]:
        """A JSON array of ``items`` as UTF-8 bytes, and how many there are.

        JSON texts are trusted and joined as they are: the outbox's flush path
        must not pay for a decode and re-encode of every event.
        """
        texts: list[str] = []
        for index, item in enumerate(items):
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, Event):
                _check_kind(item, kind, index)
                if ai_type is not None and item.batch_type != ai_type:
                    raise ValueError(
                        f"item {index} is a {item.batch_type!r} event; every event in an AI "
                        f"batch must be of the batch's type, {ai_type!r}"
                    )
                texts.append(self._serialize(item))
            elif isinstance(item, Mapping):
                texts.append(dumps(item))
            else:
                raise TypeError(
                    f"item {index} is a {type(item).__name__}; expected an event, "
                    "a payload dict or its JSON text"
                )
        return ("[" + ",".join(texts) + "]").encode("utf-8"), len(texts)

    def _single_payload(self, event: Event | Mapping[str, Any], *, kind: str) -> dict[str, Any]:
        if isinstance(event, Event):
            _check_kind(event, kind, None)
            if isinstance(event, AIEvent):
                return event.to_payload(
                    ai_api=self.ai_events_api, ai_timestamp_format=self.ai_timestamp_format
                )
            return event.to_payload()
        if isinstance(event, Mapping):
            return dict(event)
        raise TypeError(f"expected an event or a payload dict, not {type(event).__name__}")


_KIND_METHODS = {
    "event": "send_batch()/send_event()",
    "transaction": "send_transactions()/send_transaction()",
    "ai": "send_ai_batch()/send_ai_event()",
}


def _check_kind(event: Event, kind: str, index: int | None) -> None:
    if event.kind != kind:
        where = f"item {index} " if index is not None else ""
        raise ValueError(
            f"{where}is a {type(event).__name__} ({event.kind!r} kind); send it with "
            f"{_KIND_METHODS.get(event.kind, 'the matching method')}"
        )


def _check_ai_type(event_type: str) -> None:
    if event_type not in AI_EVENT_TYPES:
        raise ValueError(
            f"event_type must be one of {', '.join(AI_EVENT_TYPES)}, not {event_type!r}"
        )


def _encode(payload: Any) -> bytes:
    return dumps(payload).encode("utf-8")
