"""synerise_catalog_load: a whole catalog, in batches, resumable, delivered to the stand-in."""

from __future__ import annotations

import io
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from django_synerise.hooks import track_catalog, untrack_model
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise
from tests.docs_samples import sample
from tests.testapp.models import TrackedPurchase

pytestmark = pytest.mark.django_db


@pytest.fixture
def products() -> Iterator[None]:
    TrackedPurchase.objects.bulk_create(
        TrackedPurchase(sku=f"S-{i:03d}", price=Decimal(i)) for i in range(25)
    )
    track_catalog(
        TrackedPurchase,
        catalog="products",
        key="sku",
        value=lambda p: {"price": p.price},
        when=lambda p, created: p.sku != "S-013",
    )
    yield
    untrack_model(TrackedPurchase)


def load(*args: str) -> str:
    out = io.StringIO()
    call_command("synerise_catalog_load", "testapp.TrackedPurchase", *args, stdout=out)
    return out.getvalue()


@pytest.mark.usefixtures("products")
def test_the_whole_catalog_is_enqueued_in_batches_and_delivered(
    synerise_stand_in: LocalSynerise,
) -> None:
    catalog_id = synerise_stand_in.add_catalog("products")
    text = load("--batch-size", "10")
    assert "Enqueued 24 items of catalog products (1 rows skipped)" in text
    call_command("synerise_flush", stdout=io.StringIO())
    keys = [item["itemKey"] for item in synerise_stand_in.catalog_items(catalog_id)]
    assert keys == [f"S-{i:03d}" for i in range(25) if i != 13]


@pytest.mark.usefixtures("products")
def test_resume_goes_on_after_the_last_batch_enqueued() -> None:
    first = TrackedPurchase.objects.order_by("pk")[9].pk
    load("--after", str(first), "--batch-size", "7")
    assert OutboxEvent.objects.count() == 14  # rows 10..24 but the skipped one
    OutboxEvent.objects.all().delete()
    load("--resume")
    assert OutboxEvent.objects.count() == 0  # the previous run reached the end
    TrackedPurchase.objects.create(sku="S-100", price=Decimal(1))
    OutboxEvent.objects.all().delete()
    load("--resume")
    assert [row.body["itemKey"] for row in OutboxEvent.objects.all()] == ["S-100"]


def test_a_model_without_a_catalog_declaration_says_what_to_do() -> None:
    with pytest.raises(CommandError, match=r"declare track_catalog\(TrackedPurchase"):
        load()


def test_the_docs_lines_are_this_command() -> None:
    for line in sample("catalog-load").splitlines():
        words = line.split()
        assert words[:3] == ["python", "manage.py", "synerise_catalog_load"]
