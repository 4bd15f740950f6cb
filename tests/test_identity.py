"""Visitor identity: the ``_snrs_uuid`` cookie, logged-in users, CLIENT_RESOLVER."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.test import RequestFactory

from django_synerise.identity import (
    get_client,
    get_cookie_uuid,
    may_track,
    parse_uuid,
    resolve_client,
    user_client,
)
from tests.helpers import synerise

UUID = "0b9a4d2e-6c1f-4f5e-9a7b-3c2d1e0f9a8b"


def make_request(cookies: dict[str, str] | None = None, user: Any = None) -> Any:
    request = RequestFactory().get("/")
    request.COOKIES.update(cookies or {})
    request.user = user if user is not None else AnonymousUser()
    return request


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (UUID, UUID),
        (UUID.upper(), UUID),
        (f'"{UUID}"', UUID),
        (f"  {UUID}  ", UUID),
        (UUID.replace("-", "%2D"), UUID),
        (f"%22{UUID}%22", UUID),
        (f'  " {UUID} "  ', UUID),
    ],
)
def test_parse_uuid_tolerates_what_the_tracker_may_store(raw: str, expected: str) -> None:
    assert parse_uuid(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "not-a-uuid",
        UUID[:-1],
        UUID + "0",  # a longer hex string is not a UUID with a suffix
        UUID + "x",
        "x" + UUID,
        f"uuid:{UUID}",
        UUID.replace("-", ""),
        # Anything after the UUID: the tracker stores the bare UUID, nothing else.
        f"{UUID}<script>alert(1)</script>",
        f"{UUID}%3Cscript%3Ealert(1)%3C/script%3E",
        f"{UUID} OR 1=1",
        f"{UUID};evil",
        f"{UUID}%3Bevil",
        f"{UUID}:1690668621",
        f"{UUID}|v2",
        f"{UUID}.1695317248",
        f"{UUID}\x00",
        f"{UUID} {UUID}",
        # Other spellings uuid.UUID() would accept.
        "{" + UUID + "}",
        f"urn:uuid:{UUID}",
        # Unbalanced quotes.
        f'"{UUID}',
        f'{UUID}"',
        f'""{UUID}""',
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        UUID + ":" + "a" * 600,
        "'; DROP TABLE x; --",
    ],
)
def test_parse_uuid_refuses_malformed_values(raw: str | None) -> None:
    assert parse_uuid(raw) is None


def test_cookie_uuid_from_snrs_uuid() -> None:
    assert get_cookie_uuid(make_request({"_snrs_uuid": UUID})) == UUID


def test_cookie_uuid_falls_back_to_the_params_cookie() -> None:
    other = "9d7e1ad8-5ca1-4964-8366-2346f8b6f7b6"
    params = f"host:shop.example&permUuid:{other}&uuid:{UUID}&identityHash:&init:1690668621"
    assert get_cookie_uuid(make_request({"_snrs_p": params})) == UUID
    # A malformed _snrs_uuid is ignored, not trusted; the fallback still applies.
    assert get_cookie_uuid(make_request({"_snrs_uuid": "garbage", "_snrs_p": params})) == UUID


def test_a_malformed_snrs_uuid_is_not_trusted_even_with_a_uuid_at_its_start() -> None:
    assert get_cookie_uuid(make_request({"_snrs_uuid": f"{UUID}<script>"})) is None
    assert get_client(make_request({"_snrs_uuid": f"{UUID} OR 1=1"})) is None
    params = f"host:shop.example&uuid:{UUID};evil&init:1690668621"
    assert get_cookie_uuid(make_request({"_snrs_p": params})) is None


def test_cookie_uuid_none_without_cookies() -> None:
    assert get_cookie_uuid(make_request()) is None
    assert get_cookie_uuid(make_request({"_snrs_p": "uuid:nonsense&host:x"})) is None


def test_anonymous_visitor_is_the_cookie_uuid() -> None:
    assert get_client(make_request({"_snrs_uuid": UUID})) == {"uuid": UUID}


def test_nobody_identified_is_none() -> None:
    assert get_client(make_request()) is None
    assert get_client(make_request({"_snrs_uuid": "tampered"})) is None


@pytest.mark.django_db
def test_a_uuid_chosen_by_the_client_is_not_linked_to_a_logged_in_user() -> None:
    """Before: the cookie's uuid (any uuid the browser sets) was sent with the identifiers."""
    user = User.objects.create_user("ann", email="ann@example.com")
    request = make_request({"_snrs_uuid": UUID}, user=user)
    assert get_client(request) == {"customId": str(user.pk), "email": "ann@example.com"}
    # Only where the site vouches for the link (the auth events) do both go together.
    assert resolve_client(request, link_cookie_uuid=True) == {
        "uuid": UUID,
        "customId": str(user.pk),
        "email": "ann@example.com",
    }


@pytest.mark.django_db
def test_user_without_email_sends_custom_id_only() -> None:
    user = User.objects.create_user("bob")
    assert get_client(make_request(user=user)) == {"customId": str(user.pk)}


@pytest.mark.django_db
def test_user_with_invalid_email_drops_only_the_email() -> None:
    user = User.objects.create_user("cid", email="not an email")
    assert user_client(user) == {"customId": str(user.pk)}


@pytest.mark.django_db
def test_identifiers_events_would_refuse_are_dropped_and_logged_without_their_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: identity had its own rule; a user name with a control character
    passed it, and the event built from it raised, losing the whole event."""
    from django_synerise.events import CustomEvent

    user = User.objects.create_user("bad\x07name", email="bad@example.com")
    with (
        synerise(USER_IDENTIFIERS={"customId": "get_username", "email": "email"}),
        caplog.at_level(logging.WARNING, logger="django_synerise.identity"),
    ):
        client = user_client(user)
    assert client == {"email": "bad@example.com"}
    CustomEvent("dog.bark", client=client)  # the rest still makes an event
    assert f"get_username of user {user.pk} not sent as client.customId" in caplog.text
    assert "bad\x07name" not in caplog.text


@pytest.mark.django_db
def test_identity_and_events_share_the_identifier_rule() -> None:
    from django_synerise.events import CustomEvent
    from django_synerise.exceptions import InvalidEventError

    values = ["x" * 512, "x" * 513, "a@b", "no-at-sign", " padded@example.com ", "tab\there"]
    for value in values:
        user = User(pk=7, username="u", email=value)
        with synerise(USER_IDENTIFIERS={"email": "email"}):
            kept = user_client(user)
        try:
            built = CustomEvent("dog.bark", client={"email": value}).client
        except InvalidEventError:
            built = None
        assert kept == built, value


@pytest.mark.django_db
def test_user_identifiers_setting_maps_fields() -> None:
    user = User.objects.create_user("dora", email="dora@example.com")
    with synerise(USER_IDENTIFIERS={"customId": "get_username", "id": "pk"}):
        assert user_client(user) == {"customId": "dora", "id": user.pk}


def test_anonymous_user_has_no_user_identifiers() -> None:
    assert user_client(AnonymousUser()) is None
    assert user_client(None) is None


@pytest.mark.django_db
def test_explicit_user_argument_wins_over_request_user() -> None:
    user = User.objects.create_user("eve", email="eve@example.com")
    request = make_request({"_snrs_uuid": UUID})
    assert get_client(request, user=user) == {"customId": str(user.pk), "email": "eve@example.com"}


def resolve_from_header(request: Any) -> dict[str, Any] | None:
    value = request.headers.get("X-Customer")
    return {"customId": value} if value else None


def resolve_broken(request: Any) -> dict[str, Any]:
    raise RuntimeError("resolver bug")


def resolve_wrong_type(request: Any) -> Any:
    return "customId:7"


def test_client_resolver_replaces_default_identity() -> None:
    request = RequestFactory().get("/", HTTP_X_CUSTOMER="c-42")
    request.COOKIES["_snrs_uuid"] = UUID
    with synerise(CLIENT_RESOLVER="tests.test_identity.resolve_from_header"):
        assert get_client(request) == {"customId": "c-42"}
        assert get_client(RequestFactory().get("/")) is None


def test_resolver_errors_raise_when_raise_errors() -> None:
    with (
        synerise(CLIENT_RESOLVER="tests.test_identity.resolve_broken"),
        pytest.raises(RuntimeError, match="resolver bug"),
    ):
        get_client(make_request())


def test_resolver_wrong_return_type_is_an_error() -> None:
    with (
        synerise(CLIENT_RESOLVER="tests.test_identity.resolve_wrong_type"),
        pytest.raises(TypeError, match="must return a dict or None"),
    ):
        get_client(make_request())


def test_resolver_errors_are_logged_and_swallowed_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        synerise(CLIENT_RESOLVER="tests.test_identity.resolve_broken", RAISE_ERRORS=False),
        caplog.at_level(logging.ERROR, logger="django_synerise.identity"),
    ):
        assert get_client(make_request()) is None
    assert any("resolver bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    # The API key never reaches the log.
    assert settings.SYNERISE["API_KEY"] not in caplog.text


def test_resolve_client_lets_errors_propagate_whatever_raise_errors_says(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The producers call it and log the error themselves, with their event's action.
    with (
        synerise(CLIENT_RESOLVER="tests.test_identity.resolve_broken", RAISE_ERRORS=False),
        caplog.at_level(logging.DEBUG, logger="django_synerise"),
        pytest.raises(RuntimeError, match="resolver bug"),
    ):
        resolve_client(make_request())
    assert caplog.records == []


def test_resolve_client_answers_like_get_client() -> None:
    request = make_request({"_snrs_uuid": UUID})
    assert resolve_client(request) == get_client(request) == {"uuid": UUID}
    assert resolve_client(make_request()) is None


def test_unimportable_resolver_is_swallowed_by_default(caplog: pytest.LogCaptureFixture) -> None:
    with (
        synerise(CLIENT_RESOLVER="tests.nowhere.resolver", RAISE_ERRORS=False),
        caplog.at_level(logging.ERROR, logger="django_synerise.identity"),
    ):
        assert get_client(make_request({"_snrs_uuid": UUID})) is None
    assert "CLIENT_RESOLVER" in caplog.text


# A CLIENT_RESOLVER built from the module's public helpers.


def synerise_client(request: Any) -> dict[str, Any] | None:
    if request.user.is_staff:
        return None  # staff browsing the shop are not customers
    client = user_client(request.user) or {}
    if uuid := get_cookie_uuid(request):
        client["uuid"] = uuid
    return client or None


@pytest.mark.django_db
def test_a_resolver_built_from_the_public_helpers() -> None:
    customer = User.objects.create_user("fay", email="fay@example.com")
    staff = User.objects.create_user("sam", email="sam@example.com", is_staff=True)
    with synerise(CLIENT_RESOLVER="tests.test_identity.synerise_client"):
        assert get_client(make_request({"_snrs_uuid": UUID}, user=customer)) == {
            "customId": str(customer.pk),
            "email": "fay@example.com",
            "uuid": UUID,
        }
        assert get_client(make_request({"_snrs_uuid": UUID}, user=staff)) is None
        assert get_client(make_request({"_snrs_uuid": UUID})) == {"uuid": UUID}


# The consent gate ------------------------------------------------------------------------


def consent_cookie(request: Any) -> bool:
    return request.COOKIES.get("consent") == "yes"


def broken_consent(request: Any) -> bool:
    raise RuntimeError("consent store down")


def test_may_track_follows_the_consent_callable_given_as_a_path_or_a_callable() -> None:
    assert may_track(make_request())  # no CONSENT: everybody
    for consent in ("tests.test_identity.consent_cookie", consent_cookie):
        with synerise(CONSENT=consent):
            assert may_track(make_request({"consent": "yes"}))
            assert not may_track(make_request({"consent": "no"}))
            assert not may_track(make_request())
            assert may_track(None)  # no request: the site decided to record it


def test_may_track_refuses_global_privacy_control_by_default_and_dnt_when_asked() -> None:
    gpc = RequestFactory().get("/", HTTP_SEC_GPC="1")
    dnt = RequestFactory().get("/", HTTP_DNT="1")
    assert not may_track(gpc)
    assert may_track(dnt)
    with synerise(RESPECT_GPC=False, RESPECT_DNT=True):
        assert may_track(gpc)
        assert not may_track(dnt)
    assert may_track(RequestFactory().get("/", HTTP_SEC_GPC="0"))


def test_a_consent_callable_that_raises_refuses_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with (
        synerise(CONSENT=broken_consent, RAISE_ERRORS=False),
        caplog.at_level(logging.ERROR, logger="django_synerise.identity"),
    ):
        assert not may_track(make_request())
    assert "CONSENT" in caplog.text
    with synerise(CONSENT=broken_consent, RAISE_ERRORS=True), pytest.raises(RuntimeError):
        may_track(make_request())
