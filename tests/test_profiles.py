"""Profiles: ProfileUpdate records, their wire form, the stand-in's checks, delivery and merge order."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from django_synerise import dispatch, track_event, track_many
from django_synerise.events import CustomEvent, ProfileUpdate, merge_profiles
from django_synerise.exceptions import InvalidEventError
from django_synerise.models import OutboxEvent
from django_synerise.profiles import identity_hash, profile_uuid
from django_synerise.testing import LocalSynerise
from tests.docs_samples import ROOT, run_sample

UUID = "3e1d2c4b-5a69-4788-9a0b-1c2d3e4f5a6b"
DNS = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"


# -- the record ------------------------------------------------------------------------


def test_a_profile_is_one_flat_object_with_clientid_and_no_nulls() -> None:
    profile = ProfileUpdate(
        client={"id": 42, "email": "ann@example.com"},
        data={
            "firstName": "Ann",
            "lastName": None,
            "phone": "+48 600 100 200",
            "birthDate": dt.date(1990, 5, 3),
            "sex": "FEMALE",
            "agreements": {"email": True, "sms": False, "push": None},
            "attributes": {"vip": True, "score": None, "since": dt.date(2020, 1, 2)},
            "tags": ["b2b"],
        },
    )
    assert profile.to_payload() == {
        "clientId": 42,
        "email": "ann@example.com",
        "firstName": "Ann",
        "phone": "+48 600 100 200",
        "birthDate": "1990-05-03",
        "sex": "FEMALE",
        "agreements": {"email": True, "sms": False},
        "attributes": {"vip": True, "since": "2020-01-02"},
        "tags": ["b2b"],
    }
    assert (profile.kind, profile.action) == ("profile", "profile.update")


@pytest.mark.parametrize(
    ("client", "data", "field"),
    [
        ({}, {}, "client"),
        ({"nickname": "x"}, {}, "client"),
        ({"clientId": 0}, {}, "client.clientId"),
        ({"clientId": True}, {}, "client.clientId"),
        ({"id": 1, "clientId": 2}, {}, "client.clientId"),
        ({"email": "nope"}, {}, "client.email"),
        ({"uuid": "not-a-uuid"}, {}, "client.uuid"),
        ({"customId": "a\nb"}, {}, "client.customId"),
        ({"customId": "7"}, {"email": "a@b.co"}, "data.email"),
        ({"customId": "7"}, {"nickname": "x"}, "data.nickname"),
        ({"customId": "7"}, {"firstName": 3}, "data.firstName"),
        ({"customId": "7"}, {"phone": "call me"}, "data.phone"),
        ({"customId": "7"}, {"birthDate": "03/05/1990"}, "data.birthDate"),
        ({"customId": "7"}, {"birthDate": "1899-12-31"}, "data.birthDate"),
        ({"customId": "7"}, {"sex": "F"}, "data.sex"),
        ({"customId": "7"}, {"countryCode": "Poland"}, "data.countryCode"),
        ({"customId": "7"}, {"agreements": {"sms": 1}}, "data.agreements.sms"),
        ({"customId": "7"}, {"agreements": {"fax": True}}, "data.agreements.fax"),
        ({"customId": "7"}, {"agreements": True}, "data.agreements"),
        ({"customId": "7"}, {"attributes": {"email": "x"}}, "data.attributes.email"),
        ({"customId": "7"}, {"attributes": {"n": float("nan")}}, "data.attributes.n"),
        ({"customId": "7"}, {"tags": "b2b"}, "data.tags"),
    ],
)
def test_invalid_profiles_are_refused_naming_the_field(
    client: dict[str, Any], data: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidEventError) as info:
        ProfileUpdate(client=client, data=data)
    assert info.value.field == field


def test_merge_profiles_is_the_sdks_two_profile_request() -> None:
    new = profile_uuid("ann@example.com", DNS)
    merge = merge_profiles("ann@example.com", new, UUID)
    assert merge.to_payload() == [
        {"uuid": UUID, "email": "ann@example.com"},
        {"uuid": new, "email": "ann@example.com"},
    ]
    assert merge.action == "profile.merge"
    alone = merge_profiles("ann@example.com", new)
    assert alone.to_payload() == [{"uuid": new, "email": "ann@example.com"}]


def test_identity_hash_is_javas_string_hashcode() -> None:
    # Java: "abc".hashCode() == 96354; "polygenelubricants".hashCode() == Integer.MIN_VALUE.
    assert identity_hash("abc") == 96354
    assert identity_hash("polygenelubricants") == -(2**31)


# -- the stand-in ----------------------------------------------------------------------


@pytest.fixture
def post(synerise_server: LocalSynerise) -> Any:
    token = requests.post(
        synerise_server.url + "/uauth/v2/auth/login/profile",
        json={"apiKey": synerise_server.api_key},
        headers={"Api-Version": "4.4"},
        timeout=5,
    ).json()["token"]

    def post(body: Any) -> requests.Response:
        return requests.post(
            synerise_server.url + "/v4/clients/batch",
            json=body,
            headers={"Authorization": f"Bearer {token}", "Api-Version": "4.4"},
            timeout=5,
        )

    return post


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        ({"id": 5}, "[0].id"),
        ({"client": {"email": "a@b.co"}, "firstName": "A"}, "[0].client"),
        ({"firstName": "A"}, "[0]"),
        ({"email": "a@b.co", "firstName": None}, "[0].firstName"),
        ({"email": "a@b.co", "agreements": {"sms": 1}}, "[0].agreements.sms"),
        ({"email": "a@b.co", "agreements": {"sms": "true"}}, "[0].agreements.sms"),
        ({"clientId": "5"}, "[0].clientId"),
        ({"email": "a@b.co", "birthDate": "1990-5-3"}, "[0].birthDate"),
        ({"email": "a@b.co", "nickname": "x"}, "[0].nickname"),
    ],
)
def test_the_stand_in_refuses_what_synerise_would(
    post: Any, synerise_server: LocalSynerise, profile: dict[str, Any], field: str
) -> None:
    response = post([profile])
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]
    assert synerise_server.count == 0


def test_the_stand_in_takes_at_most_1000_profiles(
    post: Any, synerise_server: LocalSynerise
) -> None:
    assert post([{"customId": str(i)} for i in range(1001)]).status_code == 400
    assert post([{"customId": str(i)} for i in range(1000)]).status_code == 202
    assert len(synerise_server.profiles()) == 1000


# -- delivery over HTTP ----------------------------------------------------------------


def flush() -> None:
    call_command("synerise_flush", stdout=io.StringIO())


@pytest.mark.django_db
def test_profiles_are_delivered_in_requests_of_at_most_1000(
    synerise_stand_in: LocalSynerise,
) -> None:
    track_many(
        ProfileUpdate(client={"customId": str(i)}, data={"city": "Kraków"}) for i in range(1499)
    )
    track_event(merge_profiles("ann@example.com", profile_uuid("ann@example.com", DNS), UUID))
    flush()
    requests_made = [r for r in synerise_stand_in.requests if r.path == "/v4/clients/batch"]
    # 500 rows per request: the last holds the merge row, two profiles.
    assert [len(r.body) for r in requests_made] == [500, 500, 501]
    assert len(synerise_stand_in.profiles()) == 1501
    assert not OutboxEvent.objects.exclude(status="sent").exists()


def _login(browser: Client) -> None:
    response = browser.post("/producers/auth/sign-in/", {"username": "ann"})
    assert response.status_code == 200


@pytest.fixture
def ann() -> User:
    return User.objects.create_user("ann", email="ann@example.com")


@pytest.mark.django_db
def test_the_merge_reaches_synerise_before_the_login_event_even_when_it_fails_first(
    synerise_stand_in: LocalSynerise, ann: User
) -> None:
    browser = Client()
    browser.cookies["_snrs_uuid"] = UUID
    _login(browser)
    synerise_stand_in.inject("500", times=1, paths="/v4/clients/batch")
    result = dispatch.flush()
    assert (result.sent, result.retried) == (0, 1)
    # The merge failed: the login event waits for it, not a second sooner.
    assert synerise_stand_in.events_of(type="logged-in") == []
    merge = OutboxEvent.objects.get(kind="profile")
    assert (merge.status, merge.attempts) == ("pending", 1)
    OutboxEvent.objects.filter(pk=merge.pk).update(next_attempt_at=merge.created_at)
    flush()
    arrived = [(e["endpoint"], e["type"]) for e in synerise_stand_in.events]
    assert arrived == [
        ("clients-batch", "profile"),
        ("clients-batch", "profile"),
        ("v4-batch", "logged-in"),
    ]
    first, second = synerise_stand_in.profiles()
    assert first == {"uuid": UUID, "email": "ann@example.com"}
    login = synerise_stand_in.events_of(type="logged-in")[0]["body"]
    assert login["client"]["uuid"] == second["uuid"] == profile_uuid("ann@example.com", DNS)


@pytest.mark.django_db
def test_a_login_event_claimed_with_its_merge_still_goes_after_it(
    synerise_stand_in: LocalSynerise, ann: User
) -> None:
    # Both rows due in the same pass: the event is claimed only once the merge is sent.
    browser = Client()
    browser.cookies["_snrs_uuid"] = UUID
    _login(browser)
    flush()
    kinds = [e["endpoint"] for e in synerise_stand_in.events]
    assert kinds == ["clients-batch", "clients-batch", "v4-batch"]
    login_request = next(
        i for i, r in enumerate(synerise_stand_in.requests) if r.path == "/v4/events/batch"
    )
    merge_request = next(
        i for i, r in enumerate(synerise_stand_in.requests) if r.path == "/v4/clients/batch"
    )
    assert merge_request < login_request


@pytest.mark.django_db
def test_a_dead_merge_does_not_hold_the_login_event_forever(
    synerise_stand_in: LocalSynerise, ann: User
) -> None:
    synerise_stand_in.reject(lambda item: isinstance(item, dict) and item.get("uuid") == UUID)
    browser = Client()
    browser.cookies["_snrs_uuid"] = UUID
    _login(browser)
    flush()
    flush()
    assert OutboxEvent.objects.get(kind="profile").status == "dead"
    assert len(synerise_stand_in.events_of(type="logged-in")) == 1


@pytest.mark.django_db
def test_a_login_event_passed_by_in_the_walk_still_goes_in_the_same_pass(
    synerise_stand_in: LocalSynerise, ann: User
) -> None:
    browser = Client()
    browser.cookies["_snrs_uuid"] = UUID
    _login(browser)
    track_many(CustomEvent("shop.opened", client={"customId": str(i)}) for i in range(3))
    # Two rows per claim: the first takes the merge and the first page event, the
    # walk moves on past the login event, which was still waiting then.
    result = dispatch.flush(batch_size=2)
    assert result.sent == 5
    types = [e["type"] for e in synerise_stand_in.events]
    assert types.index("profile") < types.index("logged-in")
    assert not OutboxEvent.objects.filter(status="pending").exists()


# -- docs/profiles.md samples ----------------------------------------------------------


@pytest.mark.django_db
def test_profile_update_sample_is_delivered_flat(synerise_stand_in: LocalSynerise) -> None:
    run_sample("profile-update")
    flush()
    assert synerise_stand_in.profiles() == [
        {
            "customId": "7",
            "email": "ada@example.com",
            "firstName": "Ada",
            "city": "Kraków",
            "agreements": {"email": True, "sms": False},
            "attributes": {"loyaltyTier": "gold"},
        }
    ]


@pytest.mark.django_db
def test_track_profile_sample_declares_a_profile_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from django.apps import AppConfig

    from django_synerise.hooks import registered_hooks, untrack_model
    from tests.testapp.models import TrackedReview

    module = types.ModuleType("customers.models")
    module.Customer = TrackedReview  # type: ignore[attr-defined]
    package = types.ModuleType("customers")
    package.__path__ = [str(ROOT)]  # type: ignore[attr-defined]
    package.models = module  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "customers", package)
    monkeypatch.setitem(__import__("sys").modules, "customers.models", module)
    ns = run_sample("track-profile", {"__package__": "customers"})
    config = ns["CustomersConfig"]
    assert issubclass(config, AppConfig)
    try:
        config("customers", package).ready()
        assert [h.record_name for h in registered_hooks() if h.model is TrackedReview] == [
            "profile.update",
            "profile.update",
        ]
    finally:
        untrack_model(TrackedReview)


@pytest.mark.django_db
def test_user_profiles_and_namespace_samples_are_valid_settings(ann: User) -> None:
    from django.test import override_settings

    for name in ("user-profiles-setting", "uuid-namespace"):
        with override_settings(SYNERISE=run_sample(name)["SYNERISE"]):
            ann.first_name = f"Ann {name}"
            ann.save()
    assert OutboxEvent.objects.get().body["firstName"] == "Ann user-profiles-setting"


@pytest.mark.django_db
def test_sign_up_sample_merges_before_both_events(synerise_stand_in: LocalSynerise) -> None:
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.test import RequestFactory

    request = RequestFactory().post("/sign-up/", {"username": "ada", "email": "ada@example.com"})
    request.COOKIES["_snrs_uuid"] = UUID
    SessionMiddleware(lambda r: None).process_request(request)  # type: ignore[arg-type,return-value]
    run_sample("profiles-sign-up")["sign_up"](request)
    flush()
    types = [e["type"] for e in synerise_stand_in.events]
    assert types == ["profile", "profile", "registered", "logged-in"]
    assert synerise_stand_in.profiles()[0] == {"uuid": UUID, "email": "ada@example.com"}


@pytest.mark.django_db
def test_catalog_samples(synerise_stand_in: LocalSynerise, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from django_synerise.hooks import registered_hooks, untrack_model
    from tests.testapp.models import TrackedPurchase

    catalog_id = synerise_stand_in.add_catalog("products")
    run_sample("catalog-item")
    module = types.ModuleType("shop.models")
    module.Product = TrackedPurchase  # type: ignore[attr-defined]
    package = types.ModuleType("shop")
    package.__path__ = [str(ROOT)]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shop", package)
    monkeypatch.setitem(sys.modules, "shop.models", module)
    ns = run_sample("track-catalog", {"__package__": "shop"})
    try:
        ns["ShopConfig"]("shop", package).ready()
        assert [h.record_name for h in registered_hooks() if h.model is TrackedPurchase] == [
            "catalog.item:name:products",
            "catalog.item:name:products",
        ]
    finally:
        untrack_model(TrackedPurchase)
    flush()
    assert synerise_stand_in.catalog_items(catalog_id) == [
        {
            "catalogId": catalog_id,
            "itemKey": "MUG-001",
            "value": {"title": "Mug", "price": 12.5, "category": "Kitchen"},
        }
    ]
