"""What the shop tells Synerise, checked end to end against the local stand-in.

The ``synerise_stand_in`` fixture starts django-synerise's stand-in for the
Synerise API and points ``settings.SYNERISE`` at it; ``synerise_flush`` then
delivers the outbox there over real HTTP, and the test reads what arrived.
"""

import json

import pytest
from django.core.management import call_command
from django.db.models.signals import post_save
from django.urls import reverse

from shop.models import CartLine, Order, Product

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
    # ai-compat, the default AI events API (SYNERISE["AI_EVENTS_API"]).
    assert click["endpoint"] == "ai-compat-batch"
    assert click["body"]["item"] == "MUG-2"  # ai-compat: a click names one item


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


# -- the shop vocabulary -------------------------------------------------------------

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def params_of(stand_in, event_type):
    return [e["body"]["params"] for e in stand_in.events_of(type=event_type)]


def test_a_product_page_sends_a_product_view_from_the_browsers_source(
    client, mug, synerise_stand_in
):
    client.cookies["_snrs_uuid"] = VISITOR
    client.get(mug.get_absolute_url(), HTTP_USER_AGENT=IPHONE)

    call_command("synerise_flush")

    [view] = synerise_stand_in.events_of(type="product-view")
    assert view["body"]["client"] == {"uuid": VISITOR}
    params = view["body"]["params"]
    assert params["productId"] == "MUG-1"
    assert params["name"] == "Mug"
    assert params["finalUnitPrice"] == {"amount": 12.5, "currency": "EUR"}
    assert params["source"] == "WEB_MOBILE"


def test_a_favourite_is_sent_once(client, mug, synerise_stand_in):
    client.cookies["_snrs_uuid"] = VISITOR
    url = reverse("shop:favourite", args=[mug.sku])
    assert client.post(url).status_code == 302
    assert client.post(url).status_code == 302  # already a favourite
    assert b"In your favourites" in client.get(mug.get_absolute_url()).content

    call_command("synerise_flush")

    [favourite] = params_of(synerise_stand_in, "added-to-favorites")
    assert (favourite["productId"], favourite["source"]) == ("MUG-1", "WEB_DESKTOP")


def test_cart_changes_send_removals_and_the_carts_status(client, mug, synerise_stand_in):
    client.cookies["_snrs_uuid"] = VISITOR
    tea = Product.objects.create(sku="TEA-1", name="Tea", category="Tea", price="4.00")
    client.post(
        reverse("shop:add_to_cart", args=[mug.sku]), {"quantity": 2}, HTTP_USER_AGENT=IPHONE
    )
    client.post(reverse("shop:add_to_cart", args=[tea.sku]), {"quantity": 1})
    cart = client.get(reverse("shop:cart")).content.decode()
    mug_line = CartLine.objects.get(product=mug)
    assert reverse("shop:remove_from_cart", args=[mug_line.pk]) in cart
    assert client.post(reverse("shop:remove_from_cart", args=[mug_line.pk])).status_code == 302

    call_command("synerise_flush")

    [added, _] = params_of(synerise_stand_in, "added-to-cart")
    assert added["source"] == "WEB_MOBILE"  # the cart was made on a phone
    [removed] = params_of(synerise_stand_in, "removed-from-cart")
    assert (removed["sku"], removed["quantity"]) == ("MUG-1", 2)
    assert removed["finalUnitPrice"] == {"amount": 12.5, "currency": "EUR"}
    statuses = [
        e["body"]["params"]
        for e in synerise_stand_in.events_of(type="custom")
        if e["body"]["action"] == "cart.status"
    ]
    assert [(s["total_amount"], s["total_quantity"]) for s in statuses] == [
        (25.0, 2.0),
        (29.0, 3.0),
        (4.0, 1.0),
    ]
    assert [p["sku"] for p in statuses[-1]["products"]] == ["TEA-1"]


def place_order(client, product):
    client.post(reverse("shop:add_to_cart", args=[product.sku]), {"quantity": 2})
    response = client.post(reverse("shop:checkout"), {"email": "ada@example.com"})
    return Order.objects.get(), response["Location"]


def test_checkout_empties_the_carts_status(client, mug, synerise_stand_in):
    client.cookies["_snrs_uuid"] = VISITOR
    place_order(client, mug)

    call_command("synerise_flush")

    last = [
        e["body"]["params"]
        for e in synerise_stand_in.events_of(type="custom")
        if e["body"]["action"] == "cart.status"
    ][-1]
    assert (last["products"], last["total_amount"], last["total_quantity"]) == ([], 0.0, 0.0)


def test_an_updated_order_overwrites_its_transaction(client, mug, synerise_stand_in):
    order, url = place_order(client, mug)
    assert client.post(f"{url}email/", {"email": "ada@work.example"}).status_code == 302

    call_command("synerise_flush")

    first, second = synerise_stand_in.events_of(type="transaction")
    # Synerise overwrites when eventSalt and recordedAt both match.
    for key in ("eventSalt", "recordedAt", "orderId"):
        assert first["body"][key] == second["body"][key], key
    assert first["body"]["eventSalt"] == str(order.pk)
    assert (first["body"]["client"]["email"], second["body"]["client"]["email"]) == (
        "ada@example.com",
        "ada@work.example",
    )


def test_a_cancelled_order_sends_a_cancellation_not_a_transaction(client, mug, synerise_stand_in):
    order, url = place_order(client, mug)
    assert client.post(f"{url}cancel/").status_code == 302
    assert client.post(f"{url}cancel/").status_code == 302  # once only
    client.post(f"{url}email/", {"email": "ada@work.example"})  # too late: nothing sent

    call_command("synerise_flush")

    assert len(synerise_stand_in.events_of(type="transaction")) == 1
    [cancel] = synerise_stand_in.events_of(type="cancelled-transaction")
    assert cancel["body"]["client"]["email"] == "ada@example.com"
    params = cancel["body"]["params"]
    assert params["orderId"] == str(order.pk)
    assert params["revenue"] == {"amount": 25.0, "currency": "EUR"}
    assert [p["sku"] for p in params["products"]] == ["MUG-1"]


@pytest.mark.parametrize(
    ("page", "search_type"),
    [("shop:suggest", "autocomplete"), ("shop:search", "full-text-search")],
)
def test_search_clicks_say_which_search_they_came_from(
    client, mug, synerise_stand_in, page, search_type
):
    from shop.simulation import frames_of

    client.cookies["_snrs_uuid"] = VISITOR
    # The suggestions are fetched by script: not a page visit.
    response = client.get(reverse(page), {"q": "mug"}, HTTP_SEC_FETCH_DEST="empty")
    [frame] = frames_of(response, "search")
    assert frame.search_type == search_type
    assert frame.items == [("MUG-1", 1)]
    beacon = {
        "type": "item.search.click",
        "correlationId": frame.correlation_id,
        "items": ["MUG-1"],
        "position": 1,
        "searchType": search_type,
    }
    response = client.post(
        reverse("django_synerise:beacon"),
        data=json.dumps(beacon),
        content_type="text/plain",
        HTTP_ORIGIN="http://testserver",
    )
    assert response.status_code == 204

    call_command("synerise_flush")

    [click] = synerise_stand_in.events_of(type="item.search.click")
    assert click["body"]["item"] == "MUG-1"
    assert click["body"]["searchType"] == search_type
    assert click["body"]["position"] == 1
    assert synerise_stand_in.events_of(type="custom") == []  # no page visit
