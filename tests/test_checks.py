"""System checks: one test per check id, each on the setting that triggers it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_synerise.checks import (
    CHECKS,
    TAG,
    check_deploy,
    check_installation,
    check_settings,
    is_loopback_url,
)
from tests.docs_samples import run_sample


def synerise(**overrides: Any) -> dict[str, Any]:
    return {**settings.SYNERISE, **overrides}


def ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


def only(messages: list[Any], check_id: str) -> Any:
    found = [message for message in messages if message.id == check_id]
    assert len(found) == 1, messages
    return found[0]


def test_the_test_settings_pass_every_check():
    assert run_checks(tags=[TAG]) == []


def test_e000_an_invalid_value_is_reported_not_raised():
    with override_settings(SYNERISE=synerise(TIMEOUT=-1, MAX_ATTEMPTS="many")):
        messages = check_settings()
    assert ids(messages) == ["synerise.E000", "synerise.E000"]
    assert 'SYNERISE["TIMEOUT"]' in messages[0].msg
    assert 'SYNERISE["MAX_ATTEMPTS"]' in messages[1].msg
    assert all(message.hint for message in messages)


def test_e000_unknown_key_and_unimportable_resolver():
    with override_settings(SYNERISE=synerise(API_KEYS="typo")):
        message = only(check_settings(), "synerise.E000")
    assert "API_KEYS" in message.msg and "Valid keys are" in message.msg
    with override_settings(SYNERISE=synerise(CLIENT_RESOLVER="myshop.nope.resolve")):
        message = only(check_settings(), "synerise.E000")
    assert "myshop.nope.resolve" in message.msg and message.hint


def test_e000_through_manage_py_check_instead_of_a_crash():
    with (
        override_settings(SYNERISE=synerise(BATCH_SIZE=5000, TIMEOUT="slow")),
        pytest.raises(SystemCheckError) as caught,
    ):
        call_command("check", tags=[TAG])
    assert 'SYNERISE["BATCH_SIZE"] must be at most 1000' in str(caught.value)
    assert 'SYNERISE["TIMEOUT"]' in str(caught.value)
    assert "synerise.E000" in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("BEACON_THROTTLE_RATE", "lots"),
        ("BEACON_THROTTLE_RATE", "120/week"),
        ("API_VERSION", "v4"),
        ("API_VERSION", "4.4 "),
    ],
)
def test_e000_a_bad_throttle_rate_or_api_version_is_reported_by_manage_py_check(key, value):
    # Instead of a 500 on every beacon (or a refused Api-Version on every flush).
    with override_settings(SYNERISE=synerise(**{key: value})):
        message = only(check_settings(), "synerise.E000")
        assert f'SYNERISE["{key}"]' in message.msg and repr(value) in message.msg
        with pytest.raises(SystemCheckError) as caught:
            call_command("check", tags=[TAG])
    assert f'SYNERISE["{key}"]' in str(caught.value)


def test_e000_a_bad_drf_rate_for_the_beacon_scope():
    drf = {"DEFAULT_THROTTLE_RATES": {"synerise_beacon": "lots"}}
    with override_settings(REST_FRAMEWORK=drf):
        message = only(check_settings(), "synerise.E000")
    assert 'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["synerise_beacon"]' in message.msg
    assert "'lots'" in message.msg
    for fine in ("5/hours", None):
        drf = {"DEFAULT_THROTTLE_RATES": {"synerise_beacon": fine}}
        with override_settings(REST_FRAMEWORK=drf):
            assert check_settings() == []


def test_e001_jwt_without_api_key_is_an_error_only_under_deploy():
    with override_settings(SYNERISE=synerise(API_KEY=None)):
        error = only(check_deploy(), "synerise.E001")
        warning = only(check_settings(), "synerise.W004")
    assert error.is_serious() and not warning.is_serious()
    assert 'SYNERISE["API_KEY"] is required to send events' in error.msg
    assert "ENABLED" in error.hint
    assert error.msg in warning.msg and "wait in the outbox" in warning.msg
    assert "--deploy" in warning.hint
    with override_settings(SYNERISE=synerise(API_KEY=None, ENABLED=False)):
        assert check_settings() == [] and check_deploy() == []


def test_e001_basic_needs_workspace_guid_and_api_key():
    with override_settings(SYNERISE=synerise(AUTH="basic")):
        message = only(check_deploy(), "synerise.E001")
    assert 'SYNERISE["WORKSPACE_GUID"] is required' in message.msg
    assert 'AUTH="jwt"' in message.hint
    with override_settings(SYNERISE=synerise(AUTH="basic", WORKSPACE_GUID="guid")):
        assert check_deploy() == []
    with override_settings(SYNERISE=synerise(AUTH="basic", WORKSPACE_GUID="guid", API_KEY="")):
        assert 'SYNERISE["API_KEY"] is required' in only(check_deploy(), "synerise.E001").msg


@pytest.mark.django_db
def test_a_missing_key_stops_no_command_but_check_deploy():
    # Before: every command (migrate, runserver, test ...) exited on synerise.E001.
    with override_settings(SYNERISE={**synerise(), "API_KEY": None}):
        call_command("check", tags=[TAG])  # warns, does not raise
        call_command("migrate", verbosity=0, skip_checks=False)
        with pytest.raises(SystemCheckError, match=r"synerise\.E001"):
            call_command("check", deploy=True, tags=[TAG])


@pytest.mark.parametrize(
    ("key", "value", "limit"),
    [("BATCH_SIZE", 1001, "1000"), ("MAX_BATCH_BYTES", 2_000_000, "1000000")],
)
def test_e000_batch_limits_above_the_api(key, value, limit):
    with override_settings(SYNERISE=synerise(**{key: value})):
        message = only(check_settings(), "synerise.E000")
    assert f'SYNERISE["{key}"] must be at most {limit}' in message.msg
    with override_settings(SYNERISE=synerise(**{key: int(limit)})):
        assert check_settings() == []


def test_e003_direct_beacons_need_the_tracker_key():
    with override_settings(SYNERISE=synerise(BEACON_MODE="direct", TRACKER_KEY=None)):
        message = only(check_deploy(), "synerise.E003")
        assert only(check_settings(), "synerise.W004").msg.startswith(message.msg)
    assert "TRACKER_KEY" in message.msg and "first-party" in message.hint


def test_w005_page_visits_without_the_tracker_key_under_deploy():
    with override_settings(SYNERISE=synerise(TRACKER_KEY=None)):
        message = only(check_deploy(), "synerise.W005")
        assert check_settings() == []  # nothing to say while developing
    assert "{% synerise_tracking_code %} renders nothing" in message.msg
    assert 'Set SYNERISE["TRACKER_KEY"]' in message.hint
    with override_settings(SYNERISE=synerise(TRACKER_KEY=None, PAGE_VISITS={"ENABLED": False})):
        assert check_deploy() == []
    assert check_deploy() == []  # the test settings have the key


def test_every_check_id_is_documented_in_the_table():
    from pathlib import Path

    source = (Path(__file__).resolve().parent.parent / "django_synerise" / "checks.py").read_text()
    emitted = set(re.findall(r'id="(synerise\.[EW]\d{3})"', source))
    assert emitted == set(CHECKS)


def test_w001_plain_http_outside_loopback():
    with override_settings(SYNERISE=synerise(API_BASE_URL="http://api.synerise.com")):
        message = only(check_settings(), "synerise.W001")
    assert "http://api.synerise.com" in message.msg and "https://" in message.hint
    for url in ("https://api.synerise.com", "http://127.0.0.1:9", "http://localhost:8000"):
        with override_settings(SYNERISE=synerise(API_BASE_URL=url)):
            assert check_settings() == [], url


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://localhost:8000", True),
        ("http://LOCALHOST.", True),
        ("http://api.localhost", True),
        ("http://127.0.0.1:9", True),
        ("http://127.8.9.10", True),
        ("http://[::1]:8089", True),
        ("http://10.0.0.1", False),
        ("http://localhost.example.com", False),
        ("http://128.0.0.1", False),
    ],
)
def test_loopback_hosts(url, loopback):
    assert is_loopback_url(url) is loopback


def test_w002_urls_included_without_rest_framework():
    # tests.urls includes django_synerise.urls.
    apps_without = [app for app in settings.INSTALLED_APPS if app != "rest_framework"]
    with override_settings(INSTALLED_APPS=apps_without):
        message = only(run_checks(tags=[TAG]), "synerise.W002")
    assert "rest_framework" in message.msg and "rest_framework" in message.hint
    with override_settings(INSTALLED_APPS=apps_without, ROOT_URLCONF="tests.testapp.producer_urls"):
        assert check_installation() == []


def test_the_documented_ways_to_quiet_a_missing_key():
    silenced = run_sample("configuration-silence-missing-keys")["SILENCED_SYSTEM_CHECKS"]
    disabled = run_sample("configuration-disabled")["SYNERISE"]
    with override_settings(SYNERISE=synerise(API_KEY=None)):
        assert ids(run_checks(tags=[TAG])) == ["synerise.W004"]
        with override_settings(SILENCED_SYSTEM_CHECKS=silenced):
            assert [m for m in run_checks(tags=[TAG]) if not m.is_silenced()] == []
    with override_settings(SYNERISE={**synerise(API_KEY=None), **disabled}):
        assert run_checks(tags=[TAG], include_deployment_checks=True) == []


def test_w020_a_per_process_cache_under_deploy(settings):
    from django_synerise.checks import check_rate_limit_cache

    assert ids(check_rate_limit_cache()) == ["synerise.W020"]  # the test settings: LocMemCache
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache"}}
    assert check_rate_limit_cache() == []
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    assert "no limit at all" in only(check_rate_limit_cache(), "synerise.W020").msg


@pytest.mark.django_db
def test_w021_forwarded_for_seen_without_declared_proxies(client, monkeypatch):
    from django_synerise import ratelimit
    from django_synerise.checks import check_forwarded_for

    monkeypatch.setattr(ratelimit, "_forwarded_for_noted_at", -1e18)
    assert check_forwarded_for() == []
    client.post("/synerise/beacon/", data="{}", content_type="text/plain")
    assert check_forwarded_for() == []  # no header, nothing to say
    client.post(
        "/synerise/beacon/", data="{}", content_type="text/plain", HTTP_X_FORWARDED_FOR="1.2.3.4"
    )
    assert "NUM_PROXIES" in only(check_forwarded_for(), "synerise.W021").msg
    with override_settings(SYNERISE=synerise(NUM_PROXIES=1)):
        assert check_forwarded_for() == []
