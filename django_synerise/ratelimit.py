"""Who is asking, and how often: the client address and a rate limit per address.

Page visits and beacons are written for whoever asks, so both are limited per
client address (``PAGE_VISITS["THROTTLE_RATE"]``, ``BEACON_THROTTLE_RATE``).
Addresses, not the ``_snrs_uuid`` cookie: a client can mint a new cookie for
every request, not a new address.

The address is ``REMOTE_ADDR`` unless the site declares its proxies with
``SYNERISE["NUM_PROXIES"]`` (or DRF's ``REST_FRAMEWORK["NUM_PROXIES"]``): a
client writes ``X-Forwarded-For`` itself, so trusting it by default would let
anyone rotate it to escape every limit. A request that carries the header
while nothing is declared is logged once per process and remembered in the
cache for the system check ``synerise.W021``.

Counters live in Django's ``default`` cache under keys hashed from the address
(any address fits memcached's 250-character key limit). With a per-process
cache (``LocMemCache``) each process counts on its own, so the effective rate
is multiplied by the number of processes: check ``synerise.W020`` says so.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from django.core.cache import caches
from django.http import HttpRequest

from .conf import synerise_settings

__all__ = [
    "FORWARDED_FOR_SEEN_KEY",
    "Decision",
    "client_address",
    "forwarded_for_seen",
    "hit",
    "num_proxies",
]

logger = logging.getLogger("django_synerise.ratelimit")

#: Cache key set when a request carried ``X-Forwarded-For`` while no proxy is declared.
FORWARDED_FOR_SEEN_KEY = "django_synerise:forwarded_for_seen"
CACHE_ALIAS = "default"
_KEY_PREFIX = "django_synerise:rate"
_warned_forwarded_for = threading.Event()
_forwarded_for_noted_at = -1e18


def num_proxies() -> int | None:
    """Proxies in front of the site: ``SYNERISE["NUM_PROXIES"]``, else DRF's; ``None`` if neither."""
    declared = synerise_settings.NUM_PROXIES
    if declared is not None:
        return int(declared)
    try:
        from rest_framework.settings import api_settings
    except ImportError:  # pragma: no cover - DRF is a dependency
        return None
    drf = api_settings.NUM_PROXIES
    return drf if isinstance(drf, int) and not isinstance(drf, bool) else None


def _canonical(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        # One subscriber gets a whole /64: count it as one client, or it could
        # rotate through 2**64 addresses.
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def _note_forwarded_for() -> None:
    global _forwarded_for_noted_at
    now = time.monotonic()
    if now - _forwarded_for_noted_at < 60:
        return
    _forwarded_for_noted_at = now
    if not _warned_forwarded_for.is_set():
        _warned_forwarded_for.set()
        logger.warning(
            "A request carried X-Forwarded-For, but SYNERISE['NUM_PROXIES'] is not set: "
            "rate limits use REMOTE_ADDR. Behind a proxy, set NUM_PROXIES to the number "
            "of proxies in front of Django (0 if there are none)."
        )
    try:
        # Refreshed at most once a minute per process, for the check synerise.W021.
        caches[CACHE_ALIAS].set(FORWARDED_FOR_SEEN_KEY, time.time(), 7 * 86400)
    except Exception:  # the cache is a convenience for the check, never a failure
        logger.debug("could not record X-Forwarded-For in the cache", exc_info=True)


class _HasMeta(Protocol):
    META: Mapping[str, Any]


def forwarded_for_seen() -> bool:
    """Whether a request with ``X-Forwarded-For`` arrived while no proxy was declared.

    Remembered for a week in the ``default`` cache (with a per-process cache,
    only this process's requests count).
    """
    try:
        return caches[CACHE_ALIAS].get(FORWARDED_FOR_SEEN_KEY) is not None
    except Exception:
        return _warned_forwarded_for.is_set()


def client_address(request: HttpRequest | _HasMeta) -> str:
    """The address a rate limit counts this request against.

    ``REMOTE_ADDR``, or with ``n`` declared proxies the ``n``-th address from
    the right of ``X-Forwarded-For`` (the one the outermost trusted proxy
    saw), as DRF's ``NUM_PROXIES`` reads it. IPv6 addresses count per /64;
    anything that is not an IP address (a forged header) falls back to
    ``REMOTE_ADDR``. Never raises.
    """
    meta: Mapping[str, Any] = getattr(request, "META", None) or {}
    remote = _canonical(str(meta.get("REMOTE_ADDR") or "")) or "unknown"
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if not forwarded:
        return remote
    proxies = num_proxies()
    if proxies is None:
        _note_forwarded_for()
        return remote
    if proxies == 0:
        return remote
    hops = [hop for hop in str(forwarded).split(",") if hop.strip()]
    if not hops:
        return remote
    return _canonical(hops[-min(proxies, len(hops))]) or remote


@dataclass(frozen=True)
class Decision:
    """The answer of :func:`hit`: ``allowed``, and when to try again if not."""

    allowed: bool
    retry_after: float = 0.0


def hit(scope: str, address: str, limit: int, period: int) -> Decision:
    """Count one request of ``address`` in ``scope``; allowed while under ``limit`` per ``period`` s.

    (``limit``, ``period``) is what :func:`~django_synerise.conf.parse_throttle_rate`
    reads from a DRF rate string such as ``"60/min"``.

    A sliding window of one period, estimated from two fixed windows (the
    current one, and the previous one weighted by how much of it still
    overlaps): any span of one period sees at most about ``rate`` allowed
    requests, with no burst of twice the rate at a window's edge. A refused
    request is taken back off the count, so a client over the rate still gets
    the rate. Counting is atomic where the cache's ``incr`` is (Redis,
    memcached, ``LocMemCache``): parallel requests cannot overshoot. A cache that fails lets the request through:
    a rate limit never breaks the site.
    """
    now = time.time()
    window = int(now // period)
    digest = hashlib.sha256(f"{scope}\0{address}".encode()).hexdigest()[:32]
    current_key = f"{_KEY_PREFIX}:{digest}:{window}"
    previous_key = f"{_KEY_PREFIX}:{digest}:{window - 1}"
    cache = caches[CACHE_ALIAS]
    try:
        if cache.add(current_key, 1, timeout=2 * period + 1):
            current = 1
        else:
            try:
                current = int(cache.incr(current_key))
            except ValueError:  # expired between add() and incr()
                cache.set(current_key, 1, timeout=2 * period + 1)
                current = 1
        previous = int(cache.get(previous_key) or 0)
    except Exception:
        logger.warning("rate limit %s: the cache failed; request allowed", scope, exc_info=True)
        return Decision(True)
    overlap = 1.0 - (now - window * period) / period
    if previous * overlap + current <= limit:
        return Decision(True)
    try:
        # Only allowed requests count, so a client over the rate gets the rate, not nothing.
        cache.decr(current_key)
    except Exception:
        logger.debug("rate limit %s: could not undo a refused count", scope, exc_info=True)
    # Allowed again once the previous window's weight has fallen far enough, or
    # at the latest when the next window starts.
    return Decision(False, retry_after=max(1.0, (window + 1) * period - now))
