from typing import Any

from django.conf import settings
from django.http import HttpRequest

from .cart import get_cart


def shop(request: HttpRequest) -> dict[str, Any]:
    cart = get_cart(request)
    return {
        "cart_size": sum(line.quantity for line in cart.lines.all()) if cart else 0,
        "currency": settings.SHOP_CURRENCY,
        # Load Synerise's JS tracker only with a real tracker key.
        "load_synerise_tracker": not settings.SYNERISE_STAND_IN,
    }
