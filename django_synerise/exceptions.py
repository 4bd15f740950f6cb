"""Exceptions raised by django-synerise.

Two families, kept apart on purpose:

* :class:`SyneriseConfigurationError` (an ``ImproperlyConfigured``) means the
  ``SYNERISE`` settings are wrong. Code that swallows delivery errors must never
  swallow a broken configuration, so it is *not* a :class:`SyneriseError`.
* :class:`SyneriseError` and its subclasses describe one failed call to the
  Synerise API. The subclass tells the caller what it can do about it:

  ========================  ==================================================
  :class:`RetryableError`   network error, timeout, 5xx: try again later
  :class:`RateLimitedError` 429 (or 503 with ``Retry-After``): slow down
  :class:`RejectedError`    4xx: the request itself is wrong; do not resend it
  :class:`AuthenticationError` 401/403 or a failed login: fix the credentials
  ========================  ==================================================

* :class:`InvalidEventError` (a ``ValueError``) is raised when an event is built
  or enqueued with bad data; it names the offending field.

No exception text ever contains an API key, tracker key or JWT: the client
redacts response bodies before they reach these objects.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "AuthenticationError",
    "EventTooLargeError",
    "InvalidEventError",
    "RateLimitedError",
    "RejectedError",
    "RetryableError",
    "SyneriseConfigurationError",
    "SyneriseError",
]


class SyneriseConfigurationError(ImproperlyConfigured):
    """The ``SYNERISE`` setting is missing, misspelt or has a wrong value."""


class InvalidEventError(ValueError):
    """An event cannot be sent as built; ``field`` names the culprit.

    Raised at construction or enqueue time, never at flush time, so that a bad
    event is refused while the code that made it is still on the stack.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class EventTooLargeError(InvalidEventError):
    """A single serialized event is larger than ``MAX_BATCH_BYTES``."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            "event",
            f"serialized event is {size} bytes, more than the {limit} bytes a batch may hold "
            '(SYNERISE["MAX_BATCH_BYTES"]); send less data in params',
        )


class SyneriseError(Exception):
    """A call to the Synerise API failed.

    Attributes:
        message: what went wrong, in a sentence (the API's own message when it
            gave one).
        status_code: the HTTP status, or ``None`` when no response arrived.
        response: the response body, truncated and with secrets removed.
        request_id: the request id Synerise returned, when it returned one.
        endpoint: the path that was called (never with its query string).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        response: str | None = None,
        request_id: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.response = response
        self.request_id = request_id
        self.endpoint = endpoint
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message]
        context = []
        if self.endpoint:
            context.append(self.endpoint)
        if self.status_code is not None:
            context.append(f"HTTP {self.status_code}")
        if self.request_id:
            context.append(f"request id {self.request_id}")
        if context:
            parts.append(f"({', '.join(context)})")
        return " ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword attributes when pickled (Celery results, multiprocessing).
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[SyneriseError], message: str, state: dict[str, Any]) -> SyneriseError:
    obj = cls.__new__(cls)
    Exception.__init__(obj, message)
    obj.__dict__.update(state)
    return obj


class RetryableError(SyneriseError):
    """A failure the same request may get past later: network, timeout, 5xx.

    Also 404, 405 and 415, which no single event can cause: a wrong base URL or
    a proxy in the way, fixed in the configuration while the events wait.
    """


class RateLimitedError(RetryableError):
    """Synerise asked us to slow down (429, or 503 with ``Retry-After``).

    ``retry_after`` is the number of seconds Synerise asked for, or ``None``
    when it did not say; callers then fall back to their own backoff.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class RejectedError(SyneriseError):
    """Synerise refused the request (400, 409, 413, 422 ...); resending it will not help.

    ``errors`` holds the per-field detail from the API's ``errors`` array when
    it sent one.
    """

    def __init__(self, message: str, *, errors: list[Any] | None = None, **kwargs: Any) -> None:
        self.errors = errors or []
        super().__init__(message, **kwargs)


class AuthenticationError(SyneriseError):
    """The credentials were refused (failed login, or 401/403 after a fresh login)."""
