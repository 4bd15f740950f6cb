"""A page visit's ``title``, read from the HTML response's ``<title>``.

:func:`title_from_response` looks at the first :data:`SCAN_BYTES` of a
complete (not streaming) ``text/html`` response only: the ``<title>`` lives
in the ``<head>``, and a bounded scan keeps the cost per page visit small and
flat whatever the page's size (``bench/`` measures it).
``middleware.set_page_title()`` still wins over what the page says.
"""

from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["MAX_TITLE_CHARS", "SCAN_BYTES", "title_from_response"]

#: How much of the body is searched for ``<title>``.
SCAN_BYTES = 16 * 1024
#: Longest title sent (the same cap as ``set_page_title``).
MAX_TITLE_CHARS = 512

_TITLE_RE = re.compile(rb"<title\b[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_SPACE_RE = re.compile(r"\s+")
_CHARSET_RE = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)


def title_from_response(response: Any) -> str | None:
    """The text of the page's ``<title>``, or ``None`` when there is none to read.

    ``None`` for a streaming or non-HTML response, a title beyond the first
    :data:`SCAN_BYTES` bytes, or an empty one. Character references are
    decoded and whitespace collapsed; the result is at most
    :data:`MAX_TITLE_CHARS` characters. Never raises for a response it cannot read.
    """
    if getattr(response, "streaming", True):
        return None
    content_type = str(response.get("Content-Type", "")) if hasattr(response, "get") else ""
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() != "text/html":
        return None
    try:
        head = bytes(response.content[:SCAN_BYTES])
    except Exception:  # a broken body must not break the page visit
        return None
    # A plain find first: far cheaper than a regex over the whole scan window.
    start = head.find(b"<title")
    if start < 0:
        start = head.lower().find(b"<title")
        if start < 0:
            return None
    match = _TITLE_RE.match(head, start)
    if match is None:
        return None
    # Read from the header at hand: HttpResponse.charset re-parses it, at several times
    # the cost of the whole scan.
    charset = _CHARSET_RE.search(parameters)
    encoding = charset.group(1) if charset else "utf-8"
    try:
        text = match.group(1).decode(encoding, errors="replace")
    except LookupError:
        text = match.group(1).decode("utf-8", errors="replace")
    if "&" in text:
        text = html.unescape(text)
    title = _SPACE_RE.sub(" ", text).strip()
    return title[:MAX_TITLE_CHARS] or None
