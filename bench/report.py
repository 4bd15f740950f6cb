"""The Markdown table of a results document: ``python -m bench.report [results.json]``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Getter = Callable[[dict[str, Any]], Any]

#: Shown for a figure the run did not measure.
MISSING = "n/a"


def _get(path: str) -> Getter:
    def getter(results: dict[str, Any]) -> Any:
        value: Any = results
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    return getter


def _rate(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) else MISSING


def _ms(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return MISSING
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def _ratio(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else MISSING


def _mb(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, (int, float)) else MISSING


def _rss_before(results: dict[str, Any]) -> Any:
    workers = _get("throughput.flush.per_worker")(results)
    if not workers:
        return None
    return workers[0]["rss_before"] / 2**20


def _cpu_per_thousand(label: str) -> Getter:
    """Worker / database / stand-in CPU ms per 1,000 events of a delivery run."""

    def getter(results: dict[str, Any]) -> Any:
        run = _get(f"throughput.{label}")(results)
        if not run:
            return None
        per = 1000 / run["events"] * 1000
        cpu = run["cpu_seconds"]
        return (
            cpu["workers"] * per,
            cpu.get("database_backends", 0.0) * per,
            cpu["stand_in"] * per,
        )

    return getter


def _burst(size: str, path: str) -> Getter:
    """A figure of the burst of ``size`` (``"small"`` or ``"large"``)."""

    def getter(results: dict[str, Any]) -> Any:
        sizes = _get("burst.sizes")(results)
        if not sizes:
            return None
        return _get(f"burst.events_{sizes[0 if size == 'small' else -1]}.{path}")(results)

    return getter


def _burst_cpu(label: str) -> Getter:
    """Worker / database / stand-in CPU ms per 1,000 events of the large burst's run."""

    def getter(results: dict[str, Any]) -> Any:
        run = _burst("large", label)(results)
        if not run:
            return None
        per = 1000 / run["events"] * 1000
        cpu = run["cpu_seconds"]
        return (
            cpu["workers"] * per,
            cpu.get("database_backends", 0.0) * per,
            cpu["stand_in"] * per,
        )

    return getter


def _cpu(value: Any) -> str:
    if not value:
        return MISSING
    return " / ".join(f"{v:.1f}" for v in value)


def _us(value: Any) -> str:
    return f"{value * 1000:.1f}" if isinstance(value, (int, float)) else MISSING


def _count(value: Any) -> str:
    if not isinstance(value, int):
        return "?"
    if value >= 1_000_000 and value % 1_000_000 == 0:
        return f"{value // 1_000_000}M"
    if value >= 1000 and value % 1000 == 0:
        return f"{value // 1000}k"
    return f"{value:,}"


def rows(
    backlog: str, large: str, small: str, batch: str, bursts: tuple[str, str]
) -> list[tuple[str, Getter, Callable[[Any], str], str]]:
    t = "throughput."
    mw = "middleware."
    b_small, b_large = bursts
    return [
        (
            f"Burst of {b_small}, flush at once, 1 worker (events/s)",
            _burst("small", "flush.events_per_s"),
            _rate,
            "",
        ),
        (
            f"Burst of {b_small}, raw-SQL loop (events/s)",
            _burst("small", "baseline.events_per_s"),
            _rate,
            "",
        ),
        (f"Burst of {b_small}: flush / raw loop", _burst("small", "ratio_to_baseline"), _ratio, ""),
        (
            f"Burst of {b_large}, flush at once, 1 worker (events/s)",
            _burst("large", "flush.events_per_s"),
            _rate,
            "",
        ),
        (
            f"Burst of {b_large}, raw-SQL loop (events/s)",
            _burst("large", "baseline.events_per_s"),
            _rate,
            "",
        ),
        (
            f"Burst of {b_large}: flush / raw loop",
            _burst("large", "ratio_to_baseline"),
            _ratio,
            "≥ 0.8",
        ),
        (
            f"Burst of {b_large}, RETAIN_SENT=0: flush / raw loop",
            _burst("large", "ratio_to_baseline_delete"),
            _ratio,
            "",
        ),
        (
            f"Claim of 1,000 rows in the burst of {b_small} (mean ms)",
            _burst("small", "flush.claims.mean_ms"),
            _ms,
            "",
        ),
        (
            f"Claim of 1,000 rows in the burst of {b_large} (mean ms)",
            _burst("large", "flush.claims.mean_ms"),
            _ms,
            "",
        ),
        (f"Claim time, burst {b_large} / {b_small}", _get("burst.claim_ratio"), _ratio, "≤ 1.2"),
        (
            f"CPU ms per 1,000 events, burst of {b_large}, flush: worker / database / stand-in",
            _burst_cpu("flush"),
            _cpu,
            "",
        ),
        (
            f"CPU ms per 1,000 events, burst of {b_large}, raw loop: worker / database / stand-in",
            _burst_cpu("baseline"),
            _cpu,
            "",
        ),
        (
            f"Flush process peak RSS, burst of {b_large} (MB)",
            _burst("large", "flush.peak_rss_mb"),
            _mb,
            "≤ 100",
        ),
        ("Stand-in alone, 1 client (events/s)", _get("stand_in.clients_1.events_per_s"), _rate, ""),
        (
            "Stand-in alone, 4 clients (events/s)",
            _get("stand_in.clients_4.events_per_s"),
            _rate,
            "",
        ),
        (
            f"Flush, 1 worker, {backlog} backlog (events/s)",
            _get(t + "flush.median_events_per_s"),
            _rate,
            "",
        ),
        (
            "Raw-SQL baseline, 1 worker (events/s)",
            _get(t + "baseline.median_events_per_s"),
            _rate,
            "",
        ),
        ("Project / baseline", _get(t + "ratio_to_baseline"), _ratio, ""),
        (
            "Flush, 1 worker, RETAIN_SENT=0 (events/s)",
            _get(t + "flush_delete.median_events_per_s"),
            _rate,
            "",
        ),
        (
            "Raw-SQL baseline, deleting (events/s)",
            _get(t + "baseline_delete.median_events_per_s"),
            _rate,
            "",
        ),
        ("Project / baseline, RETAIN_SENT=0", _get(t + "ratio_to_baseline_delete"), _ratio, ""),
        (
            "CPU ms per 1,000 events, flush: worker / database / stand-in",
            _cpu_per_thousand("flush"),
            _cpu,
            "",
        ),
        (
            "CPU ms per 1,000 events, baseline: worker / database / stand-in",
            _cpu_per_thousand("baseline"),
            _cpu,
            "",
        ),
        (
            "Flush, 2 workers (events/s)",
            _get(t + "flush_2_workers.median_events_per_s"),
            _rate,
            "",
        ),
        (
            "Flush, 4 workers (events/s)",
            _get(t + "flush_4_workers.median_events_per_s"),
            _rate,
            "",
        ),
        ("4 workers / 1 worker", _get(t + "scaling_4_workers"), _ratio, ""),
        (
            "Raw-SQL baseline, 4 workers (events/s)",
            _get(t + "baseline_4_workers.median_events_per_s"),
            _rate,
            "",
        ),
        (
            f"Claim {batch} rows, {small} backlog (median ms)",
            _get("scaling.at_small.claim.median_ms"),
            _ms,
            "",
        ),
        (
            f"Claim {batch} rows, {large} backlog (median ms)",
            _get("scaling.at_large.claim.median_ms"),
            _ms,
            "",
        ),
        (f"Claim time {large} / {small}", _get("scaling.claim_ratio"), _ratio, ""),
        (
            f"Mark {batch} rows sent, {large} backlog (median ms)",
            _get("scaling.at_large.mark_sent.median_ms"),
            _ms,
            "",
        ),
        ("`track()` (median ms, autocommit)", _get("enqueue.track.median_ms"), _ms, ""),
        ("`track()` (p99 ms)", _get("enqueue.track.p99_ms"), _ms, ""),
        (
            "`track_many(1000)` per event (µs)",
            _get("enqueue.track_many_per_event_ms"),
            _us,
            "",
        ),
        (
            "Middleware, tracked page / one bare `Model.objects.create()`, direct call",
            _get(mw + "direct.tracked.ratio_to_bare_create"),
            _ratio,
            "≤ 1.5",
        ),
        (
            "One bare `Model.objects.create()` (median ms)",
            _get(mw + "direct.tracked.bare_create_median_ms"),
            _ms,
            "",
        ),
        (
            "Middleware, tracked page, ORM insert instead of the pre-built one: added median (ms)",
            _get(mw + "direct_orm_insert.tracked.added_median_ms"),
            _ms,
            "",
        ),
        (
            "Middleware, tracked page: added median (ms), real server",
            _get(mw + "real_server.tracked.added_median_ms"),
            _ms,
            "",
        ),
        (
            "Middleware, tracked page: added p99 (ms), real server",
            _get(mw + "real_server.tracked.added_p99_ms"),
            _ms,
            "",
        ),
        (
            "Middleware, tracked page: added median (ms), test client",
            _get(mw + "test_client.tracked.added_median_ms"),
            _ms,
            "",
        ),
        (
            "Middleware, tracked page: added median (ms), direct call",
            _get(mw + "direct.tracked.added_median_ms"),
            _ms,
            "",
        ),
        (
            "Middleware, tracked page, `ASYNC_COMMIT`: added median (ms), real server",
            _get(mw + "real_server_async_commit.tracked.added_median_ms"),
            _ms,
            "",
        ),
        (
            "Middleware, tracked page, `ASYNC_COMMIT`: added median (ms), direct call",
            _get(mw + "direct_async_commit.tracked.added_median_ms"),
            _ms,
            "",
        ),
        (
            "Middleware, untracked request: added median (ms), direct call",
            _get(mw + "direct.untracked.added_median_ms"),
            lambda v: f"{v:.4f}" if isinstance(v, (int, float)) else MISSING,
            "≤ 0.02",
        ),
        (
            "Middleware, untracked request: added median (ms), test client",
            _get(mw + "test_client.untracked.added_median_ms"),
            _ms,
            "",
        ),
        ("Flush process RSS before the pass (MB)", _rss_before, _mb, ""),
        (
            f"Flush process peak RSS, {backlog} backlog (MB)",
            _get(t + "flush.peak_rss_mb"),
            _mb,
            "",
        ),
    ]


def table(document: dict[str, Any]) -> str:
    results = document["results"]
    names = [name for name in ("sqlite", "postgresql") if name in results]
    first = results[names[0]]
    backlog = _count(_get("throughput.backlog")(first))
    large = _count(_get("scaling.large_backlog")(first))
    small = _count(_get("scaling.small_backlog")(first))
    batch = _count(_get("scaling.claim_batch")(first))
    burst_sizes = _get("burst.sizes")(first) or [None, None]
    bursts = (_count(burst_sizes[0]), _count(burst_sizes[-1]))
    lines = [
        "| Measurement | "
        + " | ".join({"sqlite": "SQLite", "postgresql": "PostgreSQL"}[n] for n in names)
        + " | Target |",
        "|---|" + "---:|" * len(names) + "---|",
    ]
    for label, getter, fmt, target in rows(backlog, large, small, batch, bursts):
        cells = [fmt(getter(results[name])) for name in names]
        if all(cell == MISSING for cell in cells):
            continue
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    machine = document.get("machine", {})
    storage = document.get("storage", {})
    versions = document.get("versions", {})
    lines.append("")
    lines.append(
        f"{machine.get('cores')} x {machine.get('cpu')}, {machine.get('memory_gb')} GB, "
        f"Python {machine.get('python')}, Django {versions.get('Django')}, "
        f"PostgreSQL {str(versions.get('postgresql', 'n/a')).split(' ', 1)[0]}, "
        f"SQLite {versions.get('sqlite')}; load average at start "
        f"{_ratio((machine.get('loadavg_start') or [None])[0])}; fsync "
        f"{storage.get('fsync_median_ms')} ms, PostgreSQL INSERT + commit "
        f"{storage.get('postgres_insert_commit_median_ms', 'n/a')} ms (medians)."
    )
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("results.json")
    print(table(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
