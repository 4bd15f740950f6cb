"""One HTTP attempt to Synerise and what its outcome means: the client's sending layer.

:class:`HttpSender` POSTs a ready body once and turns every failure into one
:class:`~django_synerise.exceptions.SyneriseError` subclass, chosen by what the
caller can do about it:

===============================================  ==============================
network error, timeout, broken response          :class:`RetryableError`
408, 500, 502, 504, any other 5xx, 503 without   :class:`RetryableError`
``Retry-After``, unexpected 3xx, 404, 405, 415
429, 503 with ``Retry-After``                    :class:`RateLimitedError`
401/403 (see the client for the retried login)   :class:`AuthenticationError`
any other 4xx (400, 409, 413, 422 ...)           :class:`RejectedError`
===============================================  ==============================

Any 2xx is success (the body is ignored; Synerise documents none). Every text
that leaves this module (exception, stored response, log line) goes through
:func:`~django_synerise.redaction.redact` with the secrets the sender is given,
and endpoints are reported without their query string (which carries the
tracker key). Nothing here imports Django.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import math
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeAlias

import requests

from .exceptions import (
    AuthenticationError,
    RateLimitedError,
    RejectedError,
    RetryableError,
    SyneriseError,
)
from .redaction import redact

__all__ = [
    "MAX_RESPONSE_CHARS",
    "HttpSender",
    "Timeout",
    "default_user_agent",
    "parse_retry_after",
]

# One logger for the whole client side (sending, auth, the client): operators
# filter on it.
logger = logging.getLogger("django_synerise.client")

#: Longest response text kept on an exception (after redaction).
MAX_RESPONSE_CHARS = 2000

#: Longest request body written to the DEBUG log.
_MAX_LOGGED_BODY_CHARS = 2000
#: Statuses that say the endpoint or the media type is wrong, not any one event
#: (404 Not Found, 405 Method Not Allowed, 415 Unsupported Media Type).
_ENDPOINT_STATUSES = frozenset({404, 405, 415})

Timeout: TypeAlias = float | tuple[float, float]


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


def _scrubbed(err: requests.RequestException, secrets: list[str | None]) -> BaseException:
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


class HttpSender:
    """POSTs to one Synerise host over a :class:`requests.Session`; classifies the answer.

    ``secrets`` returns the values to remove from every text this sender
    produces (it is called each time: tokens change). Thread-safe as far as
    the session is.
    """

    def __init__(
        self,
        *,
        base_url: str,
        session: requests.Session,
        timeout: Timeout,
        secrets: Callable[[], list[str | None]],
    ) -> None:
        self.base_url = base_url
        self.session = session
        self.timeout = timeout
        self.secrets = secrets

    def post(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        count: int | None = None,
        *,
        method: str = "POST",
    ) -> requests.Response:
        """One attempt (a POST unless ``method`` says otherwise); any response is returned,
        network failures raise :class:`RetryableError`."""
        if logger.isEnabledFor(logging.DEBUG):
            events = f"{count} event(s), " if count is not None else ""
            logger.debug("%s %s: %s%d bytes", method, path, events, len(body))
            # Redact before truncating, so that no half secret survives the cut.
            text = redact(body.decode("utf-8", errors="replace"), self.secrets())
            logger.debug("%s %s body: %s", method, path, _truncate(text, _MAX_LOGGED_BODY_CHARS))
        try:
            return self.session.request(
                method,
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
            cause = _scrubbed(err, self.secrets())
        # Raised outside the except block so that requests' exception (its text
        # and its request carry the URL and the credentials) is not kept as
        # __context__; the scrubbed copy stands in as the cause.
        log_failure(exc)
        raise exc from cause

    def check(self, response: requests.Response, path: str) -> None:
        """Return for a 2xx; otherwise raise the exception the status calls for."""
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 429:
            raise self.failure(
                RateLimitedError, "Synerise is rate limiting requests", response, path
            )
        if status == 503:
            if response.headers.get("Retry-After") is not None:
                raise self.failure(RateLimitedError, "Synerise is unavailable", response, path)
            raise self.failure(RetryableError, "Synerise is unavailable", response, path)
        if status >= 500:
            raise self.failure(RetryableError, "Synerise had a server error", response, path)
        if status == 408:
            raise self.failure(RetryableError, "Synerise timed out the request", response, path)
        if status in (401, 403):
            raise self.failure(
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
            raise self.failure(
                RetryableError,
                "Synerise did not accept requests at this endpoint",
                response,
                path,
                hint="check API_BASE_URL and AI_EVENTS_API",
            )
        if 400 <= status < 500:
            raise self.failure(RejectedError, "Synerise rejected the request", response, path)
        # 1xx/3xx (redirects are not followed): the base URL is probably wrong.
        raise self.failure(
            RetryableError,
            "Synerise answered with an unexpected status",
            response,
            path,
            hint="check the API base URL",
        )

    def failure(
        self,
        cls: type[SyneriseError],
        summary: str,
        response: requests.Response,
        path: str,
        *,
        hint: str | None = None,
    ) -> SyneriseError:
        """Build (and log) the exception for a non-2xx ``response``; secrets removed."""
        secrets = self.secrets()
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
        log_failure(exc)
        return exc


def log_failure(exc: SyneriseError) -> None:
    """One WARNING per failed call, with structured fields for log pipelines."""
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
