"""Event value objects: one test per validation rule, exact JSON on the way out."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from decimal import Decimal

import pytest

from django_synerise.events import (
    AI_EVENT_TYPES,
    DEDICATED_EVENT_TYPES,
    AIEvent,
    CustomEvent,
    DedicatedEvent,
    Transaction,
    format_time,
    page_visit,
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
            {"sku": "a", "finalUnitPrice": {"amount": 10, "currency": "EUR"}},
            {"sku": "b", "finalUnitPrice": 5, "quantity": 2},
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
    event = DedicatedEvent(event_type, client={"email": "a@example.com"}, params={"sku": "1"})
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
            {"order_id": "1", "products": [{"sku": "a", "quantity": 0, "finalUnitPrice": 1}]},
            "products[0].quantity",
        ),
        ({"order_id": "1", "products": [{"sku": "a"}]}, "products[0].finalUnitPrice"),
        ({"order_id": "1", "revenue": 10, "currency": None}, "revenue"),
        ({"order_id": "1", "revenue": 10, "currency": "zł"}, "revenue.currency"),
        ({"order_id": "1", "revenue": "10", "currency": "PLN"}, "revenue"),
        ({"order_id": "1", "source": "FAX"}, "source"),
        (
            {
                "order_id": "1",
                "currency": "PLN",
                "products": [
                    {"sku": "a", "finalUnitPrice": {"amount": 10, "currency": "EUR"}},
                    {"sku": "b", "finalUnitPrice": 5},
                ],
            },
            "products[1].finalUnitPrice.currency",
        ),
        (
            {
                "order_id": "1",
                "currency": "PLN",
                "revenue": {"amount": 10, "currency": "USD"},
                "products": [{"sku": "a", "finalUnitPrice": 10}],
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
    event = AIEvent(
        event_type,
        correlation_id="corr-1",
        client_uuid=UUID,
        items=[89435879453, "x"],
        campaign_id="camp",
        timestamp=WHEN,
    )
    assert event.to_payload() == {
        "correlationId": "corr-1",
        "clientUUID": UUID,
        "items": ["89435879453", "x"],
        "eventTimestamp": int(WHEN.timestamp() * 1000),
        "campaignId": "camp",
    }
    assert event.kind == "ai"
    assert event.batch_type == event_type


def test_ai_event_iso_timestamp_and_ai_compat_click():
    event = AIEvent(
        "recommendation.click", correlation_id="c", client_uuid=UUID, items=["7"], timestamp=WHEN
    )
    body = event.to_payload(ai_api="ai-compat", ai_timestamp_format="iso8601")
    assert body["eventTimestamp"] == "2022-05-23T13:00:00.176Z"
    assert body["item"] == "7"
    assert "items" not in body


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
