"""What the shop tells Synerise, checked end to end against the local stand-in.

The ``synerise_stand_in`` fixture starts django-synerise's stand-in for the
Synerise API and points ``settings.SYNERISE`` at it; ``synerise_flush`` then
delivers the outbox there over real HTTP, and the test reads what arrived.
"""

import pytest
from django.core.management import call_command
from django.db.models.signals import post_save
from django.urls import reverse

from shop.models import Order, Product

pytestmark = pytest.mark.django_db


@pytest.fixture
def mug():
    return Product.objects.create(sku="MUG-1", name="Mug", category="Kitchen", price="12.50")


def test_an_order_reaches_synerise_as_a_transaction(client, mug, synerise_stand_in):
    client.post(reverse("shop:add_to_cart", args=[mug.sku]), {"quantity": 2})
    client.post(reverse("shop:checkout"), {"email": "ada@example.com"})

    call_command("synerise_flush")

    [transaction] = synerise_stand_in.events_of(type="transaction")
    assert transaction["body"]["client"]["email"] == "ada@example.com"
    assert transaction["body"]["products"][0]["sku"] == "MUG-1"
    assert transaction["body"]["revenue"] == {"amount": 25.0, "currency": "EUR"}
    assert len(synerise_stand_in.events_of(type="added-to-cart")) == 1


def test_a_rolled_back_order_sends_nothing(client, mug, synerise_stand_in):
    client.post(reverse("shop:add_to_cart", args=[mug.sku]), {"quantity": 1})

    # Fails after the order is saved and its transaction event is written, inside
    # the checkout's atomic block: the order and its event must both disappear.
    def refuse(**kwargs):
        raise RuntimeError("payment refused")

    post_save.connect(refuse, sender=Order)
    try:
        with pytest.raises(RuntimeError):
            client.post(reverse("shop:checkout"), {"email": "ada@example.com"})
    finally:
        post_save.disconnect(refuse, sender=Order)
    assert not Order.objects.exists()

    call_command("synerise_flush")

    assert synerise_stand_in.events_of(type="transaction") == []
    assert len(synerise_stand_in.events_of(type="added-to-cart")) == 1


def test_sign_up_sends_registered_and_logged_in(client, synerise_stand_in):
    response = client.post(
        reverse("shop:signup"),
        {
            "username": "ada",
            "email": "ada@example.com",
            "password1": "correct-horse-battery",
            "password2": "correct-horse-battery",
        },
    )
    assert response.status_code == 302

    call_command("synerise_flush")

    assert [e["type"] for e in synerise_stand_in.events_of(endpoint="v4-batch")] == [
        "registered",
        "logged-in",
    ]


def test_a_recommendation_click_goes_to_the_ai_events_api(client, mug, synerise_stand_in):
    Product.objects.create(sku="MUG-2", name="Camping mug", category="Kitchen", price="9.90")
    page = client.get(mug.get_absolute_url())
    assert b'data-synerise-item="MUG-2"' in page.content

    response = client.post(
        reverse("django_synerise:beacon"),
        data='{"type": "recommendation.click", "correlationId": "c-1", "items": ["MUG-2"]}',
        content_type="text/plain",
        HTTP_ORIGIN="http://testserver",
    )
    assert response.status_code == 204
    call_command("synerise_flush")

    [click] = synerise_stand_in.events_of(type="recommendation.click")
    assert click["endpoint"] == "ai-batch"
    assert click["body"]["items"] == ["MUG-2"]


UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"


def test_the_async_share_view_records_the_page_context(async_client, mug, synerise_stand_in):
    from asgiref.sync import async_to_sync

    from django_synerise.dispatch import flush

    async_client.cookies["_snrs_uuid"] = UUID
    url = reverse("shop:share", args=[mug.sku]) + "?utm_source=newsletter"
    response = async_to_sync(async_client.post)(url)
    assert response.status_code == 204
    flush()
    (shared,) = [
        e
        for e in synerise_stand_in.events_of(type="custom")
        if e["body"]["action"] == "product.shared"
    ]
    assert shared["body"]["client"] == {"uuid": UUID}
    assert shared["body"]["params"]["sku"] == mug.sku
    assert shared["body"]["params"]["utm_source"] == "newsletter"


@pytest.mark.django_db
def test_staff_users_are_not_tracked_and_emails_in_params_are_masked(client, mug):
    from django.contrib.auth.models import User

    from django_synerise import track
    from django_synerise.models import OutboxEvent

    staff = User.objects.create_user("owner", is_staff=True)
    client.force_login(staff)
    OutboxEvent.objects.all().delete()  # the login itself
    client.cookies["_snrs_uuid"] = UUID
    client.get(mug.get_absolute_url())  # a page visit, dropped by the hook
    assert not OutboxEvent.objects.exists()
    row = track("quiz.answered", client={"uuid": UUID}, params={"email": "a@example.com"})
    assert row is not None
    assert '"email":"[masked]"' in row.payload


@pytest.mark.django_db
def test_the_metrics_page_lists_the_synerise_metrics(client):
    text = client.get("/metrics").content.decode()
    assert "synerise_records_enqueued_total" in text
    assert "synerise_outbox_pending" in text


VISITOR = "5b0c7a1e-2d3f-4e5a-8b6c-7d8e9f0a1b2c"


def test_a_newsletter_address_is_not_bound_to_the_visitor(client, synerise_stand_in):
    """Before: any e-mail typed in the footer was sent with the visitor's uuid."""
    client.cookies["_snrs_uuid"] = VISITOR
    client.post(reverse("shop:newsletter"), {"email": "someone.else@example.com"})

    call_command("synerise_flush")

    [event] = [
        e
        for e in synerise_stand_in.events_of(type="custom")
        if e["body"]["action"] == "newsletter.subscribed"
    ]
    assert event["body"]["client"] == {"email": "someone.else@example.com"}


def test_the_visitor_cookie_is_secure_on_https(client):
    plain = client.get(reverse("shop:index"))
    assert plain.cookies["_snrs_uuid"]["secure"] == ""
    client.cookies.clear()
    secure = client.get(reverse("shop:index"), secure=True)
    assert secure.cookies["_snrs_uuid"]["secure"] is True
