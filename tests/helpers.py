"""Small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

from django.conf import settings
from django.test import override_settings


def synerise(**overrides: Any) -> override_settings:
    """``override_settings`` of the test ``SYNERISE`` dict with ``overrides`` on top."""
    return override_settings(SYNERISE={**settings.SYNERISE, **overrides})


def make_jwt(exp: float | None = None, **claims: Any) -> str:
    """An unsigned-looking JWT with ``exp`` and ``claims`` (the signature is never checked).

    Each thread gets its own ``jti`` unless one is given, so tokens handed out
    to racing threads differ and a test can tell whose token was used.
    """

    def segment(data: dict[str, Any]) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    payload = dict(claims)
    if exp is not None:
        payload["exp"] = exp
    payload.setdefault("jti", base64.b16encode(threading.get_ident().to_bytes(8, "big")).decode())
    return f"{segment({'alg': 'HS256', 'typ': 'JWT'})}.{segment(payload)}.c2lnbmF0dXJl"
