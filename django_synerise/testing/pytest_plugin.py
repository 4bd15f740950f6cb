"""pytest fixtures for the Synerise stand-in.

Enable them in a ``conftest.py``::

    pytest_plugins = ["django_synerise.testing.pytest_plugin"]

* ``synerise_server``: a started :class:`~django_synerise.testing.LocalSynerise`,
  stopped after the test.
* ``synerise_stand_in``: the same server, with ``settings.SYNERISE`` pointed at it
  (``API_BASE_URL``, ``API_KEY``, ``TRACKER_KEY``) for the duration of the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import LocalSynerise


@pytest.fixture
def synerise_server() -> Iterator[LocalSynerise]:
    """A running :class:`LocalSynerise` with default keys; stopped after the test."""
    with LocalSynerise() as server:
        yield server


@pytest.fixture
def synerise_stand_in(synerise_server: LocalSynerise) -> Iterator[LocalSynerise]:
    """``synerise_server`` with Django's ``SYNERISE`` setting pointed at it."""
    # Imported here so that the plugin loads in projects (and tests) without Django settings.
    from django.conf import settings
    from django.test import override_settings

    overrides = {
        **getattr(settings, "SYNERISE", {}),
        "API_BASE_URL": synerise_server.url,
        "API_KEY": synerise_server.api_key,
        "TRACKER_KEY": synerise_server.tracker_key,
    }
    with override_settings(SYNERISE=overrides):
        yield synerise_server
