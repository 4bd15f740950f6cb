"""Catalog items: CatalogItem records, the stand-in's checks, delivery by id and by name."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command

from django_synerise import track_event, track_many
from django_synerise.events import CatalogItem
from django_synerise.exceptions import InvalidEventError
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise


def test_an_item_is_its_key_and_value_without_nulls() -> None:
    item = CatalogItem(
        "products", key=17, value={"title": "Mug", "price": Decimal("9.90"), "x": None}
    )
    assert item.to_payload() == {"itemKey": "17", "value": {"title": "Mug", "price": 9.9}}
    assert (item.kind, item.batch_type) == ("catalog", "name:products")
    assert CatalogItem(42, key="a", value={}).batch_type == "id:42"
    assert CatalogItem("42", key="a", value={}).batch_type == "id:42"


@pytest.mark.parametrize(
    ("catalog", "key", "value", "field"),
    [
        (0, "a", {}, "catalog"),
        (True, "a", {}, "catalog"),
        ("", "a", {}, "catalog"),
        ("x" * 60, "a", {}, "catalog"),
        ("products", "", {}, "itemKey"),
        ("products", None, {}, "itemKey"),
        ("products", "a", [], "value"),
        ("products", "a", {"price": float("inf")}, "value.price"),
    ],
)
def test_invalid_items_are_refused_naming_the_field(
    catalog: Any, key: Any, value: Any, field: str
) -> None:
    with pytest.raises(InvalidEventError) as info:
        CatalogItem(catalog, key=key, value=value)
    assert info.value.field == field


def flush() -> None:
    call_command("synerise_flush", stdout=io.StringIO())


@pytest.mark.django_db
def test_a_catalog_named_is_looked_up_once_and_each_request_holds_one_catalog(
    synerise_stand_in: LocalSynerise,
) -> None:
    products = synerise_stand_in.add_catalog("products")
    synerise_stand_in.add_catalog("products-archive")  # the search also matches this one
    other = synerise_stand_in.add_catalog("stores", 900)
    track_many(
        [
            CatalogItem("products", key="a", value={"t": 1}),
            CatalogItem(900, key="s1", value={}),
            CatalogItem("products", key="b", value={"t": 2}),
        ]
    )
    flush()
    track_event(CatalogItem("products", key="c", value={}))
    flush()
    assert [(i["catalogId"], i["itemKey"]) for i in synerise_stand_in.catalog_items()] == [
        (products, "a"),
        (products, "b"),
        (other, "s1"),
        (products, "c"),
    ]
    searches = [r for r in synerise_stand_in.requests if r.method == "GET"]
    assert len(searches) <= 1  # cached per process (an earlier test may have filled it)
    posts = [r.path for r in synerise_stand_in.requests if r.path.startswith("/catalogs/")]
    assert posts.count(f"/catalogs/bags/{products}/items/batch") == 2


@pytest.mark.django_db
def test_an_unknown_catalog_name_goes_dead_with_the_reason(
    synerise_stand_in: LocalSynerise,
) -> None:
    track_event(CatalogItem("nowhere", key="a", value={}))
    flush()
    row = OutboxEvent.objects.get()
    assert row.status == "dead"
    assert "no catalog named 'nowhere'" in row.last_error


def test_the_stand_in_wants_a_numeric_catalog_id(synerise_server: LocalSynerise) -> None:
    import requests

    token = requests.post(
        synerise_server.url + "/uauth/v2/auth/login/profile",
        json={"apiKey": synerise_server.api_key},
        headers={"Api-Version": "4.4"},
        timeout=5,
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    synerise_server.add_catalog("products", 7)
    url = synerise_server.url + "/catalogs/bags/{}/items/batch"
    item = [{"itemKey": "a", "value": {}}]
    assert (
        requests.post(url.format("products"), json=item, headers=headers, timeout=5).status_code
        == 400
    )
    assert requests.post(url.format(8), json=item, headers=headers, timeout=5).status_code == 404
    bad = requests.post(url.format(7), json=[{"itemKey": "a"}], headers=headers, timeout=5)
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "[0].value"
    assert requests.post(url.format(7), json=item, headers=headers, timeout=5).status_code == 200
    found = requests.get(
        synerise_server.url + "/catalogs/bags",
        params={"searchBy": "prod"},
        headers=headers,
        timeout=5,
    ).json()
    assert found["data"] == [{"id": 7, "name": "products"}]
