"""Validation of one beacon body, as ``beacon.js`` sends it in first-party mode.

The body is a JSON object::

    {"type": "recommendation.click", "correlationId": "c-1", "campaignId": "k-1",
     "items": ["sku-2"], "position": 2}

The visitor is *not* part of it: the view takes the profile UUID from the
``_snrs_uuid`` cookie, so a ``clientUUID`` in the body is ignored like any
other unknown key.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from rest_framework import serializers

from ..conf import synerise_settings
from ..events import AI_EVENT_TYPES, AI_ID_MAX_LENGTH, SEARCH_TYPES

__all__ = ["MAX_ID_LENGTH", "MAX_POSITION", "BeaconSerializer", "PositionField", "ShortIdField"]

#: Longest correlation, campaign or item id accepted: the AI events' own limit.
MAX_ID_LENGTH = AI_ID_MAX_LENGTH
#: Largest 1-based search position accepted.
MAX_POSITION = 100_000

_CLICK_TYPES = ("recommendation.click", "item.search.click")
# Control characters and lone surrogates (a lone surrogate cannot even be encoded
# as UTF-8 for the outbox row), and what renders as nothing or reorders text:
# format characters (zero-width spaces and joiners, bidi overrides, BOM), line and
# paragraph separators, private use. Nothing a real id contains, and an id that
# looks like another one in Synerise's UI is how a forged one would hide.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Cf", "Zl", "Zp", "Co"})


class ShortIdField(serializers.Field):  # type: ignore[type-arg]
    """An id as a non-blank string of at most :data:`MAX_ID_LENGTH` characters.

    Integers are accepted and turned into strings (Synerise wants ids as
    strings); booleans, floats, lists and objects are refused.
    """

    default_error_messages = {
        "invalid": "Must be a string or an integer.",
        "blank": "This field may not be blank.",
        "max_length": f"Ensure this field has no more than {MAX_ID_LENGTH} characters.",
        "characters": "Must not contain control, invisible or bidirectional-override characters.",
    }

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("invalid")
        if isinstance(data, int):
            # Checked before str(): a 5000-digit integer cannot be turned into text.
            if abs(data) >= 10**MAX_ID_LENGTH:
                self.fail("max_length")
            text = str(data)
        else:
            text = data
        if not text.strip():
            self.fail("blank")
        if len(text) > MAX_ID_LENGTH:
            self.fail("max_length")
        if any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in text):
            self.fail("characters")
        return text

    def to_representation(self, value: Any) -> str:
        return str(value)


class PositionField(serializers.IntegerField):
    """A 1-based position: a JSON integer, not a string, float or boolean."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class BeaconSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """One beacon: event ``type``, ``correlationId``, optional ``campaignId``, ``items``, ``position``.

    Rules: ``type`` is one of ``recommendation.view``, ``recommendation.click``,
    ``item.search.click``; ``items`` holds at most ``SYNERISE["BEACON_MAX_ITEMS"]``
    distinct ids (a view may have none, a click has exactly the clicked one);
    ids refuse control, invisible and bidi-override characters;
    ``item.search.click`` needs its 1-based ``position`` and takes a
    ``searchType`` (``full-text-search``, the default, or ``autocomplete``),
    which other types ignore. Unknown keys are ignored.
    """

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        # Built per instance, so BEACON_MAX_ITEMS is read at request time.
        return {
            "type": serializers.ChoiceField(choices=list(AI_EVENT_TYPES)),
            "correlationId": ShortIdField(),
            "campaignId": ShortIdField(required=False, allow_null=True),
            "items": serializers.ListField(
                child=ShortIdField(),
                max_length=int(synerise_settings.BEACON_MAX_ITEMS),
                required=False,
            ),
            "position": PositionField(
                min_value=1, max_value=MAX_POSITION, required=False, allow_null=True
            ),
            "searchType": serializers.ChoiceField(
                choices=list(SEARCH_TYPES), required=False, allow_null=True
            ),
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        event_type = attrs["type"]
        attrs["items"] = list(attrs.get("items") or [])
        if len(set(attrs["items"])) != len(attrs["items"]):
            raise serializers.ValidationError({"items": ["Each item may appear only once."]})
        if event_type in _CLICK_TYPES and len(attrs["items"]) != 1:
            raise serializers.ValidationError(
                {"items": ["A click carries exactly one item: the one clicked."]}
            )
        if event_type == "item.search.click":
            if attrs.get("position") is None:
                raise serializers.ValidationError(
                    {"position": ["This field is required for item.search.click."]}
                )
        else:
            attrs.pop("position", None)
            attrs.pop("searchType", None)
        return attrs
