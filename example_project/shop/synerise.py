"""Everything the shop tells Synerise about its models, in one place.

* a line added to a cart → the dedicated ``added-to-cart`` event (``product.addToCart``);
* an order placed or updated → a Synerise transaction (``/v4/transactions``), from
  which Synerise derives one ``product.buy`` event per product. Its ``eventSalt``
  and ``recordedAt`` come from the order (its number, its checkout time), so an
  updated order overwrites the transaction Synerise has instead of adding one;
* a product saved → an item of the ``SHOP_CATALOG`` catalog
  (``/catalogs/bags/{id}/items/batch``); ``manage.py synerise_catalog_load``
  sends them all the first time.

The customers' profiles follow from ``SYNERISE["USER_PROFILES"]`` (settings),
and a login or sign-up merges the shopper's anonymous profile into theirs.

Both are written to the outbox in the same database transaction as the row
that caused them. Page visits come from ``PageVisitMiddleware``, logins and
logouts from django-synerise's auth hooks, ``registered`` from the sign-up
view, recommendation views and clicks from ``beacon.js`` (see the templates).
The views send what only a request knows, with the builders of
``django_synerise.events``: product views, favourites, removals from the cart,
the cart's status after each change (abandoned-cart journeys) and cancellations.
"""

import copy
from decimal import Decimal
from typing import Any

from django.conf import settings

from django_synerise import events, track_catalog, track_model
from django_synerise.events import Event
from django_synerise.identity import user_client

from .models import Cart, CartLine, Order, Product


def _client(user: Any, visitor_uuid: str, email: str = "") -> dict[str, Any]:
    """The Synerise identifiers we know for a cart or an order."""
    client: dict[str, Any] = {}
    if visitor_uuid:
        client["uuid"] = visitor_uuid
    if email:
        client["email"] = email
    client.update(user_client(user) or {})
    return client


def cart_line_client(line: CartLine) -> dict[str, Any]:
    return _client(line.cart.user, line.cart.visitor_uuid)


def cart_line_params(line: CartLine) -> dict[str, Any]:
    # Decimal(): a line just created holds the value it was given, possibly a string.
    price = {"amount": Decimal(line.unit_price), "currency": settings.SHOP_CURRENCY}
    return {
        "sku": line.product.sku,
        "name": line.product.name,
        "category": line.product.category,
        "quantity": line.quantity,
        "finalUnitPrice": price,
        "regularUnitPrice": price,
        "url": line.product.get_absolute_url(),
        "source": line.cart.source,
    }


def cart_client(cart: Cart) -> dict[str, Any]:
    return _client(cart.user, cart.visitor_uuid)


def product_dict(product: Product, quantity: int = 1) -> dict[str, Any]:
    """A product as the builders of ``django_synerise.events`` take it."""
    return {
        "sku": product.sku,
        "name": product.name,
        "category": product.category,
        "quantity": quantity,
        "finalUnitPrice": product.price,
        "url": product.get_absolute_url(),
    }


def line_dict(line: CartLine) -> dict[str, Any]:
    """A cart line as a product dict: the price it had when it was added."""
    return {**product_dict(line.product, line.quantity), "finalUnitPrice": line.unit_price}


def cart_status(cart: Cart) -> events.CustomEvent | None:
    """The whole cart as ``cart.status``; a checked-out cart is an emptied one.

    Sent after every change, so that an abandoned-cart journey always reads the
    cart as it is (and stops once it is empty). ``None`` when nobody is known.
    """
    client = cart_client(cart)
    if not client:
        return None
    lines = [] if cart.checked_out_at else cart.lines.select_related("product")
    return events.cart_status(
        client=client,
        products=[line_dict(line) for line in lines],
        currency=settings.SHOP_CURRENCY,
        source=cart.source,
    )


def order_client(order: Order) -> dict[str, Any]:
    return _client(order.user, order.visitor_uuid, order.email)


def order_transaction(order: Order) -> dict[str, Any]:
    """Keyword arguments of ``django_synerise.events.Transaction`` for a placed order."""
    return {
        "order_id": str(order.pk),
        "currency": order.currency,
        "revenue": order.total,
        "products": [
            {
                "sku": line.product.sku,
                "name": line.product.name,
                "quantity": line.quantity,
                "finalUnitPrice": line.unit_price,
            }
            for line in order.cart.lines.select_related("product")
        ],
        "payment_info": {"method": "CASH_ON_DELIVERY"},
        "source": order.cart.source,
        # Synerise overwrites a transaction when both match: an updated order
        # (a corrected e-mail address) replaces the one sent at checkout.
        "salt": order.pk,
        "recorded_at": order.placed_at,
    }


def product_item(product: Product) -> dict[str, Any]:
    """A product as an item of the shop's Synerise catalog (AI recommendations use it)."""
    return {
        "title": product.name,
        "category": product.category,
        "price": product.price,
        "currency": settings.SHOP_CURRENCY,
        "link": product.get_absolute_url(),
    }


def order_cancellation(order: Order, source: str) -> events.DedicatedEvent:
    """``transaction.cancel`` for a cancelled order, with what it contained."""
    return events.cancelled_transaction(
        client=order_client(order),
        order_id=str(order.pk),
        products=[line_dict(line) for line in order.cart.lines.select_related("product")],
        revenue=order.total,
        currency=order.currency,
        source=source,
    )


def track_shop_models() -> None:
    """Connect the model hooks; called from ``ShopConfig.ready()``."""
    track_catalog(Product, catalog=settings.SHOP_CATALOG, key="sku", value=product_item)
    track_model(
        CartLine,
        event_type="added-to-cart",
        client=cart_line_client,
        params=cart_line_params,
    )
    track_model(
        Order,
        event_type="transaction",
        on=("created", "updated"),
        client=order_client,
        transaction=order_transaction,
        # A cancelled order is a cancellation (order_cancellation, sent by the view).
        when=lambda order, created: order.cancelled_at is None,
    )


def before_write(record: Event, request: Any) -> Event | None:
    """``SYNERISE["BEFORE_WRITE"]``: staff browsing the shop are not customers; e-mails in
    params are masked (the profile's own ``client.email`` identifies it already)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return None
    params = getattr(record, "params", None)
    if params and "email" in params:
        record = copy.copy(record)
        record.params = {**params, "email": "[masked]"}  # type: ignore[attr-defined]
    return record
