"""``manage.py seed_shop``: create (or refresh) the example shop's products."""

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand

from shop.models import Product

PRODUCTS = [
    ("MUG-001", "Stoneware mug", "Kitchen", "12.50", "A 350 ml mug, glazed by hand."),
    ("MUG-002", "Enamel camping mug", "Kitchen", "9.90", "Light, tough, and happy by a fire."),
    ("TEA-001", "Sencha green tea", "Tea", "8.00", "100 g of loose-leaf Japanese sencha."),
    ("TEA-002", "Assam breakfast tea", "Tea", "7.20", "Malty black tea, 100 g."),
    ("TEA-003", "Chamomile infusion", "Tea", "6.50", "Whole chamomile flowers, 50 g."),
    ("POT-001", "Cast-iron teapot", "Kitchen", "39.00", "0.8 l, with a steel infuser."),
    ("NBK-001", "Dotted notebook", "Stationery", "14.00", "A5, 160 pages of 100 g paper."),
    ("NBK-002", "Pocket notebook, 3-pack", "Stationery", "11.00", "A6, plain, stapled."),
    ("PEN-001", "Fountain pen", "Stationery", "29.00", "Steel nib, medium, converter included."),
    ("INK-001", "Blue-black ink", "Stationery", "9.50", "50 ml bottle, iron-gall free."),
    ("BAG-001", "Canvas tote bag", "Accessories", "15.00", "Heavy cotton, inner pocket."),
    ("UMB-001", "Compact umbrella", "Accessories", "24.00", "Wind-resistant, 8 ribs."),
]


class Command(BaseCommand):
    help = "Create or update the example shop's products (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        created = 0
        for sku, name, category, price, description in PRODUCTS:
            _, was_created = Product.objects.update_or_create(
                sku=sku,
                defaults={
                    "name": name,
                    "category": category,
                    "price": Decimal(price),
                    "description": description,
                },
            )
            created += was_created
        self.stdout.write(f"{len(PRODUCTS)} products ({created} new).")
