"""metrics.py: the Prometheus metrics in prometheus-client's default registry, fed by signals."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.test import RequestFactory, override_settings
from django.utils import timezone
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import REGISTRY

import django_synerise
from django_synerise import metrics, signals
from django_synerise.dispatch import flush
from django_synerise.events import AIEvent, CustomEvent, Transaction
from django_synerise.models import OutboxEvent
from tests.docs_samples import run_sample, sample
from tests.workers import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

pytestmark = pytest.mark.django_db
UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"

NAMES = {
    "synerise_records_enqueued": "counter",
    "synerise_records_sent": "counter",
    "synerise_records_retried": "counter",
    "synerise_records_dead": "counter",
    "synerise_records_dropped": "counter",
    "synerise_outbox_pending": "gauge",
    "synerise_outbox_oldest_pending_age_seconds": "gauge",
    "synerise_flush_request_duration_seconds": "histogram",
}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Sample values now, to compare with later (the registry lives for the whole run)."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self.before = {
            (name, tuple(sorted(labels.items()))): value(name, **labels) for name, labels in samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return value(name, **labels) - self.before[key]


def mixed() -> list[Any]:
    return [
        CustomEvent("dog.bark", client={"uuid": UUID}),
        CustomEvent("dog.bark", client={"uuid": UUID}),
        Transaction(client={"uuid": UUID}, order_id="o-1", revenue=10, currency="PLN"),
        AIEvent("recommendation.view", correlation_id="c", client_uuid=UUID, items=["1"]),
    ]


def test_the_app_registered_every_metric_in_the_default_registry():
    registered = {
        metric.name: metric.type
        for metric in REGISTRY.collect()
        if metric.name.startswith("synerise_")
    }
    assert registered == NAMES
    assert metrics.install() is True  # again: harmless, nothing registered twice


def test_a_flush_against_the_stand_in_is_counted_by_kind(synerise_stand_in):
    kinds = ("event", "transaction", "ai")
    delta = Delta(
        *[
            (f"synerise_records_{what}_total", {"kind": kind})
            for kind in kinds
            for what in ("enqueued", "sent")
        ],
        (
            "synerise_flush_request_duration_seconds_count",
            {"endpoint": "event", "outcome": "sent"},
        ),
        ("synerise_flush_request_duration_seconds_count", {"endpoint": "ai", "outcome": "sent"}),
    )
    django_synerise.track_many(mixed())
    OutboxEvent.objects.update(created_at=timezone.now() - timezone.timedelta(seconds=90))
    metrics.update_outbox_gauges()
    assert value("synerise_outbox_pending") == 4
    assert value("synerise_outbox_oldest_pending_age_seconds") >= 90

    result = flush()

    assert result.sent == 4 and synerise_stand_in.count == 4
    assert [delta("synerise_records_enqueued_total", kind=k) for k in kinds] == [2, 1, 1]
    assert [delta("synerise_records_sent_total", kind=k) for k in kinds] == [2, 1, 1]
    for endpoint in ("event", "ai"):
        count = "synerise_flush_request_duration_seconds_count"
        assert delta(count, endpoint=endpoint, outcome="sent") == 1
    assert (
        value("synerise_flush_request_duration_seconds_sum", endpoint="event", outcome="sent") > 0
    )
    # The pass ends with the gauges refreshed.
    assert value("synerise_outbox_pending") == 0
    assert value("synerise_outbox_oldest_pending_age_seconds") == 0


def test_retried_and_dead_records_and_failed_request_times(synerise_stand_in):
    delta = Delta(
        ("synerise_records_retried_total", {"kind": "event"}),
        ("synerise_records_dead_total", {"kind": "event"}),
        (
            "synerise_flush_request_duration_seconds_count",
            {"endpoint": "event", "outcome": "retry"},
        ),
    )
    synerise_stand_in.inject("500")
    with override_settings(
        SYNERISE={**settings.SYNERISE, **_stand_in(synerise_stand_in), "MAX_ATTEMPTS": 2}
    ):
        django_synerise.track_many(
            [CustomEvent("dog.bark", client={"uuid": UUID}) for _ in range(3)]
        )
        flush()
        assert delta("synerise_records_retried_total", kind="event") == 3
        assert value("synerise_outbox_pending") == 3
        OutboxEvent.objects.update(next_attempt_at=timezone.now())
        flush()
    assert delta("synerise_records_dead_total", kind="event") == 3
    assert (
        delta("synerise_flush_request_duration_seconds_count", endpoint="event", outcome="retry")
        == 2
    )
    assert value("synerise_outbox_pending") == 0


def _stand_in(server: Any) -> dict[str, Any]:
    return {
        "API_BASE_URL": server.url,
        "API_KEY": server.api_key,
        "TRACKER_KEY": server.tracker_key,
    }


def drop_transactions(record: Any, request: Any) -> Any:
    return None if record.kind == "transaction" else record


def test_records_dropped_by_before_write_are_counted_by_kind_and_reason():
    delta = Delta(
        ("synerise_records_dropped_total", {"kind": "transaction", "reason": "before_write"}),
        ("synerise_records_enqueued_total", {"kind": "transaction"}),
    )
    with override_settings(SYNERISE={**settings.SYNERISE, "BEFORE_WRITE": drop_transactions}):
        django_synerise.track_many(mixed())
    assert delta("synerise_records_dropped_total", kind="transaction", reason="before_write") == 1
    assert delta("synerise_records_enqueued_total", kind="transaction") == 0


def test_the_same_signals_serve_other_metric_systems(synerise_stand_in):
    # What an OpenTelemetry user connects: every signal carries the kind and the numbers.
    seen: list[tuple[str, dict[str, Any]]] = []

    def receiver(signal_name: str):
        def receive(sender: Any, **kwargs: Any) -> None:
            seen.append((signal_name, kwargs))

        return receive

    receivers = {
        name: receiver(name)
        for name in ("events_enqueued", "events_sent", "api_request_finished", "flush_finished")
    }
    for name, function in receivers.items():
        getattr(signals, name).connect(function)
    try:
        django_synerise.track("dog.bark", client={"uuid": UUID})
        flush()
    finally:
        for name, function in receivers.items():
            getattr(signals, name).disconnect(function)
    names = [name for name, _ in seen]
    assert names == ["events_enqueued", "api_request_finished", "events_sent", "flush_finished"]
    request = seen[1][1]
    assert request["endpoint"] == "event" and request["kind"] == "event"
    assert request["count"] == 1 and request["outcome"] == "sent" and request["duration"] > 0
    assert seen[2][1]["kind"] == "event" and seen[3][1]["result"].sent == 1


def test_without_prometheus_client_nothing_is_imported():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["prometheus_client"] = None  # as if the extra were not installed
        import django
        django.setup()
        from django_synerise import signals, tracking  # noqa: F401
        from django_synerise.models import OutboxEvent
        signals.send_robust(signals.events_dropped, OutboxEvent, events=[], reason="test")
        assert "django_synerise.metrics" not in sys.modules, "metrics imported"
        assert sys.modules["prometheus_client"] is None
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONPATH": str(ROOT),
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# -- the docs' samples ----------------------------------------------------------------


def test_docs_prometheus_install_names_the_extra():
    assert sample("prometheus-install").strip() == 'pip install "./django-synerise[prometheus]"'
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(req.startswith("prometheus-client") for req in extras["prometheus"])


def test_docs_metrics_view_serves_every_metric_with_fresh_gauges():
    view = run_sample("metrics-view")["metrics"]
    django_synerise.track_many(mixed())
    response = view(RequestFactory().get("/metrics"))
    text = response.content.decode()
    assert response["Content-Type"].startswith("text/plain")
    for name in NAMES:
        assert f"# TYPE {name}" in text
    assert "synerise_outbox_pending 4.0" in text


def test_docs_opentelemetry_receivers_record_a_flush(synerise_stand_in):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    # The sample asks the global API for its meter; hand it this test's provider.
    with mock.patch("opentelemetry.metrics.get_meter", provider.get_meter):
        ns = run_sample("opentelemetry")
    try:
        django_synerise.track_many(mixed())
        flush()
    finally:
        signals.events_sent.disconnect(ns["count_sent"])
        signals.events_dead.disconnect(ns["count_dead"])
        signals.api_request_finished.disconnect(ns["time_request"])
    points: dict[str, Any] = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    sent = {dict(p.attributes)["kind"]: p.value for p in points["synerise.records.sent"]}
    assert sent == {"event": 2, "transaction": 1, "ai": 1}
    durations = points["synerise.flush.request.duration"]
    assert sum(p.count for p in durations) == 3  # events, transactions, ai


def test_page_visits_dropped_over_max_pending_are_counted(monkeypatch):
    from django_synerise import outbox
    from django_synerise.events import page_visit

    delta = Delta(("synerise_records_dropped_total", {"kind": "event", "reason": "max_pending"}))
    monkeypatch.setattr(
        outbox, "backlog_full", lambda: True
    )  # as if the outbox were over MAX_PENDING
    visit = page_visit(client={"uuid": UUID}, url="https://shop.example/")
    assert outbox.enqueue_droppable(visit) is None
    assert delta("synerise_records_dropped_total", kind="event", reason="max_pending") == 1
