"""The outbox table: one row per event waiting for, or done with, delivery to Synerise."""

from __future__ import annotations

import json
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class OutboxEvent(models.Model):
    """One event in the outbox.

    ``payload`` holds the exact JSON text sent to Synerise (with ``time`` and
    ``eventSalt`` fixed at enqueue), so a flush never re-serializes and a retry
    resends the same bytes. A row is *due* when ``status == pending`` and
    ``next_attempt_at <= now``; claiming a row pushes ``next_attempt_at`` to the
    lease's expiry, so a worker that dies leaves rows that fall due again by
    themselves.
    """

    class Kind(models.TextChoices):
        EVENT = "event", _("v4 event")
        TRANSACTION = "transaction", _("transaction")
        AI = "ai", _("AI event")

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        SENT = "sent", _("sent")
        DEAD = "dead", _("dead")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    batch_type = models.CharField(
        max_length=40,
        help_text=_(
            "v4 batch 'type' (custom, added-to-cart, ...), 'transaction', or AI event type"
        ),
    )
    action = models.CharField(max_length=64)
    client_key = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text=_("The profile's identifiers, for searching (customId:7 email:a@b.c)"),
    )
    salt = models.CharField(max_length=128, blank=True, default="")
    payload = models.TextField(help_text=_("The JSON body sent to Synerise for this event"))
    size = models.PositiveIntegerField(help_text=_("UTF-8 length of payload in bytes"))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    leased_by = models.CharField(max_length=64, blank=True, default="")
    leased_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    occurred_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_(
            "When the event was given up on; empty for events that are not dead, or "
            "that died before this column existed"
        ),
    )

    class Meta:
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
        indexes = [
            # The claim query: "pending and due, oldest first, LIMIT n". A partial
            # index holds only pending rows, so its size tracks the backlog, not
            # the table, and the query reads O(batch) entries however many sent or
            # dead rows are kept (PostgreSQL, SQLite).
            models.Index(
                fields=["next_attempt_at", "id"],
                name="synerise_outbox_due",
                condition=Q(status="pending"),
            ),
            # Databases without partial indexes (MySQL/MariaDB) use this one for
            # the claim; everywhere it also serves status counts, the admin's
            # status filter and the queries on dead rows by dead_at (recent dead
            # rows, purge of old ones): dead rows are few, so reading them all
            # through the status prefix is cheap, and dead_at needs no index of
            # its own (adding one would lock a big table while it is built).
            models.Index(fields=["status", "next_attempt_at"], name="synerise_outbox_status"),
            # Purge of sent rows (status + sent_at), and the last successful send.
            models.Index(fields=["status", "sent_at"], name="synerise_outbox_sent"),
        ]

    def __str__(self) -> str:
        return f"{self.action} #{self.pk} ({self.status})"

    @property
    def body(self) -> Any:
        """The payload decoded from JSON."""
        return json.loads(self.payload)
