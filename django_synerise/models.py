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
    resends the same bytes. A row is *due* when ``status == pending``,
    ``next_attempt_at <= now`` and it holds no live lease (``leased_until`` empty
    or past): a worker that dies leaves rows that fall due again by themselves.

    Every pending row is written about three times (insert, lease, then sent or
    deleted), so the indexes are few and the lease columns are in none of them:
    leasing a row maintains no index entry of its own (see ``Meta.indexes``).
    """

    class Kind(models.TextChoices):
        EVENT = "event", _("v4 event")
        TRANSACTION = "transaction", _("transaction")
        AI = "ai", _("AI event")
        PROFILE = "profile", _("profile")
        CATALOG = "catalog", _("catalog item")

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
    wait_for = models.BigIntegerField(
        null=True,
        blank=True,
        help_text=_(
            "The id of a row that must be delivered (or given up on) before this one: "
            "a login event waits for its profile merge"
        ),
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("When the event was given up on; empty for events that are not dead"),
    )

    class Meta:
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
        indexes = [
            # The claim: "pending and due, oldest first, LIMIT n". A partial index
            # holds only pending rows, so its size tracks the backlog, not the
            # table, and the claim walks O(batch) entries however many sent or
            # dead rows are kept (PostgreSQL, SQLite). No lease column is in it
            # (nor in any index): leasing a row changes no indexed value.
            models.Index(
                fields=["next_attempt_at", "id"],
                name="synerise_outbox_due",
                condition=Q(status="pending"),
            ),
            # Dead rows (counts, the admin's status filter, recent dead rows and
            # purge by dead_at: few, read through the status prefix). Partial
            # where the database can: a pending row, written three times, and a
            # sent row never touch it. MySQL/MariaDB ignore the condition and get
            # the full index, whose (status, next_attempt_at, id) order is their
            # claim's.
            models.Index(
                fields=["status", "next_attempt_at"],
                name="synerise_outbox_status",
                condition=Q(status="dead"),
            ),
            # Sent rows: purge, the last successful send, sent in the last hour,
            # the admin's filter; empty with RETAIN_SENT = 0 (deleted at once).
            models.Index(
                fields=["sent_at"], name="synerise_outbox_sent", condition=Q(status="sent")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} #{self.pk} ({self.status})"

    @property
    def body(self) -> Any:
        """The payload decoded from JSON."""
        return json.loads(self.payload)
