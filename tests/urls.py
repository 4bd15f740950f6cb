from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from django_synerise.middleware import PageVisitMiddleware
from tests import views as beacon_views
from tests.testapp import producer_views, tracking_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("tests.testapp.producer_urls")),
    path("synerise/", include("django_synerise.urls")),
    path("tracking/async/", tracking_views.track_async),
    path("beacon-test/", beacon_views.recommendations, name="beacon-recommendations"),
    path("beacon-test/csp/", beacon_views.strict_csp, name="beacon-strict-csp"),
    # The same page behind the page-visit middleware (the live server's MIDDLEWARE is fixed
    # when it starts, so the browser test that needs it gets it here).
    path("beacon-test/csp/visited/", PageVisitMiddleware(beacon_views.strict_csp)),
    path("beacon-test/item/<str:item_id>/", beacon_views.landing, name="beacon-landing"),
    # A login behind the middleware, which sets the _snrs_reset_uuid cookie it leaves.
    path("browser/sign-in/", csrf_exempt(PageVisitMiddleware(producer_views.sign_in))),
]
