"""Tests of django_synerise.redaction: the one redact() and the urllib3 log filter."""

from __future__ import annotations

import json
import logging

import pytest

from django_synerise.client import SyneriseClient
from django_synerise.redaction import REDACTED, install_urllib3_filter, redact


class TestRedact:
    def test_replaces_every_form_of_a_secret(self) -> None:
        secret = 'a b/c+d"e'
        text = f"raw {secret} url a%20b%2Fc%2Bd%22e plus a+b%2Fc%2Bd%22e json {json.dumps(secret)}"
        out = redact(text, [secret])
        assert "a b/c" not in out
        assert "%2Fc" not in out
        assert "c+d" not in out
        assert out.count("***") == 4

    def test_longest_secret_first(self) -> None:
        assert redact("key=abcdef", ["abc", "abcdef"]) == "key=***"

    def test_ignores_empty_and_none(self) -> None:
        assert redact("nothing here", ["", None]) == "nothing here"

    def test_a_secret_cut_short_or_only_its_end_is_removed(self) -> None:
        """Before: an upstream echoing ``"sk-live-0123..."`` got the visible part into logs."""
        secret = "sk-live-0123456789abcdef"
        text = (
            "401: invalid key 'sk-live-0123456...' (ends in ...89abcdef); "
            "api key sk-live-01 rejected; other sk-live"
        )
        out = redact(text, [secret])
        assert "0123456" not in out and "89abcdef" not in out and "sk-live-01" not in out
        assert out.count(REDACTED) == 3
        assert out.endswith("other sk-live")  # seven characters: too short to be the key
        assert redact("token 12345", ["12345"]) == "token ***"

    def test_removes_unknown_credentials_by_shape(self) -> None:
        text = "GET /events/v1/batch?token=xyz&a=1 Authorization: Bearer eyJ.abc.def Basic Zm9vOmJhcg=="
        out = redact(text, [])
        assert "xyz" not in out
        assert "eyJ" not in out
        assert "Zm9v" not in out
        assert "&a=1" in out


def test_the_client_redacts_with_its_own_secrets() -> None:
    # The dispatcher scrubs last_error through this method: it must know every
    # credential the client holds, the Basic pair and the workspace id included.
    client = SyneriseClient(
        base_url="https://api.synerise.test",
        api_key="ak-123456",
        tracker_key="tk-654321",
        workspace_guid="guid-777",
        auth="basic",
    )
    text = client.redact("ak-123456 tk-654321 guid-777 Z3VpZC03Nzc6YWstMTIzNDU2 ok")
    assert text == f"{REDACTED} {REDACTED} {REDACTED} {REDACTED} ok"


def test_urllib3_lines_lose_the_tracker_key(caplog: pytest.LogCaptureFixture) -> None:
    install_urllib3_filter()
    install_urllib3_filter()  # idempotent: one filter, not two
    library = logging.getLogger("urllib3.connectionpool")
    assert len(library.filters) == len(set(map(id, library.filters)))
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        library.debug('"POST /events/v1/batch?token=%s HTTP/1.1" 202 0', "tk-secret")
    (record,) = caplog.records
    assert "tk-secret" not in record.getMessage()
    assert f"token={REDACTED}" in record.getMessage()
