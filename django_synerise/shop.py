"""The shop vocabulary: product views, cart and favourites events, cart status, cancellations.

Builders, each keyword-only, each taking ``client=`` and products as the same
dicts :class:`~django_synerise.events.Transaction` takes::

    product = {"sku": "MUG-1", "name": "Mug", "quantity": 2, "finalUnitPrice": 9.5,
               "regularPrice": 12, "category": "Kitchen", "url": "https://shop/mug"}
    add_to_cart(client={"uuid": uuid}, product=product, currency="PLN",
                source=source_from_user_agent(request.headers.get("User-Agent")))

Each maps the dict to its event's own names (php-sdk
``lib/V4/Models/ClientCartEventRequest_params.php``,
``ProductViewPostRequestBody_params.php``) and validates it as Synerise's
SDK validators do (``CartEventValidator``, ``ProductViewValidator``,
``CartStatusValidator``, ``ItemSearchClickValidator``), raising
:class:`~django_synerise.exceptions.InvalidEventError` naming the field:

* a product needs ``sku``, ``name`` and ``finalUnitPrice``; ``quantity``
  defaults to 1; money is a number (with ``currency=``) or an
  ``{"amount", "currency"}`` dict, >= 0. A price of 0 (a free item) is
  allowed: Synerise's docs allow any amount >= 0, and the SDK's newer
  ``UnitPriceValidator`` checks only that an amount is present (its v0.5
  one refused 0 by PHP's ``empty()``, which treats 0 as missing).
* every event carries ``params.source``, one of
  :data:`~django_synerise.events.EVENT_SOURCES`, default ``"WEB_DESKTOP"``;
  :func:`source_from_user_agent` picks ``WEB_MOBILE`` / ``WEB_DESKTOP`` from a
  request's user agent.

Extra product keys (``image``, ``brand`` ...) pass through into ``params``.
``params=`` adds more; it cannot override what the builder sets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from .events import (
    _PRODUCT_MONEY,
    CustomEvent,
    DedicatedEvent,
    _check_params,
    _check_position,
    _check_search_type,
    _clean_json,
    _money,
    _one_currency,
    _product,
    _product_amounts,
    _required_text,
    _short_id,
    _total,
    check_source,
    source_from_user_agent,
)
from .exceptions import InvalidEventError

__all__ = [
    "add_to_cart",
    "add_to_favorites",
    "cancelled_transaction",
    "cart_status",
    "item_search_click",
    "product_view",
    "remove_from_cart",
    "source_from_user_agent",
]

# A product dict's money names, and the names cart events use for them.
_CART_MONEY = ("finalUnitPrice", "regularPrice", "regularUnitPrice", "discountedUnitPrice")
_CART_RENAMES = {"regularPrice": "regularUnitPrice"}
# Transaction-only money (a discount *amount*, a net price): no cart event field means it.
_NOT_CART = ("discountPrice", "netUnitPrice")


def _merge(params: Mapping[str, Any] | None, built: dict[str, Any]) -> dict[str, Any]:
    extra = _check_params(params)
    clash = sorted(set(extra) & set(built))
    if clash:
        raise InvalidEventError(
            f"params.{clash[0]}", "is set by the builder (from product= or its arguments)"
        )
    return {**built, **extra}


def _cart_product(product: Any, currency: str | None) -> dict[str, Any]:
    """A product dict in the cart events' names (``regularUnitPrice``, ``discountedUnitPrice``).

    ``regularPrice`` becomes ``regularUnitPrice``; a ``finalUnitPrice`` below
    the regular price is also the ``discountedUnitPrice``, unless given.
    """
    if isinstance(product, Mapping):
        for name in _NOT_CART:
            if name in product:
                raise InvalidEventError(
                    f"product.{name}",
                    "is a transaction field; cart events take finalUnitPrice, "
                    "regularPrice (or regularUnitPrice) and discountedUnitPrice",
                )
        if "regularPrice" in product and "regularUnitPrice" in product:
            raise InvalidEventError(
                "product.regularUnitPrice", "give regularPrice or this, not both"
            )
    out = _product("product", product, currency, money=_CART_MONEY)
    for old, new in _CART_RENAMES.items():
        if old in out:
            out[new] = out.pop(old)
    regular = out.get("regularUnitPrice")
    final = out["finalUnitPrice"]
    discounted = regular is not None and final["amount"] < regular["amount"]
    if discounted and "discountedUnitPrice" not in out:
        out["discountedUnitPrice"] = dict(final)
    _one_currency([(f"product.{key}", out.get(key)) for key in _CART_MONEY])
    return out


def _cart_event(
    event_type: str,
    *,
    client: Mapping[str, Any],
    product: Mapping[str, Any],
    currency: str | None,
    source: str,
    params: Mapping[str, Any] | None,
    label: str | None,
    time: dt.datetime | None,
    salt: str | None,
) -> DedicatedEvent:
    built = _cart_product(product, currency)
    built["source"] = check_source(source, "params.source")
    return DedicatedEvent(
        event_type,
        client=client,
        params=_merge(params, built),
        label=label,
        time=time,
        salt=salt,
    )


def add_to_cart(
    *,
    client: Mapping[str, Any],
    product: Mapping[str, Any],
    currency: str | None = None,
    source: str = "WEB_DESKTOP",
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    time: dt.datetime | None = None,
    salt: str | None = None,
) -> DedicatedEvent:
    """``product.addToCart`` (``/v4/events/added-to-cart``) for ``product`` (its ``quantity`` added).

    Params: ``sku``, ``name``, ``quantity``, ``finalUnitPrice``,
    ``regularUnitPrice``, ``discountedUnitPrice``, ``source`` and the
    product's other keys (``category``, ``url`` ...).
    """
    return _cart_event(
        "added-to-cart",
        client=client,
        product=product,
        currency=currency,
        source=source,
        params=params,
        label=label,
        time=time,
        salt=salt,
    )


def remove_from_cart(
    *,
    client: Mapping[str, Any],
    product: Mapping[str, Any],
    currency: str | None = None,
    source: str = "WEB_DESKTOP",
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    time: dt.datetime | None = None,
    salt: str | None = None,
) -> DedicatedEvent:
    """``product.removeFromCart`` (``/v4/events/removed-from-cart``); params as :func:`add_to_cart`."""
    return _cart_event(
        "removed-from-cart",
        client=client,
        product=product,
        currency=currency,
        source=source,
        params=params,
        label=label,
        time=time,
        salt=salt,
    )


def _catalog_params(product: Any, currency: str | None, *, need_price: bool) -> dict[str, Any]:
    """``productId``, ``name``, ``category``, ``url`` ... of a viewed or favourited product."""
    if not isinstance(product, Mapping):
        raise InvalidEventError("product", "must be a dict")
    rest = {k: v for k, v in product.items() if k not in ("sku", "name", "quantity")}
    out: dict[str, Any] = {
        "productId": _required_text("product.sku", product.get("sku")),
        "name": _required_text("product.name", product.get("name")),
    }
    prices = {}
    for key in ("finalUnitPrice", "regularPrice", "regularUnitPrice", "discountedUnitPrice"):
        amount = _money(f"product.{key}", rest.pop(key, None), currency)
        if amount is not None:
            prices[_CART_RENAMES.get(key, key)] = amount
    for name in _NOT_CART:
        if name in rest:
            raise InvalidEventError(f"product.{name}", "is a transaction field")
    if need_price and "finalUnitPrice" not in prices:
        raise InvalidEventError("product.finalUnitPrice", "is required")
    _one_currency([(f"product.{key}", value) for key, value in prices.items()])
    out.update(_clean_json("product", rest))
    out.update(prices)
    return out


def product_view(
    *,
    client: Mapping[str, Any],
    product: Mapping[str, Any],
    currency: str | None = None,
    source: str = "WEB_DESKTOP",
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    time: dt.datetime | None = None,
    salt: str | None = None,
) -> DedicatedEvent:
    """``product.view`` (``/v4/events/product-view``): a product page was seen.

    Params: ``productId`` (the product's ``sku``), ``name``, ``source``, the
    product's other keys (``category``, ``url`` ...) and its prices, if any,
    in the cart events' names. No ``quantity``: nothing was bought.
    """
    built = _catalog_params(product, currency, need_price=False)
    built["source"] = check_source(source, "params.source")
    return DedicatedEvent(
        "product-view",
        client=client,
        params=_merge(params, built),
        label=label,
        time=time,
        salt=salt,
    )


def add_to_favorites(
    *,
    client: Mapping[str, Any],
    product: Mapping[str, Any],
    currency: str | None = None,
    source: str = "WEB_DESKTOP",
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    time: dt.datetime | None = None,
    salt: str | None = None,
) -> DedicatedEvent:
    """``product.addToFavorite`` (``/v4/events/added-to-favorites``); params as :func:`product_view`."""
    built = _catalog_params(product, currency, need_price=False)
    built["source"] = check_source(source, "params.source")
    return DedicatedEvent(
        "added-to-favorites",
        client=client,
        params=_merge(params, built),
        label=label,
        time=time,
        salt=salt,
    )


def cart_status(
    *,
    client: Mapping[str, Any],
    products: Iterable[Mapping[str, Any]],
    currency: str | None = None,
    total_amount: Any = None,
    source: str = "WEB_DESKTOP",
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    time: dt.datetime | None = None,
    salt: str | None = None,
) -> CustomEvent:
    """The custom ``cart.status`` event: the whole cart after each change (abandoned-cart journeys).

    Params: ``products`` (each as in a transaction), ``total_amount`` (the
    products' total unless given) and ``total_quantity`` (their summed
    quantity), both numbers as floats, and ``source``. An empty list is an
    emptied cart (totals 0). The totals are spelled as Synerise's PHP SDK
    (``CartStatusBuilder``, checked by its ``CartStatusValidator``) and its
    Sylius plugin spell them; the Magento plugin's ``totalAmount`` is the
    older form.
    """
    if isinstance(products, (str, bytes, Mapping)):
        raise InvalidEventError("products", "must be a list of product dicts")
    checked = [_product(f"products[{i}]", p, currency) for i, p in enumerate(products)]
    _one_currency(_product_amounts(checked, _PRODUCT_MONEY))
    if total_amount is None:
        amount = float(_total(checked))
    elif isinstance(total_amount, bool) or not isinstance(total_amount, (int, float, Decimal)):
        raise InvalidEventError("total_amount", f"must be a number, not {total_amount!r}")
    else:
        amount = float(_clean_json("total_amount", total_amount))
        if amount < 0:
            raise InvalidEventError("total_amount", f"must be >= 0, not {total_amount!r}")
    built: dict[str, Any] = {
        "products": checked,
        "total_amount": amount,
        "total_quantity": float(sum(p["quantity"] for p in checked)),
        "source": check_source(source, "params.source"),
    }
    return CustomEvent(
        "cart.status",
        client=client,
        params=_merge(params, built),
        label=label,
        time=time,
        salt=salt,
    )


def cancelled_transaction(
    *,
    client: Mapping[str, Any],
    order_id: str | int,
    products: Iterable[Mapping[str, Any]] = (),
    revenue: Any = None,
    value: Any = None,
    currency: str | None = None,
    source: str = "WEB_DESKTOP",
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    time: dt.datetime | None = None,
    salt: str | None = None,
) -> DedicatedEvent:
    """``transaction.cancel`` (``/v4/events/cancelled-transaction``) for an order that was cancelled.

    Params: ``orderId`` (required), ``source``, and optionally the cancelled
    ``products`` (each as in a transaction), ``revenue`` and ``value``.
    """
    if isinstance(products, (str, bytes, Mapping)):
        raise InvalidEventError("products", "must be a list of product dicts")
    checked = [_product(f"products[{i}]", p, currency) for i, p in enumerate(products)]
    built: dict[str, Any] = {
        "orderId": _required_text("orderId", order_id),
        "source": check_source(source, "params.source"),
    }
    if checked:
        built["products"] = checked
    for key, amount in (("revenue", revenue), ("value", value)):
        money = _money(key, amount, currency)
        if money is not None:
            built[key] = money
    _one_currency(
        [
            ("revenue", built.get("revenue")),
            ("value", built.get("value")),
            *_product_amounts(checked),
        ]
    )
    return DedicatedEvent(
        "cancelled-transaction",
        client=client,
        params=_merge(params, built),
        label=label,
        time=time,
        salt=salt,
    )


def item_search_click(
    *,
    client: Mapping[str, Any],
    correlation_id: str,
    item: str | int,
    position: int,
    search_type: str = "full-text-search",
    source: str = "WEB_DESKTOP",
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    time: dt.datetime | None = None,
    salt: str | None = None,
) -> DedicatedEvent:
    """``item.search.click`` as a v4 event (``/v4/events/item-search-click``), with a workspace key.

    Params: ``correlationId`` (the search's), ``item`` (the clicked item's
    id), ``position`` (1-based), ``searchType`` (``"full-text-search"`` or
    ``"autocomplete"``), all required by Synerise's ``ItemSearchClickValidator``,
    and ``source``. (:class:`~django_synerise.events.AIEvent` sends the same
    click through the AI events API with the tracker key.)
    """
    built: dict[str, Any] = {
        "correlationId": _short_id("correlationId", correlation_id),
        "item": _short_id("item", item),
        "position": _check_position(position),
        "searchType": _check_search_type(search_type),
        "source": check_source(source, "params.source"),
    }
    return DedicatedEvent(
        "item-search-click",
        client=client,
        params=_merge(params, built),
        label=label,
        time=time,
        salt=salt,
    )
