"""Template library ``synerise``: tracking code, beacon script, recommendation attributes.

Load it with ``{% load synerise %}``:

``{% synerise_tracking_code %}``
    Synerise's JS tracker with ``SYNERISE["TRACKER_KEY"]``, loaded from
    ``SYNERISE["TRACKER_SCRIPT_HOST"]``. Keyword arguments become ``SR.init()``
    options: ``{% synerise_tracking_code customPageVisit=True %}``. Renders
    nothing (and logs a warning) without a tracker key.
``{% synerise_beacon_script %}``
    ``django_synerise/beacon.js``, configured for ``SYNERISE["BEACON_MODE"]``.
    Renders nothing when ``SYNERISE["ENABLED"]`` is false, and nothing (with a
    warning) when it cannot work: no ``django_synerise.urls`` in first-party
    mode, no tracker key in direct mode.
``{% synerise_recommendation_frame correlation_id campaign_id=... %}``
    Attributes for a recommendation frame's container; the frame's items are
    the elements inside it marked with ``{% synerise_recommendation_item item_id %}``.
``{% synerise_search_results correlation_id search_type="autocomplete" %}`` and ``{% synerise_search_item item_id position %}``
    The same for search results (``item.search.click``, 1-based position;
    ``search_type`` defaults to ``"full-text-search"``).

Ids may be strings, lazy strings, integers, ``Decimal`` or ``uuid.UUID``
values (rendered with ``str()``). Every value is HTML-escaped. A missing
(``None``, blank) or unusable correlation or item id renders nothing
and logs a warning on the ``django_synerise.templatetags`` logger: the page
still renders, only its beacons are lost. Every ``<script>`` carries the
request's CSP nonce (``request.csp_nonce`` as set by django-csp, or the
``csp_nonce`` context variable of Django's own CSP support); no tag needs
``'unsafe-inline'``.
"""

from __future__ import annotations

import json
import logging
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from django import template
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from ..conf import synerise_settings
from ..endpoints import AI_EVENTS
from ..events import AI_ID_MAX_LENGTH, SEARCH_TYPES
from ..factory import send_options
from ..identity import may_track

register = template.Library()

logger = logging.getLogger("django_synerise.templatetags")

#: Longest correlation, campaign or item id: the AI events' own limit.
MAX_ID_LENGTH = AI_ID_MAX_LENGTH

_EMPTY = mark_safe("")

# Values whose str() is the id they stand for (bool, an int, is refused on its own).
_ID_TYPES = (str, Promise, int, Decimal, uuid.UUID)


def _may_track(context: template.Context) -> bool:
    # Without a request in the context (no request context processor) the tag
    # cannot ask: it renders as before, and the server-side producers still gate.
    request = context.get("request")
    return request is None or may_track(request)


def _nonce(context: template.Context) -> str | None:
    request = context.get("request")
    nonce = getattr(request, "csp_nonce", None) if request is not None else None
    if not nonce:
        nonce = context.get("csp_nonce")
    return str(nonce) if nonce else None


def _clean_id(tag: str, name: str, value: Any) -> str | None:
    """``value`` as an id string, or ``None`` (with a warning) when it cannot be one.

    Strings, lazy strings, integers, finite ``Decimal`` values and
    ``uuid.UUID`` (a ``UUIDField`` primary key) are turned into text with
    ``str()``; ``None``, booleans and anything else (a float, a model instance,
    a list) are refused rather than guessed at. The result is a plain ``str``,
    never a ``SafeString``, so ``format_html`` always escapes it.
    """
    usable = isinstance(value, _ID_TYPES) and not isinstance(value, bool)
    if usable and (not isinstance(value, Decimal) or value.is_finite()):
        value = str.__str__(str(value))
    if not isinstance(value, str) or not value.strip():
        logger.warning("{%% %s %%} rendered nothing: %s is missing (got %r)", tag, name, value)
        return None
    if len(value) > MAX_ID_LENGTH:
        logger.warning(
            "{%% %s %%} rendered nothing: %s is longer than %d characters",
            tag,
            name,
            MAX_ID_LENGTH,
        )
        return None
    return value


_PAGE_VISIT_MIDDLEWARE = "django_synerise.middleware.PageVisitMiddleware"


def server_records_page_visits() -> bool:
    """Whether ``PageVisitMiddleware`` records page visits on this site.

    True when the middleware is in ``settings.MIDDLEWARE`` and neither
    ``SYNERISE["ENABLED"]`` nor ``SYNERISE["PAGE_VISITS"]["ENABLED"]`` is false.
    """
    if _PAGE_VISIT_MIDDLEWARE not in getattr(settings, "MIDDLEWARE", ()):
        return False
    return bool(synerise_settings.ENABLED and synerise_settings.PAGE_VISITS.get("ENABLED", True))


@register.simple_tag(takes_context=True)
def synerise_tracking_code(context: template.Context, **options: Any) -> SafeString:
    """Synerise's JS tracker snippet; keyword arguments are passed to ``SR.init()``.

    One source of page visits per page: when ``PageVisitMiddleware`` records
    them (:func:`server_records_page_visits`), the tracker is initialised with
    ``customPageVisit: true``, which stops it sending its own ``page.visit``
    on load (Synerise's Sylius plugin exposes the same option). Pass
    ``customPageVisit=False`` to have the tracker count visits as well, or
    ``customPageVisit=True`` to silence it without the middleware.

    Renders nothing, and logs a warning, when ``SYNERISE["TRACKER_KEY"]`` is
    not set (system checks cannot see which templates use the tag). Renders
    nothing for a visitor who may not be tracked
    (:func:`~django_synerise.identity.may_track` of the context's ``request``):
    the tracker would otherwise set its cookie and send events from the browser.
    """
    if not _may_track(context):
        return _EMPTY
    tracker_key = synerise_settings.TRACKER_KEY
    if not tracker_key:
        logger.warning(
            '{%% synerise_tracking_code %%} rendered nothing: SYNERISE["TRACKER_KEY"] is not set'
        )
        return _EMPTY
    host = str(synerise_settings.TRACKER_SCRIPT_HOST).strip("/")
    if "customPageVisit" not in options and server_records_page_visits():
        options["customPageVisit"] = True
    return mark_safe(  # noqa: S308  (render_to_string returns escaped HTML)
        render_to_string(
            "django_synerise/tracking_code.html",
            {
                "nonce": _nonce(context),
                "tracker_key": tracker_key,
                "script_url": f"https://{host}/synerise-javascript-sdk.min.js",
                "options": json.dumps(options, cls=DjangoJSONEncoder),
            },
        )
    )


@register.simple_tag(takes_context=True)
def synerise_beacon_script(context: template.Context) -> SafeString:
    """The ``<script>`` element that loads ``beacon.js``, configured from the settings.

    First-party mode posts to ``django_synerise:beacon``; direct mode posts to
    Synerise's AI events API with the tracker key (a public key: the tracking
    code shows it to every visitor too). Nothing for a visitor who may not be
    tracked (:func:`~django_synerise.identity.may_track`).
    """
    if not synerise_settings.ENABLED or not _may_track(context):
        return _EMPTY
    mode = synerise_settings.BEACON_MODE
    ai_api = synerise_settings.AI_EVENTS_API
    if mode == "direct":
        tracker_key = synerise_settings.TRACKER_KEY
        if not tracker_key:
            logger.warning(
                "{% synerise_beacon_script %} rendered nothing: BEACON_MODE is "
                '"direct" but SYNERISE["TRACKER_KEY"] is not set'
            )
            return _EMPTY
        path = AI_EVENTS.url_path(send_options())
        endpoint = f"{synerise_settings.API_BASE_URL}{path}?token={quote(tracker_key)}"
    else:
        try:
            endpoint = reverse("django_synerise:beacon")
        except NoReverseMatch:
            logger.warning(
                "{% synerise_beacon_script %} rendered nothing: the beacon endpoint has no "
                'URL. Add path("synerise/", include("django_synerise.urls")) to your '
                'URLconf, or set SYNERISE["BEACON_MODE"] = "direct"'
            )
            return _EMPTY
    return mark_safe(  # noqa: S308  (render_to_string returns escaped HTML)
        render_to_string(
            "django_synerise/beacon_script.html",
            {
                "src": static("django_synerise/beacon.js"),
                "nonce": _nonce(context),
                "mode": mode,
                "endpoint": endpoint,
                "max_items": synerise_settings.BEACON_MAX_ITEMS,
                "ai_api": ai_api,
                "timestamp_format": synerise_settings.AI_TIMESTAMP_FORMAT,
            },
        )
    )


@register.simple_tag
def synerise_recommendation_frame(correlation_id: Any, campaign_id: Any = None) -> SafeString:
    """Attributes for a recommendation frame's container element.

    ``<div {% synerise_recommendation_frame rec.correlation_id campaign_id=rec.campaign %}>``.
    ``beacon.js`` sends one ``recommendation.view`` when half of the frame is
    visible and a ``recommendation.click`` when one of its items is clicked.
    """
    tag = "synerise_recommendation_frame"
    correlation = _clean_id(tag, "correlation_id", correlation_id)
    if correlation is None:
        return _EMPTY
    html = format_html(
        'data-synerise-frame="recommendation" data-synerise-correlation-id="{}"', correlation
    )
    if campaign_id not in (None, ""):
        campaign = _clean_id(tag, "campaign_id", campaign_id)
        if campaign is not None:
            html = format_html('{} data-synerise-campaign-id="{}"', html, campaign)
    return html


@register.simple_tag
def synerise_recommendation_item(item_id: Any) -> SafeString:
    """Attribute for one item (usually its link) inside a recommendation frame."""
    item = _clean_id("synerise_recommendation_item", "item_id", item_id)
    if item is None:
        return _EMPTY
    return format_html('data-synerise-item="{}"', item)


@register.simple_tag
def synerise_search_results(correlation_id: Any, search_type: str = SEARCH_TYPES[0]) -> SafeString:
    """Attributes for the container of search results (``item.search.click``; no view event).

    ``search_type`` is ``"full-text-search"`` (a results page, the default) or
    ``"autocomplete"`` (suggestions while typing); an unknown one renders
    nothing and logs a warning.
    """
    tag = "synerise_search_results"
    correlation = _clean_id(tag, "correlation_id", correlation_id)
    if correlation is None:
        return _EMPTY
    if search_type not in SEARCH_TYPES:
        logger.warning(
            "{%% %s %%} rendered nothing: search_type must be one of %s (got %r)",
            tag,
            ", ".join(SEARCH_TYPES),
            search_type,
        )
        return _EMPTY
    html = format_html(
        'data-synerise-frame="search" data-synerise-correlation-id="{}"', correlation
    )
    if search_type != SEARCH_TYPES[0]:
        # beacon.js sends the default, full-text-search, when the attribute is absent.
        html = format_html('{} data-synerise-search-type="{}"', html, search_type)
    return html


@register.simple_tag
def synerise_search_item(item_id: Any, position: Any) -> SafeString:
    """Attributes for one search result: its item id and 1-based ``position``.

    ``{% synerise_search_item hit.id forloop.counter %}``.
    """
    tag = "synerise_search_item"
    item = _clean_id(tag, "item_id", item_id)
    if item is None:
        return _EMPTY
    try:
        number = int(position)
    except (TypeError, ValueError):
        number = 0
    if isinstance(position, bool) or number < 1:
        logger.warning(
            "{%% %s %%} rendered nothing: position must be a positive integer (got %r)",
            tag,
            position,
        )
        return _EMPTY
    return format_html('data-synerise-item="{}" data-synerise-position="{}"', item, number)
