"""Admin for the outbox: browse, search, requeue and give up on events; never edit them.

Built for tables of millions of rows:

* no ``COUNT(*)`` over the whole table per page load: :class:`EstimatedCountPaginator`
  reads PostgreSQL's row estimate for the unfiltered list and counts at most
  :attr:`~EstimatedCountPaginator.count_limit` rows otherwise;
  ``show_full_result_count`` and facet counts are off;
* filters whose choices are known in advance (no ``SELECT DISTINCT``);
* search by exact values and prefixes (see :meth:`OutboxEventAdmin.get_search_results`);
* sorting by id only (``created`` sorts by id, which follows creation order).

Changes go through :mod:`django_synerise.outbox`, like everywhere else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.filters import DateFieldListFilter
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from . import outbox, signals
from .events import AI_EVENT_TYPES, CLIENT_IDENTIFIERS, DEDICATED_EVENT_TYPES
from .models import OutboxEvent

__all__ = ["BatchTypeFilter", "EstimatedCountPaginator", "OutboxEventAdmin"]

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[OutboxEvent]
    _Paginator = Paginator[Any]
else:
    _ModelAdmin = admin.ModelAdmin
    _Paginator = Paginator

#: Rows changed per statement by the admin actions (a "select all" may cover millions).
ACTION_CHUNK = 1000

_IDENTIFIER_TERM = re.compile(rf"^(?:{'|'.join(CLIENT_IDENTIFIERS)}):\S")


class EstimatedCountPaginator(_Paginator):
    """A paginator whose ``count`` never scans a whole large table.

    * Unfiltered queryset on PostgreSQL: the planner's estimate
      (``pg_class.reltuples``, refreshed by autovacuum) when it is at least
      :attr:`count_limit`.
    * Otherwise: an exact count of at most ``count_limit + 1`` rows
      (``SELECT COUNT(*) FROM (... LIMIT n)``); beyond that ``count`` is
      ``count_limit`` and pages stop there (filter or search to go further).

    :attr:`count_is_exact` and :attr:`count_label` tell templates which it is.
    """

    #: Rows counted at most; also the smallest estimate that is trusted. Keep it
    #: above the admin's ``list_max_show_all`` (200), or "Show all" would be
    #: offered for a count that is only a lower bound.
    count_limit = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            self._exact = True
            return len(queryset)
        estimate = self._estimate(queryset)
        if estimate is not None and estimate >= self.count_limit:
            self._exact = False
            self._estimated = True
            return estimate
        counted = int(queryset.order_by()[: self.count_limit + 1].count())
        self._exact = counted <= self.count_limit
        self._estimated = False
        return min(counted, self.count_limit)

    @property
    def count_is_exact(self) -> bool:
        """Whether :attr:`count` is the true number of rows."""
        _ = self.count
        return self._exact

    @property
    def count_label(self) -> str:
        """``"1,234"``, ``"about 1,000,000"`` or ``"more than 10,000"``."""
        number = number_format(self.count, force_grouping=True)
        if self.count_is_exact:
            return number
        if getattr(self, "_estimated", False):
            return gettext("about %(count)s") % {"count": number}
        return gettext("more than %(count)s") % {"count": number}

    def _estimate(self, queryset: QuerySet[Any]) -> int | None:
        connection = connections[queryset.db]
        if connection.vendor != "postgresql" or queryset.query.where:
            return None
        table = connection.ops.quote_name(queryset.model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table]
            )
            row = cursor.fetchone()
        # -1 (PostgreSQL 14+) or 0: never analyzed; count instead.
        return int(row[0]) if row and row[0] and row[0] > 0 else None


def batch_type_choices() -> list[tuple[str, str]]:
    """Every ``batch_type`` a row can have, known without asking the database."""
    return [
        ("custom", "custom"),
        *((name, name) for name in DEDICATED_EVENT_TYPES),
        ("transaction", "transaction"),
        *((name, name) for name in AI_EVENT_TYPES),
    ]


class BatchTypeFilter(admin.SimpleListFilter):
    """Filter by ``batch_type`` from the known types (the default filter runs ``SELECT DISTINCT``)."""

    title = _("type")
    parameter_name = "batch_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return batch_type_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        value = self.value()
        return queryset.filter(batch_type=value) if value else queryset


def _id_chunks(queryset: QuerySet[OutboxEvent]) -> Iterator[list[int]]:
    """The queryset's ids in ascending chunks of :data:`ACTION_CHUNK`, read one chunk at a time."""
    last = 0
    while True:
        ids = list(
            queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:ACTION_CHUNK]
        )
        if not ids:
            return
        yield ids
        last = ids[-1]


@admin.register(OutboxEvent)
class OutboxEventAdmin(_ModelAdmin):
    """Read-only outbox browser with "requeue" and "mark dead" actions.

    Nobody can add rows or edit them (payloads are what Synerise receives;
    they change only through the outbox functions). Deleting one row from its
    page is allowed; bulk clean-up is ``manage.py synerise_outbox purge``.
    """

    list_display = (
        "id",
        "action",
        "type_column",
        "status",
        "client_key",
        "attempts",
        "next_attempt_at",
        "created_column",
        "short_error",
    )
    list_display_links = ("id", "action")
    list_filter = ("status", "kind", BatchTypeFilter, ("created_at", DateFieldListFilter))
    search_fields = ("action", "salt", "client_key")
    search_help_text = _(
        "A row id (123), a client identifier (customId:7, email:ann@example.com, or just "
        "the value), an action or its beginning (page.), or an event salt."
    )
    ordering = ("-id",)
    sortable_by = ("id",)
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    actions = ("requeue_selected", "mark_selected_dead")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "action",
                    ("kind", "batch_type"),
                    "client_key",
                    "salt",
                    ("occurred_at", "created_at"),
                )
            },
        ),
        (
            _("Delivery"),
            {
                "fields": (
                    ("status", "attempts"),
                    ("next_attempt_at", "sent_at", "dead_at"),
                    ("leased_by", "leased_until"),
                    "last_error",
                )
            },
        ),
        (_("Payload sent to Synerise"), {"fields": ("size", "pretty_payload")}),
    )
    readonly_fields = (
        "action",
        "kind",
        "batch_type",
        "client_key",
        "salt",
        "occurred_at",
        "created_at",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "dead_at",
        "leased_by",
        "leased_until",
        "last_error",
        "size",
        "pretty_payload",
    )

    # -- what may be done ----------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxEvent]:
        # The outbox may live on its own database (SYNERISE["DATABASE_ALIAS"]).
        queryset: QuerySet[OutboxEvent] = super().get_queryset(request).using(outbox.db_alias())
        return queryset

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OutboxEvent | None = None) -> bool:
        # The list (and its actions) needs "change"; a row's page is view-only.
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 passes action_location (and warns about overrides without it);
        # 5.2 never does, and its get_actions() does not take it.
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location=action_location)  # type: ignore[call-arg]
        # Its confirmation page loads every selected row: unusable on a
        # "select all" of millions. `synerise_outbox purge` deletes in chunks.
        actions.pop("delete_selected", None)
        return actions

    # -- search ----------------------------------------------------------------

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OutboxEvent], search_term: str
    ) -> tuple[QuerySet[OutboxEvent], bool]:
        """One kind of match per kind of term, instead of ``icontains`` on every column.

        * ``123``: the row with that id (a primary-key lookup);
        * ``customId:7``: a client identifier, exactly: one of the identifiers
          in ``client_key`` is that one (``customId:7`` does not find
          ``customId:70``);
        * anything else: an action by prefix (``page.`` finds every
          ``page.*``), an event salt exactly, or a bare identifier value
          exactly (``ann@example.com`` finds ``email:ann@example.com``, not
          ``email:ann@example.com.au``).

        Row ids are an index lookup; the other conditions are case-sensitive
        ``=`` and ``LIKE`` (no ``UPPER()``), and one page of results costs at
        most two scans of the table, about a second on a million rows.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        # ASCII digits only: str.isdigit() is also true for superscripts such
        # as "²", which int() refuses.
        if term.isascii() and term.isdigit():
            condition = Q(pk=int(term))
        elif _IDENTIFIER_TERM.match(term):
            # client_key is "key:value key:value": a whole pair starts the
            # string or follows a space, and ends it or precedes a space.
            condition = (
                Q(client_key=term)
                | Q(client_key__startswith=f"{term} ")
                | Q(client_key__endswith=f" {term}")
                | Q(client_key__contains=f" {term} ")
            )
        else:
            condition = (
                Q(action__startswith=term)
                | Q(salt=term)
                | Q(client_key__endswith=f":{term}")
                | Q(client_key__contains=f":{term} ")
            )
        return queryset.filter(condition), False

    # -- columns -----------------------------------------------------------------

    @admin.display(description=_("type"))
    def type_column(self, obj: OutboxEvent) -> str:
        if obj.kind == "event":
            return obj.batch_type
        return f"{obj.get_kind_display()}: {obj.batch_type}"

    @admin.display(description=_("created"), ordering="id")
    def created_column(self, obj: OutboxEvent) -> Any:
        return obj.created_at

    @admin.display(description=_("last error"))
    def short_error(self, obj: OutboxEvent) -> str:
        return Truncator(obj.last_error).chars(80)

    @admin.display(description=_("payload"))
    def pretty_payload(self, obj: OutboxEvent) -> SafeString:
        try:
            text = json.dumps(json.loads(obj.payload), indent=2, ensure_ascii=False)
        except ValueError:
            text = obj.payload
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)

    # -- actions -------------------------------------------------------------------

    @admin.action(description=_("Requeue selected dead events"), permissions=["change"])
    def requeue_selected(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        """Dead → pending, due now, attempts reset (same payload, time and salt)."""
        count = 0
        for ids in _id_chunks(queryset.filter(status=OutboxEvent.Status.DEAD)):
            count += outbox.requeue(ids=ids, dead=True)
        if count:
            self.message_user(
                request,
                ngettext(
                    "Requeued %(count)d dead event; it will be sent on the next flush.",
                    "Requeued %(count)d dead events; they will be sent on the next flush.",
                    count,
                )
                % {"count": count},
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                gettext("None of the selected events is dead; only dead events are requeued."),
                messages.WARNING,
            )

    @admin.action(description=_("Mark selected pending events dead"), permissions=["change"])
    def mark_selected_dead(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        """Give up on pending events; rows a worker is sending right now are left alone."""
        now = timezone.now()
        pending = queryset.filter(status=OutboxEvent.Status.PENDING)
        busy = pending.filter(leased_until__gt=now).count()
        user = getattr(request.user, "get_username", lambda: "")() or "a staff user"
        error = f"marked dead in the admin by {user}"
        count = 0
        for ids in _id_chunks(pending.exclude(leased_until__gt=now)):
            marked = outbox.mark_dead(ids, error, owner=None)
            if marked:
                signals.send_robust(signals.events_dead, OutboxEvent, ids=ids, error=error)
            count += marked
        level = messages.SUCCESS if count else messages.WARNING
        text = ngettext(
            "Marked %(count)d pending event dead.", "Marked %(count)d pending events dead.", count
        ) % {"count": count}
        if busy:
            text += " " + ngettext(
                "%(busy)d event is being sent right now and was left alone.",
                "%(busy)d events are being sent right now and were left alone.",
                busy,
            ) % {"busy": busy}
        self.message_user(request, text, level)
