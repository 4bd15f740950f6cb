"""Async views and a BEFORE_WRITE hook for the tracking tests (also served by uvicorn)."""

from __future__ import annotations

import copy
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest, JsonResponse

import django_synerise
from django_synerise.events import CustomEvent, DedicatedEvent, Event

UUID = "e0097757-d1e2-44ac-ba3c-d97979a354c1"


def drop_staff_mask_email(record: Event, request: HttpRequest | None) -> Event | None:
    """Drops staff users' records, masks ``params["email"]``, tags what it saw."""
    user = getattr(request, "user", None)
    if user is not None and user.is_staff:
        return None
    params = getattr(record, "params", None)
    if not params:
        return record
    changed = copy.copy(record)
    changed.params = {  # type: ignore[attr-defined]
        **params,
        "hookSawRequest": request is not None,
        **({"email": "***"} if "email" in params else {}),
    }
    return changed


async def track_async(request: HttpRequest) -> JsonResponse:
    """Every async producer once, between async ORM calls, as an async view would."""
    users = await User.objects.acount()
    row = await django_synerise.atrack(
        "page.liked", request=request, params={"item": "sku-1", "email": "a@example.com"}
    )
    explicit = await django_synerise.atrack(
        "newsletter.shown", client={"uuid": UUID}, params={"users": users}
    )
    dedicated = await django_synerise.atrack_event(
        DedicatedEvent("logged-out", client={"uuid": UUID}), request=request
    )
    many = await django_synerise.atrack_many(
        [CustomEvent("item.seen", client={"uuid": UUID}, params={"n": n}) for n in range(3)],
        request=request,
    )
    ids: dict[str, Any] = {
        "row": row.pk if row else None,
        "explicit": explicit.pk if explicit else None,
        "dedicated": dedicated.pk if dedicated else None,
        "many": [r.pk for r in many],
    }
    return JsonResponse(ids)
