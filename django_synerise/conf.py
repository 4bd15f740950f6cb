"""The ``SYNERISE`` settings dict: one table of settings, read lazily.

Everything django-synerise can be told lives in one dict in ``settings.py``::

    SYNERISE = {
        "API_KEY": env("SYNERISE_API_KEY"),
        "TRACKER_KEY": env("SYNERISE_TRACKER_KEY"),
    }

Each setting is one row of :data:`SETTINGS`: its default, the rule its value
must follow and a one-line doc; ``PAGE_VISITS`` and ``AUTH_EVENTS`` are dicts
whose keys are rows of sub-tables of the same shape. Validation, the
``synerise.E000`` system check and the configuration reference
(``docs/configuration.md``, written by ``python -m django_synerise.conf``) all
come from the table, so a new setting is one new row (then regenerate the page).

Read settings through :data:`synerise_settings`: values are read on attribute
access, validated the first time, and reloaded when ``override_settings``
changes ``SYNERISE``. Unknown names raise
:class:`~django_synerise.exceptions.SyneriseConfigurationError` listing the
valid ones. Modules that cache values derived from settings register a reset
with :func:`on_setting_changed` (the package's one ``setting_changed`` receiver).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .endpoints import API_MAX_BYTES, API_MAX_ITEMS, setting_limits
from .exceptions import SyneriseConfigurationError

__all__ = [
    "AUTH_EVENT_SETTINGS",
    "BEACON_THROTTLE_DRF_KEY",
    "BEACON_THROTTLE_SCOPE",
    "DEFAULTS",
    "PAGE_VISIT_SETTINGS",
    "SETTINGS",
    "Setting",
    "SyneriseSettings",
    "credentials_message",
    "missing_credentials",
    "on_setting_changed",
    "parse_throttle_rate",
    "render_reference",
    "synerise_settings",
]

SETTING_NAME = "SYNERISE"


def label(*path: str) -> str:
    """How messages name a setting: ``SYNERISE["PAGE_VISITS"]["METHODS"]``."""
    return SETTING_NAME + "".join(f'["{key}"]' for key in path)


def _refuse(name: str, hint: str) -> SyneriseConfigurationError:
    return SyneriseConfigurationError(
        f"{name} {hint}. Set it in the SYNERISE dict of your Django settings."
    )


def _is_number(value: Any) -> bool:
    # NaN and infinity are floats too, but no delay or size can be either.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Rules --------------------------------------------------------------------------------
# A rule is called with the setting's label and the user's value; it returns the
# value normalised or raises SyneriseConfigurationError naming the label. ``accepts``
# is the reference page's "accepts" column.


@dataclass(frozen=True)
class Text:
    """A string; with ``optional``, ``None`` or ``""`` mean "not set" (read as ``None``).

    ``secret``: an error names the value's type, never the value (a key put in a
    tuple by a stray comma must not end up in a log or a traceback).
    """

    optional: bool = True
    secret: bool = False

    @property
    def accepts(self) -> str:
        return "string or `None`" if self.optional else "non-empty string"

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not isinstance(value, str) or (not self.optional and not value):
            kind = "a string or None" if self.optional else "a non-empty string"
            shown = f"a {type(value).__name__} (value hidden)" if self.secret else repr(value)
            raise _refuse(name, f"must be {kind}, not {shown}")
        return value or None


@dataclass(frozen=True)
class Pattern:
    """A string matching ``regex`` in full."""

    regex: str
    accepts: str

    def __call__(self, name: str, value: Any) -> Any:
        if not isinstance(value, str) or not re.fullmatch(self.regex, value):
            raise _refuse(name, f"must be a {self.accepts}, not {value!r}")
        return value


@dataclass(frozen=True)
class Url:
    """An ``http(s)://`` URL; the trailing slash is dropped."""

    accepts: str = "`https://` URL"

    def __call__(self, name: str, value: Any) -> Any:
        Text(optional=False)(name, value)
        if not value.startswith(("http://", "https://")):
            raise _refuse(
                name, f"must start with https:// (or http:// for a local stand-in), not {value!r}"
            )
        return value.rstrip("/")


@dataclass(frozen=True)
class Choice:
    """One of a few strings."""

    choices: tuple[str, ...]

    @property
    def accepts(self) -> str:
        return " or ".join(f'`"{choice}"`' for choice in self.choices)

    def __call__(self, name: str, value: Any) -> Any:
        if value not in self.choices:
            allowed = ", ".join(repr(choice) for choice in self.choices)
            raise _refuse(name, f"must be one of {allowed}, not {value!r}")
        return value


@dataclass(frozen=True)
class Boolean:
    accepts: str = "`True` or `False`"

    def __call__(self, name: str, value: Any) -> Any:
        if not isinstance(value, bool):
            raise _refuse(name, f"must be True or False, not {value!r}")
        return value


@dataclass(frozen=True)
class Number:
    """A finite number (``integer``: an ``int``) within bounds.

    ``maximum`` may be a function, read when a value is checked: Synerise's limits
    live in the endpoint table.
    """

    minimum: float = 0
    maximum: float | Callable[[], float | None] | None = None
    integer: bool = False
    above_minimum: bool = False

    def _maximum(self) -> float | None:
        return self.maximum() if callable(self.maximum) else self.maximum

    @property
    def accepts(self) -> str:
        kind = "integer" if self.integer else "number"
        low = f"> {self.minimum}" if self.above_minimum else f">= {self.minimum}"
        high = self._maximum()
        return f"{kind} {low}" + (f", at most {high}" if high is not None else "")

    def __call__(self, name: str, value: Any) -> Any:
        kind = "an integer" if self.integer else "a number"
        if not _is_number(value) or (self.integer and not isinstance(value, int)):
            raise _refuse(name, f"must be {kind}, not {value!r}")
        if value < self.minimum or (self.above_minimum and value == self.minimum):
            op = ">" if self.above_minimum else ">="
            raise _refuse(name, f"must be {op} {self.minimum}, not {value!r}")
        high = self._maximum()
        if high is not None and value > high:
            raise _refuse(name, f"must be at most {high} (Synerise's limit), not {value!r}")
        return value


@dataclass(frozen=True)
class ListOf:
    """A list (or tuple) of ``item`` values; read as a list."""

    item: type
    accepts: str = "list of strings"

    def __call__(self, name: str, value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, self.item) and not isinstance(v, bool) for v in value
        ):
            raise _refuse(name, f"must be a {self.accepts}, not {value!r}")
        return list(value)


@dataclass(frozen=True)
class DottedPath:
    """A callable or the dotted path to one (imported on first use), or ``None``."""

    accepts: str = "dotted path, callable or `None`"

    def __call__(self, name: str, value: Any) -> Any:
        if value is not None and not callable(value) and not isinstance(value, str):
            raise _refuse(
                name, f"must be a dotted path to a callable, a callable or None, not {value!r}"
            )
        return value


@dataclass(frozen=True)
class Rule:
    """A one-off rule: ``check(name, value)`` returns the value or raises."""

    check: Callable[[str, Any], Any]
    accepts: str

    def __call__(self, name: str, value: Any) -> Any:
        return self.check(name, value)


@dataclass(frozen=True)
class Setting:
    """One row of a settings table: default, rule and one-line doc.

    A row whose ``table`` is set is a dict of its own rows (``PAGE_VISITS``); its
    default is theirs.
    """

    default: Any
    rule: Callable[[str, Any], Any]
    doc: str
    table: Mapping[str, Setting] | None = field(default=None, repr=False)

    @property
    def accepts(self) -> str:
        return str(getattr(self.rule, "accepts", ""))


@dataclass(frozen=True)
class Table:
    """A dict whose keys are the rows of ``rows``; missing keys take their defaults."""

    rows: Mapping[str, Setting]
    accepts: str = "dict (keys below)"

    def __call__(self, name: str, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _refuse(name, f"must be a dict, not {value!r}")
        unknown = sorted(set(value) - set(self.rows))
        if unknown:
            raise SyneriseConfigurationError(
                f"Unknown key(s) in {name}: {', '.join(map(str, unknown))}. "
                f"Valid keys are: {', '.join(sorted(self.rows))}."
            )
        merged = {}
        for key, row in self.rows.items():
            raw = value[key] if key in value else copy.deepcopy(row.default)
            merged[key] = row.rule(f'{name}["{key}"]', raw)
        return merged


def nested(rows: Mapping[str, Setting], doc: str) -> Setting:
    """The row of a dict setting whose keys are ``rows``."""
    default = {key: row.default for key, row in rows.items()}
    return Setting(default, Table(rows), doc, table=rows)


# One-off rules --------------------------------------------------------------------------


def _timeout(name: str, value: Any) -> tuple[float, float]:
    if _is_number(value) and value > 0:
        return (float(value), float(value))
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(_is_number(v) and v > 0 for v in value)
    ):
        return (float(value[0]), float(value[1]))
    raise _refuse(name, f"must be a positive number or a (connect, read) pair, not {value!r}")


#: Seconds per period, by the period's first letter: how DRF's ``parse_rate`` reads
#: a rate ("5/hours" is five an hour).
THROTTLE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

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


def _throttle_rate(name: str, value: Any) -> Any:
    parse_throttle_rate(name, value)
    return value


def _throttle_rate_or_none(name: str, value: Any) -> Any:
    return None if value is None else _throttle_rate(name, value)


def _proxies(name: str, value: Any) -> Any:
    return None if value is None else Number(integer=True)(name, value)


def _max_pending(name: str, value: Any) -> Any:
    return None if value is None else Number(minimum=1, integer=True)(name, value)


_IDENTIFIERS = ("id", "customId", "uuid", "email")


def _user_identifiers(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        k in _IDENTIFIERS and isinstance(v, str) and v for k, v in value.items()
    ):
        raise _refuse(
            name,
            f"must map Synerise identifiers ({', '.join(_IDENTIFIERS)}) to user "
            f"attribute names, not {value!r}",
        )
    return dict(value)


def _uuid(name: str, value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as err:
        raise _refuse(name, f"must be a UUID such as str(uuid.uuid4()), not {value!r}") from err


@dataclass(frozen=True)
class ApiLimit:
    """Synerise's own limit for a setting, as the endpoint table states it (or ``None``)."""

    key: str

    def __call__(self) -> float | None:
        return setting_limits().get(self.key)


# The tables ---------------------------------------------------------------------------
# Add a setting as one row in the section where it belongs, then run
# ``python -m django_synerise.conf docs/configuration.md``.

PAGE_VISIT_SETTINGS: dict[str, Setting] = {
    "ENABLED": Setting(True, Boolean(), "Record a `page.visit` event for matching responses."),
    "METHODS": Setting(["GET"], ListOf(str), "HTTP methods whose responses are recorded."),
    "STATUS_CODES": Setting(
        [200], ListOf(int, "list of integers"), "Response status codes that are recorded."
    ),
    "CONTENT_TYPES": Setting(
        ["text/html"], ListOf(str), 'Response media types recorded (`"text/*"` matches a family).'
    ),
    "EXCLUDE_PATHS": Setting(
        [], ListOf(str), "Path regexes never recorded (admin, static and media always are)."
    ),
    "INCLUDE_PATHS": Setting(
        [], ListOf(str), "Path regexes recorded; empty: every path not excluded."
    ),
    "EXCLUDE_BOTS": Setting(
        True, Boolean(), "Skip crawlers, monitors, link previewers and scanners."
    ),
    "EXCLUDE_AUTOMATION": Setting(
        False, Boolean(), "Skip HTTP libraries and browser automation (`curl`, `HeadlessChrome`)."
    ),
    "PARAMS": Setting(
        None, DottedPath(), "`f(request, response) -> dict` of extra event params, or `None`."
    ),
    "ASYNC_COMMIT": Setting(
        False,
        Boolean(),
        "PostgreSQL: a page visit's commit does not wait for the disk "
        "(see [Page visits](page-visits.md)).",
    ),
    "THROTTLE_RATE": Setting(
        "60/min",
        Rule(_throttle_rate_or_none, "DRF rate (`60/min`) or `None`"),
        "Page visits written per client address (see [Privacy](privacy.md)); `None`: no limit.",
    ),
    "KEEP_QUERY_PARAMS": Setting(
        [],
        ListOf(str),
        "Query parameters kept in `url` and `referrer` besides the UTM ones; "
        "all others are dropped.",
    ),
    "MASK_PATHS": Setting(
        [],
        ListOf(str),
        "Path regexes whose matches (or their groups) are reported as `*`.",
    ),
}

AUTH_EVENT_SETTINGS: dict[str, Setting] = {
    "LOGGED_IN": Setting(True, Boolean(), "Send `client.login` when a user logs in."),
    "LOGGED_OUT": Setting(True, Boolean(), "Send `client.logout` when a user logs out."),
    "REGISTERED": Setting(
        True, Boolean(), "Send `client.register` from `hooks.track_registration`."
    ),
}

SECTIONS: dict[str, dict[str, Setting]] = {
    "Connection and authentication": {
        "API_BASE_URL": Setting(
            "https://api.synerise.com",
            Url(),
            "Synerise API host of your region (US: `https://api.azu.synerise.com`, "
            "GCP: `https://api.geb.synerise.com`).",
        ),
        "API_KEY": Setting(
            None, Text(secret=True), 'Workspace API key: logs in (`AUTH="jwt"`) or Basic auth.'
        ),
        "AUTH": Setting(
            "jwt",
            Choice(("jwt", "basic")),
            '`"jwt"`: log in with the API key and send the token; `"basic"`: HTTP Basic '
            "with `WORKSPACE_GUID` and `API_KEY`.",
        ),
        "WORKSPACE_GUID": Setting(None, Text(), 'Needed when `AUTH="basic"`.'),
        "TRACKER_KEY": Setting(
            None,
            Text(secret=True),
            "Web tracker key: the JS tracking code, and the `token` of recommendation (AI) events.",
        ),
        "API_VERSION": Setting(
            "4.4",
            Pattern(r"[0-9]+(?:\.[0-9]+)*", 'version of digits and dots, such as "4.4"'),
            "Sent as the `Api-Version` header.",
        ),
        "TIMEOUT": Setting(
            (3.05, 10.0),
            Rule(_timeout, "number or `(connect, read)` pair"),
            "Seconds per HTTP request; a single number sets both.",
        ),
        "TOKEN_CACHE": Setting(
            "default",
            Text(optional=False),
            "Django cache alias where every process shares the workspace token.",
        ),
        "TOKEN_REFRESH_MARGIN": Setting(
            60, Number(), "Seconds before the token's `exp` at which it is renewed."
        ),
        "TOKEN_LIFETIME": Setting(
            3550,
            Number(above_minimum=True),
            "Seconds a token is trusted when it carries no readable `exp`.",
        ),
        "USER_AGENT": Setting(
            None, Text(), "`User-Agent` header (default `django-synerise/<version>`)."
        ),
    },
    "Batching and delivery": {
        "ENABLED": Setting(True, Boolean(), "`False` turns every producer into a no-op."),
        "BATCH_SIZE": Setting(
            API_MAX_ITEMS,
            Number(minimum=1, maximum=ApiLimit("BATCH_SIZE"), integer=True),
            "Events per `/v4/events/batch` request.",
        ),
        "MAX_BATCH_BYTES": Setting(
            API_MAX_BYTES,
            Number(minimum=1024, maximum=ApiLimit("MAX_BATCH_BYTES"), integer=True),
            "Bytes per batch request body.",
        ),
        "PROFILE_BATCH_SIZE": Setting(
            500,
            Number(minimum=1, maximum=ApiLimit("PROFILE_BATCH_SIZE"), integer=True),
            "Profile records per `/v4/clients/batch` request; a login's merge record holds "
            "two profiles, so at most 500 keep a request within Synerise's 1000.",
        ),
        "CATALOG_BATCH_SIZE": Setting(
            1000,
            Number(minimum=1, maximum=ApiLimit("CATALOG_BATCH_SIZE"), integer=True),
            "Items per `/catalogs/bags/{catalogId}/items/batch` request (limit not published).",
        ),
        "TRANSACTION_BATCH_SIZE": Setting(
            100,
            Number(minimum=1, maximum=ApiLimit("TRANSACTION_BATCH_SIZE"), integer=True),
            "Transactions per `/v4/transactions/batch` request (limit not published).",
        ),
        "AI_BATCH_SIZE": Setting(
            100,
            Number(minimum=1, maximum=ApiLimit("AI_BATCH_SIZE"), integer=True),
            "Events per AI-events batch request (limit not published).",
        ),
        "AI_EVENTS_API": Setting(
            "ai-compat",
            Choice(("events-v1", "ai-compat")),
            '`"ai-compat"`: `/v4/events/ai-compat/batch` (documented today); `"events-v1"`: '
            "`/events/v1/batch`. Read when sending: pending events follow a change.",
        ),
        "AI_TIMESTAMP_FORMAT": Setting(
            "unix-ms",
            Choice(("unix-ms", "iso8601")),
            "`eventTimestamp` of AI events on `events-v1`: integer milliseconds or ISO 8601 "
            "(`ai-compat` always takes ISO 8601).",
        ),
        "MAX_ATTEMPTS": Setting(
            16,
            Number(minimum=1, integer=True),
            "Failed attempts after which an event goes `dead` (with the default backoff, about "
            "4.5 hours of Synerise failing on average, 9 at most).",
        ),
        "RETRY_BACKOFF_BASE": Setting(
            30.0, Number(), "Seconds; the n-th retry waits up to `BASE * 2**(n-1)`."
        ),
        "RETRY_BACKOFF_MAX": Setting(
            3600.0, Number(), "Upper bound of one retry delay, in seconds."
        ),
        "RATE_LIMIT_MAX_WAIT": Setting(
            60.0, Number(), "Longest pause a flush pass takes for a `Retry-After`."
        ),
        "OUTAGE_FAILURES": Setting(
            3,
            Number(minimum=0, integer=True),
            "Failed requests in a row (no answer, 5xx, wrong endpoint) after which a flush "
            "pass stops and leaves the rest due, no attempt charged; `0` never stops.",
        ),
        "OUTAGE_BACKOFF_MAX": Setting(
            300.0,
            Number(above_minimum=True),
            "Longest wait, in seconds, between passes of `synerise_flush --loop` while "
            "Synerise is down (the wait doubles from `--interval`).",
        ),
        "LEASE_SECONDS": Setting(
            120,
            Number(above_minimum=True),
            "Seconds claimed rows stay reserved for a worker (a killed worker's rows then "
            "become due).",
        ),
        "RETAIN_SENT": Setting(
            0,
            Number(),
            "Days sent rows are kept; `0` deletes them as soon as sent. Keeping them is an "
            "opt-in: it made a burst's flush 2.5 times slower (see Performance).",
        ),
        "DATABASE_ALIAS": Setting(
            None, Text(), "Database of the outbox table; `None` follows your routers."
        ),
        "TRANSACTION_SOURCE": Setting(
            "WEB_DESKTOP",
            Text(optional=False),
            "Default `source` of transactions built by model hooks.",
        ),
    },
    "Producers": {
        "RAISE_ERRORS": Setting(
            False,
            Boolean(),
            "Re-raise errors in middleware, hooks and identity instead of logging them "
            "(set it in your tests).",
        ),
        "CLIENT_RESOLVER": Setting(
            None,
            DottedPath(),
            "`f(request) -> dict | None` replacing the default visitor identity.",
        ),
        "CONSENT": Setting(
            None,
            DottedPath(),
            "`f(request) -> bool`: false, and no producer records anything for this request.",
        ),
        "RESPECT_GPC": Setting(True, Boolean(), "A request with `Sec-GPC: 1` is not tracked."),
        "RESPECT_DNT": Setting(False, Boolean(), "A request with `DNT: 1` is not tracked."),
        "NUM_PROXIES": Setting(
            None,
            Rule(_proxies, "integer >= 0 or `None`"),
            "Proxies in front of Django: rate limits read the client address from "
            "`X-Forwarded-For`; `None`: `REMOTE_ADDR` (unless DRF's `NUM_PROXIES` is set).",
        ),
        "MAX_PENDING": Setting(
            500_000,
            Rule(_max_pending, "integer >= 1 or `None`"),
            "Pending rows above which page visits and beacons are dropped and counted; "
            "`None`: no bound.",
        ),
        "USER_IDENTIFIERS": Setting(
            {"customId": "pk", "email": "email"},
            Rule(
                _user_identifiers,
                "dict: identifier (`id`, `customId`, `uuid`, `email`) to user attribute",
            ),
            "Synerise identifier to user attribute, for logged-in users.",
        ),
        "BEFORE_WRITE": Setting(
            None,
            DottedPath(),
            "`f(record, request) -> record | None` run on every record before it is written; "
            "`None` drops it (see [Tracking](tracking.md)).",
        ),
        "PAGE_VISITS": nested(PAGE_VISIT_SETTINGS, "Page visits recorded by the middleware."),
        "USER_PROFILES": Setting(
            False,
            Boolean(),
            "Keep the user model's profile (identifiers, first and last name) up to date "
            "from user saves (see [Profiles](profiles.md)).",
        ),
        "IDENTITY_MERGE": Setting(
            True,
            Boolean(),
            "At login and sign-up, merge the visitor's anonymous profile into the "
            "customer's and reset the tracker's uuid, as Synerise's plugins do.",
        ),
        "UUID_NAMESPACE": Setting(
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            Rule(_uuid, "a UUID string"),
            "Namespace of the UUIDv5 of a customer's e-mail, their uuid once logged in "
            "(default: RFC 4122's DNS namespace, as the Sylius plugin).",
        ),
        "AUTH_EVENTS": nested(
            AUTH_EVENT_SETTINGS, "Built-in auth events, and `hooks.track_registration`."
        ),
    },
    "Beacons and template tags": {
        "BEACON_MODE": Setting(
            "first-party",
            Choice(("first-party", "direct")),
            '`"first-party"`: browsers post to this site; `"direct"`: straight to Synerise '
            "with the tracker key.",
        ),
        "BEACON_THROTTLE_RATE": Setting(
            "120/min",
            Rule(_throttle_rate, "DRF rate (`120/min`, `5/hours`)"),
            f"Beacon requests per client address; `{BEACON_THROTTLE_DRF_KEY}` wins when set.",
        ),
        "BEACON_MAX_BYTES": Setting(
            16384,
            Number(minimum=256, integer=True),
            "Largest beacon body accepted, in bytes (bigger: 413).",
        ),
        "BEACON_MAX_ITEMS": Setting(
            100, Number(minimum=1, integer=True), "Most item ids in one beacon."
        ),
        "BEACON_ALLOWED_ORIGINS": Setting(
            [],
            ListOf(str),
            "Origins (`https://shop.example`) allowed besides the site's own host.",
        ),
        "TRACKER_SCRIPT_HOST": Setting(
            "web.snrbox.com",
            Text(optional=False),
            "Host of Synerise's JS SDK (US: `web.azu.snrbox.com`, GCP: `web.geb.snrbox.com`).",
        ),
    },
}

#: Every setting, by name.
SETTINGS: dict[str, Setting] = {
    name: row for rows in SECTIONS.values() for name, row in rows.items()
}
#: Every setting's default, by name.
DEFAULTS: dict[str, Any] = {name: row.default for name, row in SETTINGS.items()}
PAGE_VISIT_DEFAULTS: dict[str, Any] = DEFAULTS["PAGE_VISITS"]
AUTH_EVENT_DEFAULTS: dict[str, Any] = DEFAULTS["AUTH_EVENTS"]


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` Did you mean "X"?`` for a close valid name, else ``""``."""
    close = difflib.get_close_matches(name.upper(), list(valid), n=1, cutoff=0.7)
    return f' Did you mean "{close[0]}"?' if close else ""


# Credentials ----------------------------------------------------------------------------


def missing_credentials(auth: str, api_key: str | None, workspace_guid: str | None) -> list[str]:
    """The settings ``auth`` needs to send events that are not set (``[]``: none missing)."""
    needed = {"API_KEY": api_key}
    if auth == "basic":
        needed = {"WORKSPACE_GUID": workspace_guid, **needed}
    return [key for key, value in needed.items() if not value]


def credentials_message(auth: str, missing: list[str]) -> str:
    """Why events cannot be sent without ``missing``, ending with the fix."""
    names = " and ".join(label(key) for key in missing)
    verb = "is" if len(missing) == 1 else "are"
    why = (
        'SYNERISE["AUTH"] is "basic", which needs both WORKSPACE_GUID and API_KEY'
        if auth == "basic"
        else "django-synerise logs in with the workspace API key (Synerise: Settings > API keys)"
    )
    keys = ", ".join(f'"{key}": ...' for key in missing)
    if auth == "basic":
        keys = f'"AUTH": "basic", {keys}'
    return f"{names} {verb} required to send events: {why}. Set SYNERISE = {{{keys}}} in your Django settings."


# The lazy settings object ---------------------------------------------------------------


class SyneriseSettings:
    """Lazy, validated view of ``settings.SYNERISE``.

    Attribute access returns the user's value or the default; values are
    validated once and cached until :meth:`reload`. Unknown attribute names
    and unknown keys in the user's dict raise
    :class:`~django_synerise.exceptions.SyneriseConfigurationError`.
    """

    def __init__(self, table: Mapping[str, Setting] | None = None) -> None:
        self._table = dict(SETTINGS if table is None else table)
        self._cache: dict[str, Any] = {}
        self._user: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def user_settings(self) -> dict[str, Any]:
        """The ``SYNERISE`` dict as written in settings (checked for unknown keys)."""
        if self._user is None:
            raw = getattr(settings, SETTING_NAME, {})
            if raw is None:
                raw = {}
            if not isinstance(raw, Mapping):
                raise SyneriseConfigurationError(
                    f"SYNERISE must be a dict, not {type(raw).__name__}. "
                    'Set SYNERISE = {"API_KEY": ...} in your Django settings.'
                )
            unknown = sorted(map(str, set(raw) - set(self._table)))
            if unknown:
                hints = "".join(did_you_mean(name, self._table) for name in unknown)
                raise SyneriseConfigurationError(
                    f"Unknown key(s) in SYNERISE: {', '.join(unknown)}.{hints} "
                    f"Valid keys are: {', '.join(sorted(self._table))}."
                )
            self._user = dict(raw)
        return self._user

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        row = self._table.get(name)
        if row is None:
            raise SyneriseConfigurationError(
                f"Unknown SYNERISE setting {name!r}.{did_you_mean(name, self._table)} "
                f"Valid keys are: {', '.join(sorted(self._table))}."
            )
        try:
            return self._cache[name]
        except KeyError:
            pass
        user = self.user_settings
        value = row.rule(label(name), user[name] if name in user else copy.deepcopy(row.default))
        with self._lock:
            self._cache[name] = value
        return value

    def validate_all(self) -> None:
        """Read and validate every key now."""
        for name in self._table:
            getattr(self, name)

    def import_callable(self, name: str, value: Any) -> Callable[..., Any] | None:
        """Resolve a dotted-path setting to a callable; ``None`` stays ``None``.

        ``name`` is the key as messages name it inside ``SYNERISE[...]``.
        """
        if value is None or callable(value):
            return value  # type: ignore[no-any-return]
        try:
            func = import_string(value)
        except ImportError as err:
            raise _refuse(
                label(name), f"names {value!r}, which cannot be imported ({err})"
            ) from err
        if not callable(func):
            raise _refuse(label(name), f"names {value!r}, which is not callable")
        return func  # type: ignore[no-any-return]

    def reload(self) -> None:
        """Forget cached values; the next access reads ``settings.SYNERISE`` again."""
        with self._lock:
            self._cache = {}
            self._user = None


#: The settings object the whole package reads.
synerise_settings = SyneriseSettings()


# The one setting_changed receiver ------------------------------------------------------

_resets: dict[tuple[str | None, str, int], tuple[Callable[[], object], frozenset[str] | None]] = {}


def on_setting_changed(
    reset: Callable[[], object], *, settings: Iterable[str] | None = (SETTING_NAME,)
) -> Callable[[], object]:
    """Call ``reset()`` whenever one of ``settings`` changes (``None``: any setting).

    For modules that cache values derived from settings: ``override_settings``
    then reaches them too. Resets run after :data:`synerise_settings` has
    reloaded, in registration order; registering the same function again
    (a re-imported module) replaces it. Returns ``reset``.
    """
    # A bound method is told apart by its object; a function by its qualified name.
    key = (
        getattr(reset, "__module__", None),
        getattr(reset, "__qualname__", repr(reset)),
        id(getattr(reset, "__self__", None)),
    )
    _resets[key] = (reset, None if settings is None else frozenset(settings))
    return reset


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        synerise_settings.reload()
    for reset, names in list(_resets.values()):
        if names is None or setting in names:
            reset()


setting_changed.connect(_on_setting_changed, dispatch_uid="django_synerise.conf")


# The reference page ---------------------------------------------------------------------

_PAGE_HEAD = """\
# Configuration

<!-- Generated from the settings table in django_synerise/conf.py by
     `python -m django_synerise.conf docs/configuration.md`: edit the table, not this page. -->

Everything django-synerise can be told lives in one `SYNERISE` dict in your Django
settings. Every key is optional; values are checked when first read and by
`manage.py check` (a wrong value is reported as `synerise.E000`, naming the key).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _python(value: Any) -> str:
    """``value`` as Python source, strings in double quotes as in a settings file."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(map(_python, value)) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_python, value)) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_python(k)}: {_python(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _row(name: str, row: Setting) -> str:
    return f"| `{name}` | `{_python(row.default)}` | {_cell(row.accepts)} | {_cell(row.doc)} |"


def render_reference() -> str:
    """The Markdown of ``docs/configuration.md``, generated from :data:`SECTIONS`."""
    lines = [_PAGE_HEAD]
    for title, rows in SECTIONS.items():
        lines += [f"## {title}", "", "| Key | Default | Accepts | What it does |"]
        lines.append("|---|---|---|---|")
        for name, row in rows.items():
            if row.table is None:
                lines.append(_row(name, row))
                continue
            # A dict setting: one line per key, each with its own default.
            lines.append(f"| `{name}` | dict | keys below | {_cell(row.doc)} |")
            lines += [_row(f'{name}["{key}"]', sub) for key, sub in row.table.items()]
        lines.append("")
    return "\n".join(lines + _render_checks())


_CHECKS_HEAD = """\
## System checks

`manage.py check` (and every command that runs the checks: `migrate`, `runserver`,
`test` ...) reports these; `manage.py check --tag synerise` runs only them. As with
Django's own security checks, a key that only production needs is an error under
`manage.py check --deploy` (run it in your deployment pipeline) and a warning
otherwise, so a development machine or a CI job needs no production keys: events
wait in the outbox until a key is set.
"""

_CHECKS_SAMPLE = """\
Where nothing is meant to be sent, such as a CI job, silence the warning:

<!-- test: configuration-silence-missing-keys -->
```python
SILENCED_SYSTEM_CHECKS = ["synerise.W004"]
```

or turn the package off there (nothing is written to the outbox):

<!-- test: configuration-disabled -->
```python
SYNERISE = {"ENABLED": False}
```
"""


def _render_checks() -> list[str]:
    from .checks import CHECKS  # checks imports this module

    lines = [_CHECKS_HEAD, "| Id | Level | Reported | Meaning |", "|---|---|---|---|"]
    for check_id, info in CHECKS.items():
        lines.append(f"| `{check_id}` | {info.level} | {info.when} | {_cell(info.meaning)} |")
    return [*lines, "", _CHECKS_SAMPLE]


def main(argv: list[str]) -> int:
    """``python -m django_synerise.conf [PATH]``: write the reference page (or print it)."""
    text = render_reference()
    if len(argv) > 1:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
