"""Tests of django_synerise.auth: JWT expiry and the token caches.

The login and token refresh flows are tested through the client, in test_client.py.
"""

from __future__ import annotations

import base64
import threading

import pytest
from django.core.cache import caches

from django_synerise.auth import DjangoTokenCache, MemoryTokenCache, jwt_expiry
from tests.helpers import make_jwt


class TestJwtExpiry:
    def test_reads_exp(self) -> None:
        assert jwt_expiry(make_jwt(1_900_000_000)) == 1_900_000_000.0

    @pytest.mark.parametrize(
        "token",
        [
            "not-a-jwt",
            "a.b",
            "a.!!!.c",
            make_jwt(None),
            "x." + base64.urlsafe_b64encode(b'{"exp": "soon"}').decode() + ".y",
            "x." + base64.urlsafe_b64encode(b'{"exp": true}').decode() + ".y",
            "x." + base64.urlsafe_b64encode(b"[1, 2]").decode() + ".y",
            "x." + base64.urlsafe_b64encode(b"\xff\xfe").decode() + ".y",
        ],
    )
    def test_unreadable_exp_is_none(self, token: str) -> None:
        assert jwt_expiry(token) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestMemoryTokenCache:
    def test_honours_timeout(self) -> None:
        clock = FakeClock()
        cache = MemoryTokenCache(clock=clock)
        cache.set("k", "v", 10)
        clock.now += 9.9
        assert cache.get("k") == "v"
        clock.now += 0.1
        assert cache.get("k") is None

    def test_delete_and_missing(self) -> None:
        cache = MemoryTokenCache()
        assert cache.get("k") is None
        cache.delete("k")
        cache.set("k", "v", 60)
        cache.delete("k")
        assert cache.get("k") is None

    def test_thread_safe(self) -> None:
        # Entries that expire at once make every get() race to delete them: without
        # the lock, two threads delete the same key and one raises KeyError.
        cache = MemoryTokenCache(clock=FakeClock())
        errors: list[BaseException] = []
        wrong: list[tuple[str, str]] = []
        start = threading.Barrier(8)

        def work(n: int) -> None:
            try:
                start.wait()
                for i in range(2000):
                    key = f"k{i % 5}"
                    cache.set(key, f"{key}:{n}-{i}", 0 if i % 2 else 60)
                    value = cache.get(f"k{(i + 1) % 5}")
                    if value is not None and not value.startswith(f"k{(i + 1) % 5}:"):
                        wrong.append((f"k{(i + 1) % 5}", value))
                    cache.get(key)
                    cache.delete(f"k{(i + 2) % 5}")
            except BaseException as err:  # a thread's exception is otherwise lost
                errors.append(err)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert wrong == []
        # Still a working cache afterwards.
        cache.set("k0", "final", 60)
        assert cache.get("k0") == "final"


class TestDjangoTokenCache:
    def test_django_token_cache(self) -> None:
        cache = DjangoTokenCache("default")
        cache.set("django_synerise:test", "value", 0.4)
        assert cache.get("django_synerise:test") == "value"
        cache.delete("django_synerise:test")
        assert cache.get("django_synerise:test") is None
        caches["default"].set("django_synerise:other", 42)
        assert cache.get("django_synerise:other") is None
