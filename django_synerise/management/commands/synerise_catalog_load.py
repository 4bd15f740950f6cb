"""``manage.py synerise_catalog_load app_label.Model``: a whole catalog into the outbox, once.

A thin shell over :func:`django_synerise.catalog_load.load_catalog`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_synerise.catalog_load import CatalogLoadError, load_catalog
from django_synerise.progress import Progress


class Command(BaseCommand):
    help = (
        "Enqueue every row of a model declared with track_catalog() as catalog items, in "
        "batches and in primary key order; synerise_flush delivers them. --resume goes on "
        "after the last batch an interrupted run enqueued."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="the model, as app_label.Model")
        parser.add_argument(
            "--catalog", default=None, help="which catalog, when the model has several"
        )
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="rows per batch (default 1000)"
        )
        parser.add_argument(
            "--resume",
            action="store_true",
            help="start after the last primary key an earlier run enqueued",
        )
        parser.add_argument(
            "--after", default=None, help="start after this primary key (overrides --resume)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        progress: Progress | None = None

        def report(done: int, total: int) -> None:
            nonlocal progress
            if progress is None:
                progress = Progress(self.stdout, total=total, verb="enqueued", noun="items")
            progress.update(done)

        try:
            result = load_catalog(
                options["model"],
                catalog=options["catalog"],
                batch_size=options["batch_size"],
                resume=options["resume"],
                after=options["after"],
                on_batch=report,
            )
        except CatalogLoadError as err:
            raise CommandError(str(err)) from err
        finally:
            if progress is not None:
                progress.finish()
        self.stdout.write(
            f"Enqueued {result.enqueued} items of catalog {result.catalog} "
            f"({result.skipped} rows skipped) in {result.duration:.1f} s; "
            "synerise_flush delivers them."
        )
