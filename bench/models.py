"""The benchmark's own table: the floor every page visit is compared with."""

from __future__ import annotations

from django.db import models


class OneColumn(models.Model):
    """A row of one column, its id: ``OneColumn.objects.create()`` is one bare durable INSERT."""

    id = models.BigAutoField(primary_key=True)

    class Meta:
        app_label = "bench"
        db_table = "bench_one_column"

    def __str__(self) -> str:
        return f"row {self.pk}"
