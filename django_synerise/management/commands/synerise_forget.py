"""``manage.py synerise_forget``: find, or delete, one person's outbox rows (a thin shell).

Usage::

    synerise_forget --email ann@example.com [--custom-id 42] [--uuid UUID ...] [--delete]

Without ``--delete`` it lists the rows it would delete. See
:mod:`django_synerise.privacy`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...privacy import Person, delete_outbox_rows, find_outbox_rows


class Command(BaseCommand):
    help = "Find (or with --delete, delete) the outbox rows of one person."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email")
        parser.add_argument("--custom-id", dest="custom_id")
        parser.add_argument("--client-id", dest="client_id", type=int)
        parser.add_argument("--uuid", dest="uuids", action="append", default=[])
        parser.add_argument("--delete", action="store_true", help="delete them")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            person = Person(
                email=options["email"],
                custom_id=options["custom_id"],
                client_id=options["client_id"],
                uuids=tuple(options["uuids"]),
            )
        except ValueError as err:
            raise CommandError(str(err)) from err
        if options["delete"]:
            self.stdout.write(f"deleted {delete_outbox_rows(person)} outbox rows")
            return
        rows = find_outbox_rows(person)
        for row in rows:
            self.stdout.write(f"{row.pk}\t{row.status}\t{row.action}\t{row.created_at:%Y-%m-%d}")
        self.stdout.write(f"{len(rows)} outbox rows (add --delete to delete them)")
