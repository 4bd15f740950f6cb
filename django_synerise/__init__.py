"""django-synerise: a Django site's events into the Synerise CDP, through a transactional outbox.

Public API::

    from django_synerise import events, track, track_event, track_many, track_model
    from django_synerise import atrack, atrack_event, atrack_many

* :func:`track` records a custom event; :func:`track_event` and :func:`track_many`
  record events built with :mod:`django_synerise.events` (dedicated events,
  transactions, AI events); :func:`track_model` declares events for a model's
  saves and deletes.
* :func:`atrack`, :func:`atrack_event` and :func:`atrack_many` are the same for
  async code (async views under ASGI, ``asyncio.run()``).
* ``__version__`` is the installed distribution's version.

Also public (the README's deprecation policy covers them): the modules
``conf``, ``exceptions``, ``identity``, ``middleware``, ``hooks``, ``metrics``,
``outbox``, ``signals``, ``testing`` and ``tasks`` (each the names in its ``__all__``), the
management commands, the template tags and the settings. Everything else is an
implementation detail.

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
    from . import events
    from .hooks import track_catalog, track_model, track_profile
    from .tracking import atrack, atrack_event, atrack_many, track, track_event, track_many

__all__ = [
    "__version__",
    "atrack",
    "atrack_event",
    "atrack_many",
    "events",
    "track",
    "track_catalog",
    "track_event",
    "track_many",
    "track_model",
    "track_profile",
]

# Public name -> (module, attribute); attribute None means the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "atrack": ("django_synerise.tracking", "atrack"),
    "atrack_event": ("django_synerise.tracking", "atrack_event"),
    "atrack_many": ("django_synerise.tracking", "atrack_many"),
    "events": ("django_synerise.events", None),
    "track": ("django_synerise.tracking", "track"),
    "track_event": ("django_synerise.tracking", "track_event"),
    "track_many": ("django_synerise.tracking", "track_many"),
    "track_model": ("django_synerise.hooks", "track_model"),
    "track_profile": ("django_synerise.hooks", "track_profile"),
    "track_catalog": ("django_synerise.hooks", "track_catalog"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'django_synerise' has no attribute {name!r}") from None
    module = import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
