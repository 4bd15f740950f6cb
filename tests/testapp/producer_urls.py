"""URLs of tests/testapp/producer_views.py, mounted at the site root by tests/urls.py."""

from __future__ import annotations

from django.contrib.admin import AdminSite
from django.urls import path

from . import producer_views as views

# A second admin site under another name and prefix: excluded by its namespace.
backoffice = AdminSite(name="backoffice")

urlpatterns = [
    path("producers/pages/plain/", views.page, name="producer-page"),
    path("producers/pages/user/", views.page_with_user),
    path("producers/pages/titled/", views.titled),
    path("producers/pages/async/", views.async_page),
    path("producers/pages/json/", views.json_view),
    path("producers/pages/form/", views.form),
    path("producers/pages/streaming/", views.streaming),
    path("producers/pages/text/", views.plain_text),
    path("producers/pages/private/account/", views.page),
    # Paths that look like pages but sit where the middleware must never look.
    path("static/producers-fake-page/", views.page),
    path("media/producers-fake-page/", views.page),
    path("producers/auth/sign-in/", views.sign_in),
    path("producers/auth/sign-out/", views.sign_out),
    path("producers/auth/sign-up/", views.sign_up),
    path("producers/backoffice/", backoffice.urls),
]
