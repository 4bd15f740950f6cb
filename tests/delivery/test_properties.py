"""Bad input everywhere (hypothesis): refused early and clearly, or delivered. Never a crash later.

* Event builders get random actions, clients, params, times, unicode and huge
  values. Each input either raises :class:`InvalidEventError` (a ``ValueError``
  naming the field) when built or enqueued, or becomes a row that the strict
  stand-in accepts at flush time: nothing blows up in the flusher, nothing
  goes ``dead`` for a reason that could have been caught at ``track()`` time.
* Beacons the endpoint accepts flush cleanly too (its own tests cover "never 5xx").
* Settings: any value for any key is either accepted or refused with an
  ``ImproperlyConfigured`` that names the key; nothing else escapes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import zoneinfo
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from django_synerise import outbox
from django_synerise.conf import DEFAULTS, synerise_settings
from django_synerise.dispatch import Dispatcher
from django_synerise.events import (
    AI_EVENT_TYPES,
    DEDICATED_EVENT_TYPES,
    AIEvent,
    CustomEvent,
    DedicatedEvent,
    Transaction,
    page_visit,
)
from django_synerise.exceptions import InvalidEventError, SyneriseConfigurationError
from django_synerise.factory import build_client
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise
from tests.drain import settings_for

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies -------------------------------------------------------------------


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` four times in five: most examples get past validation, some do not."""
    return st.integers(0, 4).flatmap(lambda n: bad if n == 0 else good)


# Any character: controls, NUL, lone surrogates, astral planes.
any_char = st.characters(codec=None, categories=None)
unicode_text = st.text(any_char, max_size=40)
nonblank_text = unicode_text.filter(str.strip)
id_text = unicode_text
# A few huge strings, made cheaply by repetition: some pass 1 MB.
huge_text = st.builds(lambda c, n: c * n, any_char, st.integers(0, 300_000))
texts = st.one_of(unicode_text, unicode_text, huge_text)
valid_action = st.from_regex(r"[A-Za-z0-9._-]{2,32}", fullmatch=True)
actions = st.one_of(valid_action, valid_action, unicode_text)

timezones = st.sampled_from(
    [dt.timezone.utc, dt.timezone(dt.timedelta(hours=14)), dt.timezone(dt.timedelta(hours=-12))]
    + [zoneinfo.ZoneInfo(name) for name in ("Europe/Warsaw", "America/New_York", "Asia/Tokyo")]
)
plausible_times = st.datetimes(
    min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=timezones
)
# Years 1 to 9999, up to the edges where converting to UTC overflows.
aware_times = st.one_of(plausible_times, st.datetimes(timezones=timezones))
times = st.one_of(st.none(), aware_times, st.datetimes())  # naive ones too

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),
    st.decimals(),
)
json_leaves = st.one_of(st.none(), st.booleans(), numbers, texts, aware_times, st.uuids())
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(unicode_text, children, max_size=4)
    ),
    max_leaves=12,
)
param_dicts = st.dictionaries(unicode_text, json_values, max_size=6)
params = st.one_of(st.none(), param_dicts, param_dicts, json_values)
valid_clients = st.one_of(
    st.fixed_dictionaries({"customId": id_text.filter(str.strip)}),
    st.fixed_dictionaries({"id": st.integers(min_value=1)}),
    st.fixed_dictionaries({"email": st.emails()}),
    st.fixed_dictionaries({"uuid": st.uuids().map(str)}),
)
identifier_values = st.one_of(id_text, st.integers(), st.none(), st.emails(), st.uuids())
clients = mostly(
    valid_clients,
    st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "id": st.one_of(st.integers(), id_text),
                "customId": identifier_values,
                "uuid": st.one_of(st.uuids().map(str), id_text),
                "email": st.one_of(st.emails(), id_text),
            },
        ),
        st.dictionaries(id_text, identifier_values, max_size=3),
        json_values,
    ),
)


@st.composite
def v4_events(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["custom", "dedicated", "page_visit"]))
    common = {
        "client": draw(clients),
        "params": draw(params),
        "time": draw(times),
    }
    if kind == "custom":
        label = draw(st.one_of(st.none(), unicode_text))
        return CustomEvent(draw(actions), label=label, **common)
    if kind == "dedicated":
        event_type = draw(st.one_of(st.sampled_from(sorted(DEDICATED_EVENT_TYPES)), unicode_text))
        return DedicatedEvent(event_type, **common)
    return page_visit(
        client=common["client"],
        url=draw(st.one_of(texts, st.just("https://shop.example/p/1"))),
        title=draw(st.one_of(st.none(), texts)),
        referrer=draw(st.one_of(st.none(), unicode_text)),
        params=common["params"],
        time=common["time"],
    )


amounts = mostly(
    st.one_of(st.integers(0, 10**6), st.floats(0, 10**6), st.decimals(0, 10**6, places=2)),
    numbers,
)
money = st.one_of(st.none(), amounts, st.fixed_dictionaries({"amount": amounts}))
currencies = mostly(st.sampled_from(["PLN", "EUR", "USD"]), st.one_of(st.none(), unicode_text))
products = st.lists(
    st.fixed_dictionaries(
        {
            "sku": mostly(nonblank_text, st.one_of(st.integers(), unicode_text)),
            "finalUnitPrice": mostly(st.integers(0, 10**6), money),
        },
        optional={
            "name": texts,
            "quantity": mostly(st.integers(1, 100), numbers),
            "regularPrice": money,
        },
    ),
    max_size=3,
)


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    return Transaction(
        client=draw(clients),
        order_id=draw(st.one_of(nonblank_text, st.integers(), unicode_text)),
        products=draw(products),
        revenue=draw(money),
        value=draw(money),
        discount_amount=draw(money),
        currency=draw(currencies),
        payment_info=draw(st.one_of(st.none(), param_dicts)),
        metadata=draw(st.one_of(st.none(), param_dicts)),
        source=draw(st.one_of(st.none(), st.just("WEB_DESKTOP"), unicode_text)),
        recorded_at=draw(times),
    )


ai_ids = st.one_of(
    nonblank_text, nonblank_text, nonblank_text, st.integers(), unicode_text, huge_text
)


@st.composite
def ai_events(draw: st.DrawFn) -> AIEvent:
    event_type = draw(mostly(st.sampled_from(AI_EVENT_TYPES), unicode_text))
    return AIEvent(
        event_type,
        correlation_id=draw(ai_ids),
        client_uuid=draw(mostly(st.uuids().map(str), unicode_text)),
        items=draw(st.lists(ai_ids, max_size=3)),
        campaign_id=draw(st.one_of(st.none(), ai_ids)),
        timestamp=draw(st.one_of(st.none(), plausible_times, aware_times)),
        position=draw(st.one_of(st.none(), st.integers())),
    )


# -- the stand-in every property flushes to --------------------------------------


@pytest.fixture(scope="module")
def stand_in():
    with LocalSynerise(record="count") as server:
        yield server


@pytest.fixture
def delivery(stand_in, db):
    """Settings pointing at the stand-in; sent rows deleted so examples stay independent."""
    with override_settings(SYNERISE=settings_for(stand_in, RETAIN_SENT=0)):
        yield Dispatcher(build_client(), sleep=lambda seconds: None)


def enqueue_and_flush(dispatcher: Dispatcher, make: Any) -> str:
    """Build and enqueue (``make`` may raise); flush; return what happened."""
    OutboxEvent.objects.all().delete()  # examples share the test's transaction
    refused: InvalidEventError | None = None
    try:
        row = outbox.enqueue(make())
    except InvalidEventError as err:
        refused = err
    if refused is not None:
        # A clear refusal: a ValueError that names the field.
        assert isinstance(refused, ValueError)
        assert refused.field and refused.message and str(refused).startswith(refused.field)
        return f"refused: {refused.field.split('[')[0].split('.')[0]}"
    assert row is not None
    result = dispatcher.flush()
    dead = list(OutboxEvent.objects.filter(status="dead").values_list("last_error", flat=True))
    assert dead == [], f"accepted at enqueue, refused at flush: {dead} for {row.payload[:2000]}"
    assert result.sent == 1, result
    assert outbox.pending_count() == 0
    return "delivered"


# The builders are called inside data.draw(), within the test: an InvalidEventError
# raised while building is an outcome to check, not a broken strategy.
@PROPERTY
@given(data=st.data())
def test_v4_events_are_refused_clearly_or_delivered(delivery, data):
    outcome = enqueue_and_flush(delivery, lambda: data.draw(v4_events()))
    event(outcome)


@PROPERTY
@given(data=st.data())
def test_transactions_are_refused_clearly_or_delivered(delivery, data):
    outcome = enqueue_and_flush(delivery, lambda: data.draw(transactions()))
    event(outcome)


@PROPERTY
@given(data=st.data())
def test_ai_events_are_refused_clearly_or_delivered(delivery, data):
    outcome = enqueue_and_flush(delivery, lambda: data.draw(ai_events()))
    event(outcome)


# -- beacons -----------------------------------------------------------------------

VISITOR = "0b6f1c1e-3d1a-4b8e-9f2a-7c5d4e3b2a10"
VISITOR_UUID = VISITOR
beacon_ids = st.one_of(unicode_text, st.integers(), st.integers(min_value=-(10**300)))


@st.composite
def beacons(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": draw(st.one_of(st.sampled_from(AI_EVENT_TYPES), unicode_text)),
        "correlationId": draw(beacon_ids),
    }
    for key, value in (
        ("items", st.lists(beacon_ids, max_size=4)),
        ("campaignId", st.one_of(st.none(), beacon_ids)),
        ("position", st.one_of(st.none(), st.integers(), st.floats(), unicode_text)),
    ):
        if draw(st.booleans()):
            body[key] = draw(value)
    return body


@PROPERTY
@given(body=beacons())
def test_beacons_the_endpoint_accepts_are_delivered(delivery, body):
    cache.clear()  # the throttle
    browser = Client()
    browser.cookies["_snrs_uuid"] = VISITOR
    data = json.dumps(body, allow_nan=True)  # NaN too: not JSON, the endpoint must say so
    response = browser.post(
        "/synerise/beacon/", data=data, content_type="text/plain", HTTP_ORIGIN="http://testserver"
    )
    assert response.status_code < 500
    if response.status_code != 204:
        event(f"refused {response.status_code}")
        assert outbox.pending_count() == 0
        return
    event("accepted")
    result = delivery.flush()
    assert result.sent == 1 and result.dead == 0, result
    assert not OutboxEvent.objects.exists()


# -- settings ----------------------------------------------------------------------

setting_values = st.one_of(
    json_values,
    st.tuples(numbers, numbers),
    st.sets(st.integers(), max_size=3),
    st.binary(max_size=8),
    st.complex_numbers(allow_nan=False),
    st.builds(object),
    st.dictionaries(unicode_text, json_values, max_size=3),
    st.just(print),
)


def read_setting(key: str, value: Any) -> SyneriseConfigurationError | None:
    """Read ``key`` set to ``value``: ``None`` if accepted, else the error (checked to name it)."""
    refused: SyneriseConfigurationError | None = None
    with override_settings(SYNERISE={**django_settings.SYNERISE, key: value}):
        try:
            getattr(synerise_settings, key)
        except SyneriseConfigurationError as err:
            refused = err
    if refused is not None:
        assert isinstance(refused, ImproperlyConfigured)
        assert f'SYNERISE["{key}"]' in str(refused), str(refused)
    return refused


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(DEFAULTS)), value=setting_values)
def test_any_value_for_any_setting_is_accepted_or_refused_naming_the_key(key, value):
    # Any other exception than SyneriseConfigurationError fails the test.
    event("accepted" if read_setting(key, value) is None else "refused")


# A value of a type no setting takes: every key must refuse it, by name.
@pytest.mark.parametrize("key", sorted(DEFAULTS))
@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", 1j, Decimal("NaN")])
def test_every_setting_refuses_a_value_of_the_wrong_type(key, value):
    assert read_setting(key, value) is not None


@pytest.mark.parametrize("key", ["PAGE_VISITS", "AUTH_EVENTS"])
@given(data=st.data())
@settings(max_examples=100, deadline=None)
def test_nested_settings_name_the_sub_key(key, data):
    defaults = DEFAULTS[key]
    sub = data.draw(st.sampled_from(sorted(defaults)))
    value = data.draw(setting_values)
    refused = None
    with override_settings(SYNERISE={**django_settings.SYNERISE, key: {sub: value}}):
        try:
            getattr(synerise_settings, key)
        except SyneriseConfigurationError as err:
            refused = err
    if refused is not None:
        assert f'SYNERISE["{key}"]["{sub}"]' in str(refused), str(refused)
    event("accepted" if refused is None else "refused")


# -- what the properties found -----------------------------------------------------
# Each of these once got past validation and failed later (at enqueue, in the
# database or at flush time); pinned here with the smallest example.


@pytest.mark.parametrize(
    "make",
    [
        lambda: CustomEvent("a.b", client={"customId": "7"}, params={"note": "\ud800"}),
        lambda: CustomEvent("a.b", client={"customId": "\udfff"}),
        lambda: AIEvent(
            "recommendation.view", correlation_id="\ud800", client_uuid=str(VISITOR_UUID)
        ),
    ],
)
@pytest.mark.django_db
def test_lone_surrogates_are_refused_naming_the_field(make):
    with pytest.raises(InvalidEventError):
        outbox.enqueue(make())


@pytest.mark.parametrize(
    "make",
    [
        lambda: CustomEvent("a.b", client={"customId": "7\x00"}),
        lambda: CustomEvent("a.b", client={"customId": "7"}, salt="s\x00"),
    ],
)
@pytest.mark.django_db
def test_nul_in_identifiers_is_refused_or_stored(make):
    try:
        event_object = make()
    except InvalidEventError:
        return
    assert outbox.enqueue(event_object) is not None


def test_times_before_year_1000_are_refused_or_written_as_iso_8601():
    when = dt.datetime(554, 10, 16, tzinfo=dt.timezone.utc)
    try:
        payload = CustomEvent("a.b", client={"customId": "7"}, time=when).to_payload()
    except InvalidEventError:
        return
    assert payload["time"].startswith("0554-10-16T")


@pytest.mark.parametrize(
    "when",
    [
        dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-12))),
        dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=14))),
    ],
)
@pytest.mark.django_db
def test_times_that_overflow_in_utc_are_refused(when):
    with pytest.raises(InvalidEventError):
        outbox.enqueue(CustomEvent("a.b", client={"customId": "7"}, time=when))


@pytest.mark.parametrize("bad", [True, 3, "text", ["a"]])
def test_page_visit_refuses_params_that_are_not_a_dict(bad):
    with pytest.raises(InvalidEventError):
        page_visit(client={"customId": "7"}, url="https://shop.example/", params=bad)


def test_ai_event_times_before_1973_are_refused_or_delivered(delivery):
    outcome = enqueue_and_flush(
        delivery,
        lambda: AIEvent(
            "recommendation.view",
            correlation_id="c",
            client_uuid=str(VISITOR_UUID),
            timestamp=dt.datetime(1970, 6, 1, tzinfo=dt.timezone.utc),
        ),
    )
    assert outcome in ("delivered", "refused: eventTimestamp")


FLOAT_SETTINGS = [
    "LEASE_SECONDS",
    "TOKEN_LIFETIME",
    "RETRY_BACKOFF_BASE",
    "RETRY_BACKOFF_MAX",
    "RATE_LIMIT_MAX_WAIT",
    "TOKEN_REFRESH_MARGIN",
    "RETAIN_SENT",
]


@pytest.mark.parametrize("key", FLOAT_SETTINGS)
def test_number_settings_refuse_nan(key):
    assert read_setting(key, math.nan) is not None


# -- throttle rates and profile cookies ---------------------------------------------

rate_strings = st.one_of(
    st.text(alphabet="0123456789/ smhdecinoruyaw-+_.x", max_size=14),
    st.builds(
        "{}/{}".format,
        st.integers(min_value=-3, max_value=10**6),
        st.one_of(
            st.sampled_from(["s", "sec", "seconds", "m", "min", "minutes", "h", "hours", "day"]),
            st.text(max_size=6),
        ),
    ),
)


def _drf_parse(rate: str) -> tuple[int, int] | None:
    from rest_framework.throttling import SimpleRateThrottle

    try:
        parsed = SimpleRateThrottle.parse_rate(None, rate)  # type: ignore[arg-type]
    except (ValueError, KeyError, IndexError):
        return None
    return parsed  # type: ignore[return-value]


@settings(max_examples=500, deadline=None)
@given(rate=rate_strings)
def test_beacon_throttle_rate_accepts_what_drf_accepts(rate):
    from django_synerise.conf import parse_throttle_rate

    drf = _drf_parse(rate)
    key = 'SYNERISE["BEACON_THROTTLE_RATE"]'
    ours: tuple[int, int] | None = None
    message = ""
    try:
        ours = parse_throttle_rate(key, rate)
    except SyneriseConfigurationError as err:
        message = str(err)
    assert ours is not None or key in message
    if drf is not None and drf[0] >= 0:
        event("DRF accepts")
        assert ours == drf  # a negative count is the one DRF rate refused on purpose
    elif ours is not None:
        event("only ours accepts")  # e.g. spaces around the period
        assert ours[0] >= 0 and ours[1] in (1, 60, 3600, 86400)


def _tracker_spellings(value: str) -> st.SearchStrategy[str]:
    """Ways the tracker's cookie may carry one UUID: case, quotes, spaces, %-encoding."""
    return st.sampled_from(
        [
            value,
            value.upper(),
            f'"{value}"',
            f"  {value}\t",
            value.replace("-", "%2D"),
            f"%22{value}%22",
        ]
    )


@settings(max_examples=200, deadline=None)
@given(data=st.data(), profile=st.uuids())
def test_a_profile_cookie_is_a_uuid_and_nothing_else(data, profile):
    from django_synerise.identity import parse_uuid

    value = str(profile)
    if value in ("00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"):
        return
    assert parse_uuid(data.draw(_tracker_spellings(value))) == value
    # Anything else around it (after trimming what the tracker may add) is refused.
    junk = data.draw(st.text(min_size=1, max_size=12).filter(lambda t: unquote(t).strip()))
    before = data.draw(st.booleans())
    assert parse_uuid(junk + value if before else value + junk) is None
