"""Synerise profiles as validated records for ``POST /v4/clients/batch``, and identity helpers.

A :class:`ProfileUpdate` upserts one profile: the identifiers in ``client``
say which profile, the fields in ``data`` what to set. It is validated when it
is built (:class:`~django_synerise.exceptions.InvalidEventError` naming the
field) and recorded like any event, with ``django_synerise.track_event()``.

On the wire each profile is one flat object, identifiers and fields side by
side (``{"customId": "7", "email": "a@b.c", "firstName": "Ann"}``); the
numeric identifier is called ``clientId`` there (event ``client`` objects call
it ``id``; both spellings are accepted in ``client``). A ``null`` would erase
the field at Synerise, so ``None`` values are left out and never sent.

:func:`merge_profiles` builds the request Synerise's own plugins send when a
visitor logs in: the visitor's previous (anonymous) uuid and the new uuid,
each with the e-mail, so the anonymous history joins the customer's profile.

Sources: the PHP SDK's ``lib/V4/Models/CreateClientRequestBody.php``,
``Agreements.php``, ``lib/V4/Clients/Batch/BatchRequestBuilder.php`` and
``src/Tracking/IdentityManager.php``; the Magento plugin's
``UuidManagement.php`` and ``CustomerMerge.php``.

This module imports nothing from Django.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from .events import Event, _check_identifier_text, _check_text, _check_uuid, _clean_json
from .exceptions import InvalidEventError

__all__ = [
    "AGREEMENTS",
    "PROFILE_FIELDS",
    "PROFILE_IDENTIFIERS",
    "RESERVED_ATTRIBUTES",
    "SEXES",
    "ProfileUpdate",
    "identity_hash",
    "merge_profiles",
    "profile_uuid",
]

#: Profile identifiers, as ``/v4/clients/batch`` names them.
PROFILE_IDENTIFIERS: tuple[str, ...] = ("clientId", "customId", "uuid", "email")

#: Marketing agreements of a profile (booleans).
AGREEMENTS: tuple[str, ...] = ("bluetooth", "email", "push", "rfid", "sms", "webPush", "wifi")

#: Values of ``sex``.
SEXES: tuple[str, ...] = ("FEMALE", "MALE", "NOT_SPECIFIED", "OTHER")

#: Profile fields ``data`` may set (identifiers go in ``client``).
PROFILE_FIELDS: tuple[str, ...] = (
    "address",
    "agreements",
    "attributes",
    "avatarUrl",
    "birthDate",
    "city",
    "company",
    "countryCode",
    "displayName",
    "firstName",
    "lastName",
    "phone",
    "province",
    "sex",
    "tags",
    "zipCode",
)

#: Attribute names Synerise reserves: sent as attributes they are ignored.
RESERVED_ATTRIBUTES: frozenset[str] = frozenset(
    [
        "email",
        "clientId",
        "phone",
        "customId",
        "uuid",
        "firstName",
        "lastName",
        "displayName",
        "company",
        "address",
        "city",
        "province",
        "zipCode",
        "countryCode",
        "birthDate",
        "sex",
        "avatarUrl",
        "anonymous",
        "agreements",
        "tags",
        "businessProfileId",
        "time",
        "ip",
        "source",
        "newsletter_agreement",
        "custom_identify",
        "firstname",
        "lastname",
        "created",
        "updated",
        "last_activity_date",
        "birthdate",
        "external_avatar_url",
        "displayname",
        "receive_smses",
        "receive_push_messages",
        "receive_webpush_messages",
        "receive_btooth_messages",
        "receive_rfid_messages",
        "receive_wifi_messages",
        "confirmation_hash",
        "ownerId",
        "anonymous_type",
        "country_id",
        "geo_loc_city",
        "geo_loc_country",
        "geo_loc_as",
        "geo_loc_country_code",
        "geo_loc_isp",
        "geo_loc_lat",
        "geo_loc_lon",
        "geo_loc_org",
        "geo_loc_query",
        "geo_loc_region",
        "geo_loc_region_name",
        "geo_loc_status",
        "geo_loc_timezone",
        "geo_loc_zip",
        "club_card_id",
        "type",
        "confirmed",
        "facebookId",
        "status",
    ]
)

_TEXT_FIELDS = frozenset(
    {
        "address",
        "avatarUrl",
        "city",
        "company",
        "displayName",
        "firstName",
        "lastName",
        "province",
        "zipCode",
    }
)
_MAX_TEXT = 1000
_MAX_ID = 512
# The API's own patterns (CreateClientRequestBody): phone, and a practical e-mail check.
_PHONE_RE = re.compile(r"(\+[0-9 \-()/]{6,19}|[0-9 \-()/]{6,20})\Z")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_COUNTRY_RE = re.compile(r"[A-Z]{2}\Z")
_EARLIEST_BIRTH = dt.date(1900, 1, 1)
# Variation selectors alone, or the line breaks Synerise refuses in identifiers.
_BAD_IDENTIFIER_CHARS = re.compile("[\r\n\u2028\u2029\u00ad\ufe00-\ufe0f\x00]")


def _check_profile_client(client: Any) -> dict[str, Any]:
    if not isinstance(client, Mapping):
        raise InvalidEventError("client", f"must be a dict of identifiers, not {client!r}")
    known = (*PROFILE_IDENTIFIERS, "id")
    unknown = sorted(str(key) for key in client if key not in known)
    if unknown:
        raise InvalidEventError(
            "client",
            f"unknown identifier(s) {', '.join(unknown)}; use {', '.join(PROFILE_IDENTIFIERS)}",
        )
    numeric = client.get("clientId")
    if client.get("id") is not None:
        if numeric is not None and numeric != client["id"]:
            raise InvalidEventError("client.clientId", "and client.id name different profiles")
        numeric = client["id"]
    out: dict[str, Any] = {}
    if numeric is not None:
        if isinstance(numeric, bool) or not isinstance(numeric, int) or numeric <= 0:
            raise InvalidEventError(
                "client.clientId", f"must be a positive integer, not {numeric!r}"
            )
        out["clientId"] = numeric
    for key in ("customId", "uuid", "email"):
        value = client.get(key)
        if value is None:
            continue
        field = f"client.{key}"
        if key == "uuid" and isinstance(value, uuid.UUID):
            value = str(value)
        if not isinstance(value, str):
            raise InvalidEventError(field, f"must be a string, not {value!r}")
        value = value.strip()
        if not value:
            continue
        _check_identifier_text(field, value)
        if _BAD_IDENTIFIER_CHARS.search(value):
            raise InvalidEventError(field, "must not contain line breaks or variation selectors")
        if len(value) > _MAX_ID:
            raise InvalidEventError(field, f"must be at most {_MAX_ID} characters")
        if key == "uuid":
            value = _check_uuid(field, value)
        if key == "email" and not _EMAIL_RE.match(value):
            raise InvalidEventError(field, f"is not an email address: {value!r}")
        out[key] = value
    if not out:
        raise InvalidEventError("client", f"needs at least one of {', '.join(PROFILE_IDENTIFIERS)}")
    return out


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidEventError(field, f"must be a string, not {type(value).__name__}")
    _check_text(field, value)
    if "\x00" in value:
        raise InvalidEventError(field, "must not contain NUL characters")
    if len(value) > _MAX_TEXT:
        raise InvalidEventError(field, f"must be at most {_MAX_TEXT} characters")
    return value


def _birth_date(value: Any) -> str:
    if isinstance(value, dt.datetime):
        raise InvalidEventError("data.birthDate", "must be a date, not a datetime")
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError as err:
            raise InvalidEventError(
                "data.birthDate", f"must be a date as yyyy-mm-dd, not {value!r}"
            ) from err
    if not isinstance(value, dt.date):
        raise InvalidEventError("data.birthDate", f"must be a date, not {value!r}")
    if value <= _EARLIEST_BIRTH:
        raise InvalidEventError("data.birthDate", "must be later than 1900-01-01")
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _agreements(value: Any) -> dict[str, bool]:
    if not isinstance(value, Mapping):
        raise InvalidEventError("data.agreements", f"must be a dict of booleans, not {value!r}")
    out: dict[str, bool] = {}
    for key, flag in value.items():
        field = f"data.agreements.{key}"
        if key not in AGREEMENTS:
            raise InvalidEventError(field, f"is not an agreement; use {', '.join(AGREEMENTS)}")
        if flag is None:
            continue
        if not isinstance(flag, bool):
            raise InvalidEventError(field, f"must be true or false, not {flag!r}")
        out[key] = flag
    return out


def _attributes(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidEventError("data.attributes", f"must be a dict, not {value!r}")
    for key in value:
        if not isinstance(key, str) or not key:
            raise InvalidEventError("data.attributes", f"names must be strings, not {key!r}")
        if key in RESERVED_ATTRIBUTES:
            raise InvalidEventError(
                f"data.attributes.{key}",
                "is reserved by Synerise (ignored as an attribute); use the profile field "
                "of that name, or another attribute name",
            )
        if _BAD_IDENTIFIER_CHARS.search(key):
            raise InvalidEventError(
                f"data.attributes.{key}", "name must not contain line breaks or NUL"
            )
    return _clean_json("data.attributes", value)  # type: ignore[no-any-return]


def _check_field(name: str, value: Any) -> Any:
    field = f"data.{name}"
    if name in _TEXT_FIELDS:
        return _text(field, value)
    if name == "phone":
        text = _text(field, value)
        if not _PHONE_RE.match(text):
            raise InvalidEventError(
                field, f"must be 6 to 20 digits (spaces, -, (, ), / allowed; + first), not {text!r}"
            )
        return text
    if name == "countryCode":
        text = _text(field, value)
        if not _COUNTRY_RE.match(text):
            raise InvalidEventError(field, f"must be an ISO 3166 code such as 'PL', not {text!r}")
        return text
    if name == "sex":
        if value not in SEXES:
            raise InvalidEventError(field, f"must be one of {', '.join(SEXES)}, not {value!r}")
        return value
    if name == "birthDate":
        return _birth_date(value)
    if name == "tags":
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise InvalidEventError(field, f"must be a list of strings, not {value!r}")
        return [_text(f"{field}[{index}]", tag) for index, tag in enumerate(value)]
    if name == "agreements":
        return _agreements(value)
    return _attributes(value)


def _check_data(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidEventError("data", f"must be a dict of profile fields, not {data!r}")
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name in PROFILE_IDENTIFIERS or name == "id":
            raise InvalidEventError(
                f"data.{name}", "is an identifier: put it in client={...}, not in data"
            )
        if name not in PROFILE_FIELDS:
            raise InvalidEventError(
                f"data.{name}",
                f"is not a profile field ({', '.join(PROFILE_FIELDS)}); "
                "custom values go in data['attributes']",
            )
        if value is None:
            continue  # a null would erase the field at Synerise
        checked = _check_field(name, value)
        if checked == {} and name in ("agreements", "attributes"):
            continue
        out[name] = checked
    return out


class ProfileUpdate(Event):
    """Create or update one Synerise profile through ``POST /v4/clients/batch``.

    ``client`` holds the identifiers (``clientId`` or ``id``, ``customId``,
    ``uuid``, ``email``; at least one), ``data`` the fields to set: any of
    :data:`PROFILE_FIELDS`, with ``agreements`` a dict of booleans
    (:data:`AGREEMENTS`) and ``attributes`` a dict of custom values. Fields
    left out, or ``None``, are left unchanged at Synerise.

    Raises :class:`~django_synerise.exceptions.InvalidEventError` naming the
    field (``data.phone``, ``data.agreements.sms``, ``client.email`` ...).
    """

    kind: ClassVar[str] = "profile"

    def __init__(self, *, client: Mapping[str, Any], data: Mapping[str, Any] | None = None) -> None:
        self.client = _check_profile_client(client)
        self.data = _check_data(data)
        self.salt = None

    @property
    def batch_type(self) -> str:
        return "profile"

    @property
    def action(self) -> str:
        return "profile.update"

    def profiles(self) -> list[dict[str, Any]]:
        """The flat profile objects this record sends (one here; two for a merge)."""
        return [{**self.client, **self.data}]

    def to_payload(self, **options: Any) -> dict[str, Any]:
        return self.profiles()[0]

    def __repr__(self) -> str:
        return f"<ProfileUpdate {self.client} {sorted(self.data)}>"


class ProfileMerge(ProfileUpdate):
    """The merge Synerise's plugins send at login: ``[{uuid: previous, email}, {uuid, email}]``.

    One record, so both profiles always travel in the same request, in this
    order. Build it with :func:`merge_profiles`.
    """

    def __init__(self, *, email: str, uuid: str, previous_uuid: str | None = None) -> None:
        super().__init__(client={"email": email, "uuid": uuid})
        self.previous: dict[str, Any] | None = None
        if previous_uuid is not None:
            self.previous = _check_profile_client({"email": email, "uuid": previous_uuid})

    @property
    def action(self) -> str:
        return "profile.merge" if self.previous is not None else "profile.identify"

    def profiles(self) -> list[dict[str, Any]]:
        current = {**self.client}
        return [self.previous, current] if self.previous is not None else [current]

    def to_payload(self, **options: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        """Both profiles, in order: the row is spliced into the request's array when sent."""
        return self.profiles()


def merge_profiles(email: str, uuid: str, previous_uuid: str | None = None) -> ProfileMerge:
    """The ``/v4/clients/batch`` record that joins ``previous_uuid`` to the profile of ``email``.

    Sends ``[{"uuid": previous_uuid, "email": email}, {"uuid": uuid, "email":
    email}]`` (only the second without ``previous_uuid``), as the PHP SDK's
    ``ProfileMergeDoRequest`` and the Magento plugin's ``CustomerMerge`` do.
    """
    return ProfileMerge(email=email, uuid=uuid, previous_uuid=previous_uuid)


def profile_uuid(email: str, namespace: str | uuid.UUID) -> str:
    """The uuid Synerise's plugins give a known customer: UUIDv5 of the e-mail in ``namespace``.

    The e-mail is used as given (the plugins hash it unchanged), after
    stripping surrounding spaces.
    """
    space = namespace if isinstance(namespace, uuid.UUID) else uuid.UUID(str(namespace))
    return str(uuid.uuid5(space, email.strip()))


def identity_hash(text: str) -> int:
    """The tracker's ``identityHash`` of ``text``: Java's ``String.hashCode`` over its UTF-8 bytes.

    Synerise's web tracker keeps it in the ``_snrs_p`` cookie once it knows who
    the visitor is; the PHP SDK (``HashString``) and the Magento plugin compare
    it with the hash of the e-mail that logs in to tell "same person" from
    "someone else on this browser".
    """
    value = 0
    for byte in text.encode("utf-8"):
        value = (31 * value + byte) & 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value
