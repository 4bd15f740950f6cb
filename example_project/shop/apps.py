from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop"

    def ready(self) -> None:
        # Declares which model changes become Synerise events (see shop/synerise.py).
        from . import synerise

        synerise.track_shop_models()
