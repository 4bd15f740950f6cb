"""The shop's pages. Synerise tracking here is explicit only where a view knows
something no hook can see: a sign-up, a search, a newsletter subscription, a
product viewed or made a favourite, a line removed, the cart's new status, a
cancellation (each with the browser's event source, from its user agent).
Page visits, cart adds, orders, logins and logouts are tracked without a line
of code in these views (middleware and model hooks, see ``shop/synerise.py``).
"""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from django_synerise import atrack, events, track, track_event
from django_synerise.events import source_from_user_agent
from django_synerise.hooks import track_registration
from django_synerise.identity import get_client, get_cookie_uuid, may_track
from django_synerise.middleware import set_page_title

from . import recommendations, synerise
from .cart import SESSION_KEY, get_cart, get_or_create_cart
from .forms import AddToCartForm, CheckoutForm, NewsletterForm, OrderEmailForm, SignUpForm
from .models import Cart, NewsletterSubscription, Order, Product

ORDERS_SESSION_KEY = "order_ids"
FAVOURITES_SESSION_KEY = "favourites"


def _shopper(request: HttpRequest) -> dict[str, Any] | None:
    """The visitor's Synerise identifiers, or ``None`` when unknown or not to be tracked."""
    return get_client(request) if may_track(request) else None


def _source(request: HttpRequest) -> str:
    return source_from_user_agent(request.headers.get("User-Agent"))


def _send_cart_status(request: HttpRequest, cart: Cart) -> None:
    """The cart's new status, in the caller's transaction (see ``synerise.cart_status``)."""
    if not may_track(request):
        return
    event = synerise.cart_status(cart)
    if event is not None:
        track_event(event, request=request)


def index(request: HttpRequest) -> HttpResponse:
    set_page_title(request, "Home")
    return render(request, "shop/index.html", {"products": Product.objects.all()})


def product_detail(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku)
    set_page_title(request, product.name)
    client = _shopper(request)
    if client:
        track_event(
            events.product_view(
                client=client,
                product=synerise.product_dict(product),
                currency=settings.SHOP_CURRENCY,
                source=_source(request),
            ),
            request=request,
        )
    return render(
        request,
        "shop/product.html",
        {
            "product": product,
            "form": AddToCartForm(),
            "recommendation": recommendations.similar_products(product),
            "favourite": sku in request.session.get(FAVOURITES_SESSION_KEY, []),
        },
    )


@require_POST
def add_to_favourites(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku)
    favourites = request.session.get(FAVOURITES_SESSION_KEY, [])
    client = _shopper(request)
    if sku not in favourites:
        request.session[FAVOURITES_SESSION_KEY] = [*favourites, sku]
        if client:
            track_event(
                events.add_to_favorites(
                    client=client,
                    product=synerise.product_dict(product),
                    currency=settings.SHOP_CURRENCY,
                    source=_source(request),
                ),
                request=request,
            )
    messages.success(request, f"{product.name} is in your favourites.")
    return redirect(product)


def search_suggestions(request: HttpRequest) -> HttpResponse:
    """The search box's suggestions, a fragment its script fetches as the visitor types.

    Fetched with ``fetch()``: the page-visit middleware does not count it as a
    page. A click on a suggestion is an ``autocomplete`` search click.
    """
    query = request.GET.get("q", "").strip()[:100]
    results = recommendations.search(query, limit=5) if len(query) >= 2 else None
    return render(request, "shop/suggestions.html", {"results": results})


def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    results = recommendations.search(query) if query else None
    set_page_title(request, f"Search: {query}" if query else "Search")
    if results is not None:
        client = _shopper(request)
        if client:
            track_event(
                events.DedicatedEvent(
                    "searched",
                    client=client,
                    params={"query": query, "results": len(results.products)},
                ),
                request=request,
            )
    return render(request, "shop/search.html", {"query": query, "results": results})


@require_POST
def add_to_cart(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku)
    form = AddToCartForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a quantity between 1 and 99.")
        return redirect(product)
    with transaction.atomic():
        cart = get_or_create_cart(request)
        # The added-to-cart event is written by the model hook, in this same INSERT's
        # transaction; the cart's new status with it.
        cart.lines.create(
            product=product, quantity=form.cleaned_data["quantity"], unit_price=product.price
        )
        _send_cart_status(request, cart)
    messages.success(request, f"{product.name} is in your cart.")
    return redirect("shop:cart")


@require_POST
def remove_from_cart(request: HttpRequest, line_id: int) -> HttpResponse:
    cart = get_cart(request)
    if cart is None:
        return redirect("shop:cart")
    line = get_object_or_404(cart.lines.select_related("product"), pk=line_id)
    with transaction.atomic():
        client = synerise.cart_client(cart) if may_track(request) else None
        if client:
            track_event(
                events.remove_from_cart(
                    client=client,
                    product=synerise.line_dict(line),
                    currency=settings.SHOP_CURRENCY,
                    source=_source(request),
                ),
                request=request,
            )
        line.delete()
        _send_cart_status(request, cart)
    messages.success(request, f"{line.product.name} is no longer in your cart.")
    return redirect("shop:cart")


def cart_detail(request: HttpRequest) -> HttpResponse:
    set_page_title(request, "Cart")
    cart = get_cart(request)
    lines = cart.lines.select_related("product") if cart else []
    return render(request, "shop/cart.html", {"cart": cart, "lines": lines})


def checkout(request: HttpRequest) -> HttpResponse:
    cart = get_cart(request)
    if cart is None or not cart.lines.exists():
        messages.info(request, "Your cart is empty.")
        return redirect("shop:index")
    set_page_title(request, "Checkout")
    initial = {"email": request.user.email} if request.user.is_authenticated else {}
    form = CheckoutForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            # The transaction event is written by the Order model hook, inside this block:
            # if anything here fails, neither the order nor its event exists.
            cart.checked_out_at = timezone.now()
            cart.save(update_fields=["checked_out_at"])
            order = Order.objects.create(
                cart=cart,
                user=request.user if request.user.is_authenticated else None,
                email=form.cleaned_data["email"],
                visitor_uuid=cart.visitor_uuid or get_cookie_uuid(request) or "",
                total=cart.total,
                currency=settings.SHOP_CURRENCY,
            )
            _send_cart_status(request, cart)  # emptied: the abandoned-cart journey ends
        request.session.pop(SESSION_KEY, None)
        request.session[ORDERS_SESSION_KEY] = [
            *request.session.get(ORDERS_SESSION_KEY, []),
            order.pk,
        ]
        messages.success(request, "Thank you for your order!")
        return redirect(order)
    lines = cart.lines.select_related("product")
    return render(request, "shop/checkout.html", {"form": form, "cart": cart, "lines": lines})


def _owns(request: HttpRequest, order: Order) -> bool:
    return order.pk in request.session.get(ORDERS_SESSION_KEY, []) or (
        request.user.is_authenticated and order.user_id == request.user.pk
    )


def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("cart"), pk=pk)
    if not _owns(request, order):
        return HttpResponseForbidden("This is not your order.")
    set_page_title(request, f"Order #{order.pk}")
    lines = order.cart.lines.select_related("product")
    form = OrderEmailForm(initial={"email": order.email})
    return render(request, "shop/order.html", {"order": order, "lines": lines, "form": form})


@require_POST
def change_order_email(request: HttpRequest, pk: int) -> HttpResponse:
    """A corrected address: the Order hook re-sends the transaction, which overwrites."""
    order = get_object_or_404(Order.objects.select_related("cart"), pk=pk)
    if not _owns(request, order):
        return HttpResponseForbidden("This is not your order.")
    form = OrderEmailForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a valid e-mail address.")
    elif order.cancelled_at is None:
        order.email = form.cleaned_data["email"]
        order.save(update_fields=["email"])
        messages.success(request, f"The confirmation goes to {order.email} now.")
    return redirect(order)


@require_POST
def cancel_order(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("cart"), pk=pk)
    if not _owns(request, order):
        return HttpResponseForbidden("This is not your order.")
    if order.cancelled_at is None:
        with transaction.atomic():
            order.cancelled_at = timezone.now()
            # The Order hook skips cancelled orders: the cancellation is its own event.
            order.save(update_fields=["cancelled_at"])
            # The order names its customer already: consent was asked when it was placed.
            track_event(synerise.order_cancellation(order, _source(request)), request=request)
        messages.success(request, f"Order #{order.pk} is cancelled.")
    return redirect(order)


def signup(request: HttpRequest) -> HttpResponse:
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        # Synerise's client.register, with the visitor's cookie UUID so the anonymous
        # history joins the new profile. The logged-in event comes from login() itself.
        track_registration(user, request)
        login(request, user)
        messages.success(request, f"Welcome, {user.username}!")
        return redirect("shop:index")
    set_page_title(request, "Sign up")
    return render(request, "registration/signup.html", {"form": form})


@require_POST
def newsletter(request: HttpRequest) -> HttpResponse:
    form = NewsletterForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a valid e-mail address to subscribe.")
        return redirect("shop:index")
    email = form.cleaned_data["email"]
    # An address typed into a form proves nothing about who typed it: only a
    # signed-in customer's own address is linked to their profile. Anyone else's
    # subscription goes to the address's profile alone, never to this visitor's
    # uuid (which would let a visitor attach their browsing to a stranger's e-mail).
    user = request.user
    own = user.is_authenticated and (user.email or "").lower() == email.lower()
    client = (get_client(request) if own else None) or {"email": email}
    with transaction.atomic():
        _, created = NewsletterSubscription.objects.get_or_create(email=email)
        if created:
            # A custom event: an action of your choosing and any params. It is written
            # in this transaction, so it exists if and only if the subscription does.
            # request= adds the page's context (url, referrer, UTM) and hands the
            # request to BEFORE_WRITE.
            track(
                "newsletter.subscribed",
                client=client,
                params={"form": "footer"},  # "source" is the event source (request=)
                request=request,
            )
    messages.success(request, f"{email} is subscribed to our newsletter.")
    return redirect("shop:index")


async def share_product(request: HttpRequest, sku: str) -> HttpResponse:
    """An async view: the share button's fetch() lands here; atrack() writes without blocking."""
    product = await Product.objects.filter(sku=sku).afirst()
    if product is None:
        return HttpResponse(status=404)
    await atrack("product.shared", request=request, params={"sku": sku})
    return HttpResponse(status=204)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, with the outbox gauges read now (the flusher runs elsewhere)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from django_synerise.metrics import update_outbox_gauges

    update_outbox_gauges()
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
