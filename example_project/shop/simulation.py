"""Simulated shoppers for ``manage.py demo``: real requests through the whole stack.

Every visitor is a Django test ``Client``: its requests go through the
middleware (page visits), the views (product views, favourites, removals
from the cart, cart status, cancellations), the model hooks (cart adds,
orders and their updates),
Django's auth (login and logout events) and the beacon endpoint, exactly as a
browser's would. The recommendation and search beacons are the JSON bodies
``beacon.js`` posts, built from the ``data-synerise-*`` attributes of the page
the visitor just received, so the template tags are exercised too.

Nothing here writes an outbox row itself: :class:`Simulation` only counts
what it did, per Synerise action, so that the demo can compare it with what
Synerise received.
"""

import collections
import json
import random
import re
import secrets
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import reverse

from django_synerise.identity import COOKIE_NAME

from .models import Product

#: Where the simulated browsers believe the shop is (``make run`` serves it there).
HOST = "127.0.0.1:8000"
ORIGIN = f"http://{HOST}"

USER_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
]

SEARCH_TERMS = ["mug", "tea", "notebook", "pen", "bag", "teapot", "ink"]

#: What each simulated action is called at Synerise.
PAGE_VISIT = "page.visit"
REGISTERED = "client.register"
LOGGED_IN = "client.login"
LOGGED_OUT = "client.logout"
PRODUCT_VIEW = "product.view"
ADDED_TO_FAVORITES = "product.addToFavorite"
ADDED_TO_CART = "product.addToCart"
REMOVED_FROM_CART = "product.removeFromCart"
CART_STATUS = "cart.status"
TRANSACTION = "transaction.charge"
CANCELLED_TRANSACTION = "transaction.cancel"
SEARCHED = "client.search"
NEWSLETTER = "newsletter.subscribed"
RECOMMENDATION_VIEW = "recommendation.view"
RECOMMENDATION_CLICK = "recommendation.click"
SEARCH_CLICK = "item.search.click"


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2 with 1,000 iterations instead of a million, for simulated sign-ups only.

    Hashing is the one slow step of a sign-up or a login (a second or more per
    password on a small machine). The hash keeps Django's own format, so the
    regular hasher still verifies it, and upgrades it at the account's next login.
    """

    iterations = 1000


class SimulationError(AssertionError):
    """The shop answered a simulated request unexpectedly."""


@dataclass
class Frame:
    """A recommendation frame or search result list found in a page, as beacon.js sees it."""

    kind: str
    correlation_id: str
    campaign_id: str | None
    items: list[tuple[str, int | None]] = field(default_factory=list)
    #: A search frame's searchType, as beacon.js reads it (the tag's default when absent).
    search_type: str | None = None


class FrameParser(HTMLParser):
    """Collects the ``data-synerise-*`` frames and items of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("data-synerise-frame"):
            kind = str(attributes["data-synerise-frame"])
            self.frames.append(
                Frame(
                    kind=kind,
                    correlation_id=str(attributes.get("data-synerise-correlation-id") or ""),
                    campaign_id=attributes.get("data-synerise-campaign-id"),
                    search_type=(
                        attributes.get("data-synerise-search-type") or "full-text-search"
                        if kind == "search"
                        else None
                    ),
                )
            )
        elif attributes.get("data-synerise-item") and self.frames:
            position = attributes.get("data-synerise-position")
            self.frames[-1].items.append(
                (str(attributes["data-synerise-item"]), int(position) if position else None)
            )


def frames_of(response: HttpResponse, kind: str) -> list[Frame]:
    parser = FrameParser()
    parser.feed(response.content.decode())
    return [frame for frame in parser.frames if frame.kind == kind and frame.correlation_id]


class Visitor:
    """One browser: its own cookies (``_snrs_uuid`` as Synerise's tracker would set it)."""

    def __init__(self, simulation: "Simulation", number: int) -> None:
        self.simulation = simulation
        self.rng = simulation.rng
        self.client = Client(
            HTTP_HOST=HOST,
            HTTP_USER_AGENT=USER_AGENTS[number % len(USER_AGENTS)],
            # One address per visitor, as in real traffic (the beacon throttle is per address).
            REMOTE_ADDR=f"192.0.2.{number % 250 + 1}",
        )
        self.client.cookies[COOKIE_NAME] = str(uuid.uuid4())
        self.username: str | None = None
        self.password: str | None = None
        self.cart_lines = 0
        self.favourites: set[str] = set()

    @property
    def has_cart(self) -> bool:
        return self.cart_lines > 0

    def _count(self, action: str) -> None:
        self.simulation.counts[action] += 1

    def chance(self, choice: str, probability: float) -> bool:
        """Random, except that the first chance of each choice is always taken."""
        if choice not in self.simulation.chosen:
            self.simulation.chosen.add(choice)
            return True
        return self.rng.random() < probability

    def _expect(self, response: HttpResponse, status: int, what: str) -> HttpResponse:
        if response.status_code != status:
            raise SimulationError(
                f"{what}: expected HTTP {status}, got {response.status_code}: "
                f"{response.content[:300]!r}"
            )
        return response

    def visit(self, url: str) -> HttpResponse:
        """GET a page, as a person would; every page is one ``page.visit``."""
        response = self._expect(self.client.get(url), 200, f"GET {url}")
        self._count(PAGE_VISIT)
        return response

    def beacon(self, event_type: str, frame: Frame, items: list[str], position: int | None) -> None:
        """POST what beacon.js posts (a JSON string, sent as text/plain by sendBeacon)."""
        body: dict[str, Any] = {
            "type": event_type,
            "correlationId": frame.correlation_id,
            "items": items,
        }
        if frame.campaign_id:
            body["campaignId"] = frame.campaign_id
        if position is not None:
            body["position"] = position
        if event_type == SEARCH_CLICK and frame.search_type:
            body["searchType"] = frame.search_type
            self.simulation.details[f"{frame.search_type} click"] += 1
        response = self.client.post(
            reverse("django_synerise:beacon"),
            data=json.dumps(body),
            content_type="text/plain;charset=UTF-8",
            HTTP_ORIGIN=ORIGIN,
        )
        self._expect(response, 204, f"{event_type} beacon")
        self._count(event_type)

    def view_product(self, sku: str) -> HttpResponse:
        """A product page: a page visit and a ``product.view``."""
        page = self.visit(reverse("shop:product", args=[sku]))
        self._count(PRODUCT_VIEW)
        return page

    def browse_product(self, product: Product) -> None:
        page = self.view_product(product.sku)
        if product.sku not in self.favourites and self.chance(ADDED_TO_FAVORITES, 0.15):
            response = self.client.post(reverse("shop:favourite", args=[product.sku]))
            self._expect(response, 302, f"add {product.sku} to the favourites")
            self._count(ADDED_TO_FAVORITES)
            self.favourites.add(product.sku)
        frames = frames_of(page, "recommendation")
        if not frames or not self.chance(RECOMMENDATION_VIEW, 0.8):
            return  # left before scrolling down to the recommendations
        frame = frames[0]
        self.beacon(RECOMMENDATION_VIEW, frame, [item for item, _ in frame.items], None)
        if self.chance(RECOMMENDATION_CLICK, 0.4):
            item, _ = self.rng.choice(frame.items)
            self.beacon(RECOMMENDATION_CLICK, frame, [item], None)
            self.view_product(item)

    def search(self) -> None:
        term = self.rng.choice(SEARCH_TERMS)
        # Typing in the search box: its script fetches suggestions (not a page visit).
        suggestions = self._expect(
            self.client.get(reverse("shop:suggest"), {"q": term}, HTTP_SEC_FETCH_DEST="empty"),
            200,
            "search suggestions",
        )
        frames = frames_of(suggestions, "search")
        if frames and frames[0].items and self.chance("autocomplete click", 0.3):
            item, position = self.rng.choice(frames[0].items)
            self.beacon(SEARCH_CLICK, frames[0], [item], position)
            self.view_product(item)
            return
        page = self.visit(f"{reverse('shop:search')}?q={term}")
        self._count(SEARCHED)
        frames = frames_of(page, "search")
        if frames and frames[0].items and self.chance(SEARCH_CLICK, 0.7):
            item, position = self.rng.choice(frames[0].items)
            self.beacon(SEARCH_CLICK, frames[0], [item], position)
            self.view_product(item)

    def add_to_cart(self, product: Product) -> None:
        response = self.client.post(
            reverse("shop:add_to_cart", args=[product.sku]),
            {"quantity": self.rng.randint(1, 3)},
        )
        self._expect(response, 302, f"add {product.sku} to the cart")
        self._count(ADDED_TO_CART)
        self._count(CART_STATUS)
        self.cart_lines += 1
        self.visit(reverse("shop:cart"))

    def remove_from_cart(self) -> None:
        """Remove one line, with the button the cart page shows for it."""
        page = self.visit(reverse("shop:cart"))
        removes = re.findall(r'action="(/cart/remove/\d+/)"', page.content.decode())
        if len(removes) != self.cart_lines:
            raise SimulationError(f"the cart shows {len(removes)} lines, not {self.cart_lines}")
        response = self.client.post(self.rng.choice(removes))
        self._expect(response, 302, "remove a line from the cart")
        self._count(REMOVED_FROM_CART)
        self._count(CART_STATUS)
        self.cart_lines -= 1

    def check_out(self) -> str:
        """Place the order; return its page's URL."""
        self.visit(reverse("shop:checkout"))
        email = f"{self.username or 'guest-' + secrets.token_hex(4)}@example.com"
        response = self.client.post(reverse("shop:checkout"), {"email": email})
        self._expect(response, 302, "place an order")
        self._count(TRANSACTION)
        self._count(CART_STATUS)  # the emptied cart
        self.cart_lines = 0
        self.visit(response["Location"])
        return str(response["Location"])

    def change_order_email(self, order_url: str) -> None:
        """A corrected address: the transaction is sent again, with the same salt and time."""
        email = f"corrected-{secrets.token_hex(4)}@example.com"
        response = self.client.post(f"{order_url}email/", {"email": email})
        self._expect(response, 302, "change an order's e-mail address")
        self._count(TRANSACTION)
        self.simulation.details["updated order (same eventSalt and recordedAt)"] += 1

    def cancel_order(self, order_url: str) -> None:
        response = self.client.post(f"{order_url}cancel/")
        self._expect(response, 302, "cancel an order")
        self._count(CANCELLED_TRANSACTION)

    def sign_up(self) -> None:
        self.visit(reverse("shop:signup"))
        self.username = f"shopper-{secrets.token_hex(4)}"
        self.password = f"demo-{secrets.token_urlsafe(12)}"
        response = self.client.post(
            reverse("shop:signup"),
            {
                "username": self.username,
                "email": f"{self.username}@example.com",
                "password1": self.password,
                "password2": self.password,
            },
        )
        self._expect(response, 302, "sign up")
        self._count(REGISTERED)
        self._count(LOGGED_IN)  # the sign-up view logs the new user in

    def log_out(self) -> None:
        self._expect(self.client.post(reverse("logout")), 302, "log out")
        self._count(LOGGED_OUT)

    def log_in(self) -> None:
        self.visit(reverse("login"))
        response = self.client.post(
            reverse("login"), {"username": self.username, "password": self.password}
        )
        self._expect(response, 302, "log in")
        self._count(LOGGED_IN)

    def subscribe(self) -> None:
        email = f"reader-{secrets.token_hex(4)}@example.com"
        response = self.client.post(reverse("shop:newsletter"), {"email": email})
        self._expect(response, 302, "subscribe to the newsletter")
        self._count(NEWSLETTER)


class Simulation:
    """Drives ``visitors`` shoppers through the shop; :attr:`counts` says what they did.

    Every kind of action happens at least once with 8 visitors or more (the
    first chance of each is always taken); the rest (which products, whether a
    recommendation is clicked) is random, reproducible with ``seed``.
    """

    def __init__(self, visitors: int = 24, seed: int | None = None) -> None:
        self.visitors = visitors
        self.rng = random.Random(seed)
        self.counts: collections.Counter[str] = collections.Counter()
        self.chosen: set[str] = set()
        #: Kinds of some actions (search types, order updates), for the report.
        self.details: collections.Counter[str] = collections.Counter()

    def run(self) -> collections.Counter[str]:
        products = list(Product.objects.all())
        if not products:
            raise SimulationError("the shop has no products: run manage.py seed_shop first")
        with override_settings(
            ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, HOST.split(":")[0]],
            PASSWORD_HASHERS=[
                f"{__name__}.QuickPBKDF2PasswordHasher",
                *settings.PASSWORD_HASHERS,
            ],
        ):
            for number in range(self.visitors):
                self.run_visitor(number, products)
        return self.counts

    def run_visitor(self, number: int, products: list[Product]) -> None:
        visitor = Visitor(self, number)
        visitor.visit(reverse("shop:index"))
        member = number % 3 == 0
        if member:
            visitor.sign_up()
        for product in self.rng.sample(products, 2):
            visitor.browse_product(product)
        if number % 2 == 0:
            visitor.search()
        if member or number % 2 == 1:
            for product in self.rng.sample(products, self.rng.randint(1, 2)):
                visitor.add_to_cart(product)
            if visitor.chance(REMOVED_FROM_CART, 0.3):
                visitor.remove_from_cart()
        if visitor.has_cart and number % 4 != 3:
            order_url = visitor.check_out()
            if visitor.chance(TRANSACTION + " update", 0.3):
                visitor.change_order_email(order_url)
            if visitor.chance(CANCELLED_TRANSACTION, 0.2):
                visitor.cancel_order(order_url)
        if number % 5 == 0:
            visitor.subscribe()
        if member and number % 2 == 0:
            visitor.log_out()
            if number % 4 == 0:
                visitor.log_in()
