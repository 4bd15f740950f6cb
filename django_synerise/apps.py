"""App configuration: registers the system checks and connects the signal handlers."""

from __future__ import annotations

from importlib.util import find_spec

from django.apps import AppConfig
from django.core import checks as django_checks

from .exceptions import SyneriseConfigurationError


class SyneriseConfig(AppConfig):
    name = "django_synerise"
    label = "django_synerise"
    verbose_name = "Synerise"
    default_auto_field = "django.db.models.BigAutoField"

    #: Configuration errors met while connecting the hooks in :meth:`ready`;
    #: the ``synerise.E000`` check reports them.
    ready_errors: list[SyneriseConfigurationError]

    def ready(self) -> None:
        from . import checks, hooks

        django_checks.register(checks.check_settings, checks.TAG)
        django_checks.register(checks.check_installation, checks.TAG)
        django_checks.register(checks.check_deploy, checks.TAG, deploy=True)
        django_checks.register(checks.check_forwarded_for, checks.TAG)
        django_checks.register(checks.check_rate_limit_cache, checks.TAG, deploy=True)
        self.ready_errors = []
        hooks.connect_receivers()
        # Only with the [prometheus] extra: without it, nothing more is imported.
        if find_spec("prometheus_client") is not None:
            from . import metrics

            metrics.install()
