"""Shared fixtures."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings as hypothesis_settings

pytest_plugins = ["django_synerise.testing.pytest_plugin"]

# HYPOTHESIS_PROFILE=ci (set by .ci/run) replays the same examples on every run, so a
# submission is judged on what it changed; a developer's `make test` keeps exploring.
hypothesis_settings.register_profile("ci", derandomize=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``soak`` tests (minutes long) unless asked for with ``-m soak`` or ``SOAK=1``."""
    if os.environ.get("SOAK") == "1" or "soak" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long soak: run with -m soak or SOAK=1")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Every test client request comes from 127.0.0.1: rate-limit counters start at zero."""
    from django.core.cache import caches

    caches["default"].clear()
