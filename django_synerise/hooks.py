"""Model and auth signal hooks."""

from __future__ import annotations


def connect_configured_hooks() -> None:
    """Connect the hooks declared in ``SYNERISE["MODEL_EVENTS"]`` and ``AUTH_EVENTS``."""


def track_model(*args: object, **kwargs: object) -> object:
    """Declare Synerise events for a model's saves and deletes."""
    raise NotImplementedError
