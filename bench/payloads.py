"""Realistic outbox payloads, built by the real serializer (no Django needed).

Every payload comes from :func:`django_synerise.events.page_visit` and
:func:`~django_synerise.events.dumps`, exactly as ``enqueue()`` stores it. Building
an event costs about 60 µs, too slow for millions of rows, so a pool of distinct
events is built once; each benchmark row takes one of them with a fresh
``eventSalt`` of the same length, so sizes stay exact.
"""

from __future__ import annotations

import uuid

from django_synerise.events import dumps, page_visit

POOL_SIZE = 5000
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

_pool: list[tuple[str, str, str]] | None = None


def payload_pool() -> list[tuple[str, str, str]]:
    """``(payload, salt, client_key)`` of :data:`POOL_SIZE` distinct page visits."""
    global _pool
    if _pool is None:
        pool = []
        for n in range(POOL_SIZE):
            visitor = str(uuid.UUID(int=(0x5EED << 96) + n))
            event = page_visit(
                client={"uuid": visitor},
                url=f"https://shop.example/products/{n % 997}/?utm_source=newsletter",
                path=f"/products/{n % 997}/",
                title=f"Product {n % 997} | Shop",
                referrer="https://www.google.com/",
                utm={"utm_source": "newsletter", "utm_medium": "email"},
                user_agent=AGENT,
            )
            assert event.salt is not None
            pool.append((dumps(event.to_payload()), event.salt, f"uuid:{visitor}"))
        _pool = pool
    return _pool


def fresh_salt(n: int) -> str:
    """A unique, UUID-shaped salt for row ``n``."""
    return str(uuid.UUID(int=n << 16 | 0xBE))


def batch_body(count: int = 1000) -> bytes:
    """A ``/v4/events/batch`` body of ``count`` distinct stored payloads."""
    pool = payload_pool()
    texts = []
    for n in range(count):
        payload, salt, _ = pool[n % len(pool)]
        texts.append(payload.replace(salt, fresh_salt(n)))
    return ("[" + ",".join(texts) + "]").encode()
