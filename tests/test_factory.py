"""Tests of django_synerise.factory: a client from the SYNERISE settings."""

from __future__ import annotations

import pytest
import requests
from django.core.cache import caches
from django.test import override_settings

from django_synerise.auth import DjangoTokenCache
from django_synerise.endpoints import EVENTS
from django_synerise.events import CustomEvent
from django_synerise.exceptions import SyneriseConfigurationError
from django_synerise.factory import build_client
from django_synerise.testing import LocalSynerise

BASE = "https://api.synerise.test"
API_KEY = "ak-SECRET-5f0c1e0a-1111"
TRACKER_KEY = "tk-SECRET-56ba9d02-2222"
GUID = "guid-3333"
SETTINGS = {"API_BASE_URL": BASE, "API_KEY": API_KEY, "TRACKER_KEY": TRACKER_KEY}


class TestBuildClient:
    def test_build_client_from_settings(self) -> None:
        options = {
            **SETTINGS,
            "TIMEOUT": 4,
            "USER_AGENT": "shop/2",
            "AI_EVENTS_API": "ai-compat",
            "AI_TIMESTAMP_FORMAT": "iso8601",
            "TOKEN_REFRESH_MARGIN": 30,
            "TOKEN_LIFETIME": 100,
            "API_VERSION": "4.4",
        }
        with override_settings(SYNERISE=options), build_client() as c:
            assert c.base_url == BASE
            assert c.timeout == (4.0, 4.0)
            assert c.user_agent == "shop/2"
            assert c.ai_events_api == "ai-compat"
            assert c.ai_timestamp_format == "iso8601"
            assert c.token_refresh_margin == 30
            assert c.token_lifetime == 100
            assert isinstance(c.token_cache, DjangoTokenCache)
            assert c.token_cache.alias == "default"

    def test_build_client_overrides(self, synerise_server: LocalSynerise) -> None:
        settings = {"API_BASE_URL": synerise_server.url, "API_KEY": synerise_server.api_key}
        with override_settings(SYNERISE=settings):
            session = requests.Session()
            c = build_client(session=session, timeout=2.0)
        assert c.session is session
        assert c.timeout == 2.0
        c.send(EVENTS, [CustomEvent("dog.bark", client={"customId": "1"})])
        assert synerise_server.count == 1
        # The token went to Django's cache, under a hashed key.
        token = caches["default"].get(c.token_cache_key)
        assert isinstance(token, str) and token
        assert synerise_server.api_key not in c.token_cache_key
        caches["default"].delete(c.token_cache_key)

    def test_build_client_needs_api_key(self) -> None:
        with (
            override_settings(SYNERISE={"API_BASE_URL": BASE}),
            pytest.raises(SyneriseConfigurationError) as info,
        ):
            build_client()
        assert 'SYNERISE["API_KEY"] is required' in str(info.value)
        assert 'Set SYNERISE = {"API_KEY": ...}' in str(info.value)

    def test_build_client_basic_needs_guid_and_key(self) -> None:
        with (
            override_settings(SYNERISE={"AUTH": "basic", "API_KEY": API_KEY}),
            pytest.raises(
                SyneriseConfigurationError, match=r'SYNERISE\["WORKSPACE_GUID"\] is required'
            ),
        ):
            build_client()
        with (
            override_settings(SYNERISE={"AUTH": "basic"}),
            pytest.raises(
                SyneriseConfigurationError,
                match=r'SYNERISE\["WORKSPACE_GUID"\] and SYNERISE\["API_KEY"\] are required',
            ),
        ):
            build_client()
        with override_settings(
            SYNERISE={"AUTH": "basic", "API_KEY": API_KEY, "WORKSPACE_GUID": GUID}
        ):
            assert build_client().auth == "basic"

    def test_build_client_unknown_cache_alias(self) -> None:
        with (
            override_settings(SYNERISE={**SETTINGS, "TOKEN_CACHE": "nope"}),
            pytest.raises(SyneriseConfigurationError, match="TOKEN_CACHE"),
        ):
            build_client()
