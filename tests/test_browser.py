"""beacon.js and the template tags in a real headless Chromium, against a live test server.

Needs Debian's ``chromium`` package (``apt-get install chromium``); the tests are
skipped, with that reason shown, when ``/usr/bin/chromium`` is absent. Playwright
drives the system browser: no browser is ever downloaded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from django_synerise import signals
from django_synerise.dispatch import flush
from django_synerise.factory import build_client
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise
from tests.views import (
    CAMPAIGN_ID,
    CORRELATION_ID,
    CSP_NONCE,
    ITEMS,
    SEARCH_CORRELATION_ID,
)

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"no system Chromium at {CHROMIUM}: apt-get install chromium to run browser tests",
    ),
    pytest.mark.django_db(transaction=True),
]

playwright_sync = pytest.importorskip("playwright.sync_api")

VISITOR = "0b6f1c1e-3d1a-4b8e-9f2a-7c5d4e3b2a10"
BEACON_PATH = "/synerise/beacon/"

# Runs before any page script: records every sendBeacon call (then makes it for
# real) and every CSP violation, so a test can tell "nothing was sent" for sure.
RECORDER = """
window.__beacons = [];
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
(function () {
  var original = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = function (url, data) {
    window.__beacons.push({ url: String(url), body: JSON.parse(String(data)) });
    return original(url, data);
  };
})();
"""

# A second IntersectionObserver, created after beacon.js's own. Observers are
# notified in creation order within one task, so once this one has reported a
# state, beacon.js has already seen it (and sent, or not sent, its beacon).
WATCH = """
(selector) => {
  window.__seen = window.__seen || {};
  var seen = (window.__seen[selector] = []);
  new IntersectionObserver(
    function (entries) {
      entries.forEach(function (e) { seen.push(e.intersectionRatio); });
    },
    { threshold: [0, 0.1, 0.25, 0.5] }
  ).observe(document.querySelector(selector));
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM
    # calls from a thread with a running loop unless told it is safe (it is: the
    # loop only talks to the browser).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with playwright_sync.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """A fresh page of a visitor whose Synerise tracker has set ``_snrs_uuid``."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 720})
    context.set_default_timeout(10_000)
    context.add_cookies([{"name": "_snrs_uuid", "value": VISITOR, "url": live_server.url}])
    context.add_init_script(RECORDER)
    page = context.new_page()
    yield page
    context.close()


class Enqueued:
    """Outbox writes seen through ``events_enqueued``, for waiting on the live server's thread.

    A beacon sent while its page navigates away gets no response the browser
    reports, so its arrival is awaited on the server side instead.
    """

    def __init__(self) -> None:
        self.batch_types: list[str] = []
        self._condition = threading.Condition()

    def __call__(self, sender: Any, events: list[OutboxEvent], **kwargs: Any) -> None:
        with self._condition:
            self.batch_types.extend(event.batch_type for event in events)
            self._condition.notify_all()

    def wait_for(self, batch_type: str, timeout: float = 10.0) -> None:
        with self._condition:
            found = self._condition.wait_for(lambda: batch_type in self.batch_types, timeout)
        assert found, f"no {batch_type} row was written within {timeout} s"


@pytest.fixture
def enqueued() -> Iterator[Enqueued]:
    receiver = Enqueued()
    signals.events_enqueued.connect(receiver, weak=False)
    yield receiver
    signals.events_enqueued.disconnect(receiver)


def open_page(page: Any, path: str = "/beacon-test/") -> None:
    page.goto(path)
    page.wait_for_function("() => window.djangoSyneriseBeacon !== undefined")


def watch(page: Any, selector: str) -> None:
    """Start the second observer on ``selector`` and wait for its first report."""
    page.evaluate(WATCH, selector)
    wait_seen(page, selector, visible=False)


def wait_seen(page: Any, selector: str, *, visible: bool) -> None:
    condition = ">= 0.5" if visible else "=== 0"
    page.wait_for_function(
        f"(s) => window.__seen[s].length > 0 && window.__seen[s][window.__seen[s].length - 1] "
        f"{condition}",
        arg=selector,
    )


def sent(page: Any, event_type: str) -> list[dict[str, Any]]:
    beacons = page.evaluate("() => window.__beacons")
    bodies = [b["body"] for b in beacons]
    return [b for b in bodies if b.get("type", b.get("eventType")) == event_type]


def is_beacon(response: Any) -> bool:
    return bool(response.url.endswith(BEACON_PATH))


def is_beacon_request(request: Any) -> bool:
    return bool(request.url.endswith(BEACON_PATH))


def ai_rows(event_type: str | None = None) -> list[OutboxEvent]:
    rows = OutboxEvent.objects.filter(kind="ai").order_by("id")
    if event_type is not None:
        rows = rows.filter(batch_type=event_type)
    return list(rows)


def test_view_click_and_flush(
    page: Any, enqueued: Enqueued, synerise_stand_in: LocalSynerise
) -> None:
    open_page(page)
    watch(page, "#frame")
    # The frame is two screens down: nothing seen, nothing sent.
    assert page.evaluate("() => window.__beacons") == []

    with page.expect_response(is_beacon) as view_response:
        page.locator("#frame").scroll_into_view_if_needed()
    assert view_response.value.status == 204
    [view] = ai_rows()
    assert view.batch_type == "recommendation.view"
    assert view.body["items"] == ITEMS
    assert view.body["correlationId"] == CORRELATION_ID
    assert view.body["campaignId"] == CAMPAIGN_ID
    assert view.body["clientUUID"] == VISITOR

    # Away and back again: still one view for this page load.
    page.evaluate("() => window.scrollTo(0, 0)")
    wait_seen(page, "#frame", visible=False)
    page.locator("#frame").scroll_into_view_if_needed()
    wait_seen(page, "#frame", visible=True)
    assert len(sent(page, "recommendation.view")) == 1

    with (
        page.context.expect_event("request", is_beacon_request),
        page.expect_navigation(url="**/beacon-test/item/sku-2/"),
    ):
        page.click("#item-2")
    enqueued.wait_for("recommendation.click")
    assert page.text_content("#landing") == "Item sku-2"
    [click] = ai_rows("recommendation.click")
    assert click.body["items"] == ["sku-2"]
    assert click.body["correlationId"] == CORRELATION_ID
    assert click.body["campaignId"] == CAMPAIGN_ID
    assert len(ai_rows()) == 2

    result = flush(client=build_client())
    assert result.sent == 2
    # ai-compat, the default AI events API: a click carries the single clicked item.
    batches = [r for r in synerise_stand_in.requests if r.path == "/v4/events/ai-compat/batch"]
    assert len(batches) == 2
    assert all(200 <= r.status < 300 for r in batches)
    by_type = {r.body["eventType"]: r.body["items"] for r in batches}
    assert set(by_type) == {"recommendation.view", "recommendation.click"}
    assert [e["items"] for e in by_type["recommendation.view"]] == [ITEMS]
    assert [e["item"] for e in by_type["recommendation.click"]] == ["sku-2"]
    accepted = synerise_stand_in.events_of(endpoint="ai-compat-batch")
    assert sorted(e["type"] for e in accepted) == ["recommendation.click", "recommendation.view"]
    assert ai_rows() == []


def test_search_click_carries_the_position_and_search_results_send_no_view(
    page: Any, enqueued: Enqueued
) -> None:
    with override_settings(SYNERISE={**settings.SYNERISE, "AI_EVENTS_API": "ai-compat"}):
        open_page(page)
        watch(page, "#search")
        page.locator("#search").scroll_into_view_if_needed()
        wait_seen(page, "#search", visible=True)
        assert sent(page, "recommendation.view") == []

        with (
            page.context.expect_event("request", is_beacon_request),
            page.expect_navigation(url="**/beacon-test/item/hit-b/"),
        ):
            page.click("#hit-2")
        enqueued.wait_for("item.search.click")
    [row] = ai_rows()
    assert row.batch_type == "item.search.click"
    assert row.body["correlationId"] == SEARCH_CORRELATION_ID
    assert row.body["items"] == ["hit-b"]  # stored neutral, shaped when sent
    assert row.body["position"] == 2
    assert row.body["searchType"] == "full-text-search"


def test_frames_added_later_and_frames_taller_than_the_screen(page: Any) -> None:
    open_page(page)
    # A fetched fragment: a frame three screens tall, which can never be half visible.
    page.evaluate(
        """() => {
          const frame = document.createElement("div");
          frame.id = "late";
          frame.style.height = "2200px";
          frame.setAttribute("data-synerise-frame", "recommendation");
          frame.setAttribute("data-synerise-correlation-id", "late-1");
          frame.innerHTML = '<a data-synerise-item="x-1">1</a><a data-synerise-item="x-2">2</a>'
            + '<a data-synerise-item="x-1">again</a>';
          document.body.insertBefore(frame, document.body.firstChild);
        }"""
    )
    with page.expect_response(is_beacon) as response:
        page.evaluate("() => window.scrollTo(0, 0)")
    assert response.value.status == 204
    [row] = ai_rows()
    assert row.body["correlationId"] == "late-1"
    assert row.body["items"] == ["x-1", "x-2"]  # each item once, in page order


def test_a_view_waits_for_the_profile_cookie_of_a_first_visit(page: Any) -> None:
    # First visit: Synerise's tracker sets _snrs_uuid a moment after the page loads.
    page.context.clear_cookies()
    open_page(page)
    watch(page, "#frame")
    page.locator("#frame").scroll_into_view_if_needed()
    wait_seen(page, "#frame", visible=True)
    assert page.evaluate("() => window.__beacons") == []  # nobody to attribute it to yet

    with page.expect_response(is_beacon) as response:
        page.evaluate("(uuid) => { document.cookie = '_snrs_uuid=' + uuid + '; path=/'; }", VISITOR)
    assert response.value.status == 204
    [row] = ai_rows()
    assert row.batch_type == "recommendation.view"
    assert row.body["clientUUID"] == VISITOR


def test_a_view_lists_at_most_beacon_max_items(page: Any) -> None:
    with override_settings(SYNERISE={**settings.SYNERISE, "BEACON_MAX_ITEMS": 2}):
        open_page(page)
        with page.expect_response(is_beacon) as response:
            page.locator("#frame").scroll_into_view_if_needed()
    assert response.value.status == 204
    assert ai_rows()[0].body["items"] == ITEMS[:2]


def test_everything_runs_under_a_nonce_only_csp(page: Any) -> None:
    # The tracker SDK is served locally in place of Synerise's CDN: no test reaches the internet.
    page.route(
        "https://web.snrbox.com/**",
        lambda route: route.fulfill(
            content_type="application/javascript",
            body="window.SR = {init: function (options) { window.__srInit = options; }};",
        ),
    )
    open_page(page, "/beacon-test/csp/")
    page.wait_for_function("() => window.__srInit !== undefined")
    assert page.evaluate("() => window.__srInit") == {"trackerKey": "test-tracker-key"}
    assert page.evaluate("() => window.__violations") == []


def test_the_csp_check_above_would_catch_a_missing_nonce(page: Any, live_server: Any) -> None:
    # Control: the same page under a policy with another nonce is blocked, so the
    # previous test's clean result comes from the nonce, not from a lax browser.
    def other_nonce(route: Any) -> None:
        response = route.fetch()
        headers = dict(response.headers)
        headers["content-security-policy"] = headers["content-security-policy"].replace(
            CSP_NONCE, "another-nonce"
        )
        route.fulfill(response=response, headers=headers)

    page.route("**/beacon-test/csp/", other_nonce)
    page.goto("/beacon-test/csp/")
    page.wait_for_function("() => window.__violations.length >= 2")
    assert page.evaluate("() => window.djangoSyneriseBeacon") is None
    assert page.evaluate("() => window.SR") is None


@pytest.mark.parametrize(
    ("api", "path", "endpoint"),
    [
        ("events-v1", "/events/v1/batch", "ai-batch"),
        ("ai-compat", "/v4/events/ai-compat/batch", "ai-compat-batch"),
    ],
)
def test_direct_mode_posts_to_synerise_with_the_tracker_key(
    page: Any,
    live_server: Any,
    synerise_stand_in: LocalSynerise,
    api: str,
    path: str,
    endpoint: str,
) -> None:
    # The page (on localhost) posts straight to the stand-in (on 127.0.0.1): a
    # cross-origin "simple request" that Synerise's validation must accept as sent.
    overrides = {**settings.SYNERISE, "BEACON_MODE": "direct", "AI_EVENTS_API": api}
    with override_settings(SYNERISE=overrides):
        open_page(page)
        page.locator("#frame").scroll_into_view_if_needed()
        assert synerise_stand_in.wait_for_events(1, timeout=10), synerise_stand_in.requests
        [beacon] = page.evaluate("() => window.__beacons")
        assert (
            beacon["url"] == f"{synerise_stand_in.url}{path}?token={synerise_stand_in.tracker_key}"
        )
        with page.expect_navigation(url="**/beacon-test/item/sku-2/"):
            page.click("#item-2")
        assert synerise_stand_in.wait_for_events(2, timeout=10), synerise_stand_in.requests
    assert ai_rows() == []  # nothing went through this site's outbox

    # No preflight, no retry: two POSTs, both accepted.
    received = synerise_stand_in.requests
    assert [(r.method, r.path, r.status) for r in received] == [("POST", path, 200)] * 2
    for request in received:
        assert request.query == {"token": "<redacted>"}
        assert request.headers["content-type"].startswith("text/plain")
        assert request.headers["origin"] == live_server.url
    bodies = [r.body for r in received]
    assert [b["eventType"] for b in bodies] == ["recommendation.view", "recommendation.click"]
    view, click = (b["items"][0] for b in bodies)
    assert view["items"] == ITEMS
    if api == "ai-compat":
        assert click["item"] == "sku-2"  # an ai-compat click carries its one item
    else:
        assert click["items"] == ["sku-2"]
    for event in (view, click):
        assert event["clientUUID"] == VISITOR
        assert event["correlationId"] == CORRELATION_ID
        assert event["campaignId"] == CAMPAIGN_ID
        # ai-compat takes ISO 8601 only; events-v1 milliseconds unless told otherwise.
        assert isinstance(event["eventTimestamp"], str if api == "ai-compat" else int)

    accepted = synerise_stand_in.events_of(endpoint=endpoint)
    assert [e["type"] for e in accepted] == ["recommendation.view", "recommendation.click"]
    assert [e["correlation"] for e in accepted] == [CORRELATION_ID] * 2
    assert synerise_stand_in.count == 2


def test_direct_mode_sends_nothing_without_a_profile_cookie(
    page: Any, synerise_stand_in: LocalSynerise
) -> None:
    page.context.clear_cookies()
    with override_settings(SYNERISE={**settings.SYNERISE, "BEACON_MODE": "direct"}):
        open_page(page)
        watch(page, "#frame")
        page.locator("#frame").scroll_into_view_if_needed()
        wait_seen(page, "#frame", visible=True)
    assert page.evaluate("() => window.__beacons") == []
    assert synerise_stand_in.requests == []


# A frame placed by absolute position, far below the page's own content, so that a
# test knows exactly how much of it each scroll position shows.
ADD_FRAME = """
({id, top, left, width, height, items}) => {
  document.documentElement.style.overflowX = "hidden";
  const frame = document.createElement("div");
  frame.id = id;
  frame.style.cssText = "position: absolute; margin: 0; top: " + top + "px; left: " + left
    + "; width: " + width + "; height: " + height + "px";
  frame.setAttribute("data-synerise-frame", "recommendation");
  frame.setAttribute("data-synerise-correlation-id", id);
  frame.innerHTML = items.map((item) => '<a data-synerise-item="' + item + '">' + item + "</a>")
    .join("");
  document.body.appendChild(frame);
}
"""
FRAME_TOP = 10_000


def add_frame(
    page: Any,
    frame_id: str,
    *,
    height: int,
    items: list[str],
    left: str = "0px",
    width: str = "100%",
) -> None:
    page.evaluate(
        ADD_FRAME,
        {
            "id": frame_id,
            "top": FRAME_TOP,
            "left": left,
            "width": width,
            "height": height,
            "items": items,
        },
    )
    watch(page, f"#{frame_id}")


def show(page: Any, frame_id: str, visible_px: int) -> None:
    """Scroll so that the frame's top ``visible_px`` pixels are on screen.

    The frame goes out of view first, so that every observer (beacon.js's and
    the test's, created after it) reports the new position in the same update.
    """
    selector = f"#{frame_id}"
    page.evaluate("() => window.scrollTo(0, 0)")
    wait_seen(page, selector, visible=False)
    height = page.evaluate("() => document.documentElement.clientHeight")
    page.evaluate("(y) => window.scrollTo(0, y)", FRAME_TOP - (height - visible_px))
    page.wait_for_function("(s) => window.__seen[s][window.__seen[s].length - 1] > 0", arg=selector)


def views_of(page: Any, frame_id: str) -> list[dict[str, Any]]:
    return [b for b in sent(page, "recommendation.view") if b["correlationId"] == frame_id]


def test_a_frame_that_can_be_half_visible_must_be(page: Any) -> None:
    open_page(page)
    viewport = page.evaluate("() => document.documentElement.clientHeight")
    # One and a half screens tall: a third of it fills more than half the screen,
    # but half of it fits on the screen, so half of it is what counts.
    add_frame(page, "tall", height=viewport * 3 // 2, items=["t-1"])
    show(page, "tall", int(viewport * 0.6))  # 40 % of the frame
    assert views_of(page, "tall") == []
    with page.expect_response(is_beacon) as response:
        show(page, "tall", int(viewport * 0.9))  # 60 % of the frame
    assert response.value.status == 204
    assert [b["items"] for b in views_of(page, "tall")] == [["t-1"]]


def test_a_frame_more_than_twice_the_screen_counts_when_it_fills_half_of_it(page: Any) -> None:
    open_page(page)
    viewport = page.evaluate("() => document.documentElement.clientHeight")
    add_frame(page, "huge", height=viewport * 5 // 2, items=["h-1", "h-2"])
    show(page, "huge", int(viewport * 0.4))
    assert views_of(page, "huge") == []
    with page.expect_response(is_beacon) as response:
        show(page, "huge", int(viewport * 0.6))  # 24 % of the frame, 60 % of the screen
    assert response.value.status == 204
    [row] = ai_rows()
    assert row.body["correlationId"] == "huge"
    assert row.body["items"] == ["h-1", "h-2"]


def test_a_huge_frame_mostly_beside_the_screen_does_not_fill_it(page: Any) -> None:
    open_page(page)
    viewport = page.evaluate(
        "() => [document.documentElement.clientWidth, document.documentElement.clientHeight]"
    )
    width, height = viewport
    # Three screens tall and one wide, but only a 10 % strip of it is on screen.
    add_frame(page, "aside", height=height * 3, items=["a-1"], left="90%", width=f"{width}px")
    show(page, "aside", height)  # the whole height of the screen, a tenth of its width
    assert views_of(page, "aside") == []
    with page.expect_response(is_beacon) as response:
        page.evaluate("() => { document.getElementById('aside').style.left = '0px'; }")
    assert response.value.status == 204
    assert [b["items"] for b in views_of(page, "aside")] == [["a-1"]]


def test_a_frame_without_items_waits_for_them(page: Any) -> None:
    open_page(page)
    # In view, but their items are still being fetched: no view with "items": [].
    add_frame(page, "empty", height=200, items=[], width="50%")
    add_frame(page, "marked-later", height=200, items=[], left="50%", width="50%")
    page.evaluate("() => { document.getElementById('marked-later').innerHTML = '<a>later</a>'; }")
    page.evaluate("(y) => window.scrollTo(0, y)", FRAME_TOP - 100)
    wait_seen(page, "#empty", visible=True)
    wait_seen(page, "#marked-later", visible=True)
    assert views_of(page, "empty") == []
    assert views_of(page, "marked-later") == []

    with page.expect_response(is_beacon) as response:
        page.evaluate(
            """() => {
              const item = document.createElement("a");
              item.setAttribute("data-synerise-item", "e-1");
              document.getElementById("empty").appendChild(item);
            }"""
        )
    assert response.value.status == 204
    with page.expect_response(is_beacon) as response:
        page.evaluate(
            """() => document.querySelector("#marked-later a")
                 .setAttribute("data-synerise-item", "m-1")"""
        )
    assert response.value.status == 204
    assert [b["items"] for b in views_of(page, "empty")] == [["e-1"]]
    assert [b["items"] for b in views_of(page, "marked-later")] == [["m-1"]]
    assert sorted(row.body["items"][0] for row in ai_rows()) == ["e-1", "m-1"]


def test_a_malformed_profile_cookie_is_no_profile(page: Any, live_server: Any) -> None:
    # A UUID followed by junk is not what the tracker writes: nothing is attributed to it.
    page.context.clear_cookies()
    page.context.add_cookies(
        [{"name": "_snrs_uuid", "value": VISITOR + "%3Cscript%3E", "url": live_server.url}]
    )
    open_page(page)
    watch(page, "#frame")
    page.locator("#frame").scroll_into_view_if_needed()
    wait_seen(page, "#frame", visible=True)
    assert page.evaluate("() => window.__beacons") == []


# Stands in for Synerise's tracker script (the real one is on the internet): like it,
# SR.init() sends a page.visit on load unless initialised with customPageVisit: true.
FAKE_TRACKER = """
window.__trackerPageVisits = 0;
window.SR = window.SR || [];
window.SR.init = function (options) {
  window.__trackerOptions = options;
  if (!options.customPageVisit) {
    window.__trackerPageVisits += 1;
  }
};
"""


DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


def page_visit_rows() -> int:
    return OutboxEvent.objects.filter(action="page.visit").count()


@pytest.mark.parametrize("middleware", [True, False], ids=["server-side", "tracker-only"])
def test_each_page_visit_is_counted_once(page: Any, settings: Any, middleware: bool) -> None:
    if middleware:
        settings.MIDDLEWARE = [
            *settings.MIDDLEWARE,
            "django_synerise.middleware.PageVisitMiddleware",
        ]
    page.route(
        "https://web.snrbox.com/**",
        lambda route: route.fulfill(body=FAKE_TRACKER, content_type="application/javascript"),
    )
    # An ordinary browser's user agent: headless Chromium's counts as automation.
    page.set_extra_http_headers({"User-Agent": DESKTOP_CHROME})
    page.goto("/beacon-test/csp/visited/" if middleware else "/beacon-test/csp/")
    page.wait_for_function("() => window.__trackerOptions !== undefined")
    tracker = page.evaluate("() => window.__trackerPageVisits")
    options = page.evaluate("() => window.__trackerOptions")
    assert options["trackerKey"]
    if middleware:
        assert options["customPageVisit"] is True
        assert (page_visit_rows(), tracker) == (1, 0)
    else:
        assert "customPageVisit" not in options
        assert (page_visit_rows(), tracker) == (0, 1)


# Synerise's tracker, as far as the uuid reset goes: on load it adopts the uuid of
# _snrs_reset_uuid as _snrs_uuid and drops the reset cookie (hub.synerise.com/developers/web/uuids).
RESETTING_TRACKER = """
window.SR = {init: function (options) {
  var reset = document.cookie.match(/(?:^|; )_snrs_reset_uuid=([^;]*)/);
  if (reset) {
    document.cookie = "_snrs_uuid=" + reset[1] + "; path=/";
    document.cookie = "_snrs_reset_uuid=; path=/; max-age=0";
  }
  window.__srInit = options;
}};
"""


def test_after_login_the_trackers_cookie_is_the_reset_uuid(page: Any) -> None:
    from django.contrib.auth.models import User

    from django_synerise.profiles import profile_uuid

    User.objects.create_user("ann", email="ann@example.com")
    page.route(
        "https://web.snrbox.com/**",
        lambda route: route.fulfill(content_type="application/javascript", body=RESETTING_TRACKER),
    )
    open_page(page, "/beacon-test/csp/")
    page.wait_for_function("() => window.__srInit !== undefined")
    status = page.evaluate(
        """() => fetch('/browser/sign-in/', {method: 'POST', credentials: 'same-origin',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'},
             body: 'username=ann'}).then((r) => r.status)"""
    )
    assert status == 200
    open_page(page, "/beacon-test/csp/")  # the next page: the tracker runs again
    page.wait_for_function("() => window.__srInit !== undefined")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    customer = profile_uuid("ann@example.com", "6ba7b810-9dad-11d1-80b4-00c04fd430c8")
    assert cookies["_snrs_uuid"] == customer
    assert "_snrs_reset_uuid" not in cookies
    merge = OutboxEvent.objects.get(kind="profile")
    assert merge.body == [
        {"uuid": VISITOR, "email": "ann@example.com"},
        {"uuid": customer, "email": "ann@example.com"},
    ]
    login = OutboxEvent.objects.get(batch_type="logged-in")
    assert (login.wait_for, login.body["client"]["uuid"]) == (merge.pk, customer)
