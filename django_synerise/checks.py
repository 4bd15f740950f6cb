"""System checks for the ``SYNERISE`` settings and the app's installation.

Registered by the app's ``ready()``; all carry the ``synerise`` tag, so
``manage.py check --tag synerise`` runs only these. Like Django's own security
checks, what only matters in production (a missing key) is an error under
``manage.py check --deploy`` and a warning otherwise, so ``migrate``,
``runserver`` and tests work without production keys: events wait in the
outbox until a key is set. :data:`CHECKS` lists every message; the
configuration reference (``docs/configuration.md``) is generated from it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from .conf import (
    BEACON_THROTTLE_DRF_KEY,
    BEACON_THROTTLE_SCOPE,
    SETTINGS,
    DottedPath,
    Setting,
    credentials_message,
    label,
    missing_credentials,
    parse_throttle_rate,
    synerise_settings,
)
from .exceptions import SyneriseConfigurationError

__all__ = [
    "CHECKS",
    "TAG",
    "check_deploy",
    "check_forwarded_for",
    "check_installation",
    "check_rate_limit_cache",
    "check_settings",
    "is_loopback_url",
]

#: The tag every check here is registered with.
TAG = "synerise"


@dataclass(frozen=True)
class CheckInfo:
    """What a check id means, for the reference page."""

    level: str
    when: str
    meaning: str


#: Every message these checks emit.
CHECKS: dict[str, CheckInfo] = {
    "synerise.E000": CheckInfo(
        "error",
        "always",
        "A `SYNERISE` key is unknown or its value invalid (the message names the key and "
        "the fix), a dotted path cannot be imported, or "
        f"`{BEACON_THROTTLE_DRF_KEY}` is not a rate.",
    ),
    "synerise.E001": CheckInfo(
        "error",
        "`--deploy`",
        'No `API_KEY` (with `AUTH="basic"`, no `WORKSPACE_GUID`) while `ENABLED`: '
        "nothing can be sent.",
    ),
    "synerise.E003": CheckInfo(
        "error",
        "`--deploy`",
        'No `TRACKER_KEY` while `BEACON_MODE="direct"`: browsers cannot send beacons.',
    ),
    "synerise.W001": CheckInfo(
        "warning", "always", "`API_BASE_URL` is not https (loopback hosts excepted)."
    ),
    "synerise.W002": CheckInfo(
        "warning",
        "always",
        "The app's URLs are included without `rest_framework` in `INSTALLED_APPS`.",
    ),
    "synerise.W004": CheckInfo(
        "warning",
        "always",
        "A key that E001 or E003 needs under `--deploy` is missing: events wait in the "
        "outbox until it is set.",
    ),
    "synerise.W005": CheckInfo(
        "warning",
        "`--deploy`",
        "No `TRACKER_KEY` while page visits are on: `{% synerise_tracking_code %}` renders "
        "nothing, so anonymous visitors get no `_snrs_uuid` and their visits are skipped.",
    ),
    "synerise.W020": CheckInfo(
        "warning",
        "`--deploy`",
        "Django's `default` cache is per process (`LocMemCache`) or stores nothing "
        "(`DummyCache`): the page-visit and beacon rate limits count per process, or not at all.",
    ),
    "synerise.W021": CheckInfo(
        "warning",
        "always",
        "A request carried `X-Forwarded-For` while `NUM_PROXIES` is not set: rate limits "
        "use `REMOTE_ADDR`, which behind a proxy is the proxy's.",
    ),
}

_SETTINGS_HINT = "Every key and the values it accepts: docs/configuration.md."


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_settings() -> tuple[dict[str, Any], list[CheckMessage]]:
    """Every valid value by key, and an E000 for each invalid one (none hides the others)."""
    try:
        _ = synerise_settings.user_settings
    except SyneriseConfigurationError as err:
        # SYNERISE is not a dict, or has unknown keys: nothing else can be read.
        return {}, [Error(str(err), hint=_SETTINGS_HINT, id="synerise.E000")]
    values: dict[str, Any] = {}
    messages: list[CheckMessage] = []
    for key in SETTINGS:
        try:
            values[key] = getattr(synerise_settings, key)
        except SyneriseConfigurationError as err:
            messages.append(Error(str(err), hint=_SETTINGS_HINT, id="synerise.E000"))
    return values, messages


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E000, W001 and W004: every ``SYNERISE`` value valid; missing keys warned about.

    Each invalid key is reported on its own instead of raising, so
    ``manage.py check`` lists them all.
    """
    values, messages = _read_settings()
    messages.extend(_ready_errors(messages))
    messages.extend(_check_drf_rate())
    messages.extend(_check_dotted_paths(values, SETTINGS))
    messages.extend(_check_base_url(values))
    for message in _missing_keys(values):
        messages.append(
            Warning(
                f"{message.msg} Events wait in the outbox until it is set.",
                hint=f"{message.hint} `manage.py check --deploy` reports this as an error.",
                id="synerise.W004",
            )
        )
    return messages


_PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def check_rate_limit_cache(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W020 (``--deploy``): the rate limits need a cache every process shares."""
    from django.conf import settings

    values, _ = _read_settings()  # check_settings reports invalid values
    if values.get("ENABLED") is False:
        return []  # nothing is recorded, nothing to limit
    backend = str((getattr(settings, "CACHES", {}).get("default") or {}).get("BACKEND", ""))
    if backend not in _PER_PROCESS_CACHES:
        return []
    return [
        Warning(
            f"CACHES['default'] is {backend.rsplit('.', 1)[-1]}: the page-visit and beacon "
            "rate limits (PAGE_VISITS['THROTTLE_RATE'], BEACON_THROTTLE_RATE) count per "
            "process, so N processes allow N times the rate (DummyCache: no limit at all).",
            hint="Use a shared cache (Redis, Memcached) for CACHES['default'] in production.",
            id="synerise.W020",
        )
    ]


def check_forwarded_for(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W021: a request carried ``X-Forwarded-For`` and no proxy is declared."""
    from .ratelimit import forwarded_for_seen, num_proxies

    values, _ = _read_settings()  # check_settings reports invalid values
    if "NUM_PROXIES" not in values or num_proxies() is not None or not forwarded_for_seen():
        return []
    return [
        Warning(
            "Requests carry X-Forwarded-For but SYNERISE['NUM_PROXIES'] is not set: rate "
            "limits count every client by REMOTE_ADDR, which behind a proxy is the proxy's "
            "own address (one budget shared by all visitors).",
            hint="Behind a proxy, set SYNERISE['NUM_PROXIES'] to the number of proxies in "
            "front of Django; with none, set it to 0 (the header is then a client's own).",
            id="synerise.W021",
        )
    ]


def check_deploy(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E001, E003 and W005 (``manage.py check --deploy``): the keys production needs."""
    values, _ = _read_settings()  # check_settings reports invalid values
    messages: list[CheckMessage] = list(_missing_keys(values))
    page_visits = values.get("PAGE_VISITS") or {}
    if (
        values.get("ENABLED") is True
        and page_visits.get("ENABLED") is True
        and values.get("BEACON_MODE") != "direct"
        and "TRACKER_KEY" in values
        and not values["TRACKER_KEY"]
    ):
        messages.append(
            Warning(
                f"{label('TRACKER_KEY')} is not set: {{% synerise_tracking_code %}} renders "
                "nothing, so Synerise's JS tracker never runs and anonymous visitors get no "
                "_snrs_uuid cookie (their page visits are skipped).",
                hint=f"Set {label('TRACKER_KEY')} to your web tracker key, or silence "
                "synerise.W005 if your templates embed Synerise's tracking code themselves.",
                id="synerise.W005",
            )
        )
    return messages


def _missing_keys(values: Mapping[str, Any]) -> Iterable[Error]:
    """E001 and E003 as errors; :func:`check_settings` turns them into W004."""
    if values.get("ENABLED") is not True:
        return
    auth = values.get("AUTH")
    missing = (
        missing_credentials(auth, values["API_KEY"], values["WORKSPACE_GUID"])
        if auth is not None and {"API_KEY", "WORKSPACE_GUID"} <= set(values)
        else []  # an invalid value, reported as E000
    )
    if auth is not None and missing:
        yield Error(
            credentials_message(auth, missing),
            hint=('Or use AUTH="jwt", which needs the API key only. ' if auth == "basic" else "")
            + f"Where nothing should be sent, set {label('ENABLED')} = False.",
            id="synerise.E001",
        )
    if values.get("BEACON_MODE") == "direct" and not values.get("TRACKER_KEY", "set"):
        yield Error(
            f'{label("BEACON_MODE")} is "direct" but {label("TRACKER_KEY")} is not set: '
            "browsers send recommendation events straight to Synerise with the tracker key.",
            hint=f"Set {label('TRACKER_KEY')} to your web tracker key, or use "
            'BEACON_MODE="first-party".',
            id="synerise.E003",
        )


def _ready_errors(reported: list[CheckMessage]) -> Iterable[CheckMessage]:
    # What the app's ready() met (MODEL_EVENTS naming a model or function that
    # does not exist), unless already reported.
    if not apps.is_installed("django_synerise"):
        return
    seen = {message.msg for message in reported}
    for err in getattr(apps.get_app_config("django_synerise"), "ready_errors", []):
        if str(err) not in seen:
            yield Error(str(err), hint=_SETTINGS_HINT, id="synerise.E000")


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


def _check_dotted_paths(
    values: Mapping[str, Any], table: Mapping[str, Setting], prefix: str = ""
) -> Iterable[CheckMessage]:
    # Dotted paths are only imported on first use (a request): catch a typo now.
    for key, row in table.items():
        if key not in values:
            continue
        if row.table is not None and isinstance(values[key], Mapping):
            yield from _check_dotted_paths(values[key], row.table, f'{prefix}{key}"]["')
        elif isinstance(row.rule, DottedPath):
            try:
                synerise_settings.import_callable(prefix + key, values[key])
            except SyneriseConfigurationError as err:
                yield Error(str(err), hint="Check the dotted path for typos.", id="synerise.E000")


def _check_base_url(values: Mapping[str, Any]) -> Iterable[CheckMessage]:
    url = values.get("API_BASE_URL")
    if not isinstance(url, str) or url.startswith("https://") or is_loopback_url(url):
        return
    yield Warning(
        f"{label('API_BASE_URL')} is {url!r}: not https, so the API key and every event "
        "would cross the network unencrypted.",
        hint="Use https:// (e.g. https://api.synerise.com). Plain http:// is only meant for "
        "a local stand-in on localhost or 127.0.0.1.",
        id="synerise.W001",
    )


def check_installation(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W002: the app's URLs in the root URLconf need ``rest_framework`` installed.

    (``PageVisitMiddleware`` without the app installed refuses to start, naming
    the fix, so no check is needed for it.)
    """
    if apps.is_installed("rest_framework") or not _synerise_urls_included():
        return []
    return [
        Warning(
            "django_synerise URLs are included in your URLconf but rest_framework is not "
            "in INSTALLED_APPS: the beacon endpoint is built with Django REST framework.",
            hint='Add "rest_framework" to INSTALLED_APPS, or remove the include of '
            "django_synerise.urls.",
            id="synerise.W002",
        )
    ]


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
