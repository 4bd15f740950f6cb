"""What ``PageVisitMiddleware`` adds to a request, measured three ways in the same run.

* **direct**: the middleware called around a view that returns a ready response,
  against the bare view, on real request objects: the most precise figure (no
  HTTP, no URL resolution, no template in the numbers).
* **test client**: Django's test client through the whole middleware stack and a
  template view, with and without the middleware, requests alternating.
* **real server**: two single-threaded WSGI servers (:mod:`bench.serve`), one
  with the middleware and one without, requested alternately by a Python loop
  over real HTTP.

"Tracked" requests are browser page views of ``/page/`` carrying the tracker's
``_snrs_uuid`` cookie: each writes one ``page.visit`` row (checked afterwards).
"Untracked" requests hit a JSON endpoint: the middleware inspects the response
and writes nothing.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .suite import ROOT, log, percentile

BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Accept": "text/html",
    "Sec-Fetch-Dest": "document",
}
VISITOR = "3f1c1c2e-8c5e-4d36-9a51-4b6f0e1d2a7b"


def added(with_mw: list[float], without: list[float]) -> dict[str, float]:
    """Median and p99 of each side and their differences, in milliseconds."""

    def ms(value: float) -> float:
        return round(value * 1000, 4)

    return {
        "with_median_ms": ms(statistics.median(with_mw)),
        "without_median_ms": ms(statistics.median(without)),
        "added_median_ms": ms(statistics.median(with_mw) - statistics.median(without)),
        "with_p99_ms": ms(percentile(with_mw, 0.99)),
        "without_p99_ms": ms(percentile(without, 0.99)),
        "added_p99_ms": ms(percentile(with_mw, 0.99) - percentile(without, 0.99)),
        "samples": len(with_mw),
    }


def _page_visits() -> int:
    from django_synerise.models import OutboxEvent

    return OutboxEvent.objects.filter(action="page.visit").count()


def direct(samples: int) -> dict[str, Any]:
    """The middleware around a ready response, against the bare view and a bare INSERT.

    Three calls per sample, their order rotating so drift hits each alike: the
    bare view, the view through the middleware, and ``OneColumn.objects.create()``
    (a row of one column, autocommitted: one durable INSERT through the ORM, the
    floor of any page visit that is recorded). The tracked figures add
    ``bare_create_median_ms`` and ``ratio_to_bare_create``.
    """
    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpResponse, JsonResponse
    from django.test import RequestFactory

    from django_synerise.middleware import PageVisitMiddleware

    from .models import OneColumn

    factory = RequestFactory()
    html = HttpResponse("<!doctype html><title>Shop</title>", content_type="text/html")
    json = JsonResponse({"ok": True})
    out: dict[str, Any] = {}
    for label, path, response in (("tracked", "/page/", html), ("untracked", "/api/", json)):

        def view(request: Any, response: Any = response) -> Any:
            return response

        middleware = PageVisitMiddleware(view)
        headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in BROWSER.items()}
        before = _page_visits()

        def through_middleware(request: Any, middleware: Any = middleware) -> None:
            middleware(request).close()

        timings: dict[str, list[float]] = {"view": [], "middleware": [], "create": []}
        for n in range(samples + 50):
            # An address of its own per request: the per-address limit is checked,
            # never reached.
            address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
            request = factory.get(path, {"n": n}, REMOTE_ADDR=address, **headers)
            request.COOKIES["_snrs_uuid"] = VISITOR
            request.user = AnonymousUser()
            calls: list[tuple[str, Callable[[], Any]]] = [
                # Both sides close the response, as a WSGI server does once the body is sent.
                ("view", lambda request=request: view(request).close()),
                ("middleware", lambda request=request: through_middleware(request)),
                ("create", OneColumn.objects.create),
            ]
            shift = n % 3
            for name, call in calls[shift:] + calls[:shift]:
                started = time.perf_counter()
                call()
                elapsed = time.perf_counter() - started
                if n >= 50:
                    timings[name].append(elapsed)
        written = _page_visits() - before
        expected = samples + 50 if label == "tracked" else 0
        if written != expected:
            raise RuntimeError(
                f"direct {label}: {written} page visits written, expected {expected}"
            )
        out[label] = added(timings["middleware"], timings["view"])
        create = statistics.median(timings["create"])
        out[label]["bare_create_median_ms"] = round(create * 1000, 4)
        out[label]["ratio_to_bare_create"] = round(
            out[label]["added_median_ms"] / (create * 1000), 3
        )
    return out


def orm_insert(row: Any, alias: str, *, durable: bool = True) -> None:
    """The plain ORM write the pre-built INSERT (``outbox._insert_one``) replaces."""
    row.save(force_insert=True, using=alias)


def test_client(samples: int) -> dict[str, Any]:
    from django.conf import settings
    from django.test import Client, override_settings

    plain = Client(headers=BROWSER)
    with override_settings(
        MIDDLEWARE=[*settings.MIDDLEWARE, "django_synerise.middleware.PageVisitMiddleware"]
    ):
        tracking = Client(headers=BROWSER)
        # The handler builds its middleware chain on the first request.
        tracking.get("/api/products/")
    plain.get("/api/products/")
    for client in (plain, tracking):
        client.cookies["_snrs_uuid"] = VISITOR
    out: dict[str, Any] = {}
    for label, path in (("tracked", "/page/"), ("untracked", "/api/products/")):
        before = _page_visits()
        with_mw, without = _alternate(
            lambda path=path: tracking.get(path),
            lambda path=path: plain.get(path),
            samples,
            check=200,
        )
        written = _page_visits() - before
        expected = samples + 50 if label == "tracked" else 0
        if written != expected:
            raise RuntimeError(f"client {label}: {written} page visits, expected {expected}")
        out[label] = added(with_mw, without)
    return out


def _alternate(
    first: Callable[[], Any], second: Callable[[], Any], samples: int, check: int
) -> tuple[list[float], list[float]]:
    """Time ``first`` and ``second`` alternately; drift and noise hit both alike."""
    timings_first: list[float] = []
    timings_second: list[float] = []
    for n in range(samples + 50):
        order = (first, second) if n % 2 else (second, first)
        for call in order:
            started = time.perf_counter()
            response = call()
            elapsed = time.perf_counter() - started
            if response.status_code != check:
                raise RuntimeError(f"status {response.status_code}")
            if n >= 50:
                (timings_first if call is first else timings_second).append(elapsed)
    return timings_first, timings_second


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def real_server(
    samples: int, database_url: str, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    import requests

    servers = []
    try:
        for middleware in ("1", "0"):
            port = _free_port()
            env = dict(
                os.environ,
                BENCH_MIDDLEWARE=middleware,
                BENCH_DATABASE_URL=database_url,
                BENCH_PAGE_VISIT_THROTTLE="0",
            )
            env.update(extra_env or {})
            env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.serve", str(port)],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )
            servers.append((process, f"http://127.0.0.1:{port}"))
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("the WSGI server did not start")
        (_, tracking_url), (_, plain_url) = servers
        session = requests.Session()
        session.headers.update(BROWSER)
        session.cookies.set("_snrs_uuid", VISITOR)
        out: dict[str, Any] = {}
        for label, path in (("tracked", "/page/"), ("untracked", "/api/products/")):
            before = _page_visits()
            with_mw, without = _alternate(
                lambda path=path: session.get(tracking_url + path),
                lambda path=path: session.get(plain_url + path),
                samples,
                check=200,
            )
            expected = samples + 50 if label == "tracked" else 0
            deadline = time.monotonic() + 5
            while (written := _page_visits() - before) < expected and time.monotonic() < deadline:
                time.sleep(0.01)
            if written != expected:
                raise RuntimeError(f"server {label}: {written} page visits, expected {expected}")
            out[label] = added(with_mw, without)
        return out
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(timeout=10)


def middleware_latency(suite: Any) -> dict[str, Any]:
    try:
        import django_synerise.middleware  # noqa: F401
    except ImportError:
        return {"skipped": "django_synerise.middleware is not available"}
    from . import data

    data.truncate()
    from django.db import connection

    from .models import OneColumn

    with connection.schema_editor() as editor:
        if OneColumn._meta.db_table in connection.introspection.table_names():
            editor.delete_model(OneColumn)
        editor.create_model(OneColumn)
    samples = suite.sizes.latency_samples
    from unittest import mock

    with mock.patch("django_synerise.outbox._insert_one", orm_insert):
        orm = direct(samples)
    from django.conf import settings
    from django.test import override_settings

    one_address = {
        **settings.SYNERISE,
        "PAGE_VISITS": {**settings.SYNERISE["PAGE_VISITS"], "THROTTLE_RATE": None},
    }
    with override_settings(SYNERISE=one_address):
        client = test_client(samples // 2)
    out = {
        "direct": direct(samples),
        "direct_orm_insert": orm,
        "test_client": client,
        "real_server": real_server(samples // 2, suite.database_url),
    }

    if suite.vendor == "postgresql":
        # The same with PAGE_VISITS["ASYNC_COMMIT"]: page-visit commits stop waiting
        # for the disk, which separates the middleware's own cost from the fsync
        # every durable commit pays.
        synerise = {
            **settings.SYNERISE,
            "PAGE_VISITS": {**settings.SYNERISE["PAGE_VISITS"], "ASYNC_COMMIT": True},
        }
        with override_settings(SYNERISE=synerise):
            out["direct_async_commit"] = direct(samples)
        out["real_server_async_commit"] = real_server(
            samples // 2, suite.database_url, {"BENCH_PAGE_VISIT_ASYNC_COMMIT": "1"}
        )
    for method, figures in out.items():
        tracked = figures["tracked"]
        log(
            f"middleware ({method}): tracked +{tracked['added_median_ms']:.3f} ms "
            f"median (p99 +{tracked['added_p99_ms']:.3f})"
            + (
                f", {tracked['ratio_to_bare_create']:.2f} x a bare create "
                f"({tracked['bare_create_median_ms']:.3f} ms)"
                if "ratio_to_bare_create" in tracked
                else ""
            )
            + f"; untracked +{figures['untracked']['added_median_ms']:.4f} ms"
        )
    with connection.schema_editor() as editor:
        editor.delete_model(OneColumn)
    data.truncate()
    return out
