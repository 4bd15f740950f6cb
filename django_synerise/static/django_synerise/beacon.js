/*! django-synerise beacon.js: recommendation view and click beacons. No dependencies. */
/*
 * Loaded by {% synerise_beacon_script %}, which passes its configuration as data-
 * attributes of this <script> element (no inline code, so no 'unsafe-inline').
 *
 * - A frame is an element with data-synerise-frame="recommendation" (or "search")
 *   and data-synerise-correlation-id; its items are the elements inside it with
 *   data-synerise-item.
 * - One recommendation.view per frame per page load, with the frame's item ids,
 *   once at least half of the frame is visible. A frame too big for half of it to
 *   fit in the viewport (more than twice the viewport's height, say) counts once it
 *   fills at least half of the viewport (a frame narrower than the viewport: half
 *   of the viewport's height across the frame's whole width; likewise for width).
 * - A frame without items yet sends nothing: it is watched until it has some.
 * - A click on an item sends recommendation.click (item.search.click with its
 *   position in search results) without delaying the navigation.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.djangoSyneriseBeacon) {
    return; // Loaded twice: the first copy already listens.
  }
  var config = script.dataset;
  var direct = config.syneriseMode === "direct";
  var endpoint = config.syneriseEndpoint;
  var api = config.syneriseApi || "ai-compat";
  // ai-compat takes ISO 8601 only; events-v1 what SYNERISE["AI_TIMESTAMP_FORMAT"] says.
  var isoTimestamps = api === "ai-compat" || config.syneriseTimestamp === "iso8601";
  var maxItems = parseInt(config.syneriseMaxItems, 10) || 100;
  var FRAME = "[data-synerise-frame]";
  var ITEM = "[data-synerise-item]";
  var RECOMMENDATION_FRAME = '[data-synerise-frame="recommendation"]';
  var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  var NIL_UUID = /^(0{8}-0{4}-0{4}-0{4}-0{12}|f{8}-f{4}-f{4}-f{4}-f{12})$/;
  var viewed = new WeakSet();
  var emptyInView = []; // frames visible enough to count, but without items yet
  var waiting = []; // views waiting for the visitor's profile cookie
  var profileRetries = 0;
  var PROFILE_RETRY_MS = 500;
  var PROFILE_RETRIES = 20;

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|;\\s*)" + name + "=([^;]*)"));
    if (!match) {
      return "";
    }
    try {
      return decodeURIComponent(match[1]);
    } catch (error) {
      return "";
    }
  }

  // Reads the visitor's profile UUID as django_synerise.identity.get_cookie_uuid
  // does: _snrs_uuid, else the uuid field of the tracker's _snrs_p cookie. The
  // whole value (without spaces and one pair of quotes) must be a UUID.
  function parseUUID(value) {
    var text = value.trim();
    if (text.length >= 2 && text.charAt(0) === '"' && text.charAt(text.length - 1) === '"') {
      text = text.slice(1, -1).trim();
    }
    text = text.toLowerCase();
    return UUID.test(text) && !NIL_UUID.test(text) ? text : null;
  }

  function cookieUUID() {
    var found = parseUUID(cookie("_snrs_uuid"));
    var parts = cookie("_snrs_p").split("&");
    for (var i = 0; !found && i < parts.length; i++) {
      var separator = parts[i].indexOf(":");
      if (separator > 0 && parts[i].slice(0, separator).trim() === "uuid") {
        found = parseUUID(parts[i].slice(separator + 1));
      }
    }
    return found;
  }

  function post(body) {
    // A string body is sent as text/plain: in direct mode that keeps the request
    // "simple", so the browser sends it cross-origin without a CORS preflight.
    var text = JSON.stringify(body);
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(endpoint, text)) {
        return;
      }
    } catch (error) {
      // Some browsers throw for blocked URLs; fall back to fetch.
    }
    if (window.fetch) {
      fetch(endpoint, { method: "POST", body: text, keepalive: true }).catch(function () {});
    }
  }

  function send(type, frame, items, position) {
    var correlationId = frame.getAttribute("data-synerise-correlation-id");
    var campaignId = frame.getAttribute("data-synerise-campaign-id");
    var searchType = null;
    if (type === "item.search.click") {
      searchType = frame.getAttribute("data-synerise-search-type") || "full-text-search";
      campaignId = null; // a search click has no campaign
    }
    if (!correlationId || !endpoint) {
      return;
    }
    // Without a Synerise profile the event could not be attributed. On a first
    // visit the tracker sets its cookie a moment after the page loads, so a view
    // waits for it a little; a click cannot wait (the page is going away).
    var clientUUID = cookieUUID();
    if (!clientUUID) {
      if (type === "recommendation.view") {
        waiting.push(function () {
          send(type, frame, items, position);
        });
        if (waiting.length === 1) {
          setTimeout(retryWaiting, PROFILE_RETRY_MS);
        }
      }
      return;
    }
    if (!direct) {
      // The server reads the visitor from the cookie itself, never from the body.
      var beacon = { type: type, correlationId: correlationId, items: items };
      if (campaignId) {
        beacon.campaignId = campaignId;
      }
      if (position) {
        beacon.position = position;
      }
      if (searchType) {
        beacon.searchType = searchType;
      }
      post(beacon);
      return;
    }
    var event = { correlationId: correlationId, clientUUID: clientUUID };
    if (api === "ai-compat" && type !== "recommendation.view") {
      event.item = items[0]; // ai-compat click bodies carry a single item.
    } else {
      event.items = items;
    }
    // Search clicks keep their position in every API, and say which search it was.
    if (position) {
      event.position = position;
    }
    if (searchType) {
      event.searchType = searchType;
    }
    event.eventTimestamp = isoTimestamps ? new Date().toISOString() : Date.now();
    if (campaignId) {
      event.campaignId = campaignId;
    }
    post({ eventType: type, items: [event] });
  }

  function retryWaiting() {
    if (!cookieUUID() && ++profileRetries < PROFILE_RETRIES) {
      setTimeout(retryWaiting, PROFILE_RETRY_MS);
      return;
    }
    var ready = waiting;
    waiting = [];
    profileRetries = 0;
    if (cookieUUID()) {
      for (var i = 0; i < ready.length; i++) {
        ready[i]();
      }
    }
  }

  function itemsOf(frame) {
    var ids = [];
    var seen = Object.create(null);
    var nodes = frame.querySelectorAll(ITEM);
    for (var i = 0; i < nodes.length && ids.length < maxItems; i++) {
      var id = nodes[i].getAttribute("data-synerise-item");
      // Items of a frame nested inside this one belong to that frame.
      if (id && !seen[id] && nodes[i].closest(FRAME) === frame) {
        seen[id] = true;
        ids.push(id);
      }
    }
    return ids;
  }

  // Half of the frame visible; or, for a frame too big for that, half of the room
  // it could take in the viewport (the viewport, cut to the frame's own size).
  function isViewed(entry) {
    if (!entry.isIntersecting) {
      return false;
    }
    if (entry.intersectionRatio >= 0.5) {
      return true;
    }
    var box = entry.boundingClientRect;
    var root = entry.rootBounds;
    if (!root) {
      return false;
    }
    var room = Math.min(box.width, root.width) * Math.min(box.height, root.height);
    if (room * 2 >= box.width * box.height) {
      return false; // it can be half visible, so it must be
    }
    return entry.intersectionRect.width * entry.intersectionRect.height * 2 >= room;
  }

  function forget(frame) {
    var at = emptyInView.indexOf(frame);
    if (at >= 0) {
      emptyInView.splice(at, 1);
    }
  }

  function onIntersection(entries) {
    for (var i = 0; i < entries.length; i++) {
      var frame = entries[i].target;
      forget(frame);
      if (viewed.has(frame) || !isViewed(entries[i])) {
        continue;
      }
      var items = itemsOf(frame);
      if (!items.length) {
        emptyInView.push(frame); // its items are still coming: wait for them
        continue;
      }
      viewed.add(frame);
      observer.unobserve(frame);
      send("recommendation.view", frame, items);
    }
  }

  // Items arrived in a frame that was in view: observe it afresh, so that the
  // observer reports where it is now (the items may have moved or resized it).
  function recheckEmptyFrames() {
    var frames = emptyInView.slice();
    for (var i = 0; i < frames.length; i++) {
      if (itemsOf(frames[i]).length) {
        forget(frames[i]);
        observer.unobserve(frames[i]);
        observer.observe(frames[i]);
      }
    }
  }

  // An observer reports only when the visible share crosses a threshold. 0.5 is
  // the rule; the steps below it let a frame too big to be half visible count
  // close to the moment it fills half of its room.
  var thresholds = [];
  for (var step = 0; step <= 50; step++) {
    thresholds.push(step / 100);
  }
  var observer =
    "IntersectionObserver" in window
      ? new IntersectionObserver(onIntersection, { threshold: thresholds })
      : null;

  function watch(root) {
    if (!observer || root.nodeType !== 1) {
      return;
    }
    var frames = Array.prototype.slice.call(root.querySelectorAll(RECOMMENDATION_FRAME));
    if (root.matches(RECOMMENDATION_FRAME)) {
      frames.push(root);
    }
    for (var i = 0; i < frames.length; i++) {
      if (!viewed.has(frames[i])) {
        observer.observe(frames[i]); // Observing an element twice is a no-op.
      }
    }
  }

  function start() {
    watch(document.documentElement);
    if (observer && window.MutationObserver) {
      // Frames inserted later (fetched fragments, infinite scroll) are watched too.
      // Items added to a frame already in view are noticed here too.
      new MutationObserver(function (mutations) {
        for (var i = 0; i < mutations.length; i++) {
          for (var j = 0; j < mutations[i].addedNodes.length; j++) {
            watch(mutations[i].addedNodes[j]);
          }
        }
        if (emptyInView.length) {
          recheckEmptyFrames();
        }
      }).observe(document.documentElement, {
        childList: true,
        subtree: true,
        attributes: true,
        attributeFilter: ["data-synerise-item"],
      });
    }
  }

  // Capture phase: a page handler that stops propagation does not hide the click.
  document.addEventListener(
    "click",
    function (event) {
      var target = event.target;
      var item = target && target.closest ? target.closest(ITEM) : null;
      var frame = item ? item.closest(FRAME) : null;
      var id = item ? item.getAttribute("data-synerise-item") : null;
      if (!frame || !id) {
        return;
      }
      var kind = frame.getAttribute("data-synerise-frame");
      if (kind === "recommendation") {
        send("recommendation.click", frame, [id]);
      } else if (kind === "search") {
        var position = parseInt(item.getAttribute("data-synerise-position"), 10);
        if (position > 0) {
          send("item.search.click", frame, [id], position);
        }
      }
    },
    true
  );

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }

  window.djangoSyneriseBeacon = { version: 1, watch: watch };
})();
