"""Every measurement on one database: ``python -m bench.suite`` (``bench.run`` calls it).

Runs in a Django process configured by :mod:`bench.settings` (database from
``BENCH_DATABASE_URL``); throughput runs happen in separate worker processes
(:mod:`bench.worker`) against a stand-in in yet another process. Prints one
JSON document on stdout; progress goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summarize_ms(seconds: list[float]) -> dict[str, float]:
    """Median, p90, p99 and mean of durations, in milliseconds."""
    return {
        "median_ms": round(statistics.median(seconds) * 1000, 4),
        "p90_ms": round(percentile(seconds, 0.90) * 1000, 4),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 4),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 4),
        "samples": len(seconds),
    }


class Sizes:
    """How big each measurement is, all derived from the backlog size.

    Quick mode: a 100,000-event backlog; full mode (``BENCH_FULL=1``): 1,000,000.
    ``BENCH_EVENTS`` sets any other size (the test suite runs a tiny one).
    """

    def __init__(self, backlog: int) -> None:
        self.backlog = backlog
        #: Requests of 1,000 events per client when measuring the stand-in alone.
        self.stand_in_requests = max(5, min(200, backlog // 2000))
        #: Pending rows of the small and large backlog, and sent/dead rows beside them.
        self.scaling_small = min(10_000, max(backlog // 10, 100))
        self.scaling_large = max(backlog, self.scaling_small * 2)
        self.scaling_done = backlog
        #: Rows per claim in the scaling run (a full batch unless the backlog is tiny).
        self.claim_batch = min(1000, self.scaling_small // 10)
        self.track_calls = max(100, min(10_000, backlog // 30))
        #: The small burst (the large one is the backlog): 10,000 unless the backlog is tiny.
        self.burst_small = min(10_000, max(backlog // 10, 100))
        self.latency_samples = max(100, min(4000, backlog // 50))


def database_lock(database_url: str) -> Any:
    """Hold this benchmark database for the life of the process; wait while another run does.

    Every section empties the outbox table at will, so two runs on one database
    (two checkouts, or the test suite beside a developer's ``make bench``) would
    count each other's rows. PostgreSQL: a session advisory lock on a separate
    connection; SQLite: ``flock`` on a file beside the database.
    """
    if database_url.startswith("sqlite"):
        import fcntl

        handle = open(database_url.split("sqlite:///", 1)[1] + ".lock", "w")  # noqa: SIM115
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle
    import psycopg

    holder = psycopg.connect(database_url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(hashtext('django-synerise bench'))")
    return holder


class Suite:
    def __init__(self, config: dict[str, Any]) -> None:
        import django

        self.config = config
        self.full = bool(config["full"])
        self.sizes = Sizes(int(config.get("events") or (1_000_000 if self.full else 100_000)))
        self.database_url: str = config["database_url"]
        os.environ["BENCH_DATABASE_URL"] = self.database_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
        django.setup()
        from django.core.management import call_command
        from django.db import connection

        self.connection = connection
        self._lock = database_lock(self.database_url)
        call_command("migrate", verbosity=0)
        self.vendor = connection.vendor
        self.results: dict[str, Any] = {"vendor": self.vendor}

    # -- helpers ----------------------------------------------------------------------

    def worker_env(self, synerise_url: str, retain_sent: int = 7) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="bench.settings",
            BENCH_DATABASE_URL=self.database_url,
            BENCH_SYNERISE_URL=synerise_url,
            BENCH_RETAIN_SENT=str(retain_sent),
            PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        )
        return env

    def run_workers(
        self,
        mode: str,
        count: int,
        args: dict[str, Any],
        env: dict[str, str],
        stand_in: Any = None,
    ) -> dict[str, Any]:
        """Start ``count`` workers, release them together, return the combined figures."""
        from .standin import cpu_ticks

        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.worker", mode, json.dumps(args)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )
            for _ in range(count)
        ]
        try:
            for process in processes:
                assert process.stdout is not None
                line = process.stdout.readline().strip()
                if line != "ready":
                    raise RuntimeError(f"{mode} worker failed to start ({line!r})")
            standin_cpu0 = stand_in.cpu() if stand_in else 0.0
            busy0, total0 = cpu_ticks()
            for process in processes:
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            outputs = []
            for process in processes:
                assert process.stdout is not None
                line = process.stdout.readline()
                if process.wait() != 0 or not line:
                    raise RuntimeError(f"{mode} worker exited with {process.returncode}")
                outputs.append(json.loads(line))
            standin_cpu = (stand_in.cpu() - standin_cpu0) if stand_in else 0.0
            busy1, total1 = cpu_ticks()
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        wall = max(o["finished"] for o in outputs) - min(o["started"] for o in outputs)
        sent = sum(o["sent"] for o in outputs)
        workers_cpu = sum(o["cpu"] for o in outputs)
        # PostgreSQL's work for the workers' own connections (SQLite's is in theirs).
        database_cpu = sum(o.get("database_cpu", 0.0) for o in outputs)
        machine_busy = busy1 - busy0
        return {
            "workers": count,
            "events": sent,
            "seconds": round(wall, 3),
            "events_per_s": round(sent / wall),
            # Where the machine's CPU went during the run: the workers, the
            # stand-in, and everything else (the database server, and any other
            # load on the machine, which the figures cannot tell apart).
            "cpu_seconds": {
                "workers": round(workers_cpu, 2),
                "stand_in": round(standin_cpu, 2),
                "database_backends": round(database_cpu, 2),
                "rest_of_machine": round(
                    max(0.0, machine_busy - workers_cpu - standin_cpu - database_cpu), 2
                ),
                "machine_capacity": round((total1 - total0), 2),
            },
            "peak_rss_mb": round(max(o["peak_rss"] for o in outputs) / 2**20, 1),
            "per_worker": outputs,
        }

    def fill(self, pending: int, *, sent: int = 0, dead: int = 0) -> None:
        from . import data

        data.truncate()
        data.load(sent, status="sent", start=10**8)
        data.load(dead, status="dead", start=2 * 10**8)
        data.load(pending, status="pending", start=0)
        self.settle()

    def settle(self) -> None:
        """Statistics fresh, and every run starting from a checkpoint.

        After a checkpoint PostgreSQL logs the whole page on its first change, so
        a run that starts right after one writes more WAL than a run that starts
        later: each run starts after one.
        """
        from django.db import DatabaseError

        from . import data

        if self.vendor != "postgresql":
            data.analyze()
            return
        with self.connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE django_synerise_outboxevent")
            # Needs a superuser (or pg_checkpoint); without, runs differ a little more.
            with contextlib.suppress(DatabaseError):
                cursor.execute("CHECKPOINT")

    def delivery_run(
        self,
        label: str,
        mode: str,
        workers: int,
        backlog: int,
        stand_in: Any,
        *,
        retain_sent: int = 7,
        profile: str | None = None,
    ) -> dict[str, Any]:
        from . import data

        self.fill(backlog)
        before = stand_in.count()
        args: dict[str, Any] = {
            "database_url": self.database_url,
            "synerise_url": stand_in.url,
            "delete": retain_sent == 0,
        }
        if profile:
            args["profile"] = profile
        result = self.run_workers(
            mode, workers, args, self.worker_env(stand_in.url, retain_sent), stand_in
        )
        delivered = stand_in.count() - before
        left = data.counts()
        expected_sent = 0 if retain_sent == 0 else backlog
        if (
            delivered != backlog
            or left.get("pending", 0) != 0
            or left.get("sent", 0) != expected_sent
        ):
            raise RuntimeError(
                f"{label}: stand-in accepted {delivered} of {backlog}; rows left {left}"
            )
        result["delivered_by_stand_in"] = delivered
        log(
            f"{label}: {result['events_per_s']:,} events/s "
            f"({result['events']:,} in {result['seconds']} s, cpu {result['cpu_seconds']}, "
            f"peak RSS {result['peak_rss_mb']} MB)"
        )
        return result

    # -- sections -----------------------------------------------------------------------

    def stand_in_cost(self, stand_in: Any) -> dict[str, Any]:
        """The stand-in alone: a pre-built 1000-event body posted in a loop, 1 and 4 clients."""
        requests_per_client = self.sizes.stand_in_requests
        env = self.worker_env(stand_in.url)
        out: dict[str, Any] = {}
        for clients in (1, 2, 4):
            args = {"synerise_url": stand_in.url, "requests": requests_per_client, "events": 1000}
            result = self.run_workers("rawpost", clients, args, env, stand_in)
            result.pop("per_worker")
            out[f"clients_{clients}"] = result
            log(f"stand-in alone, {clients} client(s): {result['events_per_s']:,} events/s")
        return out

    def throughput(self, stand_in: Any) -> dict[str, Any]:
        """Delivery runs, each ``repeat`` times, interleaved so that each flush run and
        its baseline run back to back: load that comes and goes on a shared machine then
        hits both sides of a ratio alike."""
        backlog = self.sizes.backlog
        out: dict[str, Any] = {"backlog": backlog}
        repeat = int(self.config.get("repeat", 1))
        pairs: list[tuple[str, int, int]] = [("", 1, 7), ("_delete", 1, 0)]
        if self.vendor == "postgresql":
            pairs += [("_2_workers", 2, 7), ("_4_workers", 4, 7)]
        runs: dict[str, list[dict[str, Any]]] = {}
        ratios: dict[str, list[float]] = {}
        for _ in range(repeat):
            for suffix, workers, retain in pairs:
                for mode in ("flush", "baseline"):
                    result = self.delivery_run(
                        mode + suffix, mode, workers, backlog, stand_in, retain_sent=retain
                    )
                    runs.setdefault(mode + suffix, []).append(result)
                flush_rate = runs["flush" + suffix][-1]["events_per_s"]
                baseline_rate = runs["baseline" + suffix][-1]["events_per_s"]
                ratios.setdefault(suffix, []).append(flush_rate / baseline_rate)
        for label, results in runs.items():
            ordered = sorted(results, key=lambda r: r["events_per_s"])
            middle = dict(ordered[len(ordered) // 2])
            middle["samples_events_per_s"] = [r["events_per_s"] for r in results]
            middle["median_events_per_s"] = round(
                statistics.median(r["events_per_s"] for r in results)
            )
            out[label] = middle
        # Each flush run over the baseline run beside it; the median of those.
        out["ratio_to_baseline"] = round(statistics.median(ratios[""]), 3)
        out["ratio_to_baseline_delete"] = round(statistics.median(ratios["_delete"]), 3)
        out["ratio_to_baseline_samples"] = [round(r, 3) for r in ratios[""]]
        if self.vendor == "postgresql":
            one = out["flush"]["median_events_per_s"]
            out["scaling_2_workers"] = round(out["flush_2_workers"]["median_events_per_s"] / one, 2)
            out["scaling_4_workers"] = round(out["flush_4_workers"]["median_events_per_s"] / one, 2)
            base = out["baseline"]["median_events_per_s"]
            out["baseline_scaling_4_workers"] = round(
                out["baseline_4_workers"]["median_events_per_s"] / base, 2
            )
        profile_dir = self.config.get("profile_dir")
        if profile_dir:
            # A separate run: the profiler's overhead stays out of the figures above.
            path = str(Path(profile_dir) / f"flush-{self.vendor}.txt")
            self.delivery_run("flush (profiled)", "flush", 1, backlog, stand_in, profile=path)
            out["profile"] = path
        return out

    def fresh_table(self) -> None:
        """The outbox table dropped and created again: empty, never analyzed, as after install."""
        from django.core.management import call_command

        call_command("migrate", "django_synerise", "zero", verbosity=0)
        call_command("migrate", "django_synerise", verbosity=0)

    def enqueue_burst(self, count: int) -> dict[str, Any]:
        """``track_many()`` of ``count`` custom events, 1,000 per call, each call committed."""
        from django_synerise import events, track_many

        chunk = 1000
        started = time.perf_counter()
        for first in range(0, count, chunk):
            track_many(
                events.CustomEvent(
                    "bench.burst",
                    client={"customId": str(n)},
                    params={"n": n, "page": f"/products/{n % 997}/", "source": "burst"},
                )
                for n in range(first, min(count, first + chunk))
            )
        seconds = time.perf_counter() - started
        return {
            "events": count,
            "seconds": round(seconds, 2),
            "events_per_s": round(count / seconds),
        }

    def burst(self, stand_in: Any) -> dict[str, Any]:
        """A burst enqueued with ``track_many()`` into a fresh table, flushed at once.

        No ``ANALYZE``, no ``VACUUM``, no checkpoint between the enqueue and the
        flush: the table has never been analyzed when the worker starts, as in a
        project that just installed the app. Each size runs the real command with
        ``RETAIN_SENT=7`` (sent rows kept, the opt-in), then with ``RETAIN_SENT=0``
        (the default), then the raw-SQL loop (deleting), each on a burst of its own; the ratio
        divides the flush by the raw loop of the same size and run.
        """
        from . import data

        sizes = sorted({self.sizes.burst_small, self.sizes.backlog})
        out: dict[str, Any] = {}
        for size in sizes:
            figures: dict[str, Any] = {"backlog": size}
            for label, mode, retain in (
                ("flush", "flush", 7),
                ("flush_delete", "flush", 0),
                ("baseline", "baseline", 0),
            ):
                self.fresh_table()
                figures.setdefault("enqueue", self.enqueue_burst(size))
                before = stand_in.count()
                args = {
                    "database_url": self.database_url,
                    "synerise_url": stand_in.url,
                    "delete": retain == 0,
                }
                result = self.run_workers(
                    mode, 1, args, self.worker_env(stand_in.url, retain), stand_in
                )
                delivered = stand_in.count() - before
                left = data.counts()
                kept = 0 if retain == 0 else size
                if delivered != size or left.get("pending", 0) or left.get("sent", 0) != kept:
                    raise RuntimeError(
                        f"burst {label}: stand-in accepted {delivered} of {size}; rows left {left}"
                    )
                result["delivered_by_stand_in"] = delivered
                result["claims"] = result["per_worker"][0].get("claims")
                figures[label] = result
                log(
                    f"burst of {size:,}, {label}: {result['events_per_s']:,} events/s "
                    f"({result['seconds']} s, cpu {result['cpu_seconds']}, "
                    f"peak RSS {result['peak_rss_mb']} MB, claims {result['claims']})"
                )
            base = figures["baseline"]["events_per_s"]
            figures["ratio_to_baseline"] = round(figures["flush"]["events_per_s"] / base, 3)
            figures["ratio_to_baseline_delete"] = round(
                figures["flush_delete"]["events_per_s"] / base, 3
            )
            out[f"events_{size}"] = figures
        small, large = (out[f"events_{n}"] for n in (sizes[0], sizes[-1]))
        out["sizes"] = sizes
        out["claim_ratio"] = round(
            large["flush"]["claims"]["mean_ms"] / small["flush"]["claims"]["mean_ms"], 3
        )
        self.fresh_table()
        return out

    def backlog_scaling(self) -> dict[str, Any]:
        """Claim time with a small and a large backlog, beside many sent/dead rows."""
        from django.test.utils import CaptureQueriesContext

        from django_synerise import outbox

        from . import data

        small = self.sizes.scaling_small
        large = self.sizes.scaling_large
        done = self.sizes.scaling_done
        batch = self.sizes.claim_batch

        def measure(samples: int = 50) -> dict[str, Any]:
            owner = outbox.make_owner()
            claims: list[float] = []
            releases: list[float] = []
            for index in range(samples + 3):
                started = time.perf_counter()
                rows = outbox.claim(batch, owner=owner)
                claimed = time.perf_counter()
                outbox.release([row.id for row in rows], owner=owner)
                released = time.perf_counter()
                if len(rows) != batch:
                    raise RuntimeError(f"claimed {len(rows)} rows, expected {batch}")
                if index >= 3:  # the first claims warm caches
                    claims.append(claimed - started)
                    releases.append(released - claimed)
            marks: list[float] = []
            for _ in range(5):
                rows = outbox.claim(batch, owner=owner)
                started = time.perf_counter()
                outbox.mark_sent([row.id for row in rows], owner=owner)
                marks.append(time.perf_counter() - started)
            return {
                "claim": summarize_ms(claims),
                "release": summarize_ms(releases),
                "mark_sent": summarize_ms(marks),
            }

        log(f"backlog scaling: {small:,} pending + {done:,} sent/dead rows")
        self.fill(small, sent=done // 2, dead=done - done // 2)
        plan = self.claim_plan(CaptureQueriesContext)
        at_small = measure()
        log(f"backlog scaling: {large:,} pending + {done:,} sent/dead rows")
        # Top the backlog up to `large` pending rows (5 batches were marked sent above).
        data.load(large - small + 5 * batch, status="pending", start=3 * 10**8)
        self.settle()
        at_large = measure()
        ratio = at_large["claim"]["median_ms"] / at_small["claim"]["median_ms"]
        log(
            f"claim of {batch}: {at_small['claim']['median_ms']:.2f} ms at {small:,}, "
            f"{at_large['claim']['median_ms']:.2f} ms at {large:,} (ratio {ratio:.2f})"
        )
        return {
            "claim_batch": batch,
            "small_backlog": small,
            "large_backlog": large,
            "sent_dead_rows": done,
            "at_small": at_small,
            "at_large": at_large,
            "claim_ratio": round(ratio, 3),
            "claim_plan": plan,
        }

    def claim_plan(self, capture: Callable[..., Any]) -> str:
        """The database's plan for the claim statement (first line per node)."""
        from django_synerise import outbox

        with capture(self.connection) as queries:
            rows = outbox.claim(1, owner="plan")
        outbox.release([row.id for row in rows], owner="plan")
        statement = next(
            q["sql"] for q in queries.captured_queries if "next_attempt_at" in q["sql"]
        )
        prefix = "EXPLAIN " if self.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
        with self.connection.cursor() as cursor:
            cursor.execute(prefix + statement)
            lines = [" ".join(str(c) for c in row) for row in cursor.fetchall()]
        return "\n".join(lines)

    def enqueue_cost(self) -> dict[str, Any]:
        """``track()`` per call (autocommit) and ``track_many(1000)`` per event."""
        from django_synerise import events, track, track_many

        from . import data

        data.truncate()
        calls = self.sizes.track_calls
        single: list[float] = []
        for n in range(calls + 100):
            started = time.perf_counter()
            track("bench.track", client={"customId": str(n)}, params={"n": n, "page": "/p/"})
            if n >= 100:
                single.append(time.perf_counter() - started)
        batches: list[float] = []
        for round_ in range(12):
            batch = [
                events.CustomEvent(
                    "bench.track", client={"customId": str(n)}, params={"n": n, "page": "/p/"}
                )
                for n in range(1000)
            ]
            started = time.perf_counter()
            track_many(batch)
            if round_ >= 2:
                batches.append(time.perf_counter() - started)
        build: list[float] = []
        for n in range(2000):
            started = time.perf_counter()
            events.CustomEvent("bench.track", client={"customId": str(n)}, params={"n": n})
            build.append(time.perf_counter() - started)
        per_event_many = statistics.median(batches) / 1000
        result = {
            "track": summarize_ms(single),
            "track_many_1000": summarize_ms(batches),
            "track_many_per_event_ms": round(per_event_many * 1000, 4),
            "event_construction": summarize_ms(build),
        }
        log(
            f"track(): median {result['track']['median_ms']:.3f} ms; track_many(1000): "
            f"{result['track_many_per_event_ms'] * 1000:.1f} µs per event (+ construction "
            f"{result['event_construction']['median_ms'] * 1000:.1f} µs)"
        )
        return result

    def run(self) -> dict[str, Any]:
        from .standin import StandIn

        sections = self.config.get("sections") or [
            "stand_in",
            "burst",
            "throughput",
            "scaling",
            "enqueue",
            "middleware",
        ]
        stand_in = StandIn()
        try:
            if "stand_in" in sections:
                self.results["stand_in"] = self.stand_in_cost(stand_in)
            if "burst" in sections:
                self.results["burst"] = self.burst(stand_in)
            if "throughput" in sections:
                self.results["throughput"] = self.throughput(stand_in)
        finally:
            stand_in.stop()
        if "scaling" in sections:
            self.results["scaling"] = self.backlog_scaling()
        if "enqueue" in sections:
            self.results["enqueue"] = self.enqueue_cost()
        if "middleware" in sections:
            from .latency import middleware_latency

            self.results["middleware"] = middleware_latency(self)
        from . import data

        data.truncate()
        if self.vendor == "sqlite":
            # Give the emptied pages back: the file would otherwise keep its peak size.
            with self.connection.cursor() as cursor:
                cursor.execute("VACUUM")
        return self.results


def main() -> None:
    config = json.loads(sys.argv[1])
    print(json.dumps(Suite(config).run()), flush=True)


if __name__ == "__main__":
    main()
