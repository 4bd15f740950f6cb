"""Shared fixtures."""

from __future__ import annotations

pytest_plugins = ["django_synerise.testing.pytest_plugin"]
