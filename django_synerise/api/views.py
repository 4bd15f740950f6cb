"""The beacon endpoint: ``beacon.js`` posts recommendation and search events here."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .. import outbox
from ..conf import synerise_settings
from ..events import AIEvent
from ..exceptions import EventTooLargeError, InvalidEventError
from ..identity import may_track, resolve_uuid
from .serializers import BeaconSerializer
from .throttling import BeaconRateThrottle

__all__ = ["BeaconView", "SameOriginPermission", "normalize_origin"]

logger = logging.getLogger("django_synerise.api")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ACCEPTED_MEDIA_TYPES = ("application/json", "text/plain", "")


def normalize_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case, default port dropped; ``None`` if not a web origin.

    Works on an ``Origin`` header, a ``Referer`` URL or a configured origin.
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


class SameOriginPermission(BasePermission):
    """Allow a beacon only from this site's own pages, or from ``BEACON_ALLOWED_ORIGINS``.

    The ``Origin`` header decides when it is present (browsers send it on every
    ``POST``, ``sendBeacon`` included); otherwise the ``Referer``'s origin; a
    request with neither is refused. The site's own origin is
    ``request.scheme`` + ``request.get_host()``, as in Django's CSRF check:
    behind a TLS-terminating proxy set ``SECURE_PROXY_SSL_HEADER``.
    """

    message = (
        "Cross-origin beacon refused: the Origin (or Referer) must be this site "
        'or one of SYNERISE["BEACON_ALLOWED_ORIGINS"].'
    )

    def has_permission(self, request: Request, view: APIView) -> bool:
        origin_header = request.headers.get("Origin")
        source = origin_header if origin_header is not None else request.headers.get("Referer")
        origin = normalize_origin(source) if source else None
        allowed = {normalize_origin(f"{request.scheme}://{request.get_host()}")}
        allowed.update(normalize_origin(o) for o in synerise_settings.BEACON_ALLOWED_ORIGINS)
        if origin is not None and origin in allowed:
            return True
        _refusals.note((source or "")[:200])
        return False


class _RefusalLog:
    """One WARNING a minute at most for refused beacons, with how many there were.

    A flood of forged requests must not become a flood of log lines.
    """

    SECONDS = 60.0

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.logged_at = -1e18

    def note(self, source: str) -> None:
        with self.lock:
            self.count += 1
            now = time.monotonic()
            if now - self.logged_at < self.SECONDS:
                return
            count, self.count, self.logged_at = self.count, 0, now
        logger.warning(
            "Refused %d cross-origin beacon(s) since the last report; latest from %r",
            count,
            source,
        )


_refusals = _RefusalLog()


class _ASCIIJSONRenderer(JSONRenderer):
    """JSON with every non-ASCII character escaped.

    An error message may quote the caller's input, and a lone surrogate in it
    (valid in JSON as ``"\\ud800"``) cannot be encoded as UTF-8: escaped, it
    is answered as sent instead of failing with a 500.
    """

    ensure_ascii = True


class _JSONOnly(BaseContentNegotiation):
    """Always answer in JSON, whatever ``Accept`` says (a beacon never reads the answer)."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return None

    def select_renderer(
        self, request: Request, renderers: Any, format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = renderers[0]
        return (renderer, renderer.media_type)


def _error(detail: Any, code: int) -> Response:
    if isinstance(detail, str):
        detail = {api_settings.NON_FIELD_ERRORS_KEY: [detail]}
    return Response(detail, status=code)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


class BeaconView(APIView):
    """Receive one recommendation or search beacon and write it to the outbox.

    ``POST`` a JSON object (``application/json``, or ``text/plain`` as
    ``navigator.sendBeacon`` sends a string) described by
    :class:`~django_synerise.api.serializers.BeaconSerializer`. Answers:

    ===  ===============================================================
    204  accepted: one ``AIEvent`` row written in the outbox; also when
         nothing is written because the visitor may not be tracked
         (:func:`~django_synerise.identity.may_track`: ``CONSENT``,
         ``Sec-GPC``, ``DNT``), has no profile UUID yet (no ``_snrs_uuid``
         cookie, or a ``CLIENT_RESOLVER`` that gives no ``uuid``; a debug
         line is logged), or the outbox holds more than ``MAX_PENDING``
         pending rows (counted, see
         :func:`~django_synerise.outbox.enqueue_droppable`): a
         ``sendBeacon`` has no use for an error
    400  not a JSON object, or field errors (``{"items": [...]}``); nothing written
    403  cross-origin (see :class:`SameOriginPermission`; checked after the
         throttle, so refused requests count against the rate too)
    405  any method but ``POST``
    413  body larger than ``SYNERISE["BEACON_MAX_BYTES"]``
    415  a content type other than JSON or plain text
    429  more than the ``synerise_beacon`` rate from one client address (see
         :class:`~django_synerise.api.throttling.BeaconRateThrottle`)
    503  the outbox could not be written (logged; raised when ``RAISE_ERRORS``)
    ===  ===============================================================

    The profile comes only from the request (cookie, or ``CLIENT_RESOLVER``:
    :func:`~django_synerise.identity.resolve_uuid`): a ``clientUUID`` in the
    body is ignored, so nobody can post events on another visitor's behalf.
    """

    # CSRF: sendBeacon cannot add the CSRF token or any header. APIView.as_view()
    # already exempts the view from Django's CsrfViewMiddleware, and with no
    # authentication classes DRF's SessionAuthentication never re-enforces it.
    # Cross-site posts are stopped by SameOriginPermission instead: browsers set
    # Origin themselves and pages cannot forge it. The endpoint reads no session
    # and changes nothing but the caller's own (cookie-identified) events.
    authentication_classes: list[Any] = []
    # The origin check runs in initial(), after the throttle (DRF checks permissions
    # first): refused requests then count against the rate before they are logged.
    permission_classes: list[Any] = []
    origin_check = SameOriginPermission
    throttle_classes = [BeaconRateThrottle]
    renderer_classes = [_ASCIIJSONRenderer]
    parser_classes: list[Any] = []
    content_negotiation_class = _JSONOnly
    http_method_names = ["post"]

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        """Keep Django's own request: the body is read raw, and identity takes an ``HttpRequest``."""
        self.http_request = request
        return super().initialize_request(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """DRF's checks (the throttle among them), then the same-origin check."""
        super().initial(request, *args, **kwargs)
        check = self.origin_check()
        if not check.has_permission(request, self):
            self.permission_denied(request, message=check.message)

    def post(self, request: Request) -> Response:
        """Validate the beacon, attribute it to the visitor's profile, enqueue it."""
        if not may_track(self.http_request):
            # Consent refused (CONSENT, Sec-GPC, DNT): nothing written, nothing to tell.
            return Response(status=status.HTTP_204_NO_CONTENT)
        limit = int(synerise_settings.BEACON_MAX_BYTES)
        too_large = f"The body is larger than {limit} bytes."
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return _error(too_large, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        try:
            body = self.http_request.body
        except RequestDataTooBig:
            return _error(too_large, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        if len(body) > limit:
            return _error(too_large, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)

        media_type = (request.content_type or "").split(";")[0].strip().lower()
        if media_type not in _ACCEPTED_MEDIA_TYPES:
            return _error(
                f"Unsupported content type {media_type!r}: send application/json or text/plain.",
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            )
        try:
            data = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            # ValueError covers bad UTF-8, bad JSON and integers too long to parse.
            return _error("The body must be a JSON object.", status.HTTP_400_BAD_REQUEST)

        serializer = BeaconSerializer(data=data)
        if not serializer.is_valid():
            return _error(serializer.errors, status.HTTP_400_BAD_REQUEST)
        beacon = serializer.validated_data

        try:
            client_uuid = resolve_uuid(self.http_request)
        except Exception:
            if synerise_settings.RAISE_ERRORS:
                raise
            logger.exception(
                "Could not resolve the visitor of a %s beacon",
                beacon["type"],
                extra={"synerise_action": beacon["type"]},
            )
            return Response(status=status.HTTP_204_NO_CONTENT)
        if client_uuid is None:
            logger.debug(
                "Dropped a %s beacon: the visitor has no _snrs_uuid cookie "
                "(or CLIENT_RESOLVER gave no uuid)",
                beacon["type"],
            )
            return Response(status=status.HTTP_204_NO_CONTENT)
        try:
            event = AIEvent(
                beacon["type"],
                correlation_id=beacon["correlationId"],
                client_uuid=client_uuid,
                items=beacon["items"],
                campaign_id=beacon.get("campaignId"),
                position=beacon.get("position"),
                search_type=beacon.get("searchType"),
            )
        except InvalidEventError as err:
            return _error({err.field: [err.message]}, status.HTTP_400_BAD_REQUEST)
        return self._enqueue(event)

    def _enqueue(self, event: AIEvent) -> Response:
        try:
            outbox.enqueue_droppable(event, request=self.http_request)
        except EventTooLargeError as err:
            return _error(err.message, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        except Exception:
            # A producer never breaks the page it serves: log, unless told to raise.
            if synerise_settings.RAISE_ERRORS:
                raise
            logger.exception(
                "Could not write a %s beacon to the outbox",
                event.event_type,
                extra={"synerise_action": event.event_type},
            )
            return Response(status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(status=status.HTTP_204_NO_CONTENT)
