"""Views for the producer tests: page visits, identity, auth events."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.contrib.auth import login, logout
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from django_synerise.hooks import track_registration
from django_synerise.middleware import set_page_title

#: Called by ``page`` while the view runs (tests use it to move the clock).
DURING_VIEW: list[Callable[[], Any]] = []

HTML = "<!doctype html><title>Test</title><p>Hello</p>"


def page(request: HttpRequest) -> HttpResponse:
    for callback in DURING_VIEW:
        callback()
    return HttpResponse(HTML)


def page_with_user(request: HttpRequest) -> HttpResponse:
    # Like a site header that shows "Log in" / the user's name.
    greeting = request.user.get_username() if request.user.is_authenticated else "guest"
    return HttpResponse(f"{HTML}<p>{greeting}</p>")


def titled(request: HttpRequest) -> HttpResponse:
    set_page_title(request, "Red shoes | Shop")
    return HttpResponse(HTML)


async def async_page(request: HttpRequest) -> HttpResponse:
    set_page_title(request, "Async page")
    return HttpResponse(HTML)


def json_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@csrf_exempt
def form(request: HttpRequest) -> HttpResponse:
    return HttpResponse(HTML)


def streaming(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[str]:
        yield HTML

    return StreamingHttpResponse(chunks(), content_type="text/html; charset=utf-8")


def plain_text(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello", content_type="text/plain")


@csrf_exempt
def sign_in(request: HttpRequest) -> HttpResponse:
    user = User.objects.get(username=request.POST["username"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse(HTML)


@csrf_exempt
def sign_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse(HTML)


@csrf_exempt
def sign_up(request: HttpRequest) -> HttpResponse:
    user = User.objects.create_user(request.POST["username"], email=request.POST.get("email", ""))
    track_registration(user, request)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse(HTML)
