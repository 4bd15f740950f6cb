"""The first-party beacon endpoint (Django REST framework): serializer, throttle, view.

Wire it with ``path("synerise/", include("django_synerise.urls"))``;
:class:`~django_synerise.api.views.BeaconView` documents the contract.
"""
