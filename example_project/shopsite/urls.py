"""URLs of the example shop."""

from django.contrib import admin
from django.urls import include, path
from shop import views

urlpatterns = [
    path("", include("shop.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    # The endpoint beacon.js posts recommendation views and clicks to.
    path("synerise/", include("django_synerise.urls")),
    # Prometheus metrics (django-synerise[prometheus]): synerise_* and the process's own.
    path("metrics", views.metrics),
]
