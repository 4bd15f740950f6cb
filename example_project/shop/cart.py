"""The visitor's cart, kept in the session."""

from django.http import HttpRequest

from django_synerise.events import source_from_user_agent
from django_synerise.identity import get_cookie_uuid

from .models import Cart

SESSION_KEY = "cart_id"


def get_cart(request: HttpRequest) -> Cart | None:
    """The visitor's open cart, or ``None``."""
    cart_id = request.session.get(SESSION_KEY)
    if cart_id is None:
        return None
    return Cart.objects.filter(pk=cart_id, checked_out_at__isnull=True).first()


def get_or_create_cart(request: HttpRequest) -> Cart:
    cart = get_cart(request)
    if cart is None:
        cart = Cart.objects.create(
            visitor_uuid=get_cookie_uuid(request) or "",
            source=source_from_user_agent(request.headers.get("User-Agent")),
        )
        request.session[SESSION_KEY] = cart.pk
    if request.user.is_authenticated and cart.user_id is None:
        cart.user = request.user
        cart.save(update_fields=["user"])
    return cart
