"""A data subject's request: find, and delete, what the outbox holds about one person.

Synerise keeps the profile; the outbox keeps what is waiting for delivery (and,
for ``RETAIN_SENT`` days, what was sent). Honouring an erasure request means
both: delete the profile in Synerise, and the person's rows here, so that a
pending event cannot recreate the profile once it has been deleted.

Rows are found by the identifiers their events carry (``email``,
``customId``, ``uuid``, ``id``), in the row's ``client_key`` and in its
payload (where a record lists several clients). The search reads the whole
table (a ``LIKE`` on the payload): fine for a request a day, not for a loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db.models import Q

from . import outbox
from .identity import parse_uuid
from .models import OutboxEvent

__all__ = ["Person", "delete_outbox_rows", "find_outbox_rows"]


@dataclass(frozen=True)
class Person:
    """The identifiers one person is known by; any of them may be empty.

    ``uuids``: the profile UUIDs of their browsers (the ``_snrs_uuid`` cookie;
    Synerise's profile lists them). Raises ``ValueError`` when nothing is
    given or a uuid is malformed: an empty search would match nobody and look
    like success.
    """

    email: str | None = None
    custom_id: str | None = None
    client_id: int | None = None
    uuids: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for value in self.uuids:
            if parse_uuid(value) is None:
                raise ValueError(f"uuids: {value!r} is not a UUID")
        if not (self.email or self.custom_id or self.client_id or self.uuids):
            raise ValueError("give at least one of email, custom_id, client_id, uuids")

    def pairs(self) -> Iterator[tuple[str, str]]:
        """``(Synerise identifier, value)`` for each identifier given."""
        if self.email:
            yield "email", self.email.strip()
        if self.custom_id:
            yield "customId", str(self.custom_id)
        if self.client_id:
            yield "id", str(int(self.client_id))
        for value in self.uuids:
            yield "uuid", str(parse_uuid(value))


def _fragments(key: str, value: str) -> Iterable[str]:
    # How the identifier appears in a stored payload (compact JSON, a string or a number).
    yield f'"{key}":{json.dumps(value)}'
    if key == "id":
        yield f'"{key}":{value}'


def _candidates(person: Person) -> Q:
    condition = Q()
    for key, value in person.pairs():
        lookup = "icontains" if key == "email" else "contains"
        condition |= Q(**{f"client_key__{lookup}": f"{key}:{value}"})
        for fragment in _fragments(key, value):
            condition |= Q(**{f"payload__{lookup}": fragment})
    return condition


def _matches(row: OutboxEvent, person: Person) -> bool:
    tokens = {token.lower() for token in row.client_key.split()}
    payload = row.payload.lower()
    for key, value in person.pairs():
        if f"{key}:{value}".lower() in tokens:
            return True
        for fragment in _fragments(key, value):
            # A match followed by a quote, comma or brace: the whole value, not a prefix.
            at = payload.find(fragment.lower())
            while at >= 0:
                end = at + len(fragment)
                if fragment.endswith('"') or end == len(payload) or payload[end] in ",}]":
                    return True
                at = payload.find(fragment.lower(), at + 1)
    return False


def find_outbox_rows(person: Person) -> list[OutboxEvent]:
    """Every outbox row (pending, sent or dead) whose event identifies ``person``.

    Exact identifiers: ``email`` compared without regard to case, the others
    as written; ``ann@example.com`` does not match ``joann@example.com``.
    """
    queryset = OutboxEvent.objects.using(outbox.db_alias()).filter(_candidates(person))
    return [row for row in queryset.order_by("id").iterator() if _matches(row, person)]


def delete_outbox_rows(person: Person) -> int:
    """Delete :func:`find_outbox_rows` of ``person``, whatever their status; return how many.

    A row a flusher holds at that moment may still be sent once; run it again
    after the lease (``LEASE_SECONDS``) to be sure, or stop the flusher first.
    """
    ids = [row.pk for row in find_outbox_rows(person)]
    deleted = 0
    manager = OutboxEvent.objects.using(outbox.db_alias())
    for start in range(0, len(ids), 500):
        count, _ = manager.filter(pk__in=ids[start : start + 500]).delete()
        deleted += count
    return deleted
