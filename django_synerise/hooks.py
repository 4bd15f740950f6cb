"""Model and auth signal hooks."""

from __future__ import annotations


def connect_configured_hooks() -> None:
    """Connect the hooks declared in ``SYNERISE["MODEL_EVENTS"]`` and ``AUTH_EVENTS``."""
