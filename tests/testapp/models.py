"""Models the test suite tracks."""

from django.db import models


class Order(models.Model):
    customer_email = models.EmailField()
    total = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    created = models.DateTimeField(auto_now_add=True)


# Producer hooks (tests/test_hooks.py). TrackedNote is declared with the class
# decorator here; the others are hooked per test with the function form.
from django_synerise import track_model  # noqa: E402


def _note_client(note: "TrackedNote") -> dict[str, str] | None:
    return {"email": note.email} if note.email else None


@track_model(
    action="note.posted",
    client=_note_client,
    params=lambda note: {"text": note.text},
)
class TrackedNote(models.Model):
    email = models.CharField(max_length=200, blank=True)
    text = models.CharField(max_length=200, blank=True)


class TrackedReview(models.Model):
    email = models.CharField(max_length=200, blank=True)
    stars = models.PositiveSmallIntegerField(default=5)
    published = models.BooleanField(default=False)


class TrackedPurchase(models.Model):
    email = models.CharField(max_length=200, blank=True)
    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField(default=1)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="PLN")
