"""Model hooks: track_model() as decorator and function; transactions; profiles; catalog; errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, models, transaction
from django.test import override_settings
from django.utils import timezone

from django_synerise import track_model
from django_synerise.conf import synerise_settings
from django_synerise.exceptions import SyneriseConfigurationError
from django_synerise.hooks import registered_hooks, track_catalog, track_profile, untrack_model
from django_synerise.models import OutboxEvent
from tests.testapp.models import TrackedNote, TrackedPurchase, TrackedReview

pytestmark = pytest.mark.django_db


def synerise(**overrides: Any) -> override_settings:
    return override_settings(SYNERISE={**settings.SYNERISE, **overrides})


@pytest.fixture(autouse=True)
def _untrack() -> Iterator[None]:
    yield
    untrack_model(TrackedReview)
    untrack_model(TrackedPurchase)


def review_client(review: TrackedReview) -> dict[str, str] | None:
    return {"email": review.email} if review.email else None


def review_params(review: TrackedReview) -> dict[str, Any]:
    return {"stars": review.stars}


def only_published(review: TrackedReview, created: bool) -> bool:
    return review.published


def purchase_client(purchase: TrackedPurchase) -> dict[str, str]:
    return {"email": purchase.email}


def purchase_lines(purchase: TrackedPurchase) -> dict[str, Any]:
    return {
        "currency": purchase.currency,
        "products": [
            {
                "sku": purchase.sku,
                "name": f"Product {purchase.sku}",
                "quantity": purchase.quantity,
                "finalUnitPrice": purchase.price,
            }
        ],
    }


def rows() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.order_by("id"))


def test_decorator_form() -> None:
    note = TrackedNote.objects.create(email="ann@example.com", text="hello")
    [row] = rows()
    assert (row.kind, row.batch_type, row.action) == ("event", "custom", "note.posted")
    assert row.body["client"] == {"email": "ann@example.com"}
    assert row.body["params"] == {"text": "hello"}
    note.text = "edited"
    note.save()  # declared for "created" only
    note.delete()
    assert len(rows()) == 1


def test_no_client_skips_the_event() -> None:
    TrackedNote.objects.create(email="", text="anonymous")
    assert rows() == []


def test_created_updated_deleted_each_produce_their_event() -> None:
    track_model(
        TrackedReview,
        on=("created", "updated", "deleted"),
        client=review_client,
        params=review_params,
    )
    review = TrackedReview.objects.create(email="bob@example.com", stars=4)
    review.stars = 2
    review.save()
    review.delete()
    assert [row.action for row in rows()] == [
        "trackedreview.created",
        "trackedreview.updated",
        "trackedreview.deleted",
    ]
    assert [row.body["params"]["stars"] for row in rows()] == [4, 2, 2]
    assert {tuple(row.body["client"].items()) for row in rows()} == {
        (("email", "bob@example.com"),)
    }


def test_one_action_for_several_changes() -> None:
    track_model(
        TrackedReview, action="review.changed", on=("created", "deleted"), client=review_client
    )
    review = TrackedReview.objects.create(email="bob@example.com")
    review.save()
    review.delete()
    assert [row.action for row in rows()] == ["review.changed", "review.changed"]


def test_on_accepts_a_single_string() -> None:
    track_model(TrackedReview, action="review.updated", on="updated", client=review_client)
    review = TrackedReview.objects.create(email="bob@example.com")
    assert rows() == []
    review.save()
    assert [row.action for row in rows()] == ["review.updated"]


def test_function_form_returns_the_model_and_string_labels_work() -> None:
    assert track_model("testapp.TrackedReview", client=review_client) is TrackedReview
    TrackedReview.objects.create(email="bob@example.com")
    assert [row.action for row in rows()] == ["trackedreview.created"]


def test_when_filters() -> None:
    track_model(
        TrackedReview,
        action="review.published",
        on=("created", "updated"),
        client=review_client,
        when=only_published,
    )
    review = TrackedReview.objects.create(email="bob@example.com", published=False)
    assert rows() == []
    review.published = True
    review.save()
    assert [row.action for row in rows()] == ["review.published"]


def test_when_receives_created() -> None:
    seen: list[bool] = []

    def when(review: TrackedReview, created: bool) -> bool:
        seen.append(created)
        return not created

    track_model(
        TrackedReview,
        action="review.edited",
        on=("created", "updated", "deleted"),
        client=review_client,
        when=when,
    )
    review = TrackedReview.objects.create(email="bob@example.com")
    review.save()
    review.delete()
    assert seen == [True, False, False]
    assert [row.action for row in rows()] == ["review.edited", "review.edited"]


def test_rolled_back_atomic_block_takes_the_event_with_it() -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        TrackedNote.objects.create(email="ann@example.com", text="never saved")
        assert len(rows()) == 1  # written in the same transaction...
        raise Abort
    assert rows() == []  # ...and rolled back with it
    assert TrackedNote.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_rollback_with_real_transactions() -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        TrackedNote.objects.create(email="ann@example.com", text="never saved")
        raise Abort
    assert rows() == []
    with transaction.atomic():
        TrackedNote.objects.create(email="ann@example.com", text="kept")
    assert [row.action for row in rows()] == ["note.posted"]


def test_double_registration_does_not_double_events() -> None:
    for _ in range(3):
        track_model(TrackedReview, action="review.posted", client=review_client)
    TrackedReview.objects.create(email="bob@example.com")
    assert len(rows()) == 1
    assert len([h for h in registered_hooks() if h.model is TrackedReview]) == 1


def test_registering_again_replaces_the_declaration() -> None:
    track_model(TrackedReview, action="review.posted", client=review_client)
    track_model(
        TrackedReview,
        action="review.posted",
        client=review_client,
        params=review_params,
    )
    TrackedReview.objects.create(email="bob@example.com", stars=3)
    [row] = rows()
    assert row.body["params"] == {"stars": 3}


def test_untrack_model_disconnects() -> None:
    track_model(TrackedReview, on=("created", "deleted"), client=review_client)
    assert untrack_model(TrackedReview) == 2
    TrackedReview.objects.create(email="bob@example.com").delete()
    assert rows() == []


def test_raw_saves_from_fixtures_are_ignored() -> None:
    TrackedNote(email="ann@example.com", text="fixture").save_base(raw=True)
    assert TrackedNote.objects.count() == 1
    assert rows() == []


def test_dedicated_event_type() -> None:
    track_model(
        TrackedReview,
        event_type="added-to-favorites",
        client=review_client,
        params=lambda review: {"productId": str(review.pk), "name": "Reviewed product"},
    )
    TrackedReview.objects.create(email="bob@example.com")
    [row] = rows()
    assert (row.batch_type, row.action) == ("added-to-favorites", "product.addToFavorite")
    assert "action" not in row.body


def test_model_mapped_to_a_transaction() -> None:
    track_model(TrackedPurchase, client=purchase_client, transaction=purchase_lines)
    purchase = TrackedPurchase.objects.create(
        email="eve@example.com", sku="SKU-1", quantity=2, price=Decimal("19.99")
    )
    [row] = rows()
    assert (row.kind, row.batch_type, row.action) == (
        "transaction",
        "transaction",
        "transaction.charge",
    )
    body = row.body
    assert body["client"] == {"email": "eve@example.com"}
    assert body["orderId"] == str(purchase.pk)
    assert body["source"] == "WEB_DESKTOP"
    assert body["products"] == [
        {
            "sku": "SKU-1",
            "name": "Product SKU-1",
            "quantity": 2,
            "finalUnitPrice": {"amount": 19.99, "currency": "PLN"},
        }
    ]
    assert body["revenue"] == {"amount": 39.98, "currency": "PLN"}
    assert body["eventSalt"]


def test_transaction_event_type_without_mapping_sends_a_minimal_transaction() -> None:
    track_model(
        TrackedPurchase,
        event_type="transaction",
        client=purchase_client,
        params=lambda p: {"sku": p.sku},
    )
    with synerise(TRANSACTION_SOURCE="POS"):
        purchase = TrackedPurchase.objects.create(
            email="eve@example.com", sku="SKU-2", price=Decimal("5")
        )
    [row] = rows()
    assert row.body["orderId"] == str(purchase.pk)
    assert row.body["metadata"] == {"sku": "SKU-2"}
    assert row.body["source"] == "POS"


def test_transaction_mapping_may_carry_its_own_client() -> None:
    track_model(
        TrackedPurchase,
        transaction=lambda p: {"client": {"customId": f"c-{p.pk}"}, "order_id": f"ORD-{p.pk}"},
    )
    purchase = TrackedPurchase.objects.create(email="", sku="SKU-3", price=Decimal("1"))
    [row] = rows()
    assert row.body["client"] == {"customId": f"c-{purchase.pk}"}
    assert row.body["orderId"] == f"ORD-{purchase.pk}"


def test_disabled_writes_nothing() -> None:
    with synerise(ENABLED=False):
        TrackedNote.objects.create(email="ann@example.com", text="off")
    assert rows() == []


# MODEL_EVENTS was removed: track_model() in AppConfig.ready() is the one form -----------


def test_the_removed_model_events_setting_is_refused_with_the_valid_keys() -> None:
    with synerise(MODEL_EVENTS=[{"model": "testapp.TrackedReview"}]):
        with pytest.raises(SyneriseConfigurationError, match=r"Unknown key\(s\).*MODEL_EVENTS"):
            synerise_settings.ENABLED


# Profiles and catalog items from saves --------------------------------------------------


def review_profile(review: TrackedReview) -> dict[str, Any]:
    return {"attributes": {"stars": review.stars, "published": review.published}}


def test_track_profile_upserts_on_create_and_update() -> None:
    track_profile(TrackedReview, client=review_client, data=review_profile)
    review = TrackedReview.objects.create(email="ann@example.com", stars=4)
    review.stars = 2
    review.save()
    first, second = rows()
    assert (first.kind, first.action) == ("profile", "profile.update")
    assert first.body == {
        "email": "ann@example.com",
        "attributes": {"stars": 4, "published": False},
    }
    assert second.body["attributes"]["stars"] == 2


def test_a_save_that_changes_nothing_synerise_sees_enqueues_nothing() -> None:
    track_profile(TrackedReview, client=review_client, data=review_profile)
    review = TrackedReview.objects.create(email="ann@example.com", stars=4)
    review.save()
    review.save(update_fields=["stars"])
    assert len(rows()) == 1
    review.published = True
    review.save()
    assert len(rows()) == 2


def test_a_rolled_back_save_does_not_hide_the_next_one() -> None:
    track_profile(TrackedReview, client=review_client, data=review_profile)
    with pytest.raises(RuntimeError), transaction.atomic():
        TrackedReview.objects.create(email="bob@example.com", stars=3)
        raise RuntimeError("rollback")
    assert rows() == []
    TrackedReview.objects.create(email="bob@example.com", stars=3)
    assert len(rows()) == 1


def test_track_profile_skips_without_identifiers_and_validates_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    track_profile(TrackedReview, client=review_client, data=lambda r: {"phone": "call me"})
    TrackedReview.objects.create(email="", stars=1)
    assert rows() == []
    with synerise(RAISE_ERRORS=False), caplog.at_level(logging.ERROR):
        TrackedReview.objects.create(email="ann@example.com")
    assert rows() == []
    assert "data.phone" in caplog.text


def test_track_catalog_sends_items_of_one_catalog() -> None:
    track_catalog(
        TrackedPurchase,
        catalog="products",
        key="sku",
        value=lambda p: {"price": p.price, "currency": p.currency},
    )
    TrackedPurchase.objects.create(email="x@example.com", sku="S-1", price=Decimal("9.90"))
    [row] = rows()
    assert (row.kind, row.batch_type, row.action) == ("catalog", "name:products", "catalog.item")
    assert row.body == {"itemKey": "S-1", "value": {"price": 9.9, "currency": "PLN"}}


def test_two_catalogs_of_one_model_are_two_declarations() -> None:
    track_catalog(TrackedPurchase, catalog="products", key="sku", value=lambda p: {})
    track_catalog(TrackedPurchase, catalog=77, key=lambda p: p.pk, value=lambda p: {"sku": p.sku})
    purchase = TrackedPurchase.objects.create(sku="S-2", price=Decimal("1"))
    assert sorted(row.batch_type for row in rows()) == ["id:77", "name:products"]
    assert {row.body["itemKey"] for row in rows()} == {"S-2", str(purchase.pk)}


def test_record_hook_declaration_errors() -> None:
    with pytest.raises(ValueError, match="not deleted"):
        track_profile(TrackedReview, client=review_client, data=review_profile, on="deleted")
    with pytest.raises(ValueError, match="catalog"):
        track_catalog(TrackedPurchase, catalog="", key="sku", value=lambda p: {})
    with pytest.raises(TypeError, match="key="):
        track_catalog(TrackedPurchase, catalog=1, key=3, value=lambda p: {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="data"):
        track_profile(TrackedReview, client=review_client, data="nope")  # type: ignore[arg-type]


def test_user_profiles_keeps_the_users_profile_up_to_date() -> None:
    with synerise(USER_PROFILES=True):
        user = User.objects.create_user("ann", email="ann@example.com", first_name="Ann")
        user.last_login = timezone.now()
        user.save(update_fields=["last_login"])  # what every login does: nothing to send
        user.last_name = "Lee"
        user.save()
    first, second = rows()
    assert first.body == {"customId": str(user.pk), "email": "ann@example.com", "firstName": "Ann"}
    assert second.body["lastName"] == "Lee"
    user.first_name = "Anna"
    user.save()  # the setting is off again
    assert len(rows()) == 2


# Declaration errors ------------------------------------------------------------------


def test_declaration_errors_are_raised_at_once() -> None:
    with pytest.raises(ValueError, match=r"either action= .* or event_type="):
        track_model(TrackedReview, action="a.b", event_type="registered", client=review_client)
    with pytest.raises(TypeError, match="needs client="):
        track_model(TrackedReview, action="a.b")
    with pytest.raises(ValueError, match="on= must name"):
        track_model(TrackedReview, on=(), client=review_client)
    with pytest.raises(ValueError, match="action"):
        track_model(TrackedReview, action="x", client=review_client)
    with pytest.raises(TypeError, match="client= must be a callable"):
        track_model(TrackedReview, client="not callable")  # type: ignore[arg-type]

    class Base(models.Model):
        class Meta:
            abstract = True
            app_label = "testapp"

    with pytest.raises(TypeError, match="abstract"):
        track_model(Base, client=review_client)
    assert not [h for h in registered_hooks() if h.model is TrackedReview]


# Never break a save ----------------------------------------------------------------------


def broken_params(review: TrackedReview) -> dict[str, Any]:
    raise RuntimeError("params bug")


def test_errors_raise_when_raise_errors() -> None:
    track_model(TrackedReview, action="review.posted", client=review_client, params=broken_params)
    with pytest.raises(RuntimeError, match="params bug"), transaction.atomic():
        TrackedReview.objects.create(email="bob@example.com")
    assert TrackedReview.objects.count() == 0


def test_errors_are_logged_and_swallowed_by_default(caplog: pytest.LogCaptureFixture) -> None:
    track_model(TrackedReview, action="review.posted", client=review_client, params=broken_params)
    with (
        synerise(RAISE_ERRORS=False),
        caplog.at_level(logging.ERROR, logger="django_synerise.hooks"),
    ):
        review = TrackedReview.objects.create(email="bob@example.com")
    assert TrackedReview.objects.filter(pk=review.pk).exists()
    assert rows() == []
    [record] = [r for r in caplog.records if r.name == "django_synerise.hooks"]
    assert "review.posted" in record.getMessage()
    assert record.synerise_action == "review.posted"  # type: ignore[attr-defined]


def test_identity_errors_in_a_client_callable_are_logged_once_with_the_action(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.contrib.auth.models import User

    from django_synerise.identity import user_client

    def broken_identifier(user: User) -> str:
        raise RuntimeError("identifier bug")

    monkeypatch.setattr(User, "synerise_id", broken_identifier, raising=False)
    track_model(User, event_type="registered", client=user_client)
    try:
        with (
            synerise(RAISE_ERRORS=False, USER_IDENTIFIERS={"customId": "synerise_id"}),
            caplog.at_level(logging.DEBUG, logger="django_synerise"),
        ):
            User.objects.create_user("ann")
    finally:
        untrack_model(User)
    assert rows() == []
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.name == "django_synerise.hooks"
    assert record.synerise_action == "client.register"  # type: ignore[attr-defined]
    assert record.exc_info is not None and "identifier bug" in str(record.exc_info[1])


def test_failed_write_does_not_poison_the_callers_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing_enqueue(event: Any) -> None:
        # A real database error, like a missing outbox table: on PostgreSQL it
        # aborts the transaction unless it happened inside a savepoint.
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM synerise_no_such_table")

    monkeypatch.setattr("django_synerise.outbox.enqueue", failing_enqueue)
    track_model(TrackedReview, action="review.posted", client=review_client)
    with synerise(RAISE_ERRORS=False), transaction.atomic():
        TrackedReview.objects.create(email="bob@example.com")
        # The caller's transaction is still usable after the swallowed error.
        TrackedReview.objects.create(email="")
        assert TrackedReview.objects.count() == 2
    assert TrackedReview.objects.count() == 2
    assert rows() == []
