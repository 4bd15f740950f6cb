"""The ``SYNERISE`` settings dict: defaults, validation and lazy access.

Everything django-synerise can be told lives in one dict in ``settings.py``::

    SYNERISE = {
        "API_KEY": env("SYNERISE_API_KEY"),
        "TRACKER_KEY": env("SYNERISE_TRACKER_KEY"),
    }

Read it through :data:`synerise_settings` (``from django_synerise.conf import
synerise_settings``): values are read on attribute access, validated the first
time they are read, and reloaded when ``override_settings`` changes
``SYNERISE``, so tests can flip any key. Unknown keys raise
:class:`~django_synerise.exceptions.SyneriseConfigurationError` listing the
valid ones.

Keys and defaults
-----------------

Connection and authentication
    ``API_BASE_URL`` (``"https://api.synerise.com"``)
        Synerise API host for your region (US: ``https://api.azu.synerise.com``,
        GCP: ``https://api.geb.synerise.com``).
    ``API_KEY`` (``None``)
        Workspace API key, used to log in (``AUTH="jwt"``) or for Basic auth.
    ``AUTH`` (``"jwt"``)
        ``"jwt"``: log in at ``/uauth/v2/auth/login/profile`` and send the token;
        ``"basic"``: HTTP Basic with ``WORKSPACE_GUID`` and ``API_KEY``.
    ``WORKSPACE_GUID`` (``None``)
        Needed when ``AUTH="basic"``.
    ``TRACKER_KEY`` (``None``)
        Web tracker key: the JS tracking code, and the ``token`` of AI events.
    ``API_VERSION`` (``"4.4"``)
        Sent as the ``Api-Version`` header: digits and dots (``"4.4"``).
    ``TIMEOUT`` (``(3.05, 10.0)``)
        ``(connect, read)`` seconds per HTTP request; a single number sets both.
    ``TOKEN_CACHE`` (``"default"``)
        Django cache alias where the workspace JWT is shared by every process.
    ``TOKEN_REFRESH_MARGIN`` (``60``)
        Seconds before the JWT's ``exp`` at which it is renewed.
    ``TOKEN_LIFETIME`` (``3550``)
        Seconds a token is trusted when it carries no readable ``exp``.
    ``USER_AGENT`` (``None``)
        Overrides the ``User-Agent`` header (default ``django-synerise/<version>``).

Batching and delivery
    ``ENABLED`` (``True``)
        ``False`` turns every producer into a no-op (nothing is enqueued).
    ``BATCH_SIZE`` (``1000``)
        Events per ``/v4/events/batch`` request; 1000 is Synerise's maximum.
    ``MAX_BATCH_BYTES`` (``1000000``)
        Bytes per batch request body; Synerise's maximum is 1 MB.
    ``TRANSACTION_BATCH_SIZE`` (``100``)
        Transactions per ``/v4/transactions/batch`` request (limit not published).
    ``AI_BATCH_SIZE`` (``100``)
        Events per AI-events batch request (limit not published).
    ``AI_EVENTS_API`` (``"events-v1"``)
        ``"events-v1"``: ``/events/v1/batch``; ``"ai-compat"``: ``/v4/events/ai-compat/batch``.
    ``AI_TIMESTAMP_FORMAT`` (``"unix-ms"``)
        ``eventTimestamp`` of AI events: ``"unix-ms"`` (integer) or ``"iso8601"``.
    ``MAX_ATTEMPTS`` (``16``)
        Failed attempts after which an event goes ``dead``. With the default backoff
        that is about five hours of Synerise being unreachable.
    ``RETRY_BACKOFF_BASE`` (``30``)
        Seconds; the n-th retry waits a random time up to ``BASE * 2**(n-1)``.
    ``RETRY_BACKOFF_MAX`` (``3600``)
        Upper bound of a single retry delay, in seconds.
    ``RATE_LIMIT_MAX_WAIT`` (``60``)
        Longest pause a flush pass takes for a ``Retry-After`` before it ends.
    ``LEASE_SECONDS`` (``120``)
        How long claimed rows stay reserved for a worker; a killed worker's rows
        become due again after it.
    ``RETAIN_SENT`` (``7``)
        Days sent rows are kept (``0`` deletes them as soon as they are sent).
    ``DATABASE_ALIAS`` (``None``)
        Database of the outbox table; ``None`` follows your routers.
    ``TRANSACTION_SOURCE`` (``"WEB_DESKTOP"``)
        Default ``source`` of transactions built by model hooks.

Producers
    ``RAISE_ERRORS`` (``False``)
        Re-raise errors in middleware, hooks and identity instead of logging them
        (set it in your tests).
    ``CLIENT_RESOLVER`` (``None``)
        Dotted path to ``f(request) -> dict | None`` replacing the default identity.
    ``CONSENT`` (``None``)
        Callable or dotted path ``f(request) -> bool``: false means this visitor is not
        tracked by any producer that has a request (see ``identity.may_track``).
    ``RESPECT_GPC`` (``True``) and ``RESPECT_DNT`` (``False``)
        Treat ``Sec-GPC: 1`` / ``DNT: 1`` as a refusal of consent.
    ``USER_IDENTIFIERS`` (``{"customId": "pk", "email": "email"}``)
        Synerise identifier → user attribute, for logged-in users.
    ``PAGE_VISITS`` (dict)
        ``ENABLED`` (True), ``METHODS`` (["GET"]), ``STATUS_CODES`` ([200]),
        ``CONTENT_TYPES`` (["text/html"]), ``EXCLUDE_PATHS`` (regexes, admin/static/media
        are always added), ``INCLUDE_PATHS`` ([]: everything not excluded),
        ``EXCLUDE_BOTS`` (True: crawlers, monitors, link previewers, scanners),
        ``EXCLUDE_AUTOMATION`` (False: HTTP libraries and browser automation such as
        ``curl`` or ``HeadlessChrome``), ``PARAMS`` (dotted path
        to ``f(request, response) -> dict``, or ``None``), ``ASYNC_COMMIT`` (False: on
        PostgreSQL, True lets a page visit's commit return before it reaches the disk).
    ``MODEL_EVENTS`` (``[]``)
        Declarative model hooks (see ``django_synerise.hooks``).
    ``AUTH_EVENTS`` (``{"LOGGED_IN": True, "LOGGED_OUT": True, "REGISTERED": True}``)
        Built-in auth signal events, and ``hooks.track_registration``.

Beacons and template tags
    ``BEACON_MODE`` (``"first-party"``)
        ``"first-party"``: the browser posts to this site's endpoint;
        ``"direct"``: straight to Synerise's AI events API with the tracker key.
    ``BEACON_THROTTLE_RATE`` (``"120/min"``)
        DRF throttle rate of the beacon endpoint, per client address (DRF's ``get_ident``;
        set ``REST_FRAMEWORK["NUM_PROXIES"]`` behind a proxy). Any rate DRF reads:
        ``"<number>/<period>"``, the period's first letter ``s``, ``m``, ``h`` or ``d``
        (``"5/hours"``, ``"100/minutes"``). ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
        ["synerise_beacon"]``, when your project sets it, wins over this key.
    ``BEACON_MAX_BYTES`` (``16384``) and ``BEACON_MAX_ITEMS`` (``100``)
        Size caps of one beacon.
    ``BEACON_ALLOWED_ORIGINS`` (``[]``)
        Extra origins (``https://shop.example``) allowed besides the site's own host.
    ``TRACKER_SCRIPT_HOST`` (``"web.snrbox.com"``)
        Host of Synerise's JS SDK (US: ``web.azu.snrbox.com``, GCP: ``web.geb.snrbox.com``).
"""

from __future__ import annotations

import copy
import math
import re
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .exceptions import SyneriseConfigurationError

__all__ = [
    "BEACON_THROTTLE_DRF_KEY",
    "BEACON_THROTTLE_SCOPE",
    "DEFAULTS",
    "RENAMED_KEYS",
    "SyneriseSettings",
    "parse_throttle_rate",
    "synerise_settings",
]

SETTING_NAME = "SYNERISE"

#: Synerise's own hard limits for ``/v4/events/batch``.
API_MAX_BATCH_SIZE = 1000
API_MAX_BATCH_BYTES = 1_000_000

PAGE_VISIT_DEFAULTS: dict[str, Any] = {
    "ENABLED": True,
    "METHODS": ["GET"],
    "STATUS_CODES": [200],
    "CONTENT_TYPES": ["text/html"],
    "EXCLUDE_PATHS": [],
    "INCLUDE_PATHS": [],
    "EXCLUDE_BOTS": True,
    "EXCLUDE_AUTOMATION": False,
    "PARAMS": None,
    "ASYNC_COMMIT": False,
}

AUTH_EVENT_DEFAULTS: dict[str, Any] = {
    "LOGGED_IN": True,
    "LOGGED_OUT": True,
    "REGISTERED": True,
}

DEFAULTS: dict[str, Any] = {
    "API_BASE_URL": "https://api.synerise.com",
    "API_KEY": None,
    "AUTH": "jwt",
    "WORKSPACE_GUID": None,
    "TRACKER_KEY": None,
    "API_VERSION": "4.4",
    "TIMEOUT": (3.05, 10.0),
    "TOKEN_CACHE": "default",
    "TOKEN_REFRESH_MARGIN": 60,
    "TOKEN_LIFETIME": 3550,
    "USER_AGENT": None,
    "ENABLED": True,
    "BATCH_SIZE": API_MAX_BATCH_SIZE,
    "MAX_BATCH_BYTES": API_MAX_BATCH_BYTES,
    "TRANSACTION_BATCH_SIZE": 100,
    "AI_BATCH_SIZE": 100,
    "AI_EVENTS_API": "events-v1",
    "AI_TIMESTAMP_FORMAT": "unix-ms",
    "MAX_ATTEMPTS": 16,
    "RETRY_BACKOFF_BASE": 30.0,
    "RETRY_BACKOFF_MAX": 3600.0,
    "RATE_LIMIT_MAX_WAIT": 60.0,
    "LEASE_SECONDS": 120,
    "RETAIN_SENT": 7,
    "DATABASE_ALIAS": None,
    "TRANSACTION_SOURCE": "WEB_DESKTOP",
    "RAISE_ERRORS": False,
    "CLIENT_RESOLVER": None,
    "CONSENT": None,
    "RESPECT_GPC": True,
    "RESPECT_DNT": False,
    "USER_IDENTIFIERS": {"customId": "pk", "email": "email"},
    "PAGE_VISITS": PAGE_VISIT_DEFAULTS,
    "MODEL_EVENTS": [],
    "AUTH_EVENTS": AUTH_EVENT_DEFAULTS,
    "BEACON_MODE": "first-party",
    "BEACON_THROTTLE_RATE": "120/min",
    "BEACON_MAX_BYTES": 16384,
    "BEACON_MAX_ITEMS": 100,
    "BEACON_ALLOWED_ORIGINS": [],
    "TRACKER_SCRIPT_HOST": "web.snrbox.com",
}

#: Old key → new key. A renamed key keeps working for one minor release with a
#: ``DeprecationWarning``; then the old name is removed from this table and
#: rejected like any unknown key.
RENAMED_KEYS: dict[str, str] = {}

_NESTED = {"PAGE_VISITS": PAGE_VISIT_DEFAULTS, "AUTH_EVENTS": AUTH_EVENT_DEFAULTS}


def _fix(key: str, hint: str) -> str:
    return f'SYNERISE["{key}"] {hint}. Set it in the SYNERISE dict of your Django settings.'


def _is_number(value: Any) -> bool:
    # NaN and infinity are floats too, but no delay or size can be either.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_str(key: str, value: Any, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or (not optional and not value):
        raise SyneriseConfigurationError(
            _fix(
                key,
                f"must be a {'string or None' if optional else 'non-empty string'}, not {value!r}",
            )
        )


#: Seconds per period, by the period's first letter: how DRF's ``parse_rate`` reads
#: a rate ("5/hours" is five an hour).
THROTTLE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_API_VERSION_RE = re.compile(r"[0-9]+(?:\.[0-9]+)*")

#: DRF's scope of the beacon throttle; a rate set there wins over ``BEACON_THROTTLE_RATE``.
BEACON_THROTTLE_SCOPE = "synerise_beacon"
#: How error messages name that DRF setting.
BEACON_THROTTLE_DRF_KEY = f'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["{BEACON_THROTTLE_SCOPE}"]'


def parse_throttle_rate(key: str, rate: Any) -> tuple[int, int]:
    """``(requests, seconds)`` of a DRF rate string such as ``"120/min"``.

    Accepts every rate DRF's ``SimpleRateThrottle.parse_rate`` accepts (the
    period is read by its first letter), with surrounding spaces allowed.
    Raises :class:`SyneriseConfigurationError` naming ``key`` otherwise, or for
    a negative number of requests.
    """
    if isinstance(rate, str):
        number, slash, period = rate.partition("/")
        period = period.strip()
        if slash and "/" not in period and period and period[0] in THROTTLE_PERIODS:
            try:
                requests = int(number)
            except ValueError:
                pass
            else:
                if requests >= 0:
                    return (requests, THROTTLE_PERIODS[period[0]])
    raise SyneriseConfigurationError(
        f'{key} must look like "120/min" (a number of requests, "/", and a period starting '
        f"with s, m, h or d, as in 10/second, 120/minute, 5/hours, 1000/day), not {rate!r}. "
        "Set it in your Django settings."
    )


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SyneriseConfigurationError(
            _fix(key, f"must be one of {', '.join(repr(c) for c in choices)}, not {value!r}")
        )


def _check_number(
    key: str,
    value: Any,
    *,
    minimum: float = 0,
    maximum: float | None = None,
    integer: bool = False,
    strict_min: bool = False,
) -> None:
    kind = "an integer" if integer else "a number"
    if not _is_number(value) or (integer and not isinstance(value, int)):
        raise SyneriseConfigurationError(_fix(key, f"must be {kind}, not {value!r}"))
    if value < minimum or (strict_min and value == minimum):
        op = ">" if strict_min else ">="
        raise SyneriseConfigurationError(_fix(key, f"must be {op} {minimum}, not {value!r}"))
    if maximum is not None and value > maximum:
        raise SyneriseConfigurationError(
            _fix(key, f"must be at most {maximum} (Synerise's limit), not {value!r}")
        )


def _check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise SyneriseConfigurationError(_fix(key, f"must be True or False, not {value!r}"))


def _check_str_list(key: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise SyneriseConfigurationError(_fix(key, f"must be a list of strings, not {value!r}"))


def _check_callable_path(key: str, value: Any) -> None:
    if value is None or callable(value):
        return
    if not isinstance(value, str):
        raise SyneriseConfigurationError(
            _fix(key, f"must be a dotted path to a callable, a callable or None, not {value!r}")
        )


def _validate_timeout(value: Any) -> tuple[float, float]:
    if _is_number(value) and value > 0:
        return (float(value), float(value))
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(_is_number(v) and v > 0 for v in value)
    ):
        return (float(value[0]), float(value[1]))
    raise SyneriseConfigurationError(
        _fix("TIMEOUT", f"must be a positive number or a (connect, read) pair, not {value!r}")
    )


def _validate_nested(key: str, value: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SyneriseConfigurationError(_fix(key, f"must be a dict, not {value!r}"))
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise SyneriseConfigurationError(
            f'Unknown key(s) in SYNERISE["{key}"]: {", ".join(unknown)}. '
            f"Valid keys are: {', '.join(sorted(defaults))}."
        )
    merged = copy.deepcopy(dict(defaults))
    merged.update(value)
    return merged


def _validate(key: str, value: Any) -> Any:
    """Check one key's value; return it, normalised. Raise naming the key."""
    if key == "API_BASE_URL":
        _check_str(key, value, optional=False)
        if not value.startswith(("http://", "https://")):
            raise SyneriseConfigurationError(
                _fix(
                    key,
                    f"must start with https:// (or http:// for a local stand-in), not {value!r}",
                )
            )
        return value.rstrip("/")
    if key in ("API_KEY", "WORKSPACE_GUID", "TRACKER_KEY", "USER_AGENT", "DATABASE_ALIAS"):
        _check_str(key, value)
        return value or None
    if key in ("TOKEN_CACHE", "TRANSACTION_SOURCE", "TRACKER_SCRIPT_HOST"):
        _check_str(key, value, optional=False)
        return value
    if key == "API_VERSION":
        if not isinstance(value, str) or not _API_VERSION_RE.fullmatch(value):
            raise SyneriseConfigurationError(
                _fix(key, f'must be a version of digits and dots, such as "4.4", not {value!r}')
            )
        return value
    if key == "BEACON_THROTTLE_RATE":
        parse_throttle_rate(f'SYNERISE["{key}"]', value)
        return value
    if key == "AUTH":
        _check_choice(key, value, ("jwt", "basic"))
        return value
    if key == "AI_EVENTS_API":
        _check_choice(key, value, ("events-v1", "ai-compat"))
        return value
    if key == "AI_TIMESTAMP_FORMAT":
        _check_choice(key, value, ("unix-ms", "iso8601"))
        return value
    if key == "BEACON_MODE":
        _check_choice(key, value, ("first-party", "direct"))
        return value
    if key == "TIMEOUT":
        return _validate_timeout(value)
    if key in ("ENABLED", "RAISE_ERRORS", "RESPECT_GPC", "RESPECT_DNT"):
        _check_bool(key, value)
        return value
    if key == "BATCH_SIZE":
        _check_number(key, value, minimum=1, maximum=API_MAX_BATCH_SIZE, integer=True)
        return value
    if key == "MAX_BATCH_BYTES":
        _check_number(key, value, minimum=1024, maximum=API_MAX_BATCH_BYTES, integer=True)
        return value
    if key in ("TRANSACTION_BATCH_SIZE", "AI_BATCH_SIZE", "MAX_ATTEMPTS", "BEACON_MAX_ITEMS"):
        _check_number(key, value, minimum=1, integer=True)
        return value
    if key == "BEACON_MAX_BYTES":
        _check_number(key, value, minimum=256, integer=True)
        return value
    if key in ("LEASE_SECONDS", "TOKEN_LIFETIME"):
        _check_number(key, value, minimum=0, strict_min=True)
        return value
    if key in (
        "RETRY_BACKOFF_BASE",
        "RETRY_BACKOFF_MAX",
        "RATE_LIMIT_MAX_WAIT",
        "TOKEN_REFRESH_MARGIN",
        "RETAIN_SENT",
    ):
        _check_number(key, value, minimum=0)
        return value
    if key in ("CLIENT_RESOLVER", "CONSENT"):
        _check_callable_path(key, value)
        return value
    if key == "USER_IDENTIFIERS":
        allowed = ("id", "customId", "uuid", "email")
        if not isinstance(value, Mapping) or not all(
            k in allowed and isinstance(v, str) and v for k, v in value.items()
        ):
            raise SyneriseConfigurationError(
                _fix(
                    key,
                    f"must map Synerise identifiers ({', '.join(allowed)}) to user "
                    f"attribute names, not {value!r}",
                )
            )
        return dict(value)
    if key == "MODEL_EVENTS":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
            raise SyneriseConfigurationError(_fix(key, f"must be a list of dicts, not {value!r}"))
        return list(value)
    if key == "BEACON_ALLOWED_ORIGINS":
        _check_str_list(key, value)
        return list(value)
    if key == "PAGE_VISITS":
        merged = _validate_nested(key, value, PAGE_VISIT_DEFAULTS)
        for sub in (
            "ENABLED",
            "EXCLUDE_BOTS",
            "EXCLUDE_AUTOMATION",
            "ASYNC_COMMIT",
        ):
            if not isinstance(merged[sub], bool):
                raise SyneriseConfigurationError(
                    _fix(f'{key}"]["{sub}', f"must be True or False, not {merged[sub]!r}")
                )
        for sub in ("METHODS", "CONTENT_TYPES", "EXCLUDE_PATHS", "INCLUDE_PATHS"):
            if not isinstance(merged[sub], (list, tuple)) or not all(
                isinstance(v, str) for v in merged[sub]
            ):
                raise SyneriseConfigurationError(
                    _fix(f'{key}"]["{sub}', f"must be a list of strings, not {merged[sub]!r}")
                )
        codes = merged["STATUS_CODES"]
        if not isinstance(codes, (list, tuple)) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in codes
        ):
            raise SyneriseConfigurationError(
                _fix(f'{key}"]["STATUS_CODES', f"must be a list of integers, not {codes!r}")
            )
        _check_callable_path(f'{key}"]["PARAMS', merged["PARAMS"])
        return merged
    if key == "AUTH_EVENTS":
        merged = _validate_nested(key, value, AUTH_EVENT_DEFAULTS)
        for sub, sub_value in merged.items():
            if not isinstance(sub_value, bool):
                raise SyneriseConfigurationError(
                    _fix(f'{key}"]["{sub}', f"must be True or False, not {sub_value!r}")
                )
        return merged
    return value  # pragma: no cover - every key in DEFAULTS is handled above


class SyneriseSettings:
    """Lazy, validated view of ``settings.SYNERISE``.

    Attribute access returns the user's value or the default; values are
    validated once and cached until :meth:`reload`. Unknown attribute names
    and unknown keys in the user's dict raise
    :class:`~django_synerise.exceptions.SyneriseConfigurationError`.
    """

    def __init__(self, defaults: Mapping[str, Any] | None = None) -> None:
        self._defaults = dict(defaults or DEFAULTS)
        self._cache: dict[str, Any] = {}
        self._user: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def user_settings(self) -> dict[str, Any]:
        """The ``SYNERISE`` dict as written in settings, with renamed keys migrated."""
        if self._user is None:
            raw = getattr(settings, SETTING_NAME, {})
            if raw is None:
                raw = {}
            if not isinstance(raw, Mapping):
                raise SyneriseConfigurationError(
                    f"SYNERISE must be a dict, not {type(raw).__name__}. "
                    'Set SYNERISE = {"API_KEY": ...} in your Django settings.'
                )
            user = dict(raw)
            for old, new in RENAMED_KEYS.items():
                if old in user:
                    warn_renamed_key(old, new)
                    user.setdefault(new, user.pop(old))
            unknown = sorted(set(user) - set(self._defaults))
            if unknown:
                raise SyneriseConfigurationError(
                    f"Unknown key(s) in SYNERISE: {', '.join(unknown)}. "
                    f"Valid keys are: {', '.join(sorted(self._defaults))}."
                )
            self._user = user
        return self._user

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._defaults:
            raise SyneriseConfigurationError(
                f"Unknown SYNERISE setting {name!r}. "
                f"Valid keys are: {', '.join(sorted(self._defaults))}."
            )
        try:
            return self._cache[name]
        except KeyError:
            pass
        value = self.user_settings.get(name, self._defaults[name])
        value = _validate(name, copy.deepcopy(value) if name in _NESTED else value)
        with self._lock:
            self._cache[name] = value
        return value

    def validate_all(self) -> None:
        """Read and validate every key now (system checks call this)."""
        for name in self._defaults:
            getattr(self, name)

    def import_callable(self, name: str, value: Any) -> Callable[..., Any] | None:
        """Resolve a dotted-path setting to a callable; ``None`` stays ``None``."""
        if value is None or callable(value):
            return value  # type: ignore[no-any-return]
        try:
            func = import_string(value)
        except ImportError as err:
            raise SyneriseConfigurationError(
                _fix(name, f"names {value!r}, which cannot be imported ({err})")
            ) from err
        if not callable(func):
            raise SyneriseConfigurationError(_fix(name, f"names {value!r}, which is not callable"))
        return func  # type: ignore[no-any-return]

    def reload(self) -> None:
        """Forget cached values; the next access reads ``settings.SYNERISE`` again."""
        with self._lock:
            self._cache = {}
            self._user = None


def warn_renamed_key(old: str, new: str) -> None:
    """Warn that ``SYNERISE[old]`` is deprecated in favour of ``SYNERISE[new]``."""
    warnings.warn(
        f'SYNERISE["{old}"] is deprecated and will be removed in the next minor release; '
        f'rename it to SYNERISE["{new}"].',
        DeprecationWarning,
        stacklevel=4,
    )


#: The settings object the whole package reads.
synerise_settings = SyneriseSettings()


@receiver(setting_changed)
def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        synerise_settings.reload()
