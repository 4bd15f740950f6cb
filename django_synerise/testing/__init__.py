"""Test helpers: :class:`LocalSynerise`, a local stand-in for the Synerise API.

In your own tests::

    from django_synerise.testing import LocalSynerise

    with LocalSynerise() as server:
        ...  # point SYNERISE["API_BASE_URL"] at server.url, then inspect server.events

or, with pytest, add ``pytest_plugins = ["django_synerise.testing.pytest_plugin"]``
to your ``conftest.py`` and use the ``synerise_server`` or ``synerise_stand_in``
fixtures. From a shell: ``python -m django_synerise.testing --port 8089``.

Nothing here imports Django.
"""

from __future__ import annotations

from .server import (
    AI_EVENT_TYPES,
    DEDICATED_EVENT_TYPES,
    FAULT_KINDS,
    AcceptedEvent,
    Fault,
    LocalSynerise,
    RecordedRequest,
)

__all__ = [
    "AI_EVENT_TYPES",
    "DEDICATED_EVENT_TYPES",
    "FAULT_KINDS",
    "AcceptedEvent",
    "Fault",
    "LocalSynerise",
    "RecordedRequest",
]
