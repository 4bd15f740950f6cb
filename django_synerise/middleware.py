"""Page visits: one ``page.visit`` event per page a person looked at.

Add :class:`PageVisitMiddleware` after Django's ``AuthenticationMiddleware``.
It records a response (one outbox row) only when :func:`should_track` lets it
through (the ``SYNERISE["PAGE_VISITS"]`` filters, no database access) and then
:func:`record_page_visit` finds the visitor may be tracked and is identified,
within the rate limit and the backlog cap. It never
changes a response and never breaks one: errors are logged once on
``django_synerise.middleware`` (log record attribute ``synerise_action``) and
swallowed, unless ``SYNERISE["RAISE_ERRORS"]``. WSGI and ASGI alike.

Every filter, what the event carries and what each case costs:
docs/page-visits.md.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

from .bots import is_automation, is_bot
from .conf import on_setting_changed, parse_throttle_rate, synerise_settings
from .events import UTM_PARAMETERS, page_visit
from .exceptions import SyneriseConfigurationError
from .hooks import set_reset_cookie
from .identity import is_admin_request, may_track, resolve_client
from .ratelimit import client_address, hit
from .titles import title_from_response

__all__ = ["PageVisitMiddleware", "get_page_title", "set_page_title"]

logger = logging.getLogger("django_synerise.middleware")

ACTION = "page.visit"
MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 512

_TITLE_ATTRIBUTE = "_synerise_page_title"

Response = HttpResponseBase


def set_page_title(request: HttpRequest, title: str) -> None:
    """Give this request's ``page.visit`` event a ``title`` (e.g. the page's ``<title>``).

    Call it in the view; the middleware reads it after the response is built.
    A later call replaces an earlier one; an empty title sends none.
    """
    setattr(request, _TITLE_ATTRIBUTE, str(title)[:MAX_TITLE_CHARS] if title else None)


def get_page_title(request: HttpRequest) -> str | None:
    """The title set with :func:`set_page_title`, or ``None``."""
    title = getattr(request, _TITLE_ATTRIBUTE, None)
    return title if isinstance(title, str) and title else None


def _compile_any(key: str, patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as err:
            raise SyneriseConfigurationError(
                f'SYNERISE["PAGE_VISITS"]["{key}"] holds an invalid regex {pattern!r}: {err}. '
                "Fix it in the SYNERISE dict of your Django settings."
            ) from err
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns))


def _compile_each(key: str, patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(
        compiled for pattern in patterns if (compiled := _compile_any(key, [pattern])) is not None
    )


def _url_path_prefix(url: str | None) -> str | None:
    # Only prefixes served by this site can be excluded; "/" would exclude everything.
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path == "/":
        return None
    return parts.path


@dataclass(frozen=True)
class _Filters:
    """``PAGE_VISITS`` compiled once per settings reload."""

    enabled: bool
    methods: frozenset[str]
    status_codes: frozenset[int]
    content_types: frozenset[str]
    content_families: tuple[str, ...]
    exclude: re.Pattern[str] | None
    include: re.Pattern[str] | None
    mask: tuple[re.Pattern[str], ...]
    keep_query: frozenset[str]
    throttle: tuple[int, int] | None
    prefixes: tuple[str, ...]
    exclude_bots: bool
    exclude_automation: bool
    params: Any
    async_commit: bool

    @classmethod
    def from_settings(cls) -> _Filters:
        config: Mapping[str, Any] = synerise_settings.PAGE_VISITS
        types = [t.strip().lower() for t in config["CONTENT_TYPES"]]
        prefixes = [
            prefix
            for prefix in (
                _url_path_prefix(getattr(settings, "STATIC_URL", None)),
                _url_path_prefix(getattr(settings, "MEDIA_URL", None)),
            )
            if prefix
        ]
        return cls(
            enabled=bool(synerise_settings.ENABLED and config["ENABLED"]),
            methods=frozenset(m.upper() for m in config["METHODS"]),
            status_codes=frozenset(config["STATUS_CODES"]),
            content_types=frozenset(t for t in types if not t.endswith("/*")),
            content_families=tuple(t[:-1] for t in types if t.endswith("/*")),
            exclude=_compile_any("EXCLUDE_PATHS", config["EXCLUDE_PATHS"]),
            include=_compile_any("INCLUDE_PATHS", config["INCLUDE_PATHS"]),
            mask=_compile_each("MASK_PATHS", config["MASK_PATHS"]),
            keep_query=frozenset((*UTM_PARAMETERS, *config["KEEP_QUERY_PARAMS"])),
            throttle=None
            if config["THROTTLE_RATE"] is None
            else parse_throttle_rate(
                'SYNERISE["PAGE_VISITS"]["THROTTLE_RATE"]', config["THROTTLE_RATE"]
            ),
            prefixes=tuple(prefixes),
            exclude_bots=config["EXCLUDE_BOTS"],
            exclude_automation=config["EXCLUDE_AUTOMATION"],
            params=config["PARAMS"],
            async_commit=config["ASYNC_COMMIT"],
        )


_lock = threading.Lock()
_filters: _Filters | None = None
_skipped_anonymous = itertools.count(1)


def _get_filters() -> _Filters:
    global _filters
    filters = _filters
    if filters is None:
        filters = _Filters.from_settings()
        with _lock:
            _filters = filters
    return filters


def _reset(**kwargs: Any) -> None:
    global _filters
    with _lock:
        _filters = None


# Any setting may matter (SYNERISE, STATIC_URL, MEDIA_URL); recompiling after a change is cheap and rare.
on_setting_changed(_reset, settings=None)


def _media_type_matches(filters: _Filters, response: Response) -> bool:
    media_type = (response.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if media_type in filters.content_types:
        return True
    return any(media_type.startswith(family) for family in filters.content_families)


def _is_background(request: HttpRequest) -> bool:
    """A prefetch, or a fragment fetched by script: not a page the visitor looked at."""
    # META, not request.headers: this runs on every response, and META lookups are
    # several times cheaper than the case-insensitive header mapping.
    meta = request.META
    purpose = (meta.get("HTTP_SEC_PURPOSE") or meta.get("HTTP_PURPOSE") or "").lower()
    if purpose.startswith("prefetch") or meta.get("HTTP_X_MOZ", "").lower() == "prefetch":
        return True
    if meta.get("HTTP_HX_BOOSTED") == "true":
        return False  # htmx-boosted links and forms are navigations
    if meta.get("HTTP_HX_REQUEST") == "true":
        return True
    if meta.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest":
        return True
    # Browsers send "document" (or "iframe") for navigations, "empty" for fetch() and XHR.
    return meta.get("HTTP_SEC_FETCH_DEST") == "empty"


def should_track(request: HttpRequest, response: Response) -> bool:
    """Whether every filter but identity lets this request through. No database access.

    Raises :class:`~django_synerise.exceptions.SyneriseConfigurationError` for
    an invalid ``PAGE_VISITS`` setting.
    """
    filters = _get_filters()
    if not filters.enabled:
        return False
    if (request.method or "").upper() not in filters.methods:
        return False
    if response.status_code not in filters.status_codes:
        return False
    if not _media_type_matches(filters, response):
        return False
    path = request.path
    if any(path.startswith(prefix) for prefix in filters.prefixes):
        return False
    if is_admin_request(request):
        return False
    path_info = request.path_info
    if filters.exclude is not None and filters.exclude.search(path_info):
        return False
    if filters.include is not None and not filters.include.search(path_info):
        return False
    if _is_background(request):
        return False
    meta = request.META
    if filters.exclude_bots or filters.exclude_automation:
        user_agent = meta.get("HTTP_USER_AGENT")
        if filters.exclude_bots and is_bot(user_agent):
            return False
        if filters.exclude_automation and is_automation(user_agent):
            return False
    return True


def _cap(value: str | None, limit: int = MAX_URL_CHARS) -> str | None:
    return value[:limit] if value else None


def _mask_groups(match: re.Match[str]) -> str:
    """The match with each of its (outermost, non-empty) groups replaced by ``*``."""
    text, start = match.group(0), match.start(0)
    spans = sorted(
        (match.start(g) - start, match.end(g) - start)
        for g in range(1, (match.re.groups or 0) + 1)
        if match.start(g) >= 0 and match.end(g) > match.start(g)
    )
    out, last = [], 0
    for begin, end in spans:
        if begin < last:
            continue  # a group nested in one already masked
        out.append(text[last:begin] + "*")
        last = end
    return "".join(out) + text[last:]


def _mask(filters: _Filters, path: str) -> str:
    """``path`` with what ``MASK_PATHS`` matches replaced by ``*`` (its groups, or the match)."""
    for pattern in filters.mask:
        path = pattern.sub(_mask_groups if pattern.groups else "*", path)
    return path


def _clean_query(filters: _Filters, query: str) -> str:
    """Only the UTM parameters and ``KEEP_QUERY_PARAMS``: tokens and e-mails stay home."""
    if not query:
        return ""
    kept = [
        (key, value)
        for key, value in parse_qsl(query, keep_blank_values=True)
        if key in filters.keep_query
    ]
    return urlencode(kept)


def _clean_url(filters: _Filters, url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(
        (
            parts.scheme,
            parts.netloc,
            _mask(filters, parts.path),
            _clean_query(filters, parts.query),
            "",
        )
    )


def clean_referrer(request: HttpRequest) -> str | None:
    """The ``Referer`` as a page visit reports it, or ``None``.

    From another site: only its origin (``https://search.example/``), as
    browsers send it cross-site by default. From this site: cleaned like the
    page's own URL (query reduced to UTM and ``KEEP_QUERY_PARAMS``,
    ``MASK_PATHS`` applied). Anything but an ``http(s)`` URL: ``None``.
    """
    raw = request.META.get("HTTP_REFERER")
    if not raw:
        return None
    try:
        parts = urlsplit(str(raw).strip())
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    origin = f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2].lower()}"
    own = f"{request.scheme}://{request.get_host()}".lower()
    if origin != own:
        return _cap(origin + "/")
    return _cap(_clean_url(_get_filters(), urlunsplit(parts)))


def clean_url(request: HttpRequest) -> str:
    """The page's absolute URL as a page visit reports it: see :func:`clean_referrer`."""
    return _clean_url(_get_filters(), request.build_absolute_uri())[:MAX_URL_CHARS]


def record_page_visit(request: HttpRequest, response: Response, arrived: dt.datetime) -> bool:
    """Resolve the visitor and enqueue the ``page.visit`` event; return whether one was written.

    Synchronous: it may read the session and the user. Errors propagate (the
    middleware decides whether to swallow them).
    """
    if not may_track(request):
        return False
    client = resolve_client(request)
    if not client:
        logger.debug(
            "page.visit skipped for %s: no Synerise identifier (%d skipped since start)",
            request.path,
            next(_skipped_anonymous),
        )
        return False
    filters = _get_filters()
    # After identity: only visits that would be written count against the rate.
    if (
        filters.throttle is not None
        and not hit(ACTION, client_address(request), *filters.throttle).allowed
    ):
        logger.debug("page.visit skipped for %s: over PAGE_VISITS THROTTLE_RATE", request.path)
        return False
    extra: Mapping[str, Any] | None = None
    params_func = synerise_settings.import_callable('PAGE_VISITS"]["PARAMS', filters.params)
    if params_func is not None:
        extra = params_func(request, response)
        if extra is not None and not isinstance(extra, Mapping):
            raise TypeError(
                'SYNERISE["PAGE_VISITS"]["PARAMS"] must return a dict or None, '
                f"not {type(extra).__name__}"
            )
    query = request.GET
    event = page_visit(
        client=client,
        url=clean_url(request),
        path=_mask(filters, request.path)[:MAX_URL_CHARS],
        referrer=clean_referrer(request),
        title=get_page_title(request) or title_from_response(response),
        utm={key: query[key][:MAX_URL_CHARS] for key in UTM_PARAMETERS if query.get(key)},
        user_agent=_cap(request.META.get("HTTP_USER_AGENT")),
        params=extra,
        time=arrived,
    )
    # Imported here: the outbox imports models, which would make merely importing
    # this module fail when the app is not installed (instead of a clear error).
    from . import outbox

    return (
        outbox.enqueue_droppable(event, durable=not filters.async_commit, request=request)
        is not None
    )


def _log_failure(request: HttpRequest) -> None:
    logger.exception(
        "django_synerise could not record a %s event for %s",
        ACTION,
        request.path,
        extra={"synerise_action": ACTION},
    )


class PageVisitMiddleware:
    """Enqueue a ``page.visit`` event for every page a person looked at.

    Works in sync (WSGI) and async (ASGI) stacks; in async mode the identity
    lookup and the write run in a thread through ``sync_to_async``. See the
    module docstring for what is tracked and what it costs.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        if not apps.is_installed("django_synerise"):
            # Fail at start-up with the fix, not on every page with a model error.
            raise ImproperlyConfigured(
                "django_synerise.middleware.PageVisitMiddleware needs django_synerise in "
                'INSTALLED_APPS (and `manage.py migrate`). Add "django_synerise" to '
                "INSTALLED_APPS."
            )
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        arrived = dt.datetime.now(dt.timezone.utc)
        response: Response = self.get_response(request)
        try:
            set_reset_cookie(request, response)
            if should_track(request, response):
                record_page_visit(request, response, arrived)
        except Exception:
            if synerise_settings.RAISE_ERRORS:
                raise
            _log_failure(request)
        return response

    async def __acall__(self, request: HttpRequest) -> Response:
        arrived = dt.datetime.now(dt.timezone.utc)
        response: Response = await self.get_response(request)
        try:
            set_reset_cookie(request, response)
            if should_track(request, response):
                await sync_to_async(record_page_visit)(request, response, arrived)
        except Exception:
            if synerise_settings.RAISE_ERRORS:
                raise
            _log_failure(request)
        return response
