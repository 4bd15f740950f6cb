"""Tests of django_synerise.endpoints: the table every module reads."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from django_synerise.conf import synerise_settings
from django_synerise.endpoints import (
    AI_EVENTS,
    API_MAX_BYTES,
    API_MAX_ITEMS,
    ENDPOINTS,
    EVENTS,
    TRANSACTIONS,
    SendOptions,
    endpoint_for,
    setting_limits,
)
from django_synerise.models import OutboxEvent


def test_one_row_per_stored_kind_under_the_same_name() -> None:
    assert set(ENDPOINTS) == set(OutboxEvent.Kind.values)
    assert all(endpoint_for(name).name == name for name in ENDPOINTS)
    with pytest.raises(ValueError, match="known kinds: event, transaction, ai"):
        endpoint_for("events")


def test_paths_follow_the_settings_at_send_time() -> None:
    assert EVENTS.url_path(SendOptions()) == "/v4/events/batch"
    assert TRANSACTIONS.url_path(SendOptions()) == "/v4/transactions/batch"
    assert AI_EVENTS.url_path(SendOptions(ai_events_api="events-v1")) == "/events/v1/batch"
    assert AI_EVENTS.url_path(SendOptions(ai_events_api="ai-compat")) == (
        "/v4/events/ai-compat/batch"
    )


def test_grouping_and_the_request_wrapper() -> None:
    assert EVENTS.group_key("added-to-cart") == EVENTS.group_key("custom") == ""
    assert AI_EVENTS.group_key("recommendation.view") == "recommendation.view"
    body = EVENTS.body(['{"a":1}', '{"b":2}'], "", SendOptions())
    assert json.loads(body) == [{"a": 1}, {"b": 2}]
    assert EVENTS.request_size([7, 7]) == len(body)


def test_limits_come_from_the_settings_capped_by_synerise() -> None:
    assert setting_limits()["BATCH_SIZE"] == API_MAX_ITEMS == 1000
    assert setting_limits()["MAX_BATCH_BYTES"] == API_MAX_BYTES == 1_000_000
    with override_settings(SYNERISE={"BATCH_SIZE": 250, "AI_BATCH_SIZE": 40}):
        assert EVENTS.item_limit(synerise_settings) == 250
        assert AI_EVENTS.item_limit(synerise_settings) == 40
        assert EVENTS.byte_limit(synerise_settings) == 1_000_000
