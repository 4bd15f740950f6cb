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

from collections.abc import Mapping
from typing import Any, ClassVar

from .events import Event, _check_identifier_text, _clean_json
from .exceptions import InvalidEventError

__all__ = ["CATALOG_NAME_MAX", "CatalogItem", "catalog_ref"]

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
