"""Stands in for Synerise's JS tracker while the shop runs without a tracker key."""

import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

from django_synerise.identity import COOKIE_NAME, get_cookie_uuid

ONE_YEAR = 365 * 24 * 3600


class LocalVisitorCookieMiddleware:
    """Give each visitor a ``_snrs_uuid`` cookie, as Synerise's JS tracker would.

    django-synerise identifies anonymous visitors by that cookie only, and
    never invents one. On a real site the tracker (``{% synerise_tracking_code %}``)
    sets it; without a tracker key nothing would, so anonymous page visits and
    recommendation beacons would all be skipped. This middleware is therefore
    active only while the shop talks to the local stand-in
    (``settings.SYNERISE_STAND_IN``); put it before ``PageVisitMiddleware``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.SYNERISE_STAND_IN:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        new_uuid = None
        if get_cookie_uuid(request) is None:
            # Visible to this request too, so its first page visit counts.
            new_uuid = str(uuid.uuid4())
            request.COOKIES[COOKIE_NAME] = new_uuid
        response = self.get_response(request)
        if new_uuid is not None:
            # Not HttpOnly: beacon.js and the tracker read it, as they do Synerise's own.
            # Secure on HTTPS, so the profile id never crosses the network in clear.
            response.set_cookie(
                COOKIE_NAME,
                new_uuid,
                max_age=ONE_YEAR,
                samesite="Lax",
                secure=request.is_secure(),
            )
        return response
