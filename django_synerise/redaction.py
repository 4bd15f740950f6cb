"""Keep secrets out of text: one :func:`redact` for every message, log line and stored error.

The client redacts what it raises and logs (it knows its keys and the tokens it
was given); the dispatcher scrubs what it stores in ``last_error`` through the
client's :meth:`~django_synerise.client.SyneriseClient.redact`, so no module
re-reads secrets from the settings to scrub them. urllib3 writes request lines
of its own; :func:`install_urllib3_filter` removes the tracker key from them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "install_urllib3_filter", "redact"]

#: What a secret is replaced with.
REDACTED = "***"

# Credentials that may show up in text we did not write (an echoed request,
# a URL in a library's exception), whatever their value.
_QUERY_TOKEN = re.compile(r"(?i)([?&]token=)[^&\s\"'<>]+")
_CREDENTIAL_PATTERNS = (
    (_QUERY_TOKEN, r"\1" + REDACTED),
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
)


#: Shortest start or end of a secret that is removed on its own (shorter runs are
#: too likely to be ordinary text, and reveal too little to matter).
MIN_PARTIAL = 8


def _partial_pattern(secret: str) -> re.Pattern[str]:
    """Any prefix or suffix of ``secret`` of :data:`MIN_PARTIAL` characters or more."""
    if len(secret) <= MIN_PARTIAL:
        return re.compile(re.escape(secret))

    def nested(chars: str) -> str:
        # "abc" -> "(?:a(?:b(?:c)?)?)?": each further character optional.
        out = ""
        for char in reversed(chars):
            out = f"(?:{re.escape(char)}{out})?"
        return out

    head, tail = secret[:MIN_PARTIAL], secret[-MIN_PARTIAL:]
    prefix = re.escape(head) + nested(secret[MIN_PARTIAL:])
    # A suffix: some of the characters before the last MIN_PARTIAL, then those.
    before = secret[:-MIN_PARTIAL]
    suffix = "(?:" + "|".join(re.escape(before[i:]) for i in range(len(before))) + ")?"
    return re.compile(f"{prefix}|{suffix}{re.escape(tail)}")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return ``text`` with every secret replaced by ``***``.

    Each secret is removed as written, URL-encoded and JSON-escaped (the forms
    in which a URL, a form or an echoed request body would carry it). Any
    ``token=`` query value and any ``Bearer``/``Basic`` credential is removed
    too, known or not. Empty and ``None`` secrets are ignored. An upstream
    that echoes a secret cut short (``"sk-live-01234..."``) or only its end
    gets it removed too: any run of :data:`MIN_PARTIAL` or more characters
    from its start or its end.
    """
    variants: set[str] = set()
    secrets_seen: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        secrets_seen.append(secret)
        variants.add(secret)
        variants.add(quote(secret, safe=""))
        variants.add(quote_plus(secret, safe=""))
        variants.add(json.dumps(secret)[1:-1])
    # Longest first, so a secret containing another is removed whole.
    for variant in sorted(variants, key=len, reverse=True):
        if variant:
            text = text.replace(variant, REDACTED)
    for secret in secrets_seen:
        text = _partial_pattern(secret).sub(REDACTED, text)
    for pattern, replacement in _CREDENTIAL_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class _RedactQueryTokens(logging.Filter):
    """Remove ``token=`` query values from urllib3's own log lines.

    urllib3 logs every request line at DEBUG (``"POST /events/v1/batch?token=..."``)
    and retried URLs at WARNING; the AI events API carries the tracker key there.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _QUERY_TOKEN.sub(r"\1" + REDACTED, message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")
_query_token_filter = _RedactQueryTokens()


def install_urllib3_filter() -> None:
    """Put the ``token=`` filter on urllib3's loggers (idempotent; the client calls it)."""
    for name in _URLLIB3_LOGGERS:
        library_logger = logging.getLogger(name)
        if _query_token_filter not in library_logger.filters:
            library_logger.addFilter(_query_token_filter)
