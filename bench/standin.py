"""The Synerise stand-in as a separate process, and what it costs on its own.

The stand-in runs in its own interpreter (``python -m django_synerise.testing``) so
it never shares a GIL with the process being measured. Its CPU time is read from
``/proc`` so a run can say how much of the machine the stand-in took.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import requests

API_KEY = "test-api-key"
TRACKER_KEY = "test-tracker-key"
LOGIN_PATH = "/uauth/v2/auth/login/profile"
BATCH_PATH = "/v4/events/batch"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``); 0.0 elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5); the slice starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_ticks() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return (0.0, 0.0)
    idle = values[3] + values[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return ((sum(values) - idle) / tick, sum(values) / tick)


class StandIn:
    """``python -m django_synerise.testing --record count`` on a free port."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django_synerise.testing", "--port", "0", "--record", "count"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError("the Synerise stand-in did not start")

    def count(self) -> int:
        """Events the stand-in has accepted since it started."""
        response = requests.get(self.url + "/__local__/summary", timeout=10)
        response.raise_for_status()
        return int(response.json()["count"])

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def login(session: requests.Session, url: str) -> dict[str, str]:
    """Headers of an authenticated v4 call (logs in once)."""
    response = session.post(
        url + LOGIN_PATH,
        data=json.dumps({"apiKey": API_KEY}),
        headers={"Content-Type": "application/json", "Api-Version": "4.4"},
        timeout=10,
    )
    response.raise_for_status()
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Api-Version": "4.4",
        "Authorization": f"Bearer {response.json()['token']}",
    }


def raw_post_loop(url: str, body: bytes, requests_count: int) -> dict[str, Any]:
    """POST the same pre-built batch ``requests_count`` times over one keep-alive connection."""
    session = requests.Session()
    headers = login(session, url)
    started = time.monotonic()
    for _ in range(requests_count):
        response = session.post(url + BATCH_PATH, data=body, headers=headers, timeout=30)
        if response.status_code != 202:
            raise RuntimeError(f"stand-in answered {response.status_code}: {response.text[:200]}")
    return {"started": started, "finished": time.monotonic()}
