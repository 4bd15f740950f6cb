"""Auth events: logged-in, logged-out, registered."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client, override_settings

from django_synerise import track_model
from django_synerise.hooks import RESET_COOKIE_NAME, track_registration, untrack_model
from django_synerise.identity import user_client
from django_synerise.models import OutboxEvent
from django_synerise.profiles import identity_hash, profile_uuid

pytestmark = pytest.mark.django_db

UUID = "3e1d2c4b-5a69-4788-9a0b-1c2d3e4f5a6b"
DNS = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
ANN_UUID = profile_uuid("ann@example.com", DNS)


def synerise(**overrides: Any) -> override_settings:
    return override_settings(SYNERISE={**settings.SYNERISE, **overrides})


def auth_switches(**switches: bool) -> override_settings:
    return synerise(AUTH_EVENTS=switches)


@pytest.fixture(autouse=True)
def page_visit_middleware() -> Iterator[None]:
    # It sets the _snrs_reset_uuid cookie a login leaves on the request.
    middleware = [*settings.MIDDLEWARE, "django_synerise.middleware.PageVisitMiddleware"]
    with override_settings(MIDDLEWARE=middleware):
        yield


@pytest.fixture
def visitor() -> Client:
    client = Client()
    client.cookies["_snrs_uuid"] = UUID
    return client


@pytest.fixture
def ann() -> User:
    return User.objects.create_user("ann", email="ann@example.com")


def rows(batch_type: str | None = None) -> list[OutboxEvent]:
    queryset = OutboxEvent.objects.order_by("id")
    if batch_type:
        queryset = queryset.filter(batch_type=batch_type)
    return list(queryset)


def test_login_merges_the_anonymous_uuid_then_sends_logged_in(visitor: Client, ann: User) -> None:
    response = visitor.post("/producers/auth/sign-in/", {"username": "ann"})
    merge, row = rows()
    assert (merge.kind, merge.action) == ("profile", "profile.merge")
    # The PHP SDK's ProfileMergeDoRequest: the previous uuid first, each with the e-mail.
    assert merge.body == [
        {"uuid": UUID, "email": "ann@example.com"},
        {"uuid": ANN_UUID, "email": "ann@example.com"},
    ]
    assert (row.kind, row.batch_type, row.action) == ("event", "logged-in", "client.login")
    assert row.wait_for == merge.pk
    assert row.body["type"] == "logged-in"
    assert "action" not in row.body
    assert row.body["client"] == {
        "uuid": ANN_UUID,
        "customId": str(ann.pk),
        "email": "ann@example.com",
    }
    assert response.cookies[RESET_COOKIE_NAME].value == ANN_UUID


def test_login_without_merge_sends_the_cookie_uuid(visitor: Client, ann: User) -> None:
    with synerise(IDENTITY_MERGE=False):
        response = visitor.post("/producers/auth/sign-in/", {"username": "ann"})
    [row] = rows()
    assert row.wait_for is None
    assert row.body["client"] == {"uuid": UUID, "customId": str(ann.pk), "email": "ann@example.com"}
    assert RESET_COOKIE_NAME not in response.cookies


def test_a_second_person_on_the_browser_is_not_merged_into_the_first(
    visitor: Client, ann: User
) -> None:
    User.objects.create_user("bob", email="bob@example.com")
    bob_uuid = profile_uuid("bob@example.com", DNS)
    visitor.post("/producers/auth/sign-in/", {"username": "ann"})
    visitor.post("/producers/auth/sign-out/")
    # The tracker adopted Ann's reset uuid; Bob logs in on the same browser.
    visitor.cookies["_snrs_uuid"] = ANN_UUID
    del visitor.cookies[RESET_COOKIE_NAME]
    OutboxEvent.objects.all().delete()
    response = visitor.post("/producers/auth/sign-in/", {"username": "bob"})
    identify, login = rows()
    assert (identify.action, identify.body) == (
        "profile.identify",
        [{"uuid": bob_uuid, "email": "bob@example.com"}],
    )
    assert login.body["client"]["uuid"] == bob_uuid
    assert ANN_UUID not in login.payload + identify.payload
    assert response.cookies[RESET_COOKIE_NAME].value == bob_uuid


def test_the_trackers_identity_hash_decides_same_person(visitor: Client, ann: User) -> None:
    # Someone else identified on this browser (the tracker's _snrs_p says so): no merge.
    visitor.cookies["_snrs_p"] = f"host:shop&identityHash:{identity_hash('eve@example.com')}"
    visitor.post("/producers/auth/sign-in/", {"username": "ann"})
    assert rows()[0].body == [{"uuid": ANN_UUID, "email": "ann@example.com"}]
    # The same person: merged.
    OutboxEvent.objects.all().delete()
    visitor.cookies["_snrs_p"] = f"host:shop&identityHash:{identity_hash('ann@example.com')}"
    visitor.post("/producers/auth/sign-in/", {"username": "ann"})
    assert rows()[0].body[0] == {"uuid": UUID, "email": "ann@example.com"}


def test_login_already_on_the_customers_uuid_merges_nothing(ann: User) -> None:
    browser = Client()
    browser.cookies["_snrs_uuid"] = ANN_UUID
    response = browser.post("/producers/auth/sign-in/", {"username": "ann"})
    [row] = rows()
    assert row.body["client"]["uuid"] == ANN_UUID
    assert RESET_COOKIE_NAME not in response.cookies


def test_first_visit_login_gives_the_tracker_the_customers_uuid(ann: User) -> None:
    response = Client().post("/producers/auth/sign-in/", {"username": "ann"})
    identify, login = rows()
    assert identify.body == [{"uuid": ANN_UUID, "email": "ann@example.com"}]
    assert login.wait_for == identify.pk
    assert response.cookies[RESET_COOKIE_NAME].value == ANN_UUID


def test_the_uuid_namespace_is_a_setting(visitor: Client, ann: User) -> None:
    namespace = "ea1c3a9d-64a6-45d0-a70c-d2a055f350d3"
    with synerise(UUID_NAMESPACE=namespace):
        visitor.post("/producers/auth/sign-in/", {"username": "ann"})
    assert rows()[1].body["client"]["uuid"] == profile_uuid("ann@example.com", namespace)


def test_no_consent_no_login_event_no_merge_no_cookie(visitor: Client, ann: User) -> None:
    response = visitor.post("/producers/auth/sign-in/", {"username": "ann"}, HTTP_SEC_GPC="1")
    assert rows() == []
    assert RESET_COOKIE_NAME not in response.cookies


def test_logout_sends_logged_out(visitor: Client, ann: User) -> None:
    visitor.force_login(ann)
    visitor.post("/producers/auth/sign-out/")
    [row] = rows("logged-out")
    assert row.action == "client.logout"
    assert row.wait_for is None
    assert row.body["client"] == {"uuid": UUID, "customId": str(ann.pk), "email": "ann@example.com"}


def test_logout_of_an_anonymous_visitor_sends_nothing(visitor: Client) -> None:
    visitor.post("/producers/auth/sign-out/")
    assert rows() == []


def test_auth_events_are_switchable_at_signal_time(visitor: Client, ann: User) -> None:
    with auth_switches(LOGGED_IN=False, LOGGED_OUT=False):
        visitor.post("/producers/auth/sign-in/", {"username": "ann"})
        visitor.post("/producers/auth/sign-out/")
    assert rows() == []
    with auth_switches(LOGGED_IN=False):
        visitor.post("/producers/auth/sign-in/", {"username": "ann"})
        visitor.post("/producers/auth/sign-out/")
    assert [row.batch_type for row in rows()] == ["logged-out"]
    with auth_switches(LOGGED_IN=True, LOGGED_OUT=False):
        visitor.post("/producers/auth/sign-in/", {"username": "ann"})
        visitor.post("/producers/auth/sign-out/")
    assert [row.batch_type for row in rows()] == ["logged-out", "profile", "logged-in"]


def test_sign_up_view_one_liner(visitor: Client) -> None:
    visitor.post("/producers/auth/sign-up/", {"username": "new", "email": "new@example.com"})
    user = User.objects.get(username="new")
    # One merge: the login right after the sign-up finds the uuid already reset.
    assert [row.batch_type for row in rows()] == ["profile", "registered", "logged-in"]
    merge, registered, logged_in = rows()
    new_uuid = profile_uuid("new@example.com", DNS)
    assert merge.body == [
        {"uuid": UUID, "email": "new@example.com"},
        {"uuid": new_uuid, "email": "new@example.com"},
    ]
    assert registered.wait_for == logged_in.wait_for == merge.pk
    assert registered.action == "client.register"
    assert registered.body["client"] == {
        "uuid": new_uuid,
        "customId": str(user.pk),
        "email": "new@example.com",
    }


def test_track_registration_without_request(ann: User) -> None:
    row = track_registration(ann)
    assert row is not None
    assert row.body["client"] == {"customId": str(ann.pk), "email": "ann@example.com"}


def test_track_registration_when_disabled(ann: User) -> None:
    with synerise(ENABLED=False):
        assert track_registration(ann) is None
    assert rows() == []


@pytest.fixture
def registered_hook() -> Iterator[None]:
    track_model(get_user_model(), event_type="registered", client=user_client)
    yield
    untrack_model(get_user_model())


@pytest.mark.usefixtures("registered_hook")
def test_registered_from_post_save_on_the_user_model() -> None:
    user = User.objects.create_user("zoe", email="zoe@example.com")
    user.save()  # an update is not a registration
    [row] = rows()
    assert row.batch_type == "registered"
    assert row.body["client"] == {"customId": str(user.pk), "email": "zoe@example.com"}


def bad_resolver(request: Any) -> dict[str, Any]:
    return {"nickname": "ann"}  # not a Synerise identifier


def test_auth_event_errors_never_break_login(
    visitor: Client, ann: User, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = {"RAISE_ERRORS": False, "CLIENT_RESOLVER": "tests.test_hooks_auth.bad_resolver"}
    with synerise(**overrides), caplog.at_level(logging.ERROR, logger="django_synerise.hooks"):
        response = visitor.post("/producers/auth/sign-in/", {"username": "ann"})
    assert response.status_code == 200
    assert visitor.session["_auth_user_id"] == str(ann.pk)
    assert rows() == []
    [record] = [r for r in caplog.records if r.name == "django_synerise.hooks"]
    assert "client.login" in record.getMessage()
    assert record.synerise_action == "client.login"  # type: ignore[attr-defined]


def test_auth_event_errors_raise_when_raise_errors(visitor: Client, ann: User) -> None:
    with (
        synerise(CLIENT_RESOLVER="tests.test_hooks_auth.bad_resolver"),
        pytest.raises(ValueError, match="unknown identifier"),
    ):
        visitor.post("/producers/auth/sign-in/", {"username": "ann"})


def resolve_broken(request: Any) -> dict[str, Any]:
    raise RuntimeError("resolver bug")


def test_identity_errors_are_logged_once_with_each_events_action(
    visitor: Client, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = {"RAISE_ERRORS": False, "CLIENT_RESOLVER": "tests.test_hooks_auth.resolve_broken"}
    with synerise(**overrides), caplog.at_level(logging.DEBUG, logger="django_synerise"):
        response = visitor.post("/producers/auth/sign-up/", {"username": "new"})
        assert response.status_code == 200
        visitor.post("/producers/auth/sign-out/")
    assert rows() == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["django_synerise.hooks"] * 3
    assert [r.synerise_action for r in errors] == [  # type: ignore[attr-defined]
        "client.register",
        "client.login",
        "client.logout",
    ]
    for record in errors:
        assert record.synerise_action in record.getMessage()  # type: ignore[attr-defined]
        assert record.exc_info is not None and "resolver bug" in str(record.exc_info[1])
    assert "no Synerise identifier" not in caplog.text


def test_registered_is_switchable(ann: User) -> None:
    with auth_switches(REGISTERED=False):
        assert track_registration(ann) is None
    assert rows() == []
    assert track_registration(ann) is not None


@pytest.mark.django_db
def test_admin_logins_are_not_customer_logins(visitor: Client) -> None:
    """Before: staff signing in to the admin became ``client.login`` events in Synerise."""
    User.objects.create_superuser("staff", "staff@example.com", "pw-staff-123")
    response = visitor.post(
        "/admin/login/?next=/admin/", {"username": "staff", "password": "pw-staff-123"}
    )
    assert response.status_code == 302
    assert not OutboxEvent.objects.filter(action="client.login").exists()
    visitor.post("/admin/logout/")
    assert not OutboxEvent.objects.filter(action="client.logout").exists()
    # The same user signing in on the site is tracked as before.
    assert visitor.login(username="staff", password="pw-staff-123")
    assert OutboxEvent.objects.filter(action="client.login").count() == 1


def refuse_consent(request: Any) -> bool:
    return False


@pytest.mark.django_db
def test_auth_events_honour_consent(visitor: Client) -> None:
    """Before: page visits stopped for a refusing visitor, logins were still sent."""
    User.objects.create_user("ann", "ann@example.com", "pw-ann-12345")
    with synerise(CONSENT="tests.test_hooks_auth.refuse_consent"):
        assert visitor.login(username="ann", password="pw-ann-12345")
        visitor.logout()
    assert not OutboxEvent.objects.filter(action__in=["client.login", "client.logout"]).exists()
