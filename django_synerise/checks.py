"""System checks for the ``SYNERISE`` settings and the app's installation.

Run by ``manage.py check`` (and by ``runserver``, ``migrate`` ...); all carry
the ``synerise`` tag, so ``manage.py check --tag synerise`` runs only these.

=================  =============================================================
``synerise.E000``  a ``SYNERISE`` value is invalid (the message names the key), or
                   ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["synerise_beacon"]``
``synerise.E001``  no ``API_KEY`` (or, with ``AUTH="basic"``, no ``WORKSPACE_GUID``)
                   while ``ENABLED``
``synerise.E002``  ``BATCH_SIZE`` or ``MAX_BATCH_BYTES`` above Synerise's limits
``synerise.E003``  no ``TRACKER_KEY`` while ``BEACON_MODE="direct"``, or while a
                   template uses ``{% synerise_tracking_code %}``
``synerise.W001``  ``API_BASE_URL`` is not https (loopback hosts excepted)
``synerise.W002``  the page-visit middleware is used without the app installed,
                   or the app's URLs are included without ``rest_framework``
``synerise.W003``  a ``SYNERISE`` key has been renamed (it still works, for now)
=================  =============================================================

This module imports nothing that needs the app registry (no models), so that
any module of the package can import it to register the checks, even when
``django_synerise`` itself is missing from ``INSTALLED_APPS`` (whose
``ready()`` would otherwise be the only place that imports it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .conf import (
    API_MAX_BATCH_BYTES,
    API_MAX_BATCH_SIZE,
    BEACON_THROTTLE_DRF_KEY,
    BEACON_THROTTLE_SCOPE,
    DEFAULTS,
    RENAMED_KEYS,
    parse_throttle_rate,
    synerise_settings,
)
from .exceptions import SyneriseConfigurationError

__all__ = [
    "TAG",
    "check_installation",
    "check_settings",
    "is_loopback_url",
]

#: The tag every check here is registered with.
TAG = "synerise"

MIDDLEWARE_PATH = "django_synerise.middleware.PageVisitMiddleware"

_SETTINGS_HINT = "Every key and the values it accepts are listed in django_synerise.conf."
_LIMITS = {"BATCH_SIZE": API_MAX_BATCH_SIZE, "MAX_BATCH_BYTES": API_MAX_BATCH_BYTES}


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@register(TAG)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E000-E003, W001 and W003: every ``SYNERISE`` value valid, the keys in use present.

    Each invalid key is reported on its own (the first error does not hide the
    others) instead of raising, so ``manage.py check`` lists them all.
    """
    messages: list[CheckMessage] = list(_check_renamed_keys())
    messages.extend(_check_drf_rate())
    try:
        user = synerise_settings.user_settings
    except SyneriseConfigurationError as err:
        # SYNERISE is not a dict, or has unknown keys: nothing else can be read.
        return [*messages, Error(str(err), hint=_SETTINGS_HINT, id="synerise.E000")]

    values: dict[str, Any] = {}
    for key in DEFAULTS:
        limit = _LIMITS.get(key)
        raw: Any = user.get(key)
        if limit is not None and _is_number(raw) and raw > limit:
            messages.append(
                Error(
                    f'SYNERISE["{key}"] is {raw}, above Synerise\'s limit of {limit} per '
                    "batch request; Synerise would refuse such batches.",
                    hint=f'Set SYNERISE["{key}"] to {limit} or less, or leave it out '
                    f"(the default is {limit}).",
                    id="synerise.E002",
                )
            )
            continue
        try:
            values[key] = getattr(synerise_settings, key)
        except SyneriseConfigurationError as err:
            messages.append(Error(str(err), hint=_SETTINGS_HINT, id="synerise.E000"))
    messages.extend(_check_callables(values))
    messages.extend(_check_keys(values))
    messages.extend(_check_base_url(values))
    return messages


def _check_renamed_keys() -> Iterable[CheckMessage]:
    # The DeprecationWarning fires where settings are first read, deep in the
    # package, and Python hides it by default: say it where people look.
    raw = getattr(settings, "SYNERISE", None)
    if not isinstance(raw, dict):
        return
    for old, new in RENAMED_KEYS.items():
        if old in raw:
            yield Warning(
                f'SYNERISE["{old}"] has been renamed to SYNERISE["{new}"]; the old name '
                "still works but will be removed in the next minor release.",
                hint=f'Rename SYNERISE["{old}"] to SYNERISE["{new}"].',
                id="synerise.W003",
            )


def _check_drf_rate() -> Iterable[CheckMessage]:
    # The beacon throttle reads this DRF key first; a typo there would otherwise
    # surface as an error on the first beacon.
    rates = (getattr(settings, "REST_FRAMEWORK", None) or {}).get("DEFAULT_THROTTLE_RATES")
    if not isinstance(rates, dict) or rates.get(BEACON_THROTTLE_SCOPE) is None:
        return
    try:
        parse_throttle_rate(BEACON_THROTTLE_DRF_KEY, rates[BEACON_THROTTLE_SCOPE])
    except SyneriseConfigurationError as err:
        yield Error(str(err), hint="Use a DRF rate such as '120/min'.", id="synerise.E000")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_callables(values: dict[str, Any]) -> Iterable[CheckMessage]:
    # Dotted paths are only imported on first use (a request): catch a typo now.
    paths = [("CLIENT_RESOLVER", values.get("CLIENT_RESOLVER"))]
    page_visits = values.get("PAGE_VISITS")
    if isinstance(page_visits, dict):
        paths.append(('PAGE_VISITS"]["PARAMS', page_visits.get("PARAMS")))
    for key, value in paths:
        try:
            synerise_settings.import_callable(key, value)
        except SyneriseConfigurationError as err:
            yield Error(str(err), hint="Check the dotted path for typos.", id="synerise.E000")


def _check_keys(values: dict[str, Any]) -> Iterable[CheckMessage]:
    if values.get("ENABLED") is not True:
        return
    auth = values.get("AUTH")
    if auth == "jwt" and "API_KEY" in values and not values["API_KEY"]:
        yield Error(
            'SYNERISE["API_KEY"] is not set, so no event can be sent: django-synerise logs '
            "in to Synerise with the workspace API key.",
            hint='Set SYNERISE["API_KEY"] (e.g. from an environment variable), or set '
            'SYNERISE["ENABLED"] = False where nothing should be sent.',
            id="synerise.E001",
        )
    elif auth == "basic":
        missing = [
            key for key in ("WORKSPACE_GUID", "API_KEY") if key in values and not values[key]
        ]
        if missing:
            yield Error(
                'SYNERISE["AUTH"] is "basic", which needs both WORKSPACE_GUID and API_KEY; '
                f"missing: {', '.join(missing)}.",
                hint="Set "
                + " and ".join(f'SYNERISE["{key}"]' for key in missing)
                + ', use AUTH="jwt" (API key only), or set SYNERISE["ENABLED"] = False.',
                id="synerise.E001",
            )
    if (
        values.get("BEACON_MODE") == "direct"
        and "TRACKER_KEY" in values
        and not values["TRACKER_KEY"]
    ):
        yield Error(
            'SYNERISE["BEACON_MODE"] is "direct" but SYNERISE["TRACKER_KEY"] is not set: '
            "browsers send recommendation events straight to Synerise with the tracker key.",
            hint='Set SYNERISE["TRACKER_KEY"] to your web tracker key, or use '
            'BEACON_MODE="first-party".',
            id="synerise.E003",
        )
    elif "TRACKER_KEY" in values and not values["TRACKER_KEY"]:
        template = _template_using(TRACKING_CODE_TAG)
        if template is not None:
            yield Error(
                f'{template} uses {{% {TRACKING_CODE_TAG} %}} but SYNERISE["TRACKER_KEY"] is '
                "not set: the tag renders nothing, so Synerise's JS tracker never runs and "
                "anonymous visitors get no _snrs_uuid cookie (their page visits are skipped).",
                hint='Set SYNERISE["TRACKER_KEY"] to your web tracker key (Synerise: the web '
                "tracking code), or remove the tag.",
                id="synerise.E003",
            )


#: The template tag whose use makes ``TRACKER_KEY`` necessary.
TRACKING_CODE_TAG = "synerise_tracking_code"
# A project's own templates number in the hundreds; stop reading well past that.
_MAX_TEMPLATE_FILES = 20_000
_MAX_TEMPLATE_BYTES = 1_000_000


def _template_dirs() -> list[Path]:
    from django.template import engines
    from django.template.backends.django import DjangoTemplates
    from django.template.utils import get_app_template_dirs

    own = Path(__file__).resolve().parent / "templates"
    dirs: list[Path] = []
    for engine in engines.all():
        if not isinstance(engine, DjangoTemplates):
            continue
        candidates = [Path(d) for d in engine.engine.dirs]
        if engine.engine.app_dirs:
            candidates += [Path(d) for d in get_app_template_dirs("templates")]
        dirs += [d for d in candidates if d.resolve() != own and d not in dirs]
    return dirs


def _template_using(tag: str) -> str | None:
    """The first template file (under the Django template dirs) that names ``tag``.

    Only read when ``TRACKER_KEY`` is missing, so a configured project never
    pays for the walk.
    """
    needle = tag.encode()
    seen = 0
    for directory in _template_dirs():
        for path in sorted(directory.rglob("*")):
            seen += 1
            if seen > _MAX_TEMPLATE_FILES:
                return None
            try:
                if not path.is_file() or path.stat().st_size > _MAX_TEMPLATE_BYTES:
                    continue
                if needle in path.read_bytes():
                    return str(path)
            except OSError:
                continue
    return None


def _check_base_url(values: dict[str, Any]) -> Iterable[CheckMessage]:
    url = values.get("API_BASE_URL")
    if not isinstance(url, str) or url.startswith("https://") or is_loopback_url(url):
        return
    yield Warning(
        f'SYNERISE["API_BASE_URL"] is {url!r}: not https, so the API key and every event '
        "would cross the network unencrypted.",
        hint="Use https:// (e.g. https://api.synerise.com). Plain http:// is only meant for "
        "a local stand-in on localhost or 127.0.0.1.",
        id="synerise.W001",
    )


@register(TAG)
def check_installation(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W002: the parts in use have what they need installed.

    * ``PageVisitMiddleware`` in ``MIDDLEWARE`` needs ``django_synerise`` in
      ``INSTALLED_APPS`` (its outbox table and settings checks).
    * ``django_synerise`` URLs in the root URLconf need ``rest_framework`` in
      ``INSTALLED_APPS``.

    The middleware module imports this module, so the first case is reported
    even though the app (whose ``ready()`` registers the other checks) is absent.
    """
    messages: list[CheckMessage] = []
    middleware = getattr(settings, "MIDDLEWARE", None) or []
    if MIDDLEWARE_PATH in middleware and not apps.is_installed("django_synerise"):
        messages.append(
            Warning(
                f"{MIDDLEWARE_PATH} is in MIDDLEWARE but django_synerise is not in "
                "INSTALLED_APPS: page visits have no outbox table to go to.",
                hint='Add "django_synerise" to INSTALLED_APPS and run migrate.',
                id="synerise.W002",
            )
        )
    if not apps.is_installed("rest_framework") and _synerise_urls_included():
        messages.append(
            Warning(
                "django_synerise URLs are included in your URLconf but rest_framework is not "
                "in INSTALLED_APPS: the beacon endpoint is built with Django REST framework.",
                hint='Add "rest_framework" to INSTALLED_APPS, or remove the include of '
                "django_synerise.urls.",
                id="synerise.W002",
            )
        )
    return messages


def _synerise_urls_included() -> bool:
    from django.urls import URLResolver, get_resolver

    try:
        patterns = get_resolver().url_patterns
    except Exception:
        # A broken URLconf is reported by Django's own urls checks.
        return False
    stack = list(patterns)
    while stack:
        pattern = stack.pop()
        if not isinstance(pattern, URLResolver):
            continue
        module = pattern.urlconf_name
        name = module if isinstance(module, str) else getattr(module, "__name__", "")
        if name == "django_synerise.urls" or (
            name.startswith("django_synerise.") and name.endswith(".urls")
        ):
            return True
        try:
            children = pattern.url_patterns
        except Exception:  # an include without urlpatterns: Django's urls checks say so
            children = []
        stack.extend(children)
    return False
