"""The shop's pages. Synerise tracking here is explicit only where a view knows
something no hook can see: a sign-up, a search, a newsletter subscription.
Page visits, cart adds, orders, logins and logouts are tracked without a line
of code in these views (middleware and model hooks, see ``shop/synerise.py``).
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from django_synerise import atrack, events, track, track_event
from django_synerise.hooks import track_registration
from django_synerise.identity import get_client, get_cookie_uuid
from django_synerise.middleware import set_page_title

from . import recommendations
from .cart import SESSION_KEY, get_cart, get_or_create_cart
from .forms import AddToCartForm, CheckoutForm, NewsletterForm, SignUpForm
from .models import NewsletterSubscription, Order, Product

ORDERS_SESSION_KEY = "order_ids"


def index(request: HttpRequest) -> HttpResponse:
    set_page_title(request, "Home")
    return render(request, "shop/index.html", {"products": Product.objects.all()})


def product_detail(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku)
    set_page_title(request, product.name)
    return render(
        request,
        "shop/product.html",
        {
            "product": product,
            "form": AddToCartForm(),
            "recommendation": recommendations.similar_products(product),
        },
    )


def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    results = recommendations.search(query) if query else None
    set_page_title(request, f"Search: {query}" if query else "Search")
    if results is not None:
        client = get_client(request)
        if client:
            track_event(
                events.DedicatedEvent(
                    "searched",
                    client=client,
                    params={"query": query, "results": len(results.products)},
                )
            )
    return render(request, "shop/search.html", {"query": query, "results": results})


@require_POST
def add_to_cart(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku)
    form = AddToCartForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a quantity between 1 and 99.")
        return redirect(product)
    cart = get_or_create_cart(request)
    # The added-to-cart event is written by the model hook, in this same INSERT's transaction.
    cart.lines.create(
        product=product, quantity=form.cleaned_data["quantity"], unit_price=product.price
    )
    messages.success(request, f"{product.name} is in your cart.")
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
        request.session.pop(SESSION_KEY, None)
        request.session[ORDERS_SESSION_KEY] = [
            *request.session.get(ORDERS_SESSION_KEY, []),
            order.pk,
        ]
        messages.success(request, "Thank you for your order!")
        return redirect(order)
    lines = cart.lines.select_related("product")
    return render(request, "shop/checkout.html", {"form": form, "cart": cart, "lines": lines})


def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("cart"), pk=pk)
    owns = order.pk in request.session.get(ORDERS_SESSION_KEY, []) or (
        request.user.is_authenticated and order.user_id == request.user.pk
    )
    if not owns:
        return HttpResponseForbidden("This is not your order.")
    set_page_title(request, f"Order #{order.pk}")
    lines = order.cart.lines.select_related("product")
    return render(request, "shop/order.html", {"order": order, "lines": lines})


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
                params={"source": "footer"},
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
