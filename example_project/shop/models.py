"""Products, carts and orders.

An order is made from a cart: the cart's lines, with the unit price each product
had when it was added, are the order's lines. So when the ``Order`` row is
saved, everything Synerise's transaction needs already exists, and the model
hook in ``shop/synerise.py`` can send it from ``post_save``.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.urls import reverse


class Product(models.Model):
    sku = models.CharField("SKU", max_length=32, unique=True)
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("shop:product", args=[self.sku])


class Cart(models.Model):
    """A visitor's cart, found through the session; checked out once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # The visitor's Synerise profile UUID (_snrs_uuid cookie) when the cart was made.
    visitor_uuid = models.CharField(max_length=64, blank=True)
    # Synerise's event source of the browser the cart was made in (WEB_DESKTOP, WEB_MOBILE).
    source = models.CharField(max_length=16, default="WEB_DESKTOP")
    created_at = models.DateTimeField(auto_now_add=True)
    checked_out_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Cart #{self.pk}"

    @property
    def total(self) -> Decimal:
        return sum((line.subtotal for line in self.lines.all()), Decimal("0"))


class CartLine(models.Model):
    """One "add to cart": a product, a quantity and the price it had then."""

    cart = models.ForeignKey(Cart, related_name="lines", on_delete=models.CASCADE)
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product}"

    @property
    def subtotal(self) -> Decimal:
        return self.unit_price * self.quantity


class Order(models.Model):
    """A placed order: the checked-out cart plus who bought it."""

    cart = models.OneToOneField(Cart, on_delete=models.PROTECT, related_name="order")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    email = models.EmailField()
    visitor_uuid = models.CharField(max_length=64, blank=True)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    placed_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-placed_at"]

    def __str__(self) -> str:
        return f"Order #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("shop:order", args=[self.pk])


class NewsletterSubscription(models.Model):
    email = models.EmailField(unique=True)
    subscribed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email
