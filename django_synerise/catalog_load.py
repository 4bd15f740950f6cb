"""Load a whole catalog into the outbox: every row of a model declared with ``track_catalog()``.

Used by ``manage.py synerise_catalog_load``. The rows are read in primary key
order, ``batch_size`` at a time (keyset pagination: each batch starts after the
last key of the one before, so memory stays flat and no batch re-reads the
table from its start), and each batch is enqueued in its own transaction.
After each batch, the last primary key is kept in Django's cache (the alias of
``SYNERISE["TOKEN_CACHE"]``), so ``resume=True`` goes on where an interrupted
run stopped; ``after=`` gives the key by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.cache import caches
from django.db import reset_queries, transaction

from . import outbox
from .catalog import CatalogItem
from .conf import synerise_settings
from .hooks import registered_hooks

__all__ = ["CatalogLoadError", "LoadResult", "load_catalog"]


class CatalogLoadError(ValueError):
    """The model or catalog named cannot be loaded (the message says why and what to do)."""


@dataclass(frozen=True)
class LoadResult:
    """What a load did: items enqueued, rows skipped (no key, or ``when`` false), seconds."""

    catalog: str
    enqueued: int
    skipped: int
    duration: float
    last_pk: Any


def _progress_key(label: str, catalog: str) -> str:
    return f"django_synerise:catalog_load:{label}:{catalog}"


def load_catalog(
    model: str,
    *,
    catalog: str | None = None,
    batch_size: int = 1000,
    resume: bool = False,
    after: Any = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> LoadResult:
    """Enqueue a ``CatalogItem`` for every row of ``model`` (``"app_label.Model"``).

    The catalog and each item come from the model's ``track_catalog()``
    declaration (``catalog`` picks one when the model has several: ``"products"``
    or ``"123"``). ``on_batch(done, total)`` is called after each batch.
    Raises :class:`CatalogLoadError` for an unknown model, a model without a
    catalog declaration, or an ambiguous one.
    """
    try:
        model_class = apps.get_model(model)
    except (LookupError, ValueError) as err:
        raise CatalogLoadError(f"{model!r} is not an installed model ({err})") from err
    # record_name "catalog.item:name:products" -> "name:products"
    hooks = {
        (hook.record_name or "").partition(":")[2]: hook
        for hook in registered_hooks()
        if hook.model is model_class
        and hook.build is not None
        and (hook.record_name or "").startswith("catalog.item:")
    }
    if not hooks:
        raise CatalogLoadError(
            f"{model_class._meta.label} has no catalog: declare track_catalog({model_class.__name__}, "
            "catalog=..., key=..., value=...) in your AppConfig.ready()"
        )
    if catalog is not None:
        wanted = [ref for ref in hooks if ref.partition(":")[2] == str(catalog)]
        if not wanted:
            raise CatalogLoadError(
                f"{model_class._meta.label} is not tracked into catalog {catalog!r}; "
                f"its catalogs: {', '.join(ref.partition(':')[2] for ref in hooks)}"
            )
        ref = wanted[0]
    elif len(hooks) > 1:
        raise CatalogLoadError(
            f"{model_class._meta.label} goes to several catalogs "
            f"({', '.join(ref.partition(':')[2] for ref in hooks)}): pass --catalog"
        )
    else:
        ref = next(iter(hooks))
    hook = hooks[ref]
    cache = caches[synerise_settings.TOKEN_CACHE]
    key = _progress_key(model_class._meta.label_lower, ref)
    if after is None and resume:
        after = cache.get(key)
    queryset = model_class._default_manager.order_by("pk")
    remaining = queryset.filter(pk__gt=after) if after is not None else queryset
    total = remaining.count()
    started = time.monotonic()
    enqueued = skipped = done = 0
    last = after
    while True:
        page = remaining.filter(pk__gt=last) if last is not None else remaining
        rows = list(page[:batch_size])
        if not rows:
            break
        items: list[CatalogItem] = []
        for instance in rows:
            item = hook.build_event(instance)  # when= applies, as on a save
            if isinstance(item, CatalogItem):
                items.append(item)
            else:
                skipped += 1
        last = rows[-1].pk
        with transaction.atomic(using=outbox.db_alias()):
            outbox.enqueue_many(items)
        cache.set(key, last, None)
        # With DEBUG on, Django logs every query of the run; a load is many of them.
        reset_queries()
        enqueued += len(items)
        done += len(rows)
        if on_batch is not None:
            on_batch(done, total)
    return LoadResult(
        catalog=ref.partition(":")[2],
        enqueued=enqueued,
        skipped=skipped,
        duration=time.monotonic() - started,
        last_pk=last,
    )
