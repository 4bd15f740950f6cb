"""Outbox admin: cheap changelist on big tables, search, filters, actions, read-only rows."""

from __future__ import annotations

import datetime as dt
import html
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats, timezone

import django_synerise
from django_synerise.admin import EstimatedCountPaginator, batch_type_choices
from django_synerise.events import CustomEvent, DedicatedEvent
from django_synerise.models import OutboxEvent

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_synerise_outboxevent_changelist"


@pytest.fixture(autouse=True)
def _no_login_events(settings):
    # The admin client logs in; its client.login event would be one more row.
    settings.SYNERISE = {**settings.SYNERISE, "AUTH_EVENTS": {"LOGGED_IN": False}}


def make_rows(count: int, **fields: object) -> None:
    """``count`` rows written straight to the table (fast enough for 10k)."""
    now = timezone.now()
    defaults: dict[str, object] = {
        "kind": "event",
        "batch_type": "custom",
        "action": "page.visit",
        "payload": '{"action":"page.visit"}',
        "size": 23,
        "next_attempt_at": now,
        "created_at": now,
    }
    defaults.update(fields)
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(client_key=f"customId:{i}", salt=f"salt-{i}", **defaults)
            for i in range(count)
        ],
        batch_size=2000,
    )


def row_ids(response) -> list[int]:
    """Ids of the rows shown on a changelist page (from the action checkboxes)."""
    return sorted(
        int(v) for v in re.findall(r'name="_selected_action" value="(\d+)"', response.text)
    )


def paginator_text(response) -> str:
    """The changelist's count line, e.g. ``"10,000 outbox events"``."""
    found = re.search(r'<p class="paginator">(.*?)</p>', response.text, re.S)
    assert found is not None
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def search_count_text(response) -> str:
    found = re.search(r'<span class="small quiet">(.*?) \(<a', response.text, re.S)
    assert found is not None
    return " ".join(found.group(1).split())


def track(action: str = "dog.bark", customer: str = "1", **params: object) -> OutboxEvent:
    row = django_synerise.track(action, client={"customId": customer}, params=params or None)
    assert row is not None
    return row


def test_changelist_of_10k_rows_runs_a_bounded_number_of_queries(
    admin_client, django_assert_max_num_queries
):
    make_rows(10_000)
    url = reverse(CHANGELIST)
    # Session, user, capped count, page of rows: 4 (one spare for other Django versions).
    with django_assert_max_num_queries(5), CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url)
    assert response.status_code == 200
    assert len(row_ids(response)) == 100
    assert paginator_text(response).endswith(" 10,000 outbox events")
    # Every COUNT is bounded by a LIMIT: none walks the whole table.
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the paginator should count (with a cap)"
    assert all("LIMIT" in sql.upper() for sql in counts)


def test_past_the_count_limit_the_list_says_more_than(admin_client, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "count_limit", 300)
    make_rows(500)
    response = admin_client.get(reverse(CHANGELIST))
    assert paginator_text(response) == "1 2 3 more than 300 outbox events"
    assert search_count_text(response) == "more than 300 results"
    assert "Select all more than 300 outbox events" in response.text
    # Pages stop at the cap: page 3 (rows 201-300) exists, page 4 does not.
    assert len(row_ids(admin_client.get(reverse(CHANGELIST) + "?p=3"))) == 100
    assert admin_client.get(reverse(CHANGELIST) + "?p=4").status_code == 302


@pytest.mark.skipif(connection.vendor != "postgresql", reason="uses pg_class.reltuples")
def test_unfiltered_list_uses_the_postgresql_estimate(admin_client, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "count_limit", 100)
    make_rows(500)
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{OutboxEvent._meta.db_table}"')
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(CHANGELIST))
    assert paginator_text(response).endswith(" about 500 outbox events")
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    # A filtered list is counted (capped), not estimated.
    response = admin_client.get(reverse(CHANGELIST) + "?status__exact=dead")
    assert paginator_text(response) == "0 outbox events"


def test_paginator_counts_exactly_below_the_limit():
    make_rows(7)
    paginator = EstimatedCountPaginator(OutboxEvent.objects.order_by("id"), 5)
    assert paginator.count == 7
    assert paginator.count_is_exact
    assert paginator.count_label == "7"
    assert paginator.num_pages == 2


def test_filters_by_status_kind_type_and_date(admin_client):
    dead = track("dog.bark", "1")
    OutboxEvent.objects.filter(pk=dead.pk).update(status="dead")
    login = django_synerise.track_event(DedicatedEvent("logged-in", client={"customId": "2"}))
    assert login is not None
    old = track("dog.old", "3")
    OutboxEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=60))
    url = reverse(CHANGELIST)
    assert row_ids(admin_client.get(url + "?status__exact=dead")) == [dead.pk]
    assert row_ids(admin_client.get(url + "?batch_type=logged-in")) == [login.pk]
    assert row_ids(admin_client.get(url + "?kind__exact=transaction")) == []
    # The date filter's own "Past 7 days" link.
    page = html.unescape(admin_client.get(url).text)
    week = re.search(r'href="(\?created_at__gte=[^"]+)"[^>]*>Past 7 days<', page)
    assert week is not None
    assert row_ids(admin_client.get(url + week.group(1))) == sorted([dead.pk, login.pk])


def test_type_filter_offers_every_known_type_without_asking_the_database(admin_client):
    names = [value for value, _ in batch_type_choices()]
    assert {"custom", "logged-in", "transaction", "recommendation.view"} <= set(names)
    response = admin_client.get(reverse(CHANGELIST))
    assert "?batch_type=added-to-cart" in response.text


def test_search_by_id_identifier_action_prefix_salt_and_bare_value(admin_client):
    bark = django_synerise.track("dog.bark", client={"customId": "7", "email": "ann@example.com"})
    meow = django_synerise.track("cat.meow", client={"customId": "70"})
    assert bark is not None and meow is not None
    url = reverse(CHANGELIST) + "?q="
    response = admin_client.get(url + str(meow.pk))
    assert row_ids(response) == [meow.pk]
    assert paginator_text(response) == "1 outbox event"
    assert search_count_text(response) == "1 result"
    assert row_ids(admin_client.get(url + "customId:7")) == [bark.pk]  # exactly, not customId:70
    assert row_ids(admin_client.get(url + "email:ann@example.com")) == [bark.pk]
    assert row_ids(admin_client.get(url + "ann@example.com")) == [bark.pk]
    assert row_ids(admin_client.get(url + "dog.")) == [bark.pk]
    assert row_ids(admin_client.get(url + bark.salt)) == [bark.pk]
    # Not a substring search: the middle of an action finds nothing.
    assert row_ids(admin_client.get(url + "bark")) == []


def test_identifier_search_is_exact_wherever_the_identifier_stands(admin_client):
    first = django_synerise.track("a.b", client={"customId": "5", "email": "ann@example.com"})
    middle = django_synerise.track(
        "a.b", client={"uuid": "0f8fad5b-d9cb-469f-a165-70867728950e", "customId": "5", "id": 9}
    )
    last = django_synerise.track("a.b", client={"email": "bo@example.com", "customId": "5"})
    alone = django_synerise.track("a.b", client={"customId": "5"})
    longer = django_synerise.track(
        "a.b", client={"customId": "59900", "email": "ann@example.com.au"}
    )
    assert None not in (first, middle, last, alone, longer)
    url = reverse(CHANGELIST) + "?q="

    expected = sorted(row.pk for row in (first, middle, last, alone))
    assert row_ids(admin_client.get(url + "customId:5")) == expected
    assert row_ids(admin_client.get(url + "customId:59900")) == [longer.pk]
    assert row_ids(admin_client.get(url + "customId:599")) == []
    assert row_ids(admin_client.get(url + "email:ann@example.com")) == [first.pk]
    # A bare value is exact too.
    assert row_ids(admin_client.get(url + "ann@example.com")) == [first.pk]
    assert row_ids(admin_client.get(url + "ann@example.com.au")) == [longer.pk]


def test_row_page_is_read_only_with_a_pretty_payload(admin_client):
    row = track("dog.bark", "1", note="<script>alert(1)</script>")
    url = reverse("admin:django_synerise_outboxevent_change", args=[row.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert 'name="_save"' not in response.text
    assert '\n  "action": "dog.bark",\n' in html.unescape(response.text)  # indented JSON
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text
    before = OutboxEvent.objects.get(pk=row.pk).payload
    posted = admin_client.post(url, {"payload": "{}", "action": "x.y", "status": "sent"})
    assert posted.status_code == 403
    stored = OutboxEvent.objects.get(pk=row.pk)
    assert (stored.payload, stored.action, stored.status) == (before, "dog.bark", "pending")


def test_nobody_can_add_rows(admin_client):
    response = admin_client.get(reverse("admin:django_synerise_outboxevent_add"))
    assert response.status_code == 403
    assert "outboxevent/add/" not in admin_client.get(reverse(CHANGELIST)).text


def test_bulk_delete_action_is_not_offered(admin_client):
    response = admin_client.get(reverse(CHANGELIST))
    assert 'value="requeue_selected"' in response.text
    assert 'value="mark_selected_dead"' in response.text
    assert 'value="delete_selected"' not in response.text


def test_requeue_selected_makes_dead_rows_pending_and_leaves_others(admin_client):
    dead, sent, pending = track("a.one"), track("a.two"), track("a.three")
    OutboxEvent.objects.filter(pk=dead.pk).update(
        status="dead", attempts=16, last_error="rejected", next_attempt_at=timezone.now()
    )
    OutboxEvent.objects.filter(pk=sent.pk).update(status="sent", sent_at=timezone.now())
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "requeue_selected", "_selected_action": [dead.pk, sent.pk, pending.pk]},
        follow=True,
    )
    assert "Requeued 1 dead event" in response.text
    rows = {row.pk: row for row in OutboxEvent.objects.all()}
    assert rows[dead.pk].status == "pending" and rows[dead.pk].attempts == 0
    assert rows[dead.pk].next_attempt_at <= timezone.now()
    assert rows[sent.pk].status == "sent"
    assert rows[pending.pk].status == "pending"


def test_requeue_across_all_pages_follows_the_filter(admin_client):
    make_rows(250, status="dead", attempts=3)
    make_rows(5, status="sent")
    response = admin_client.post(
        reverse(CHANGELIST) + "?status__exact=dead",
        {"action": "requeue_selected", "_selected_action": [1], "select_across": "1"},
        follow=True,
    )
    assert "Requeued 250 dead events" in response.text
    assert OutboxEvent.objects.filter(status="pending", attempts=0).count() == 250
    assert OutboxEvent.objects.filter(status="sent").count() == 5


def test_requeue_of_nothing_dead_says_so(admin_client):
    row = track()
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "requeue_selected", "_selected_action": [row.pk]},
        follow=True,
    )
    assert "None of the selected events is dead" in response.text


def test_mark_dead_gives_up_on_pending_rows_but_not_on_rows_being_sent(admin_client):
    idle, busy, sent = track("a.one"), track("a.two"), track("a.three")
    OutboxEvent.objects.filter(pk=busy.pk).update(
        leased_by="worker", leased_until=timezone.now() + dt.timedelta(minutes=2)
    )
    OutboxEvent.objects.filter(pk=sent.pk).update(status="sent", sent_at=timezone.now())
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "mark_selected_dead", "_selected_action": [idle.pk, busy.pk, sent.pk]},
        follow=True,
    )
    assert "Marked 1 pending event dead" in response.text
    assert "1 event is being sent right now" in response.text
    rows = {row.pk: row for row in OutboxEvent.objects.all()}
    assert rows[idle.pk].status == "dead"
    assert rows[idle.pk].last_error == "marked dead in the admin by admin"
    assert rows[busy.pk].status == "pending"
    assert rows[sent.pk].status == "sent"


def test_staff_without_change_permission_cannot_run_actions(client, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_outboxevent"))
    client.force_login(user)
    row = track()
    OutboxEvent.objects.filter(pk=row.pk).update(status="dead")
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert 'value="requeue_selected"' not in response.text
    client.post(reverse(CHANGELIST), {"action": "requeue_selected", "_selected_action": [row.pk]})
    assert OutboxEvent.objects.get(pk=row.pk).status == "dead"


def test_list_shows_the_columns_operators_need(admin_client):
    row = django_synerise.track_event(
        CustomEvent("dog.bark", client={"customId": "42"}, params={"x": 1})
    )
    assert row is not None
    OutboxEvent.objects.filter(pk=row.pk).update(attempts=3, last_error="x" * 300)
    text = admin_client.get(reverse(CHANGELIST)).text
    for header in (
        "Action",
        "Type",
        "Status",
        "Client key",
        "Attempts",
        "Next attempt at",
        "Created",
        "Last error",
    ):
        assert f">{header}<" in text or f">{header}</a>" in text, header
    assert "customId:42" in text
    assert "x" * 79 + "…" in text and "x" * 81 not in text
    assert json.loads(OutboxEvent.objects.get(pk=row.pk).payload)["params"] == {"x": 1}


@pytest.mark.parametrize("term", ["²", "1²", "٣", "12 34", "9" * 30])
def test_search_for_digits_that_are_not_an_id_does_not_crash(admin_client, term):
    row = track("dog.bark", "7")
    response = admin_client.get(reverse(CHANGELIST), {"q": term})
    assert response.status_code == 200
    assert row.pk not in row_ids(response)


def test_mark_dead_records_when_and_the_row_page_shows_it(admin_client):
    row = track("a.one")
    week_ago = timezone.now() - dt.timedelta(days=7)
    OutboxEvent.objects.filter(pk=row.pk).update(created_at=week_ago, next_attempt_at=week_ago)
    before = timezone.now()
    admin_client.post(
        reverse(CHANGELIST), {"action": "mark_selected_dead", "_selected_action": [row.pk]}
    )
    stored = OutboxEvent.objects.get(pk=row.pk)
    assert stored.status == "dead"
    assert stored.dead_at is not None and before <= stored.dead_at <= timezone.now()
    page = admin_client.get(reverse("admin:django_synerise_outboxevent_change", args=[row.pk]))
    # Django 6.1 puts the help text between the label and the value.
    shown = re.search(
        r'field-dead_at">\s*<label[^>]*>Dead at:</label>.*?<div class="readonly">([^<]*)</div>',
        page.text,
        re.S,
    )
    assert shown is not None
    assert shown.group(1) == formats.date_format(
        timezone.localtime(stored.dead_at), "DATETIME_FORMAT"
    )
    # Killed in the admin a moment ago: it counts as dead in the last day.
    assert django_synerise.outbox.stats()["dead_last_day"] == 1
    admin_client.post(
        reverse(CHANGELIST), {"action": "requeue_selected", "_selected_action": [row.pk]}
    )
    stored = OutboxEvent.objects.get(pk=row.pk)
    assert (stored.status, stored.dead_at) == ("pending", None)


def test_admin_works_without_use_tz(admin_client, settings):
    settings.USE_TZ = False
    settings.TIME_ZONE = "Asia/Kolkata"
    idle, busy = track("a.one"), track("a.two")
    OutboxEvent.objects.filter(pk=busy.pk).update(
        leased_by="worker", leased_until=timezone.now() + dt.timedelta(minutes=2)
    )
    url = reverse(CHANGELIST)
    assert row_ids(admin_client.get(url)) == sorted([idle.pk, busy.pk])
    page = html.unescape(admin_client.get(url).text)
    today = re.search(r'href="(\?created_at__gte=[^"]+)"[^>]*>Today<', page)
    assert today is not None
    assert row_ids(admin_client.get(url + today.group(1))) == sorted([idle.pk, busy.pk])
    response = admin_client.post(
        url, {"action": "mark_selected_dead", "_selected_action": [idle.pk, busy.pk]}, follow=True
    )
    assert "Marked 1 pending event dead" in response.text
    stored = OutboxEvent.objects.get(pk=idle.pk)
    assert stored.status == "dead"
    assert stored.dead_at is not None and timezone.is_naive(stored.dead_at)
    assert abs((stored.dead_at - dt.datetime.now()).total_seconds()) < 60
    page = admin_client.get(reverse("admin:django_synerise_outboxevent_change", args=[idle.pk]))
    assert page.status_code == 200
