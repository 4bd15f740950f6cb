"""Rate limit of the beacon endpoint: DRF scope ``synerise_beacon``, per client address."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from ..conf import (
    BEACON_THROTTLE_DRF_KEY,
    BEACON_THROTTLE_SCOPE,
    parse_throttle_rate,
    synerise_settings,
)
from ..ratelimit import client_address, hit

__all__ = ["BeaconRateThrottle"]

_SYNERISE_KEY = 'SYNERISE["BEACON_THROTTLE_RATE"]'


class BeaconRateThrottle(SimpleRateThrottle):
    """At most one rate's worth of beacons per client address.

    The rate is ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["synerise_beacon"]``
    when the project sets that key (``None`` there turns the throttle off, as
    for any DRF scope), else ``SYNERISE["BEACON_THROTTLE_RATE"]``. Both are
    read when DRF builds the throttle, once per request, never at import:
    DRF's own ``THROTTLE_RATES`` class attribute is read when the module is
    imported, so ``override_settings`` could not change it. Every rate string
    DRF accepts works (``"5/hours"``: the period counts by its first letter).

    Clients are told apart by :func:`django_synerise.ratelimit.client_address`
    (``REMOTE_ADDR``, or ``X-Forwarded-For`` only when the site declares its
    proxies), not by the ``_snrs_uuid`` cookie, which a client can change at
    will; the counting is :func:`django_synerise.ratelimit.hit` (a sliding
    window, atomic counters, hashed cache keys) instead of DRF's history list,
    which parallel requests could overwrite.

    Raises :class:`~django_synerise.exceptions.SyneriseConfigurationError`,
    naming the setting, for a malformed rate.
    """

    scope = BEACON_THROTTLE_SCOPE
    # Which setting the rate came from, for the error message of a malformed one.
    _rate_setting = _SYNERISE_KEY
    _retry_after: float | None = None

    def get_rate(self) -> str | None:
        rates = api_settings.DEFAULT_THROTTLE_RATES
        if isinstance(rates, Mapping) and self.scope in rates:
            self._rate_setting = BEACON_THROTTLE_DRF_KEY
            # Passed on as set: parse_rate names the setting when it is not a rate string.
            return cast("str | None", rates[self.scope])
        self._rate_setting = _SYNERISE_KEY
        return str(synerise_settings.BEACON_THROTTLE_RATE)

    def parse_rate(self, rate: str | None) -> tuple[int | None, int | None]:
        if rate is None:
            return (None, None)
        return parse_throttle_rate(self._rate_setting, rate)

    def allow_request(self, request: Request, view: APIView) -> bool:
        limit, period = self.parse_rate(self.rate)
        if limit is None or period is None:
            return True
        decision = hit(self.scope, client_address(request), limit, period)
        self._retry_after = decision.retry_after
        return decision.allowed

    def wait(self) -> float | None:
        return self._retry_after
