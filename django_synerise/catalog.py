"""Catalog items as validated records for ``POST /catalogs/bags/{catalogId}/items/batch``.

A :class:`CatalogItem` adds or replaces one item of a Synerise catalog (AI
recommendations recommend from catalogs): ``key`` is the item's unique key
(``itemKey`` on the wire), ``value`` its properties. The catalog is given by
its numeric id or by its name; a name is turned into the id at send time,
looked up once through ``GET /catalogs/bags?searchBy=`` and cached.

On the wire: ``[{"itemKey": "sku-1", "value": {"title": "Red shoe", ...}}]``,
one catalog per request (the catalog is part of the URL). Sources: the PHP
SDK's ``lib/Catalogs/Bags/Item/Items/Batch/BatchRequestBuilder.php`` and
``lib/Catalogs/Models/AddItem.php``; the Sylius plugin's
``AddItemRequestHandler.php``.

This module imports nothing from Django.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from .events import Event, _check_identifier_text, _clean_json
from .exceptions import InvalidEventError, RejectedError

__all__ = ["CATALOG_NAME_MAX", "CatalogItem", "catalog_path", "catalog_ref", "resolve_catalog"]

#: Where catalogs are listed and searched (``GET``, ``searchBy``).
CATALOGS_PATH = "/catalogs/bags"
# (API host, catalog name) -> id, found once per process; names not found are
# asked again after a minute (the catalog may have been created meanwhile).
_found: dict[tuple[str, str], int] = {}
_missing: dict[tuple[str, str], float] = {}
_lock = threading.Lock()
_MISSING_FOR = 60.0

#: A catalog name is kept in the outbox's ``batch_type`` column (40 characters).
CATALOG_NAME_MAX = 40
_KEY_MAX = 512


def catalog_ref(catalog: Any) -> str:
    """The catalog as stored with each item: ``"id:123"`` or ``"name:products"``.

    Raises :class:`~django_synerise.exceptions.InvalidEventError` (field
    ``catalog``) for anything but a positive integer or a non-empty name of at
    most :data:`CATALOG_NAME_MAX` characters.
    """
    if isinstance(catalog, bool):
        raise InvalidEventError("catalog", f"must be a catalog id or name, not {catalog!r}")
    if isinstance(catalog, int):
        if catalog <= 0:
            raise InvalidEventError("catalog", f"id must be a positive integer, not {catalog}")
        return f"id:{catalog}"
    if isinstance(catalog, str):
        name = catalog.strip()
        if name.isdigit():
            return catalog_ref(int(name))
        if not name:
            raise InvalidEventError("catalog", "name must not be empty")
        _check_identifier_text("catalog", name)
        if len(name) > CATALOG_NAME_MAX - len("name:"):
            raise InvalidEventError(
                "catalog",
                f"name must be at most {CATALOG_NAME_MAX - len('name:')} characters; "
                "give the catalog's numeric id instead",
            )
        return f"name:{name}"
    raise InvalidEventError("catalog", f"must be a catalog id or name, not {catalog!r}")


class CatalogItem(Event):
    """Add or replace the item ``key`` of ``catalog`` (an id, or a name looked up once).

    ``key`` is a non-empty string (an int is turned into one); ``value`` a
    dict of the item's properties (may be empty). ``None`` values inside
    ``value`` are left out: nothing is sent as ``null``.

    Raises :class:`~django_synerise.exceptions.InvalidEventError` naming the
    field (``catalog``, ``itemKey``, ``value.price`` ...).
    """

    kind: ClassVar[str] = "catalog"

    def __init__(self, catalog: int | str, *, key: str | int, value: Mapping[str, Any]) -> None:
        self.catalog = catalog_ref(catalog)
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str) or not key.strip():
            raise InvalidEventError("itemKey", f"must be a non-empty string, not {key!r}")
        if len(key) > _KEY_MAX:
            raise InvalidEventError("itemKey", f"must be at most {_KEY_MAX} characters")
        self.key = _check_identifier_text("itemKey", key)
        if not isinstance(value, Mapping):
            raise InvalidEventError("value", f"must be a dict of item properties, not {value!r}")
        self.value: dict[str, Any] = _clean_json("value", value)
        self.client: dict[str, Any] = {}
        self.salt = None

    @property
    def batch_type(self) -> str:
        return self.catalog

    @property
    def action(self) -> str:
        return "catalog.item"

    def to_payload(self, **options: Any) -> dict[str, Any]:
        return {"itemKey": self.key, "value": self.value}

    def __repr__(self) -> str:
        return f"<CatalogItem {self.catalog} {self.key!r}>"


def catalog_path(options: Any, group: str) -> str:
    """``/catalogs/bags/{catalogId}/items/batch`` for a resolved ``"id:123"`` group."""
    kind, _, value = group.partition(":")
    if kind != "id" or not value.isdigit():
        raise ValueError(f"a catalog path needs a numeric catalog id, not {group!r}")
    return f"{CATALOGS_PATH}/{value}/items/batch"


def resolve_catalog(client: Any, group: str) -> str:
    """``"name:products"`` as ``"id:<its id>"``, looked up once per process; ids pass through.

    ``client`` is a :class:`~django_synerise.client.SyneriseClient` (its
    ``base_url`` and ``get_json``). Synerise's search (``GET
    /catalogs/bags?searchBy=``) also matches parts of names and author names,
    so only a catalog whose name is exactly the one given counts. Raises
    :class:`~django_synerise.exceptions.RejectedError` when there is none:
    create the catalog in Synerise, or give its numeric id.
    """
    kind, _, name = group.partition(":")
    if kind != "name":
        return group
    key = (str(client.base_url), name)
    with _lock:
        if key in _found:
            return f"id:{_found[key]}"
        missing_since = _missing.get(key)
    if missing_since is None or time.monotonic() - missing_since > _MISSING_FOR:
        answer = client.get_json(CATALOGS_PATH, {"searchBy": name})
        bags = answer.get("data") if isinstance(answer, Mapping) else None
        ids = [
            bag["id"]
            for bag in bags or []
            if isinstance(bag, Mapping)
            and bag.get("name") == name
            and isinstance(bag.get("id"), int)
            and not isinstance(bag.get("id"), bool)
        ]
        with _lock:
            if ids:
                _found[key] = ids[0]
                _missing.pop(key, None)
                return f"id:{ids[0]}"
            _missing[key] = time.monotonic()
    raise RejectedError(
        f"Synerise has no catalog named {name!r}: create it, or give the catalog's numeric id",
        endpoint=CATALOGS_PATH,
    )
