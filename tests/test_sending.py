"""Tests of django_synerise.sending: Retry-After, the user agent, the failure log record.

How each HTTP status is classified is tested through the client, in test_client.py.
"""

from __future__ import annotations

import email.utils
import logging
import time
from importlib import metadata

import pytest
import requests

from django_synerise.exceptions import RejectedError
from django_synerise.sending import default_user_agent, log_failure, parse_retry_after


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("1.5", 1.5)],
    )
    def test_delta_seconds(self, value: str, expected: float) -> None:
        assert parse_retry_after(value) == expected

    def test_http_date_in_the_future(self) -> None:
        now = time.time()
        header = email.utils.formatdate(now + 90, usegmt=True)
        assert parse_retry_after(header, now=now) == pytest.approx(90, abs=1)

    def test_http_date_in_the_past_is_zero(self) -> None:
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0

    @pytest.mark.parametrize(
        "value", [None, "", "   ", "soon", "-5", "nan", "inf", "12 seconds", "Wed, 99 Foo 2015"]
    )
    def test_garbage_is_none(self, value: str | None) -> None:
        assert parse_retry_after(value) is None


def test_default_user_agent_is_versioned() -> None:
    agent = default_user_agent()
    assert agent.startswith("django-synerise/")
    assert f"python-requests/{requests.__version__}" in agent


def test_user_agent_falls_back_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert default_user_agent().startswith("django-synerise/0+unknown ")


def test_failure_log_record_carries_structured_fields(caplog):
    error = RejectedError(
        "bad event", status_code=400, request_id="rid-1", endpoint="/v4/events/batch"
    )
    with caplog.at_level(logging.WARNING, logger="django_synerise.client"):
        log_failure(error)
    (record,) = [r for r in caplog.records if hasattr(r, "synerise_failure")]
    assert record.synerise_failure == {
        "endpoint": "/v4/events/batch",
        "status": 400,
        "message": "bad event",
        "request_id": "rid-1",
        "error": "RejectedError",
    }
