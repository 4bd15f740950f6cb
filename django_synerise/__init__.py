"""django-synerise: a Django site's events into the Synerise CDP, through a transactional outbox.

Public API::

    from django_synerise import track, track_event, track_many, track_model

The names are loaded on first use, so importing the package does not import
Django models before the app registry is ready.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("django-synerise")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from .hooks import track_model
    from .tracking import track, track_event, track_many

__all__ = ["__version__", "track", "track_event", "track_many", "track_model"]

_LAZY = {
    "track": "django_synerise.tracking",
    "track_event": "django_synerise.tracking",
    "track_many": "django_synerise.tracking",
    "track_model": "django_synerise.hooks",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'django_synerise' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
