"""Event value objects: one test per validation rule, exact JSON on the way out."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from decimal import Decimal

import pytest

from django_synerise import events
from django_synerise.events import (
    AI_EVENT_TYPES,
    DEDICATED_EVENT_TYPES,
    AIEvent,
    CustomEvent,
    DedicatedEvent,
    Transaction,
    format_time,
    page_visit,
    shape_ai_payload,
)
from django_synerise.exceptions import InvalidEventError

UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"
WHEN = dt.datetime(2022, 5, 23, 9, 0, 0, 176000, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def no_nulls(value):
    if value is None:
        return False
    if isinstance(value, dict):
        return all(no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(no_nulls(v) for v in value)
    return True


def test_custom_event_payload_is_exactly_the_documented_shape():
    event = CustomEvent(
        "dog.bark",
        client={"id": 5092159999},
        params={"loudness": 3, "mood": "happy", "mailmanScared": True},
        label="bark",
        time=WHEN,
        salt="salt-1",
    )
    assert event.to_payload() == {
        "type": "custom",
        "action": "dog.bark",
        "label": "bark",
        "client": {"id": 5092159999},
        "time": "2022-05-23T13:00:00.176Z",
        "eventSalt": "salt-1",
        "params": {"loudness": 3, "mood": "happy", "mailmanScared": True},
    }
    assert event.kind == "event"
    assert event.batch_type == "custom"


def test_label_defaults_to_action():
    assert CustomEvent("dog.bark", client={"customId": "1"}).to_payload()["label"] == "dog.bark"


def test_time_and_salt_are_fixed_at_construction():
    event = CustomEvent("dog.bark", client={"customId": "1"})
    first = event.to_json()
    assert event.to_json() == first
    body = json.loads(first)
    assert ISO_RE.match(body["time"])
    uuid.UUID(body["eventSalt"])
    other = CustomEvent("dog.bark", client={"customId": "1"})
    assert other.salt != event.salt


def test_format_time_is_utc_with_milliseconds():
    assert format_time(WHEN) == "2022-05-23T13:00:00.176Z"
    assert format_time(dt.datetime(2022, 1, 1, tzinfo=dt.timezone.utc)) == (
        "2022-01-01T00:00:00.000Z"
    )


@pytest.mark.parametrize(
    "action", ["x", "a" * 33, "dog bark", "dog/bark", "żółw.run", "", None, 12]
)
def test_action_must_be_2_to_32_allowed_characters(action):
    with pytest.raises(InvalidEventError) as exc:
        CustomEvent(action, client={"customId": "1"})
    assert exc.value.field == "action"
    assert "2 to 32 characters" in str(exc.value)


@pytest.mark.parametrize("action", ["ab", "a" * 32, "dog.bark", "page-visit_2", "A.B"])
def test_valid_actions(action):
    assert CustomEvent(action, client={"customId": "1"}).action == action


def test_transaction_charge_is_refused_as_custom_event():
    with pytest.raises(InvalidEventError, match="Transaction") as exc:
        CustomEvent("transaction.charge", client={"customId": "1"})
    assert exc.value.field == "action"


def test_recommendation_events_are_refused_as_custom_events():
    with pytest.raises(InvalidEventError, match="AI events API"):
        CustomEvent("recommendation.view", client={"customId": "1"})


@pytest.mark.parametrize(("event_type", "action"), sorted(DEDICATED_EVENT_TYPES.items()))
def test_actions_with_a_dedicated_endpoint_are_refused_as_custom_events(event_type, action):
    with pytest.raises(InvalidEventError) as exc:
        CustomEvent(action, client={"customId": "1"})
    assert exc.value.field == "action"
    assert f"DedicatedEvent({event_type!r}" in str(exc.value)


def test_a_transaction_keeps_to_one_currency():
    tx = Transaction(
        client={"customId": "1"},
        order_id="1",
        currency="EUR",
        products=[
            {"sku": "a", "name": "A", "finalUnitPrice": {"amount": 10, "currency": "EUR"}},
            {"sku": "b", "name": "B", "finalUnitPrice": 5, "quantity": 2},
        ],
    )
    assert tx.to_payload()["revenue"] == {"amount": 20, "currency": "EUR"}


@pytest.mark.parametrize(
    ("client", "field", "fragment"),
    [
        ({}, "client", "at least one of id, customId, uuid, email"),
        ({"customId": ""}, "client", "at least one of"),
        ({"phone": "123"}, "client", "unknown identifier"),
        ("user@example.com", "client", "must be a dict"),
        ({"id": "12"}, "client.id", "positive integer"),
        ({"id": 0}, "client.id", "positive integer"),
        ({"id": True}, "client.id", "positive integer"),
        ({"customId": 12}, "client.customId", "must be a string"),
        ({"uuid": "not-a-uuid"}, "client.uuid", "not a UUID"),
        ({"email": "nobody"}, "client.email", "not an email"),
        ({"customId": "x" * 600}, "client.customId", "at most 512"),
    ],
)
def test_client_rules(client, field, fragment):
    with pytest.raises(InvalidEventError) as exc:
        CustomEvent("dog.bark", client=client)
    assert exc.value.field == field
    assert fragment in str(exc.value)


def test_client_none_values_are_dropped_not_sent():
    event = CustomEvent("dog.bark", client={"customId": "7", "email": None, "uuid": UUID})
    assert event.client == {"customId": "7", "uuid": UUID}


@pytest.mark.parametrize("label", ["", "   ", 5])
def test_label_must_be_a_non_empty_string(label):
    with pytest.raises(InvalidEventError) as exc:
        CustomEvent("dog.bark", client={"customId": "1"}, label=label)
    assert exc.value.field == "label"


@pytest.mark.parametrize(
    "name", ["modifiedBy", "apiKey", "eventUUID", "ip", "time", "businessProfileId"]
)
def test_reserved_params_are_rejected(name):
    with pytest.raises(InvalidEventError) as exc:
        CustomEvent("dog.bark", client={"customId": "1"}, params={name: "x"})
    assert exc.value.field == f"params.{name}"
    assert "reserved" in str(exc.value)


def test_naive_time_is_rejected():
    with pytest.raises(InvalidEventError, match="timezone-aware") as exc:
        CustomEvent("dog.bark", client={"customId": "1"}, time=dt.datetime(2022, 1, 1))
    assert exc.value.field == "time"


def test_time_must_be_a_datetime():
    with pytest.raises(InvalidEventError, match="must be a datetime"):
        CustomEvent("dog.bark", client={"customId": "1"}, time="2022-01-01T00:00:00Z")


def test_params_never_contain_null_and_convert_common_types():
    event = CustomEvent(
        "dog.bark",
        client={"customId": "1"},
        params={
            "gone": None,
            "nested": {"gone": None, "kept": 1},
            "price": Decimal("9.99"),
            "count": Decimal("3"),
            "when": WHEN,
            "day": dt.date(2022, 1, 2),
            "id": uuid.UUID(UUID),
            "tags": ("a", "b"),
        },
    )
    params = event.to_payload()["params"]
    assert params == {
        "nested": {"kept": 1},
        "price": 9.99,
        "count": 3,
        "when": "2022-05-23T13:00:00.176Z",
        "day": "2022-01-02",
        "id": UUID,
        "tags": ["a", "b"],
    }
    assert no_nulls(event.to_payload())


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"x": float("nan")}, "params.x"),
        ({"x": float("inf")}, "params.x"),
        ({"x": [1, None]}, "params.x[1]"),
        ({"x": object()}, "params.x"),
        ({1: "a"}, "params"),
        ("a=b", "params"),
    ],
)
def test_params_that_cannot_be_json_are_rejected(params, field):
    with pytest.raises(InvalidEventError) as exc:
        CustomEvent("dog.bark", client={"customId": "1"}, params=params)
    assert exc.value.field == field


def test_invalid_event_error_is_a_value_error():
    assert issubclass(InvalidEventError, ValueError)


@pytest.mark.parametrize(("event_type", "action"), list(DEDICATED_EVENT_TYPES.items()))
def test_dedicated_events_carry_type_and_no_action(event_type, action):
    # Params that satisfy every type's rules at once.
    params = {
        "sku": "1",
        "name": "One",
        "productId": "1",
        "quantity": 1,
        "finalUnitPrice": {"amount": 1, "currency": "PLN"},
        "source": "WEB_DESKTOP",
        "orderId": "o-1",
        "correlationId": "c",
        "item": "1",
        "position": 1,
        "searchType": "autocomplete",
    }
    event = DedicatedEvent(event_type, client={"email": "a@example.com"}, params=params)
    payload = event.to_payload()
    assert payload["type"] == event_type
    assert "action" not in payload
    assert event.action == action
    assert payload["label"] == action
    assert event.batch_type == event_type


def test_unknown_dedicated_type_is_rejected():
    with pytest.raises(InvalidEventError, match="not a dedicated event type") as exc:
        DedicatedEvent("page-visit", client={"customId": "1"})
    assert exc.value.field == "type"


def test_page_visit_is_a_custom_event_with_url_params():
    event = page_visit(
        client={"uuid": UUID},
        url="https://shop.example/p/1?utm_source=news",
        path="/p/1",
        referrer="https://google.com/",
        title="Product 1",
        utm={"utm_source": "news", "utm_bogus": "x", "utm_medium": ""},
        user_agent="Mozilla/5.0",
        time=WHEN,
    )
    payload = event.to_payload()
    assert payload["type"] == "custom"
    assert payload["action"] == "page.visit"
    assert payload["params"] == {
        "url": "https://shop.example/p/1?utm_source=news",
        "path": "/p/1",
        "referrer": "https://google.com/",
        "title": "Product 1",
        "userAgent": "Mozilla/5.0",
        "utm_source": "news",
    }
    assert payload["time"] == "2022-05-23T13:00:00.176Z"


def test_page_visit_needs_a_url():
    with pytest.raises(InvalidEventError) as exc:
        page_visit(client={"uuid": UUID}, url="")
    assert exc.value.field == "params.url"


def test_transaction_payload():
    tx = Transaction(
        client={"customId": "42"},
        order_id=1001,
        products=[
            {"sku": "A", "name": "Apple", "quantity": 2, "finalUnitPrice": Decimal("1.50")},
            {"sku": "B", "name": "Bread", "quantity": 1, "finalUnitPrice": 3, "regularPrice": 4},
        ],
        currency="PLN",
        payment_info={"method": "CASH"},
        recorded_at=WHEN,
        salt="s",
    )
    body = tx.to_payload()
    assert body["orderId"] == "1001"
    assert body["recordedAt"] == "2022-05-23T13:00:00.176Z"
    assert body["products"][0]["finalUnitPrice"] == {"amount": 1.5, "currency": "PLN"}
    assert body["products"][1]["regularPrice"] == {"amount": 4, "currency": "PLN"}
    assert body["revenue"] == {"amount": 6.0, "currency": "PLN"}
    assert body["value"] == body["revenue"]
    assert body["paymentInfo"] == {"method": "CASH"}
    assert body["eventSalt"] == "s"
    assert body["source"] == "WEB_DESKTOP"
    assert tx.kind == "transaction"
    assert no_nulls(body)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"order_id": ""}, "orderId"),
        ({"order_id": "1", "products": [{"name": "x", "finalUnitPrice": 1}]}, "products[0].sku"),
        (
            {
                "order_id": "1",
                "products": [{"sku": "a", "name": "A", "quantity": 0, "finalUnitPrice": 1}],
            },
            "products[0].quantity",
        ),
        ({"order_id": "1", "products": [{"sku": "a", "name": "A"}]}, "products[0].finalUnitPrice"),
        ({"order_id": "1", "products": [{"sku": "a", "finalUnitPrice": 1}]}, "products[0].name"),
        ({"order_id": "1", "revenue": 10, "currency": None}, "revenue"),
        ({"order_id": "1", "revenue": 10, "currency": "zł"}, "revenue.currency"),
        ({"order_id": "1", "revenue": "10", "currency": "PLN"}, "revenue"),
        ({"order_id": "1", "source": "FAX"}, "source"),
        (
            {
                "order_id": "1",
                "currency": "PLN",
                "products": [
                    {"sku": "a", "name": "A", "finalUnitPrice": {"amount": 10, "currency": "EUR"}},
                    {"sku": "b", "name": "B", "finalUnitPrice": 5},
                ],
            },
            "products[1].finalUnitPrice.currency",
        ),
        (
            {
                "order_id": "1",
                "currency": "PLN",
                "revenue": {"amount": 10, "currency": "USD"},
                "products": [{"sku": "a", "name": "A", "finalUnitPrice": 10}],
            },
            "products[0].finalUnitPrice.currency",
        ),
        (
            {
                "order_id": "1",
                "revenue": 10,
                "currency": "PLN",
                "discount_amount": {"amount": 1, "currency": "EUR"},
            },
            "discountAmount.currency",
        ),
    ],
)
def test_transaction_rules(kwargs, field):
    with pytest.raises(InvalidEventError) as exc:
        Transaction(client={"customId": "1"}, **kwargs)
    assert exc.value.field == field


@pytest.mark.parametrize("event_type", AI_EVENT_TYPES)
def test_ai_event_payload_events_v1(event_type):
    search = event_type == "item.search.click"
    event = AIEvent(
        event_type,
        correlation_id="corr-1",
        client_uuid=UUID,
        items=[89435879453, "x"],
        campaign_id="camp",
        timestamp=WHEN,
        position=2 if search else None,
    )
    expected = {
        "correlationId": "corr-1",
        "clientUUID": UUID,
        "items": ["89435879453", "x"],
        "eventTimestamp": int(WHEN.timestamp() * 1000),
        "campaignId": "camp",
    }
    if search:
        # position is kept in every API mode; searchType defaults to a results-page click.
        expected.update(position=2, searchType="full-text-search")
    assert event.to_payload(ai_api="events-v1") == expected
    assert event.kind == "ai"
    assert event.batch_type == event_type


def test_ai_event_stored_payload_is_neutral():
    event = AIEvent(
        "item.search.click",
        correlation_id="c",
        client_uuid=UUID,
        items=["7"],
        timestamp=WHEN,
        position=4,
        search_type="autocomplete",
    )
    assert event.to_payload() == {
        "eventType": "item.search.click",
        "correlationId": "c",
        "clientUUID": UUID,
        "items": ["7"],
        "eventTimestamp": "2022-05-23T13:00:00.176Z",
        "position": 4,
        "searchType": "autocomplete",
    }


def test_ai_compat_timestamp_is_iso_whatever_the_format_setting():
    event = AIEvent(
        "recommendation.click", correlation_id="c", client_uuid=UUID, items=["7"], timestamp=WHEN
    )
    for fmt in ("unix-ms", "iso8601", None):
        body = event.to_payload(ai_api="ai-compat", ai_timestamp_format=fmt)
        assert body["eventTimestamp"] == "2022-05-23T13:00:00.176Z"
        assert body["item"] == "7"
        assert "items" not in body
    v1 = event.to_payload(ai_api="events-v1", ai_timestamp_format="iso8601")
    assert v1["eventTimestamp"] == "2022-05-23T13:00:00.176Z"


def test_ai_compat_search_click_keeps_position_and_search_type():
    event = AIEvent(
        "item.search.click",
        correlation_id="c",
        client_uuid=UUID,
        items=["7"],
        campaign_id="camp",
        position=3,
        timestamp=WHEN,
    )
    assert event.to_payload(ai_api="ai-compat") == {
        "correlationId": "c",
        "clientUUID": UUID,
        "item": "7",
        "eventTimestamp": "2022-05-23T13:00:00.176Z",
        "position": 3,
        "searchType": "full-text-search",
    }


@pytest.mark.parametrize("api", ["events-v1", "ai-compat"])
def test_rows_stored_shaped_by_earlier_versions_are_reshaped(api):
    # An events-v1 row (ms time, items, no searchType) and an ai-compat row (item, ISO).
    v1_row = {
        "correlationId": "c",
        "clientUUID": UUID,
        "items": ["7"],
        "eventTimestamp": 1653310800176,
    }
    compat_row = {
        "correlationId": "c",
        "clientUUID": UUID,
        "item": "7",
        "position": 2,
        "eventTimestamp": "2022-05-23T13:00:00.176Z",
    }
    for row in (v1_row, compat_row):
        body = shape_ai_payload(row, api=api, event_type="item.search.click")
        assert body["searchType"] == "full-text-search"
        if api == "ai-compat":
            assert body["item"] == "7"
            assert body["eventTimestamp"] == "2022-05-23T13:00:00.176Z"
        else:
            assert body["items"] == ["7"]
            assert body["eventTimestamp"] == 1653310800176


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"event_type": "recommendation.like"}, "eventType"),
        ({"correlation_id": ""}, "correlationId"),
        ({"client_uuid": "abc"}, "clientUUID"),
        ({"items": "abc"}, "items"),
        ({"items": ["ok", ""]}, "items[1]"),
        ({"items": ["x" * 300]}, "items[0]"),
        ({"position": 0}, "position"),
        ({"event_type": "recommendation.click", "items": []}, "items"),
        ({"event_type": "item.search.click"}, "items"),
        ({"event_type": "item.search.click", "items": ["1"]}, "position"),
        ({"event_type": "item.search.click", "items": ["1"], "position": 0}, "position"),
        (
            {"event_type": "item.search.click", "items": ["1"], "position": 1, "search_type": "x"},
            "searchType",
        ),
        ({"search_type": "autocomplete"}, "searchType"),
    ],
)
def test_ai_event_rules(kwargs, field):
    args = {"event_type": "recommendation.view", "correlation_id": "c", "client_uuid": UUID}
    args.update(kwargs)
    event_type = args.pop("event_type")
    with pytest.raises(InvalidEventError) as exc:
        AIEvent(event_type, **args)
    assert exc.value.field == field


def test_equal_events_compare_equal():
    a = CustomEvent("dog.bark", client={"customId": "1"}, time=WHEN, salt="s")
    b = CustomEvent("dog.bark", client={"customId": "1"}, time=WHEN, salt="s")
    assert a == b
    assert a != CustomEvent("dog.bark", client={"customId": "2"}, time=WHEN, salt="s")


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: CustomEvent("a.b", client={"customId": "7"}, params={"n": "\ud800"}), "params.n"),
        (lambda: CustomEvent("a.b", client={"customId": "\udfff"}), "client.customId"),
        (lambda: CustomEvent("a.b", client={"customId": "7\x00"}), "client.customId"),
        (lambda: CustomEvent("a.b", client={"customId": "7"}, salt="s\x00"), "eventSalt"),
        (lambda: CustomEvent("a.b", client={"customId": "7"}, label="\ud800"), "label"),
        (
            lambda: AIEvent("recommendation.view", correlation_id="\ud800", client_uuid=UUID),
            "correlationId",
        ),
    ],
)
def test_text_that_cannot_be_stored_or_sent_is_refused(make, field):
    with pytest.raises(InvalidEventError) as exc:
        make()
    assert exc.value.field == field


def test_years_before_1000_are_written_with_four_digits():
    when = dt.datetime(554, 10, 16, tzinfo=dt.timezone.utc)
    assert format_time(when) == "0554-10-16T00:00:00.000Z"


@pytest.mark.parametrize(
    "when",
    [
        dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-12))),
        dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=14))),
    ],
)
def test_times_that_overflow_in_utc_are_refused(when):
    with pytest.raises(InvalidEventError, match="out of range") as exc:
        CustomEvent("a.b", client={"customId": "7"}, time=when)
    assert exc.value.field == "time"


@pytest.mark.parametrize("bad", [True, 3, "text", ["a"]])
def test_page_visit_params_must_be_a_dict(bad):
    with pytest.raises(InvalidEventError) as exc:
        page_visit(client={"customId": "7"}, url="https://shop.example/", params=bad)
    assert exc.value.field == "params"


def test_ai_event_times_before_2000_are_refused():
    with pytest.raises(InvalidEventError, match="after 2000") as exc:
        AIEvent(
            "recommendation.view",
            correlation_id="c",
            client_uuid=UUID,
            timestamp=dt.datetime(1970, 6, 1, tzinfo=dt.timezone.utc),
        )
    assert exc.value.field == "eventTimestamp"


# -- the shop vocabulary ---------------------------------------------------------------------

MUG = {
    "sku": "MUG-1",
    "name": "Mug",
    "quantity": 2,
    "finalUnitPrice": Decimal("9.50"),
    "regularPrice": 12,
    "category": "Kitchen",
    "url": "https://shop.example/mug",
}
SHOPPER = {"uuid": UUID}


@pytest.mark.parametrize(
    ("build", "event_type"),
    [(events.add_to_cart, "added-to-cart"), (events.remove_from_cart, "removed-from-cart")],
)
def test_cart_events_use_the_cart_names(build, event_type):
    event = build(client=SHOPPER, product=MUG, currency="PLN", source="WEB_MOBILE", time=WHEN)
    body = event.to_payload()
    assert body["type"] == event_type
    assert body["params"] == {
        "sku": "MUG-1",
        "name": "Mug",
        "quantity": 2,
        "finalUnitPrice": {"amount": 9.5, "currency": "PLN"},
        "regularUnitPrice": {"amount": 12, "currency": "PLN"},
        "discountedUnitPrice": {"amount": 9.5, "currency": "PLN"},
        "category": "Kitchen",
        "url": "https://shop.example/mug",
        "source": "WEB_MOBILE",
    }


def test_a_cart_event_at_the_regular_price_has_no_discounted_price():
    product = {"sku": "A", "name": "A", "finalUnitPrice": 5, "regularPrice": 5}
    params = events.add_to_cart(client=SHOPPER, product=product, currency="PLN").to_payload()[
        "params"
    ]
    assert "discountedUnitPrice" not in params
    assert params["quantity"] == 1
    assert params["source"] == "WEB_DESKTOP"


@pytest.mark.parametrize(
    ("build", "event_type"),
    [(events.product_view, "product-view"), (events.add_to_favorites, "added-to-favorites")],
)
def test_product_view_and_favorites_name_the_sku_product_id(build, event_type):
    body = build(client=SHOPPER, product=MUG, currency="PLN").to_payload()
    assert body["type"] == event_type
    params = body["params"]
    assert params["productId"] == "MUG-1"
    assert "sku" not in params
    assert "quantity" not in params
    assert params["name"] == "Mug"
    assert params["regularUnitPrice"] == {"amount": 12, "currency": "PLN"}
    assert params["source"] == "WEB_DESKTOP"
    # A price is optional on a product page.
    bare = build(client=SHOPPER, product={"sku": "B", "name": "Bowl"}).to_payload()["params"]
    assert bare == {"productId": "B", "name": "Bowl", "source": "WEB_DESKTOP"}


def test_cart_status_carries_products_and_float_totals():
    cheap = {"sku": "PEN", "name": "Pen", "quantity": 3, "finalUnitPrice": 1}
    body = events.cart_status(client=SHOPPER, products=[MUG, cheap], currency="PLN").to_payload()
    assert (body["type"], body["action"]) == ("custom", "cart.status")
    params = body["params"]
    assert params["total_amount"] == 22.0
    assert params["total_quantity"] == 5.0
    assert isinstance(params["total_amount"], float)
    # Cart status products are transaction products (regularPrice, not regularUnitPrice).
    assert params["products"][0]["regularPrice"] == {"amount": 12, "currency": "PLN"}
    empty = events.cart_status(client=SHOPPER, products=[]).to_payload()["params"]
    assert empty == {
        "products": [],
        "total_amount": 0.0,
        "total_quantity": 0.0,
        "source": "WEB_DESKTOP",
    }
    given = events.cart_status(client=SHOPPER, products=[cheap], currency="PLN", total_amount=2)
    assert given.to_payload()["params"]["total_amount"] == 2.0


def test_cancelled_transaction_and_search_click_builders():
    cancel = events.cancelled_transaction(
        client=SHOPPER, order_id=1001, products=[MUG], currency="PLN", revenue=19, source="POS"
    ).to_payload()
    assert cancel["type"] == "cancelled-transaction"
    assert cancel["params"]["orderId"] == "1001"
    assert cancel["params"]["revenue"] == {"amount": 19, "currency": "PLN"}
    assert cancel["params"]["source"] == "POS"
    click = events.item_search_click(
        client=SHOPPER, correlation_id="c", item=7, position=3, search_type="autocomplete"
    ).to_payload()
    assert click["type"] == "item-search-click"
    assert click["params"] == {
        "correlationId": "c",
        "item": "7",
        "position": 3,
        "searchType": "autocomplete",
        "source": "WEB_DESKTOP",
    }


def _without(key):
    return {k: v for k, v in MUG.items() if k != key}


@pytest.mark.parametrize(
    "build",
    [events.add_to_cart, events.remove_from_cart, events.product_view, events.add_to_favorites],
)
@pytest.mark.parametrize(
    ("product", "kwargs", "field"),
    [
        ({**MUG, "finalUnitPrice": -1}, {}, "product.finalUnitPrice"),
        ({**MUG, "regularPrice": Decimal("-0.01")}, {}, "product.regularPrice"),
        (_without("name"), {}, "product.name"),
        ({**MUG, "name": "  "}, {}, "product.name"),
        (_without("sku"), {}, "product.sku"),
        (MUG, {"source": "TABLET"}, "params.source"),
        (MUG, {"currency": None}, "product.finalUnitPrice"),
        (MUG, {"params": {"source": "POS"}}, "params.source"),
        ({**MUG, "discountPrice": 1}, {}, "product.discountPrice"),
        ("MUG-1", {}, "product"),
    ],
)
def test_shop_builders_refuse_invalid_products(build, product, kwargs, field):
    args = {"currency": "PLN", **kwargs}
    with pytest.raises(InvalidEventError) as exc:
        build(client=SHOPPER, product=product, **args)
    assert exc.value.field == field


def test_cart_events_need_a_final_price_and_a_positive_quantity():
    with pytest.raises(InvalidEventError) as exc:
        events.add_to_cart(client=SHOPPER, product=_without("finalUnitPrice"), currency="PLN")
    assert exc.value.field == "product.finalUnitPrice"
    with pytest.raises(InvalidEventError) as exc:
        events.add_to_cart(client=SHOPPER, product={**MUG, "quantity": 0}, currency="PLN")
    assert exc.value.field == "product.quantity"


def test_free_items_are_allowed():
    gift = {"sku": "GIFT", "name": "Gift", "finalUnitPrice": 0}
    params = events.add_to_cart(client=SHOPPER, product=gift, currency="PLN").to_payload()["params"]
    assert params["finalUnitPrice"] == {"amount": 0, "currency": "PLN"}
    tx = Transaction(client=SHOPPER, order_id="1", products=[gift], currency="PLN")
    assert tx.to_payload()["revenue"] == {"amount": 0, "currency": "PLN"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"revenue": -5}, "revenue"),
        ({"value": Decimal("-0.01")}, "value"),
        ({"discount_amount": -1}, "discountAmount"),
        (
            {"products": [{"sku": "a", "name": "A", "finalUnitPrice": -1}]},
            "products[0].finalUnitPrice",
        ),
        ({"source": "TABLET"}, "source"),
        ({"products": {"sku": "a"}}, "products"),
    ],
)
def test_transaction_money_and_source_rules(kwargs, field):
    with pytest.raises(InvalidEventError) as exc:
        Transaction(client=SHOPPER, order_id="1", currency="PLN", **kwargs)
    assert exc.value.field == field


def test_transaction_discount_of_zero_is_left_out_and_mobile_web_is_sent_as_web_mobile():
    tx = Transaction(
        client=SHOPPER,
        order_id="1",
        revenue=10,
        discount_amount=0,
        currency="PLN",
        source="MOBILE_WEB",
    )
    body = tx.to_payload()
    assert "discountAmount" not in body
    assert body["source"] == "WEB_MOBILE"
    assert events.EVENT_SOURCES == (
        "WEB_DESKTOP",
        "WEB_MOBILE",
        "MOBILE_APP",
        "POS",
        "MOBILE",
        "DESKTOP",
    )


def test_an_updated_order_is_sent_with_the_same_salt_and_time():
    placed = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    first = Transaction(
        client=SHOPPER, order_id="1", revenue=10, currency="PLN", salt=1001, recorded_at=placed
    )
    later = Transaction(
        client=SHOPPER, order_id="1", revenue=8, currency="PLN", salt=1001, recorded_at=placed
    )
    keys = ("eventSalt", "recordedAt")
    assert [first.to_payload()[k] for k in keys] == [later.to_payload()[k] for k in keys]
    assert first.to_payload()["eventSalt"] == "1001"


def test_builders_refuse_params_that_would_override_their_own():
    with pytest.raises(InvalidEventError) as exc:
        events.add_to_cart(client=SHOPPER, product=MUG, currency="PLN", params={"sku": "other"})
    assert exc.value.field == "params.sku"
    extra = events.add_to_cart(client=SHOPPER, product=MUG, currency="PLN", params={"coupon": "X"})
    assert extra.to_payload()["params"]["coupon"] == "X"


@pytest.mark.parametrize(
    ("user_agent", "source"),
    [
        (None, "WEB_DESKTOP"),
        ("", "WEB_DESKTOP"),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
            "WEB_DESKTOP",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari",
            "WEB_DESKTOP",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1",
            "WEB_MOBILE",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/120.0 Mobile Safari/537.36",
            "WEB_MOBILE",
        ),
        ("Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15", "WEB_MOBILE"),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
            "WEB_MOBILE",
        ),
    ],
)
def test_source_from_user_agent(user_agent, source):
    assert events.source_from_user_agent(user_agent) == source


@pytest.mark.django_db
@pytest.mark.parametrize("ai_api", ["events-v1", "ai-compat"])
def test_every_shop_event_is_accepted_by_the_stand_in(synerise_stand_in, settings, ai_api):
    """Real HTTP: each builder's event, enqueued and flushed, accepted with no rejection."""
    from django.core.management import call_command

    import django_synerise
    from django_synerise.models import OutboxEvent

    settings.SYNERISE = {**settings.SYNERISE, "AI_EVENTS_API": ai_api}
    shopper = {"uuid": UUID, "email": "jane@example.com"}
    gift = {"sku": "GIFT", "name": "Gift", "finalUnitPrice": 0}
    built = [
        events.product_view(client=shopper, product=MUG, currency="PLN", source="WEB_MOBILE"),
        events.add_to_cart(client=shopper, product=MUG, currency="PLN"),
        events.add_to_cart(client=shopper, product=gift, currency="PLN"),
        events.remove_from_cart(client=shopper, product=MUG, currency="PLN"),
        events.add_to_favorites(client=shopper, product=MUG, currency="PLN"),
        events.cart_status(client=shopper, products=[MUG, gift], currency="PLN"),
        events.cart_status(client=shopper, products=[]),
        events.item_search_click(client=shopper, correlation_id="c", item="MUG-1", position=1),
        events.cancelled_transaction(client=shopper, order_id="1001", currency="PLN", revenue=19),
        Transaction(
            client=shopper,
            order_id="1001",
            products=[MUG, gift],
            currency="PLN",
            discount_amount=0,
            source="MOBILE_WEB",
            salt="1001",
            recorded_at=WHEN,
        ),
        AIEvent(
            "item.search.click",
            correlation_id="c",
            client_uuid=UUID,
            items=["MUG-1"],
            position=2,
            search_type="autocomplete",
        ),
    ]
    django_synerise.track_many(built)
    call_command("synerise_flush")
    assert synerise_stand_in.count == len(built)
    assert not OutboxEvent.objects.exists()
    search = synerise_stand_in.events_of(type="item.search.click")[0]["body"]
    assert (search["position"], search["searchType"]) == (2, "autocomplete")
    assert synerise_stand_in.events_of(type="transaction")[0]["body"]["source"] == "WEB_MOBILE"


@pytest.mark.parametrize(
    ("event_type", "params", "field"),
    [
        ("added-to-cart", {"sku": "A"}, "params.source"),
        ("added-to-cart", {"sku": "A", "source": "WEB_DESKTOP"}, "params.name"),
        (
            "removed-from-cart",
            {"sku": "A", "name": "A", "quantity": 1, "source": "POS", "finalUnitPrice": 3},
            "params.finalUnitPrice",
        ),
        (
            "added-to-cart",
            {
                "sku": "A",
                "name": "A",
                "quantity": 1,
                "source": "POS",
                "finalUnitPrice": {"amount": -3, "currency": "PLN"},
            },
            "params.finalUnitPrice.amount",
        ),
        ("product-view", {"productId": "A"}, "params.source"),
        ("product-view", {"sku": "A", "source": "WEB_DESKTOP"}, "params.productId"),
        ("added-to-favorites", None, "params"),
        (
            "item-search-click",
            {"correlationId": "c", "item": "1", "position": 1},
            "params.searchType",
        ),
        ("cancelled-transaction", {"source": "POS"}, "params.orderId"),
    ],
)
def test_dedicated_events_built_by_hand_meet_the_sdk_rules(event_type, params, field):
    with pytest.raises(InvalidEventError) as exc:
        DedicatedEvent(event_type, client=SHOPPER, params=params)
    assert exc.value.field == field


def test_cart_status_built_by_hand_meets_the_sdk_rules():
    with pytest.raises(InvalidEventError) as exc:
        CustomEvent("cart.status", client=SHOPPER, params={"products": [], "total_amount": 0})
    assert exc.value.field == "params.source"
    event = CustomEvent(
        "cart.status",
        client=SHOPPER,
        params={"products": [], "total_amount": 0, "total_quantity": 0, "source": "MOBILE_WEB"},
    )
    assert event.to_payload()["params"] == {
        "products": [],
        "total_amount": 0.0,
        "total_quantity": 0.0,
        "source": "WEB_MOBILE",
    }


# -- the docs' samples (docs/shop-events.md) ---------------------------------------------


@pytest.mark.django_db
def test_the_shop_events_samples_are_accepted_by_the_stand_in(synerise_stand_in):
    from types import SimpleNamespace

    from django.core.management import call_command

    from tests.docs_samples import run_sample

    run_sample("shop-events-builders")
    run_sample("shop-events-cancel")
    build = run_sample("shop-events-transaction")["order_transaction"]
    line = SimpleNamespace(sku="MUG-1", name="Mug", quantity=2, price=Decimal("9.50"))
    order = SimpleNamespace(
        email="ada@example.com",
        number="1001",
        lines=[line],
        currency="PLN",
        discount=0,
        placed_at=WHEN,
    )
    first, updated = build(order), build(order)
    import django_synerise

    django_synerise.track_many([first, updated])
    call_command("synerise_flush")
    assert synerise_stand_in.count == 6
    accepted = synerise_stand_in.events_of(type="transaction")
    # An updated order is sent with the same salt and time: Synerise overwrites it.
    assert {(e["salt"], e["body"]["recordedAt"]) for e in accepted} == {
        ("1001", "2022-05-23T13:00:00.176Z")
    }
    assert "discountAmount" not in accepted[0]["body"]
    types = sorted(e["type"] for e in synerise_stand_in.events_of())
    assert types == sorted(
        ["product-view", "added-to-cart", "custom", "cancelled-transaction"] + ["transaction"] * 2
    )
    status = synerise_stand_in.events_of(type="custom")[0]["body"]["params"]
    assert (status["total_amount"], status["source"]) == (19.0, "WEB_MOBILE")
