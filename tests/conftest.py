"""Shared fixtures."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["django_synerise.testing.pytest_plugin"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``soak`` tests (minutes long) unless asked for with ``-m soak`` or ``SOAK=1``."""
    if os.environ.get("SOAK") == "1" or "soak" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long soak: run with -m soak or SOAK=1")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
