"""Rate limit of the beacon endpoint: DRF scope ``synerise_beacon``, per client address."""

from __future__ import annotations

import re

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from ..conf import synerise_settings
from ..exceptions import SyneriseConfigurationError

__all__ = ["BeaconRateThrottle"]

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class BeaconRateThrottle(SimpleRateThrottle):
    """At most ``SYNERISE["BEACON_THROTTLE_RATE"]`` beacons per client address.

    The rate is read when DRF builds the throttle, once per request, never at
    import: DRF's own ``THROTTLE_RATES`` class attribute is read when the
    module is imported, so ``override_settings`` cannot change it. Clients are
    told apart by DRF's ``get_ident()`` (``REMOTE_ADDR``, or
    ``X-Forwarded-For`` as ``REST_FRAMEWORK["NUM_PROXIES"]`` says: set it
    behind a proxy, or one shared address gets everyone's budget), not by the
    ``_snrs_uuid`` cookie, which a client can change at will.
    """

    scope = "synerise_beacon"

    def get_rate(self) -> str:
        return str(synerise_settings.BEACON_THROTTLE_RATE)

    def parse_rate(self, rate: str | None) -> tuple[int | None, int | None]:
        if rate is None:
            return (None, None)
        match = _RATE_RE.match(rate)
        if match is None:
            raise SyneriseConfigurationError(
                f'SYNERISE["BEACON_THROTTLE_RATE"] must look like "120/min" '
                f"(a number, '/', and s, min, hour or day), not {rate!r}. "
                "Set it in the SYNERISE dict of your Django settings."
            )
        return (int(match.group(1)), _PERIODS[match.group(2)[0]])

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
