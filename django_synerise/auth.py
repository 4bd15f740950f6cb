"""Workspace authentication: the login, the JWT's lifetime and where the JWT is kept.

:class:`WorkspaceTokens` hands out a JWT for one workspace: the cached one, or
a fresh login at :data:`LOGIN_PATH`. It caches the token until its ``exp``
claim minus a margin, and replaces a token Synerise refused unless another
worker already did. The cache is a :class:`TokenCache`: in-process
(:class:`MemoryTokenCache`) or shared by every worker through Django's cache
(:class:`DjangoTokenCache`, which imports Django only when used).
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .events import dumps
from .exceptions import AuthenticationError, RetryableError
from .sending import HttpSender

if TYPE_CHECKING:
    from django.core.cache import BaseCache

__all__ = [
    "LOGIN_PATH",
    "DjangoTokenCache",
    "MemoryTokenCache",
    "TokenCache",
    "WorkspaceTokens",
    "jwt_expiry",
]

logger = logging.getLogger("django_synerise.client")

#: Workspace login endpoint (the older ``/v4/auth/login/profile`` is deprecated).
LOGIN_PATH = "/uauth/v2/auth/login/profile"


class TokenCache(Protocol):
    """Where the workspace JWT is kept between calls.

    Share one cache between processes (:class:`DjangoTokenCache`) so that a
    fleet of workers logs in once per token lifetime rather than once per process.
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


class DjangoTokenCache:
    """A :class:`TokenCache` over ``django.core.cache.caches[alias]``.

    The backend is looked up on every call (``caches`` hands out one
    connection per thread). Use a cache every worker can see (Redis,
    Memcached, database) to share the token between processes; with
    ``LocMemCache`` each process logs in on its own, which still works.
    """

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    @property
    def cache(self) -> BaseCache:
        from django.core.cache import caches

        return caches[self.alias]

    def get(self, key: str) -> str | None:
        value = self.cache.get(key)
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str, timeout: float) -> None:
        # Whole seconds, at least one: some backends want integers and 0
        # means "do not store" to Django.
        self.cache.set(key, value, max(1, int(timeout)))

    def delete(self, key: str) -> None:
        self.cache.delete(key)


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


class WorkspaceTokens:
    """JWTs for one workspace: cached, renewed before ``exp``, replaced once when refused.

    ``cache_key`` names the token in ``cache`` (never the key itself). A
    broken shared cache (Redis down) does not stop delivery: without it, the
    process merely logs in more often. Thread-safe; logins within a process
    are serialized, other processes may log in concurrently (a spare token,
    nothing worse).
    """

    def __init__(
        self,
        *,
        sender: HttpSender,
        api_key: str | None,
        api_version: str,
        user_agent: str,
        cache: TokenCache,
        cache_key: str,
        refresh_margin: float,
        lifetime: float,
    ) -> None:
        self.sender = sender
        self._api_key = api_key
        self.api_version = api_version
        self.user_agent = user_agent
        self.cache = cache
        self.cache_key = cache_key
        self.refresh_margin = refresh_margin
        self.lifetime = lifetime
        self._login_lock = threading.Lock()
        # Recent JWTs (ours or read from a shared cache), for redaction.
        self._recent: collections.deque[str] = collections.deque(maxlen=8)
        self._recent_lock = threading.Lock()

    def recent(self) -> list[str]:
        """The tokens this process has seen lately (to redact them)."""
        with self._recent_lock:
            return list(self._recent)

    def require_api_key(self) -> str:
        """The API key; ``ValueError`` naming the setting when there is none."""
        if not self._api_key:
            raise ValueError(
                "api_key is required for v4 calls (events, transactions) and for AI events "
                'when no tracker_key is set; set SYNERISE["API_KEY"]'
            )
        return self._api_key

    def get(self) -> str:
        """A JWT for this workspace: the cached one, or a fresh login."""
        self.require_api_key()
        token = self._cache_get()
        if token:
            return token
        with self._login_lock:
            # Another thread may have logged in while we waited.
            token = self._cache_get()
            if token:
                return token
            return self._login_and_cache()

    def refresh(self, stale: str) -> str:
        """Replace a JWT Synerise refused, unless another worker already did."""
        with self._login_lock:
            current = self._cache_get()
            if current and current != stale:
                return current
            self._cache_call("delete", self.cache_key)
            return self._login_and_cache()

    def _login_and_cache(self) -> str:
        token = self.login()
        self._cache_call("set", self.cache_key, token, self.timeout_for(token))
        return token

    def timeout_for(self, token: str) -> float:
        """How long to cache ``token``: until ``exp`` minus the margin, else ``lifetime``."""
        exp = jwt_expiry(token)
        if exp is None:
            return self.lifetime
        remaining = exp - time.time()
        if remaining <= 0:
            # Already expired by our clock: more likely our clock is off than
            # Synerise issuing dead tokens. A 401 still triggers a new login.
            logger.warning(
                "The Synerise token's exp is %.0f s in the past by this machine's clock; "
                "check the system time. Trusting the token for %.0f s.",
                -remaining,
                self.lifetime,
            )
            return self.lifetime
        if remaining > self.refresh_margin:
            return remaining - self.refresh_margin
        # Shorter-lived than the margin: keep it for half its life.
        return max(1.0, remaining / 2)

    def login(self) -> str:
        """``POST /uauth/v2/auth/login/profile``; return the JWT.

        Raises :class:`AuthenticationError` when Synerise refuses the key,
        :class:`RateLimitedError`/:class:`RetryableError` when it may work later.
        """
        api_key = self.require_api_key()
        path = LOGIN_PATH
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Api-Version": self.api_version,
            "User-Agent": self.user_agent,
        }
        response = self.sender.post(path, dumps({"apiKey": api_key}).encode("utf-8"), headers)
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
                raise self.sender.failure(
                    RetryableError, "Synerise's login response carried no token", response, path
                )
            token = token.strip()
            self._remember(token)
            logger.debug("Logged in to Synerise (%s)", self.sender.base_url)
            return token
        if status in (400, 401, 403):
            raise self.sender.failure(
                AuthenticationError,
                "Synerise refused the API key",
                response,
                path,
                hint='check SYNERISE["API_KEY"]',
            )
        if 400 <= status < 500 and status not in (408, 429):
            raise self.sender.failure(
                AuthenticationError,
                "Synerise login failed",
                response,
                path,
                hint='check SYNERISE["API_BASE_URL"] and SYNERISE["API_KEY"]',
            )
        self.sender.check(response, path)
        raise self.sender.failure(  # pragma: no cover - check() raises for every non-2xx
            RetryableError, "Synerise login failed", response, path
        )

    def _cache_get(self) -> str | None:
        value = self._cache_call("get", self.cache_key)
        if isinstance(value, str) and value:
            self._remember(value)
            return value
        return None

    def _remember(self, token: str) -> None:
        with self._recent_lock:
            if token not in self._recent:
                self._recent.append(token)

    def _cache_call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self.cache, method)(*args)
        except Exception as err:
            logger.warning(
                "Synerise token cache %s failed (%s); continuing without it",
                method,
                type(err).__name__,
            )
            return None
