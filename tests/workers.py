"""Real flush workers in subprocesses, and the bookkeeping to judge what they delivered.

Run as a module this file *is* one worker::

    python -m tests.workers --loop --interval 0.2

It sets Django up, prints ``ready <pid>`` (so a test knows the worker is
polling before it enqueues) and runs the real ``synerise_flush`` command with
the given arguments, exit codes and signal handling included. The test passes
the database and the stand-in through the environment (:func:`worker_env`).

Imported, it gives the tests :class:`Worker`, event generators whose events
carry a logical id, and :func:`delivery_report`, which compares what the
stand-in accepted with what the outbox holds.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"


# -- the environment of a worker --------------------------------------------------


def database_url(settings_dict: Mapping[str, Any], *, application_name: str | None = None) -> str:
    """A ``DATABASE_URL`` for the database described by ``settings_dict`` (the test database).

    ``application_name`` (PostgreSQL) labels the worker's connection, so a test
    can find it in ``pg_stat_activity`` and terminate it.
    """
    engine = settings_dict["ENGINE"]
    name = settings_dict["NAME"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{name}"
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or ""
    where = f"{host}:{port}" if port else host
    if engine.endswith("postgresql"):
        url = f"postgres://{auth}{where}/{name}"
        if application_name:
            url += f"?application_name={quote(application_name)}"
        return url
    if engine.endswith("mysql"):
        return f"mysql://{auth}{where}/{name}"
    raise ValueError(f"no worker URL for database engine {engine}")


def worker_env(
    settings_dict: Mapping[str, Any],
    synerise: Mapping[str, Any],
    *,
    application_name: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a worker process: test database, ``SYNERISE`` overrides, unbuffered."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url(settings_dict, application_name=application_name),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "SYNERISE_TEST_OVERRIDES": json.dumps(dict(synerise)),
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


# -- a worker process ------------------------------------------------------------

_SUMMARY = re.compile(r"sent (\d+), retried (\d+), dead (\d+), remaining (\S+) in")


class Worker:
    """A worker process (``synerise_flush`` by default, or ``module``'s ``__main__``).

    Its stdout (with stderr when ``merge_stderr``) is read by a thread, never left
    to fill a pipe; the line containing ``ready_marker`` marks it ready.
    """

    def __init__(
        self,
        name: str,
        args: Iterable[str],
        env: Mapping[str, str],
        log_dir: Path,
        *,
        module: str = "tests.workers",
        ready_marker: str = "ready ",
        merge_stderr: bool = False,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(env)
        self.module = module
        self.ready_marker = ready_marker
        self.merge_stderr = merge_stderr
        self.stderr_path = log_dir / f"{name}.stderr"
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._stdout_closed = threading.Event()
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Worker:
        stderr = self.stderr_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if self.merge_stderr else stderr,
            text=True,
        )
        stderr.close()
        threading.Thread(target=self._read, name=f"{self.name}-stdout", daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if self.ready_marker in line:
                self._ready.set()
        self._stdout_closed.set()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until the worker has set Django up and is about to poll the outbox."""
        if not self._ready.wait(timeout):
            raise AssertionError(f"{self.name} did not start:\n{self.diagnostics()}")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (finish the request in flight, release leases, exit); return the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"{self.name} ignored SIGTERM for {timeout} s:\n{self.diagnostics()}"
            ) from None
        self._stdout_closed.wait(5)
        return code

    def kill(self) -> None:
        """SIGKILL: no handler runs, leases stay behind."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self._stdout_closed.wait(5)

    def stop_quietly(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def summary(self) -> dict[str, int]:
        """The command's final ``sent N, retried N, dead N`` totals."""
        for line in reversed(self.lines):
            match = _SUMMARY.search(line)
            if match:
                sent, retried, dead = (int(x) for x in match.groups()[:3])
                return {"sent": sent, "retried": retried, "dead": dead}
        raise AssertionError(f"{self.name} printed no summary:\n{self.diagnostics()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def diagnostics(self) -> str:
        code = self.process.poll() if self.process else None
        return (
            f"--- {self.name} (pid {self.process.pid if self.process else '-'}, exit {code})\n"
            f"stdout:\n" + "\n".join(self.lines[-30:]) + f"\nstderr:\n{self.stderr()[-4000:]}"
        )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` (a database state no one signals) until true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# -- events with a logical identity ----------------------------------------------


def logical_id(item: Mapping[str, Any]) -> str:
    """The id the generators below give each event, read back from the JSON item as sent."""
    if "orderId" in item:
        return str(item["orderId"])
    if "correlationId" in item:
        return str(item["correlationId"])
    return str(item["params"]["n"])


def mixed_events(
    count: int,
    *,
    start: int = 0,
    poison: Iterable[int] = (),
    ai: bool = True,
    padding: int = 0,
) -> list[Any]:
    """``count`` events cycling through custom, dedicated, transaction and AI events.

    Event ``i`` carries the logical id ``e{i}`` (params ``n``, ``orderId`` or
    ``correlationId``); ids in ``poison`` also carry ``params.poison`` (or
    ``metadata.poison``), for :func:`is_poison`. AI events have no salt, so
    ``ai=False`` leaves them out where a test counts by salt. ``padding`` adds
    that many bytes of params to the v4 events.
    """
    from django_synerise.events import AIEvent, CustomEvent, Transaction, add_to_cart

    poisoned = set(poison)
    kinds = 5 if ai else 3
    events: list[Any] = []
    for i in range(start, start + count):
        ident = f"e{i}"
        bad = i in poisoned
        extra: dict[str, Any] = {"poison": True} if bad else {}
        if padding:
            extra["pad"] = "x" * padding
        kind = i % kinds
        client = {"customId": f"c{i % 97}"}
        if kind == 0:
            events.append(CustomEvent("soak.tick", client=client, params={"n": ident, **extra}))
        elif kind == 1:
            product = {"sku": f"s{i}", "name": f"Item {i}", "finalUnitPrice": 9.5}
            events.append(
                add_to_cart(
                    client=client, product=product, currency="PLN", params={"n": ident, **extra}
                )
            )
        elif kind == 2:
            events.append(
                Transaction(
                    client=client,
                    order_id=ident,
                    products=[
                        {"sku": f"s{i}", "name": f"Item {i}", "quantity": 1, "finalUnitPrice": 9.5}
                    ],
                    currency="PLN",
                    metadata=extra or None,
                )
            )
        else:
            event_type = "recommendation.view" if kind == 3 else "recommendation.click"
            if bad:
                # AI events have no params: a poison one is recognised by its id.
                ident = f"poison-{i}"
            events.append(
                AIEvent(event_type, correlation_id=ident, client_uuid=UUID, items=[f"s{i}"])
            )
    return events


def is_poison(item: Mapping[str, Any]) -> bool:
    """A :meth:`LocalSynerise.reject` predicate for the poison events of :func:`mixed_events`."""
    params = item.get("params") or item.get("metadata") or {}
    if isinstance(params, dict) and params.get("poison") is True:
        return True
    return str(item.get("correlationId", "")).startswith("poison-")


# -- judging a delivery ----------------------------------------------------------


@dataclass
class DeliveryReport:
    """What the stand-in accepted, against the outbox rows it was meant to receive."""

    expected: int
    delivered: int  # distinct events accepted
    accepted: int  # events accepted, resends included
    missing: set[str] = field(default_factory=set)
    unexpected: set[str] = field(default_factory=set)
    distinct_salt_duplicates: dict[str, set[str]] = field(default_factory=dict)
    same_salt_resends: int = 0
    ai_resends: int = 0
    resent_ids: set[str] = field(default_factory=set)


def delivery_report(accepted: Iterable[Mapping[str, Any]], rows: Iterable[Any]) -> DeliveryReport:
    """Compare the stand-in's accepted events (``record="full"``) with outbox rows.

    ``rows`` are the ``OutboxEvent`` rows that should have arrived. An event is
    identified by its logical id; for v4 events and transactions the salt must
    be the one fixed in its row. ``distinct_salt_duplicates`` lists logical
    events that arrived under more than one salt (a real duplicate at
    Synerise); ``same_salt_resends`` counts harmless resends (Synerise
    overwrites them); ``ai_resends`` counts resent AI events, which have no salt.
    """
    expected_salt: dict[str, str] = {}
    for row in rows:
        expected_salt[logical_id(json.loads(row.payload))] = row.salt
    seen: dict[str, collections.Counter[str]] = {}
    total = 0
    ai_resends = 0
    for event in accepted:
        total += 1
        body = event["body"]
        ident = logical_id(body)
        salts = seen.setdefault(ident, collections.Counter())
        if event["salt"] is None and salts:
            ai_resends += 1
        salts[event["salt"] or ""] += 1
    report = DeliveryReport(expected=len(expected_salt), delivered=len(seen), accepted=total)
    report.missing = set(expected_salt) - set(seen)
    report.unexpected = set(seen) - set(expected_salt)
    report.ai_resends = ai_resends
    for ident, salts in seen.items():
        if len(salts) > 1:
            report.distinct_salt_duplicates[ident] = set(salts)
        elif (
            ident in expected_salt and expected_salt[ident] and set(salts) != {expected_salt[ident]}
        ):
            report.distinct_salt_duplicates[ident] = set(salts) | {expected_salt[ident]}
        count = sum(salts.values())
        if count > 1:
            report.resent_ids.add(ident)
            if not (len(salts) == 1 and "" in salts):
                report.same_salt_resends += count - len(salts)
    return report


# -- the worker entry point ------------------------------------------------------


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.core.management import execute_from_command_line

    print(f"ready {os.getpid()}", flush=True)
    execute_from_command_line(["manage.py", "synerise_flush", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
