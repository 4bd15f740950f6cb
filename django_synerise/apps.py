"""App configuration: connects signal handlers and registers system checks."""

from __future__ import annotations

from django.apps import AppConfig


class SyneriseConfig(AppConfig):
    name = "django_synerise"
    label = "django_synerise"
    verbose_name = "Synerise"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, hooks  # noqa: F401  (registers checks and auth receivers)

        hooks.connect_configured_hooks()
