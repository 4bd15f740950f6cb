"""URLs of django-synerise: include them at a prefix of your choice.

::

    urlpatterns = [
        path("synerise/", include("django_synerise.urls")),
    ]

Routes (namespace ``django_synerise``): ``beacon`` (``POST``), the endpoint
``beacon.js`` posts to in first-party mode.
"""

from __future__ import annotations

from django.urls import path

from .api.views import BeaconView

app_name = "django_synerise"

urlpatterns = [
    path("beacon/", BeaconView.as_view(), name="beacon"),
]
