"""Prometheus metrics: ``pip install django-synerise[prometheus]``.

When ``prometheus_client`` is importable, the app registers these metrics in
prometheus-client's default registry (``prometheus_client.REGISTRY``) as
Django starts; without it, neither this module nor ``prometheus_client`` is
imported.

====================================================  =========  ===========================
metric                                                type       labels
====================================================  =========  ===========================
``synerise_records_enqueued_total``                   counter    ``kind``
``synerise_records_sent_total``                       counter    ``kind``
``synerise_records_retried_total``                    counter    ``kind``
``synerise_records_dead_total``                       counter    ``kind``
``synerise_records_dropped_total``                    counter    ``kind``, ``reason``
``synerise_outbox_pending``                           gauge
``synerise_outbox_oldest_pending_age_seconds``        gauge
``synerise_flush_request_duration_seconds``           histogram  ``endpoint``, ``outcome``
====================================================  =========  ===========================

``kind`` is the record's kind (``event``, ``transaction``, ``ai``, ...;
``unknown`` for rows marked dead in the admin, which may mix kinds).
``reason`` is the one :data:`~django_synerise.signals.events_dropped` gives.
The counters count where the work happens: enqueued and dropped records in the
processes that produce them (web workers), sent, retried and dead ones and the
request times in the flushing process. The gauges are refreshed at the end of
every flush pass (one indexed query) and by :func:`update_outbox_gauges`.

Everything here is built on the public signals of
:mod:`django_synerise.signals`; OpenTelemetry or StatsD users connect their
own receivers to the same signals.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db.models import Count, Min
from django.utils import timezone

from . import signals

__all__ = ["install", "update_outbox_gauges"]

# Upper bounds of the request-time histogram, in seconds: a batch request to
# Synerise takes tens to hundreds of milliseconds; the read timeout is 10 s.
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_lock = threading.Lock()
_metrics: _Metrics | None = None


class _Metrics:
    """The metric objects, created once per process in the default registry."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.enqueued = Counter(
            "synerise_records_enqueued", "Records written to the Synerise outbox.", ["kind"]
        )
        self.sent = Counter("synerise_records_sent", "Records Synerise accepted.", ["kind"])
        self.retried = Counter(
            "synerise_records_retried",
            "Records whose request failed and that are due again after a backoff.",
            ["kind"],
        )
        self.dead = Counter(
            "synerise_records_dead",
            "Records given up on (rejected by Synerise or out of attempts).",
            ["kind"],
        )
        self.dropped = Counter(
            "synerise_records_dropped",
            "Records not written although tracking is enabled (BEFORE_WRITE, MAX_PENDING).",
            ["kind", "reason"],
        )
        # "mostrecent": in prometheus-client's multiprocess mode the last
        # process to measure wins, instead of a sum over worker processes.
        self.pending = Gauge(
            "synerise_outbox_pending",
            "Outbox rows waiting for delivery, as of the last flush pass.",
            multiprocess_mode="mostrecent",
        )
        self.oldest_age = Gauge(
            "synerise_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox row (0 when none), as of the last flush pass.",
            multiprocess_mode="mostrecent",
        )
        self.request_time = Histogram(
            "synerise_flush_request_duration_seconds",
            "Time of one request to Synerise during a flush pass.",
            ["endpoint", "outcome"],
            buckets=REQUEST_BUCKETS,
        )


def _kind(value: Any) -> str:
    return str(value) if value else "unknown"


def _on_enqueued(sender: Any, events: list[Any], **kwargs: Any) -> None:
    if _metrics is not None:
        for row in events:
            _metrics.enqueued.labels(_kind(row.kind)).inc()


def _on_dropped(sender: Any, events: list[Any], reason: str, **kwargs: Any) -> None:
    if _metrics is not None:
        for record in events:
            _metrics.dropped.labels(_kind(record.kind), reason).inc()


def _on_sent(sender: Any, ids: list[int], kind: str | None = None, **kwargs: Any) -> None:
    if _metrics is not None:
        _metrics.sent.labels(_kind(kind)).inc(len(ids))


def _on_retried(sender: Any, ids: list[int], kind: str | None = None, **kwargs: Any) -> None:
    if _metrics is not None:
        _metrics.retried.labels(_kind(kind)).inc(len(ids))


def _on_dead(sender: Any, ids: list[int], kind: str | None = None, **kwargs: Any) -> None:
    if _metrics is not None:
        _metrics.dead.labels(_kind(kind)).inc(len(ids))


def _on_request(sender: Any, endpoint: str, duration: float, outcome: str, **kwargs: Any) -> None:
    if _metrics is not None:
        _metrics.request_time.labels(endpoint, outcome).observe(duration)


def _on_flush_finished(sender: Any, **kwargs: Any) -> None:
    update_outbox_gauges()


def update_outbox_gauges() -> None:
    """Read the pending count and the oldest pending row's age into the gauges.

    One aggregate query over the pending rows (the status index). Runs after
    every flush pass; call it yourself where the gauges must be fresher, e.g.
    in the view that serves ``/metrics``. Does nothing before :func:`install`.
    """
    if _metrics is None:
        return
    from .models import OutboxEvent
    from .outbox import db_alias

    now = timezone.now()
    pending = (
        OutboxEvent.objects.using(db_alias())
        .filter(status=OutboxEvent.Status.PENDING)
        .aggregate(n=Count("id"), oldest=Min("created_at"))
    )
    oldest = pending["oldest"]
    _metrics.pending.set(int(pending["n"]))
    _metrics.oldest_age.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)


_RECEIVERS = (
    (signals.events_enqueued, _on_enqueued),
    (signals.events_dropped, _on_dropped),
    (signals.events_sent, _on_sent),
    (signals.events_retried, _on_retried),
    (signals.events_dead, _on_dead),
    (signals.api_request_finished, _on_request),
    (signals.flush_finished, _on_flush_finished),
)


def install() -> bool:
    """Register the metrics in prometheus-client's default registry; once per process.

    The app calls it as Django starts when ``prometheus_client`` is
    importable. Returns ``False`` (and does nothing) when it is not, ``True``
    otherwise; calling it again is harmless.
    """
    global _metrics
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    with _lock:
        if _metrics is None:
            _metrics = _Metrics()
            for signal, receiver in _RECEIVERS:
                signal.connect(
                    receiver, dispatch_uid=f"django_synerise.metrics.{receiver.__name__}"
                )
    return True
