"""The ``synerise`` template library: escaping, CSP nonces, configuration, missing data."""

from __future__ import annotations

import json
import logging
import uuid
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from django.template import Context, Template
from django.test import RequestFactory, override_settings
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

from django_synerise.templatetags.synerise import MAX_ID_LENGTH
from tests.docs_samples import sample

#: This module doubles as a URLconf without django_synerise.urls (see test below).
urlpatterns: list[Any] = []

HOSTILE = "\"><script>alert(1)</script>&'<img src=x onerror=alert(2)>"
LOGGER = "django_synerise.templatetags"


def render(source: str, context: dict[str, Any] | None = None, request: Any = None) -> str:
    template = Template("{% load synerise %}" + source)
    values = dict(context or {})
    if request is not None:
        values["request"] = request
    return template.render(Context(values))


class _Elements(HTMLParser):
    """Every start tag with its attributes, as a browser would decode them."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.script_bodies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_bodies.append(data)


def parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


def attrs_of(html: str, tag: str = "div") -> dict[str, str | None]:
    elements = [attrs for name, attrs in parse(html).elements if name == tag]
    assert len(elements) == 1, html
    return elements[0]


def synerise(**overrides: Any) -> dict[str, Any]:
    from django.conf import settings

    return {**settings.SYNERISE, **overrides}


@pytest.fixture
def nonce_request() -> Any:
    request = RequestFactory().get("/")
    request.csp_nonce = "r4nd0m-n0nce"
    return request


# -- {% synerise_tracking_code %} ------------------------------------------------------


def test_tracking_code_loads_the_sdk_from_the_configured_host_with_the_key(
    nonce_request: Any,
) -> None:
    with override_settings(
        SYNERISE=synerise(TRACKER_KEY="tk-123", TRACKER_SCRIPT_HOST="web.geb.snrbox.com")
    ):
        html = render("{% synerise_tracking_code %}", request=nonce_request)
    parsed = parse(html)
    [(tag, attrs)] = parsed.elements
    assert tag == "script"
    assert attrs["data-synerise-tracker-key"] == "tk-123"
    assert attrs["data-synerise-src"] == "https://web.geb.snrbox.com/synerise-javascript-sdk.min.js"
    assert attrs["nonce"] == "r4nd0m-n0nce"
    # The inline code is constant: values travel in attributes, so no value can break out.
    assert "tk-123" not in "".join(parsed.script_bodies)
    assert "SR.init(o)" in "".join(parsed.script_bodies)


def test_tracking_code_is_the_same_code_for_every_key() -> None:
    bodies = set()
    for key in ("a", "b" * 40, HOSTILE):
        with override_settings(SYNERISE=synerise(TRACKER_KEY=key)):
            bodies.add("".join(parse(render("{% synerise_tracking_code %}")).script_bodies))
    # One constant script: a single CSP hash would also allow it.
    assert len(bodies) == 1


def test_tracking_code_escapes_a_hostile_key_and_options() -> None:
    with override_settings(SYNERISE=synerise(TRACKER_KEY=HOSTILE)):
        html = render("{% synerise_tracking_code note=note %}", {"note": HOSTILE})
    assert "<img" not in html
    assert html.count("<script") == 1
    attrs = attrs_of(html, "script")
    assert attrs["data-synerise-tracker-key"] == HOSTILE
    assert json.loads(attrs["data-synerise-options"] or "") == {"note": HOSTILE}


def test_tracking_code_passes_keyword_options_to_sr_init() -> None:
    html = render("{% synerise_tracking_code customPageVisit=True dataLayer='dl' %}")
    options = json.loads(attrs_of(html, "script")["data-synerise-options"] or "")
    assert options == {"customPageVisit": True, "dataLayer": "dl"}


def test_tracking_code_renders_nothing_without_a_key(caplog: pytest.LogCaptureFixture) -> None:
    with (
        override_settings(SYNERISE=synerise(TRACKER_KEY=None)),
        caplog.at_level(logging.WARNING, logger=LOGGER),
    ):
        html = render("<head>{% synerise_tracking_code %}</head>")
    assert html == "<head></head>"
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING
    assert 'SYNERISE["TRACKER_KEY"] is not set' in record.getMessage()


def test_nonce_comes_from_the_context_when_the_request_has_none() -> None:
    # Django's own CSP support puts the nonce in the context (csp context processor).
    html = render(
        "{% synerise_tracking_code %}{% synerise_beacon_script %}",
        {"csp_nonce": "ctx-nonce"},
        request=RequestFactory().get("/"),
    )
    scripts = [attrs for tag, attrs in parse(html).elements if tag == "script"]
    assert len(scripts) == 2
    assert all(attrs["nonce"] == "ctx-nonce" for attrs in scripts)


def test_no_nonce_attribute_without_a_nonce() -> None:
    html = render(
        "{% synerise_tracking_code %}{% synerise_beacon_script %}",
        request=RequestFactory().get("/"),
    )
    scripts = [attrs for tag, attrs in parse(html).elements if tag == "script"]
    assert len(scripts) == 2
    assert all("nonce" not in attrs for attrs in scripts)


def test_every_script_carries_the_nonce(nonce_request: Any) -> None:
    html = render("{% synerise_tracking_code %}{% synerise_beacon_script %}", request=nonce_request)
    scripts = [attrs for tag, attrs in parse(html).elements if tag == "script"]
    assert len(scripts) == 2
    assert [attrs["nonce"] for attrs in scripts] == ["r4nd0m-n0nce", "r4nd0m-n0nce"]


# -- {% synerise_beacon_script %} ------------------------------------------------------


def test_beacon_script_first_party_posts_to_the_included_endpoint() -> None:
    attrs = attrs_of(render("{% synerise_beacon_script %}"), "script")
    assert attrs["src"] == "/static/django_synerise/beacon.js"
    assert "defer" in attrs
    assert attrs["data-synerise-mode"] == "first-party"
    assert attrs["data-synerise-endpoint"] == "/synerise/beacon/"
    assert attrs["data-synerise-max-items"] == "100"
    # First-party mode never shows the tracker key.
    assert "test-tracker-key" not in str(attrs)


@pytest.mark.parametrize(
    ("api", "path"),
    [("events-v1", "/events/v1/batch"), ("ai-compat", "/v4/events/ai-compat/batch")],
)
def test_beacon_script_direct_mode_posts_to_the_ai_events_api(api: str, path: str) -> None:
    with override_settings(
        SYNERISE=synerise(
            BEACON_MODE="direct",
            API_BASE_URL="https://api.azu.synerise.com/",
            TRACKER_KEY="tk/1 2&x",
            AI_EVENTS_API=api,
            AI_TIMESTAMP_FORMAT="iso8601",
            BEACON_MAX_ITEMS=7,
        )
    ):
        attrs = attrs_of(render("{% synerise_beacon_script %}"), "script")
    assert attrs["data-synerise-mode"] == "direct"
    assert attrs["data-synerise-endpoint"] == (
        f"https://api.azu.synerise.com{path}?token=tk/1%202%26x"
    )
    assert attrs["data-synerise-api"] == api
    assert attrs["data-synerise-timestamp"] == "iso8601"
    assert attrs["data-synerise-max-items"] == "7"


def test_beacon_script_direct_mode_without_a_key_renders_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        override_settings(SYNERISE=synerise(BEACON_MODE="direct", TRACKER_KEY=None)),
        caplog.at_level(logging.WARNING, logger=LOGGER),
    ):
        assert render("{% synerise_beacon_script %}") == ""
    assert any("TRACKER_KEY" in r.getMessage() for r in caplog.records if r.name == LOGGER)


@override_settings(ROOT_URLCONF=__name__)
def test_beacon_script_without_the_endpoint_renders_nothing_and_says_how_to_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert render("{% synerise_beacon_script %}") == ""
    [message] = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert 'include("django_synerise.urls")' in message


def test_beacon_script_renders_nothing_when_disabled() -> None:
    with override_settings(SYNERISE=synerise(ENABLED=False)):
        assert render("{% synerise_beacon_script %}") == ""


# -- frames and items ---------------------------------------------------------------


def test_recommendation_frame_and_items() -> None:
    html = render(
        "<div {% synerise_recommendation_frame rec.correlation_id campaign_id=rec.campaign %}>"
        "{% for item in rec.items %}<a {% synerise_recommendation_item item %}></a>{% endfor %}"
        "</div>",
        {"rec": {"correlation_id": "c-1", "campaign": "k-9", "items": ["a", 42]}},
    )
    elements = parse(html).elements
    assert elements == [
        (
            "div",
            {
                "data-synerise-frame": "recommendation",
                "data-synerise-correlation-id": "c-1",
                "data-synerise-campaign-id": "k-9",
            },
        ),
        ("a", {"data-synerise-item": "a"}),
        ("a", {"data-synerise-item": "42"}),
    ]


def test_frame_without_campaign_has_no_campaign_attribute() -> None:
    attrs = attrs_of(render("<div {% synerise_recommendation_frame 'c-1' %}></div>"))
    assert attrs == {
        "data-synerise-frame": "recommendation",
        "data-synerise-correlation-id": "c-1",
    }


def test_hostile_ids_are_escaped_and_survive_as_attribute_values() -> None:
    html = render(
        "<div {% synerise_recommendation_frame x campaign_id=x %}>"
        "<a {% synerise_recommendation_item x %}></a></div>"
        "<ol {% synerise_search_results x %}><li {% synerise_search_item x 1 %}></li></ol>",
        {"x": HOSTILE},
    )
    assert "<script" not in html
    assert "<img" not in html
    elements = dict(parse(html).elements)
    assert elements["div"]["data-synerise-correlation-id"] == HOSTILE
    assert elements["div"]["data-synerise-campaign-id"] == HOSTILE
    assert elements["a"]["data-synerise-item"] == HOSTILE
    assert elements["ol"]["data-synerise-correlation-id"] == HOSTILE
    assert elements["li"]["data-synerise-item"] == HOSTILE


@pytest.mark.parametrize(
    "source",
    [
        "{% synerise_recommendation_frame missing %}",
        "{% synerise_recommendation_frame none %}",
        "{% synerise_recommendation_frame '' %}",
        "{% synerise_recommendation_frame '   ' %}",
        "{% synerise_recommendation_frame long %}",
        "{% synerise_recommendation_item missing %}",
        "{% synerise_recommendation_item long %}",
        "{% synerise_search_results none %}",
        "{% synerise_search_item missing 1 %}",
        "{% synerise_search_item 'a' 0 %}",
        "{% synerise_search_item 'a' -2 %}",
        "{% synerise_search_item 'a' 'first' %}",
        "{% synerise_search_item 'a' none %}",
    ],
)
def test_missing_or_unusable_values_render_nothing_and_warn(
    source: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        html = render(f"<div {source}></div>", {"none": None, "long": "x" * (MAX_ID_LENGTH + 1)})
    assert html == "<div ></div>"
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert source.split()[1] in records[0].getMessage()


def test_a_bad_campaign_id_drops_only_the_campaign(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        html = render(
            "<div {% synerise_recommendation_frame 'c-1' campaign_id=long %}></div>",
            {"long": "k" * (MAX_ID_LENGTH + 1)},
        )
    assert attrs_of(html) == {
        "data-synerise-frame": "recommendation",
        "data-synerise-correlation-id": "c-1",
    }
    assert any("campaign_id" in r.getMessage() for r in caplog.records if r.name == LOGGER)


def test_search_results_and_positions() -> None:
    html = render(
        "<ol {% synerise_search_results 's-1' %}>{% for hit in hits %}"
        "<li><a {% synerise_search_item hit forloop.counter %}></a></li>{% endfor %}</ol>",
        {"hits": ["p-1", "p-2", 3]},
    )
    elements = parse(html).elements
    assert elements[0] == (
        "ol",
        {"data-synerise-frame": "search", "data-synerise-correlation-id": "s-1"},
    )
    links = [attrs for tag, attrs in elements if tag == "a"]
    assert links == [
        {"data-synerise-item": "p-1", "data-synerise-position": "1"},
        {"data-synerise-item": "p-2", "data-synerise-position": "2"},
        {"data-synerise-item": "3", "data-synerise-position": "3"},
    ]


def test_ids_that_are_not_str_or_int_are_rendered_with_str() -> None:
    # A UUIDField primary key, a DecimalField, a lazy translation: all common ids.
    pk = uuid.UUID("0b9a4d2e-6c1f-4f5e-9a7b-3c2d1e0f9a8b")
    html = render(
        "<div {% synerise_recommendation_frame correlation campaign_id=campaign %}>"
        "<a {% synerise_recommendation_item pk %}></a><a {% synerise_recommendation_item price %}>"
        "</a></div><ol {% synerise_search_results correlation %}>"
        "<li {% synerise_search_item pk 1 %}></li></ol>",
        {
            "correlation": pk,
            "campaign": gettext_lazy("spring-campaign"),
            "pk": pk,
            "price": Decimal("12.50"),
        },
    )
    elements = parse(html).elements
    assert elements == [
        (
            "div",
            {
                "data-synerise-frame": "recommendation",
                "data-synerise-correlation-id": str(pk),
                "data-synerise-campaign-id": "spring-campaign",
            },
        ),
        ("a", {"data-synerise-item": str(pk)}),
        ("a", {"data-synerise-item": "12.50"}),
        ("ol", {"data-synerise-frame": "search", "data-synerise-correlation-id": str(pk)}),
        ("li", {"data-synerise-item": str(pk), "data-synerise-position": "1"}),
    ]


def test_lazy_and_safe_strings_are_still_escaped() -> None:
    html = render(
        "<div {% synerise_recommendation_frame lazy campaign_id=safe %}>"
        "<a {% synerise_recommendation_item safe %}></a></div>",
        {"lazy": gettext_lazy(HOSTILE), "safe": mark_safe(HOSTILE)},
    )
    assert "<script" not in html and "<img" not in html
    elements = dict(parse(html).elements)
    assert elements["div"]["data-synerise-correlation-id"] == HOSTILE
    assert elements["div"]["data-synerise-campaign-id"] == HOSTILE
    assert elements["a"]["data-synerise-item"] == HOSTILE


@pytest.mark.parametrize(
    "value",
    [
        True,
        1.5,
        Decimal("NaN"),
        ["sku-1"],
        {"id": 1},
        gettext_lazy("   "),
        Decimal("1" * (MAX_ID_LENGTH + 1)),
    ],
    ids=["bool", "float", "nan", "list", "dict", "blank-lazy", "long-decimal"],
)
def test_values_that_are_not_ids_still_render_nothing(
    value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        html = render("<a {% synerise_recommendation_item value %}></a>", {"value": value})
    assert html == "<a ></a>"
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1


def test_the_longest_accepted_id_still_renders() -> None:
    item = "i" * MAX_ID_LENGTH
    assert (
        attrs_of(render("<div {% synerise_recommendation_item item %}></div>", {"item": item}))[
            "data-synerise-item"
        ]
        == item
    )


def test_docs_templates_together(nonce_request: Any) -> None:
    """The three templates of docs/beacons.md, as one page: every script has the nonce."""
    page = "".join(
        sample(name) for name in ("tracking-code", "template-recommendations", "template-search")
    )
    html = Template(page).render(
        Context(
            {
                "request": nonce_request,
                "recommendation": {
                    "correlation_id": "c-1",
                    "campaign_id": "k-1",
                    "products": [{"get_absolute_url": "/p/1/", "sku": "sku-1", "name": "One"}],
                },
                "results": {
                    "correlation_id": "s-1",
                    "products": [{"get_absolute_url": "/p/2/", "sku": "sku-2", "name": "Two"}],
                },
            }
        )
    )
    elements = parse(html).elements
    scripts = [attrs for tag, attrs in elements if tag == "script"]
    assert [attrs["nonce"] for attrs in scripts] == ["r4nd0m-n0nce", "r4nd0m-n0nce"]
    assert (
        "section",
        {
            "data-synerise-frame": "recommendation",
            "data-synerise-correlation-id": "c-1",
            "data-synerise-campaign-id": "k-1",
        },
    ) in elements
    assert ("a", {"href": "/p/1/", "data-synerise-item": "sku-1"}) in elements
    assert ("ol", {"data-synerise-frame": "search", "data-synerise-correlation-id": "s-1"}) in (
        elements
    )
    assert (
        "a",
        {"href": "/p/2/", "data-synerise-item": "sku-2", "data-synerise-position": "1"},
    ) in (elements)


def test_readme_tracking_code_option() -> None:
    html = render("{% synerise_tracking_code customPageVisit=True %}")
    assert json.loads(attrs_of(html, "script")["data-synerise-options"] or "") == {
        "customPageVisit": True
    }


def test_search_results_say_when_they_are_autocomplete_suggestions(caplog):
    from django_synerise.templatetags.synerise import synerise_search_results

    assert "data-synerise-search-type" not in synerise_search_results("s-1")
    html = synerise_search_results("s-1", search_type="autocomplete")
    assert 'data-synerise-search-type="autocomplete"' in html
    assert synerise_search_results("s-1", search_type="voice") == ""
    assert "search_type must be one of" in caplog.text


def _tracker_options(html: str) -> dict:
    import html as html_module
    import json
    import re

    match = re.search(r'data-synerise-options="([^"]*)"', html)
    assert match, html
    return json.loads(html_module.unescape(match.group(1)))


@pytest.mark.parametrize(
    ("middleware", "page_visits", "tag_options", "expected"),
    [
        (True, True, "", True),  # the server records visits: the tracker must not
        (True, True, " customPageVisit=False", False),  # asked for both, explicitly
        (True, False, "", None),  # PAGE_VISITS["ENABLED"] off: the tracker counts
        (False, True, "", None),  # no middleware: the tracker counts
        (False, True, " customPageVisit=True", True),
    ],
)
def test_one_source_of_page_visits(settings, middleware, page_visits, tag_options, expected):
    from django.template import Context, Template

    if middleware:
        settings.MIDDLEWARE = [
            *settings.MIDDLEWARE,
            "django_synerise.middleware.PageVisitMiddleware",
        ]
    settings.SYNERISE = {**settings.SYNERISE, "PAGE_VISITS": {"ENABLED": page_visits}}
    html = Template("{% load synerise %}{% synerise_tracking_code" + tag_options + " %}").render(
        Context({})
    )
    assert _tracker_options(html).get("customPageVisit") == expected


def refuse(request: Any) -> bool:
    return False


def test_tracker_and_beacon_script_render_nothing_without_consent() -> None:
    """Before: the JS tracker and beacon.js loaded for a visitor who refused (or sent GPC)."""
    source = "{% load synerise %}{% synerise_tracking_code %}{% synerise_beacon_script %}"
    plain = RequestFactory().get("/")
    assert "synerise-javascript-sdk" in render(source, request=plain)
    assert "beacon.js" in render(source, request=plain)
    assert render(source, request=RequestFactory().get("/", HTTP_SEC_GPC="1")).strip() == ""
    with override_settings(SYNERISE=synerise(CONSENT="tests.test_templatetags.refuse")):
        assert render(source, request=plain).strip() == ""
