"""AI events are stored neutral and shaped when sent: an AI_EVENTS_API change strands nothing.

Real HTTP to the stand-in, which takes only what each API documents (ai-compat: one
``item`` per click, ISO 8601 times; events-v1: ``items``, millisecond times by default).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import call_command

import django_synerise
from django_synerise.events import AIEvent
from django_synerise.models import OutboxEvent

pytestmark = pytest.mark.django_db

UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"
WHEN = dt.datetime(2024, 5, 23, 13, 0, 0, 176000, tzinfo=dt.timezone.utc)


def ai_events() -> list[AIEvent]:
    return [
        AIEvent("recommendation.view", correlation_id="v", client_uuid=UUID, items=["1", "2"]),
        AIEvent(
            "recommendation.click",
            correlation_id="c",
            client_uuid=UUID,
            items=["2"],
            campaign_id="camp",
            timestamp=WHEN,
        ),
        AIEvent(
            "item.search.click",
            correlation_id="s",
            client_uuid=UUID,
            items=["3"],
            position=4,
            search_type="autocomplete",
            timestamp=WHEN,
        ),
    ]


@pytest.mark.parametrize(
    ("stored_under", "sent_under", "endpoint"),
    [("events-v1", "ai-compat", "ai-compat-batch"), ("ai-compat", "events-v1", "ai-batch")],
)
def test_pending_ai_events_follow_a_change_of_api(
    synerise_stand_in, settings, stored_under, sent_under, endpoint
):
    settings.SYNERISE = {**settings.SYNERISE, "AI_EVENTS_API": stored_under}
    django_synerise.track_many(ai_events())
    assert OutboxEvent.objects.filter(status="pending").count() == 3

    settings.SYNERISE = {**settings.SYNERISE, "AI_EVENTS_API": sent_under}
    call_command("synerise_flush")

    assert not OutboxEvent.objects.exists()
    assert synerise_stand_in.summary() == {
        endpoint: {"recommendation.view": 1, "recommendation.click": 1, "item.search.click": 1}
    }
    search = synerise_stand_in.events_of(type="item.search.click")[0]["body"]
    click = synerise_stand_in.events_of(type="recommendation.click")[0]["body"]
    assert (search["position"], search["searchType"]) == (4, "autocomplete")
    if sent_under == "ai-compat":
        assert search["item"] == "3"
        assert click["eventTimestamp"] == "2024-05-23T13:00:00.176Z"
        assert "campaignId" not in search
    else:
        assert search["items"] == ["3"]
        assert click["eventTimestamp"] == int(WHEN.timestamp() * 1000)


def test_rows_stored_shaped_by_an_earlier_version_are_delivered(synerise_stand_in, settings):
    """Rows written before payloads were neutral hold an events-v1 body; ai-compat takes them."""
    rows = django_synerise.track_many(ai_events())
    legacy = {
        "recommendation.view": {"correlationId": "v", "clientUUID": UUID, "items": ["1", "2"]},
        "recommendation.click": {
            "correlationId": "c",
            "clientUUID": UUID,
            "items": ["2"],
            "eventTimestamp": int(WHEN.timestamp() * 1000),
            "campaignId": "camp",
        },
        # No searchType, as earlier versions sent none: a results-page click.
        "item.search.click": {
            "correlationId": "s",
            "clientUUID": UUID,
            "item": "3",
            "position": 4,
            "eventTimestamp": "2024-05-23T13:00:00.176Z",
        },
    }
    for row in rows:
        OutboxEvent.objects.filter(pk=row.pk).update(payload=json.dumps(legacy[row.batch_type]))
    settings.SYNERISE = {**settings.SYNERISE, "AI_EVENTS_API": "ai-compat"}
    call_command("synerise_flush")
    assert not OutboxEvent.objects.exists()
    search = synerise_stand_in.events_of(type="item.search.click")[0]["body"]
    assert search["searchType"] == "full-text-search"
    click = synerise_stand_in.events_of(type="recommendation.click")[0]["body"]
    assert click == {
        "correlationId": "c",
        "clientUUID": UUID,
        "item": "2",
        "eventTimestamp": "2024-05-23T13:00:00.176Z",
        "campaignId": "camp",
    }


def test_the_default_api_is_ai_compat(synerise_stand_in):
    django_synerise.track_many(ai_events())
    call_command("synerise_flush")
    assert list(synerise_stand_in.summary()) == ["ai-compat-batch"]
