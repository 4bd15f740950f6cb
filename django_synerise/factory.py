"""A :class:`~django_synerise.client.SyneriseClient` built from the ``SYNERISE`` settings.

The client knows nothing of Django; :func:`build_client` reads the settings,
says which credential is missing (the rule lives in :mod:`~django_synerise.conf`,
beside the system check that reports it) and shares the workspace token
between processes through Django's cache
(:class:`~django_synerise.auth.DjangoTokenCache`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from .auth import DjangoTokenCache
from .client import SyneriseClient
from .conf import credentials_message, missing_credentials, synerise_settings
from .endpoints import SendOptions
from .exceptions import SyneriseConfigurationError

__all__ = ["DjangoTokenCache", "build_client", "send_options"]


def send_options() -> SendOptions:
    """The :class:`~django_synerise.endpoints.SendOptions` the settings say now."""
    return SendOptions(
        ai_events_api=synerise_settings.AI_EVENTS_API,
        ai_timestamp_format=synerise_settings.AI_TIMESTAMP_FORMAT,
    )


def build_client(**overrides: Any) -> SyneriseClient:
    """A :class:`SyneriseClient` configured from ``settings.SYNERISE``.

    ``overrides`` are :class:`SyneriseClient` keyword arguments that replace
    the settings' values (``session=``, ``token_cache=``, ``timeout=`` ...).
    The token is cached in ``caches[SYNERISE["TOKEN_CACHE"]]`` unless
    ``token_cache`` is given.

    Raises :class:`SyneriseConfigurationError` naming the setting to fix when
    the credentials the chosen ``AUTH`` needs are missing or the cache alias
    does not exist.
    """
    s = synerise_settings
    options: dict[str, Any] = {
        "base_url": s.API_BASE_URL,
        "api_key": s.API_KEY,
        "tracker_key": s.TRACKER_KEY,
        "auth": s.AUTH,
        "workspace_guid": s.WORKSPACE_GUID,
        "api_version": s.API_VERSION,
        "timeout": s.TIMEOUT,
        "token_refresh_margin": s.TOKEN_REFRESH_MARGIN,
        "token_lifetime": s.TOKEN_LIFETIME,
        "user_agent": s.USER_AGENT,
        "ai_events_api": s.AI_EVENTS_API,
        "ai_timestamp_format": s.AI_TIMESTAMP_FORMAT,
    }
    options.update(overrides)

    missing = missing_credentials(
        options["auth"], options.get("api_key"), options.get("workspace_guid")
    )
    if missing:
        raise SyneriseConfigurationError(credentials_message(options["auth"], missing))

    if "token_cache" not in options:
        alias = s.TOKEN_CACHE
        if alias not in settings.CACHES:
            raise SyneriseConfigurationError(
                f'SYNERISE["TOKEN_CACHE"] is {alias!r}, which is not in CACHES '
                f"({', '.join(sorted(settings.CACHES)) or 'none defined'}). "
                "Set it to one of your cache aliases in the SYNERISE dict of your Django settings."
            )
        options["token_cache"] = DjangoTokenCache(alias)

    return SyneriseClient(**options)
