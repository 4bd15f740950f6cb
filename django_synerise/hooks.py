"""Model and auth signal hooks: Synerise events, profiles and catalog items from saves and logins.

Model hooks, declared once (in ``AppConfig.ready()`` or as a class decorator)::

    from django_synerise import track_catalog, track_model, track_profile

    @track_model(action="review.posted", client=lambda review: {"email": review.email})
    class Review(models.Model): ...

    # in your AppConfig.ready():
    track_model(Order, event_type="transaction", client=order_client, transaction=order_lines)
    track_profile(Customer, client=lambda c: {"customId": str(c.pk)},
                  data=lambda c: {"firstName": c.first_name, "city": c.city})
    track_catalog(Product, catalog="products", key="sku",
                  value=lambda p: {"title": p.name, "price": p.price})

The record is written by a ``post_save`` / ``post_delete`` receiver, in the
same database transaction as the save or delete: when the surrounding
``atomic()`` block rolls back, the record goes with it. (Without a
transaction, Django commits the save and the record separately, as it does any
two statements.) The write runs in a savepoint when a transaction is open, so
a failed write cannot poison the caller's transaction.

Django sends no signals for ``QuerySet.update()``, ``bulk_create()`` or
``bulk_update()``, and ``loaddata`` saves (``raw=True``) are ignored, so none
of those produce records. A hook follows Django's signal rules: it fires for
saves through that exact class, not its subclasses or proxies.

A profile hook enqueues nothing when the profile Synerise would receive is the
one last enqueued for the same identifiers (see :func:`track_profile`).
``SYNERISE["USER_PROFILES"]`` keeps the user model's profile up to date the
same way.

Auth events (each switchable in ``SYNERISE["AUTH_EVENTS"]``, read when the
signal arrives): ``user_logged_in`` → dedicated ``logged-in`` event
(``client.login``), ``user_logged_out`` → ``logged-out`` (``client.logout``).
``registered`` (``client.register``) is one call in your sign-up view:
:func:`track_registration`. Before a login or registration event, the
visitor's anonymous profile is merged into the customer's the way Synerise's
plugins do it (``SYNERISE["IDENTITY_MERGE"]``, see :func:`identify`).

Errors never break a save or a login: they are logged on
``django_synerise.hooks`` with the record's action and swallowed, unless
``SYNERISE["RAISE_ERRORS"]`` is true.

See docs/model-hooks.md and docs/profiles.md.
"""

from __future__ import annotations

import hashlib
import logging
import operator
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.core.cache import caches
from django.db import connections
from django.db import transaction as db_transaction
from django.db.models import Model
from django.db.models.signals import ModelSignal, post_delete, post_save
from django.http import HttpRequest, HttpResponseBase

from . import outbox
from .catalog import CatalogItem, catalog_ref
from .conf import synerise_settings
from .events import DEDICATED_EVENT_TYPES, CustomEvent, DedicatedEvent, Event, Transaction, dumps
from .identity import get_cookie_uuid, is_admin_request, may_track, resolve_client, user_client
from .models import OutboxEvent
from .profiles import ProfileUpdate, identity_hash, merge_profiles, profile_uuid

__all__ = [
    "CHANGES",
    "RESET_COOKIE_NAME",
    "RESET_UUID_ATTRIBUTE",
    "ModelHook",
    "connect_receivers",
    "identify",
    "registered_hooks",
    "set_reset_cookie",
    "track_catalog",
    "track_model",
    "track_profile",
    "track_registration",
    "untrack_model",
]

logger = logging.getLogger("django_synerise.hooks")

#: What a hook can react to.
CHANGES: tuple[str, ...] = ("created", "updated", "deleted")
TRANSACTION = "transaction"

ModelT = TypeVar("ModelT", bound=type[Model])
ClientFunc = Callable[[Any], Mapping[str, Any] | None]
ParamsFunc = Callable[[Any], Mapping[str, Any] | None]
WhenFunc = Callable[[Any, bool], bool]
TransactionFunc = Callable[[Any], Mapping[str, Any]]

BuildFunc = Callable[[Any], Event | None]

#: The cookie through which Synerise's web tracker adopts a new uuid on its next page load.
RESET_COOKIE_NAME = "_snrs_reset_uuid"
#: The request attribute a login or registration leaves the new uuid in, for the
#: middleware to set :data:`RESET_COOKIE_NAME` on the response.
RESET_UUID_ATTRIBUTE = "synerise_reset_uuid"

# The merge row of this request, for a second identification in the same request.
_MERGE_ROW_ATTRIBUTE = "_synerise_merge_row"

_DUMMY_CLIENT = {"customId": "validation"}


def _raise_errors() -> bool:
    return bool(synerise_settings.RAISE_ERRORS)


def _enqueue(
    event: Event, request: HttpRequest | None = None, *, after: OutboxEvent | None = None
) -> OutboxEvent | None:
    """Write ``event`` in the caller's transaction, inside a savepoint when one is open.

    The savepoint matters on PostgreSQL: a failed INSERT would otherwise abort
    the caller's whole transaction even though we log and swallow the error.
    ``after``: a row that must be delivered before this one.
    """
    alias = outbox.db_alias()
    if connections[alias].in_atomic_block:
        with db_transaction.atomic(using=alias):
            return outbox.enqueue(event, request=request, wait_for=after)
    return outbox.enqueue(event, request=request, wait_for=after)


# Profiles: enqueue only what Synerise has not been sent ----------------------------------

_PROFILE_DIGEST_TTL = 7 * 24 * 3600


def _digest_key(profile: ProfileUpdate) -> str:
    identifiers = dumps(sorted(profile.client.items()))
    return (
        "django_synerise:profile:"
        + hashlib.blake2b(identifiers.encode(), digest_size=16).hexdigest()
    )


def _enqueue_profile(profile: ProfileUpdate) -> OutboxEvent | None:
    """Enqueue ``profile`` unless the same profile was the last one enqueued for its identifiers.

    What was last enqueued is kept compactly in Django's cache (the alias of
    ``SYNERISE["TOKEN_CACHE"]``), under a key derived from the identifiers: a
    16-byte digest of the exact payload, followed by the row's id until that
    row's transaction commits. A digest that still carries a row id only
    counts while that row exists, so a rolled-back save never hides a later
    one. A cache miss (restart, eviction, another process with a local-memory
    cache) only costs one redundant upsert, which Synerise applies as a no-op.
    """
    cache = caches[synerise_settings.TOKEN_CACHE]
    alias = outbox.db_alias()
    key = _digest_key(profile)
    digest = hashlib.blake2b(dumps(profile.to_payload()).encode(), digest_size=16).hexdigest()
    known, _, pending_id = str(cache.get(key) or "").partition(":")
    if known == digest and (
        not pending_id or OutboxEvent.objects.using(alias).filter(pk=int(pending_id)).exists()
    ):
        logger.debug("profile %s unchanged: nothing enqueued", profile.client)
        return None
    row = _enqueue(profile)
    if row is not None:
        if row.pk is not None:
            cache.set(key, f"{digest}:{row.pk}", _PROFILE_DIGEST_TTL)
        db_transaction.on_commit(lambda: cache.set(key, digest, _PROFILE_DIGEST_TTL), using=alias)
    return row


@dataclass(frozen=True)
class ModelHook:
    """One declared event for one model and one kind of change.

    ``action`` (custom event) or ``event_type`` (a dedicated type such as
    ``"registered"``, or ``"transaction"``) names the event; with neither, the
    action is ``"<model_name>.<change>"`` (``"order.created"``).
    """

    model: type[Model]
    change: str
    action: str | None
    event_type: str | None
    client: ClientFunc | None
    params: ParamsFunc | None
    when: WhenFunc | None
    transaction: TransactionFunc | None
    #: Builds a profile or catalog record instead of an event (track_profile, track_catalog).
    build: BuildFunc | None = None
    #: What the built record is, for logs and the dispatch uid (``catalog.item:name:products``).
    record_name: str | None = None

    @property
    def event_name(self) -> str:
        """The Synerise action this hook produces (``client.register``, ``order.created``)."""
        if self.record_name is not None:
            return self.record_name
        if self.event_type == TRANSACTION:
            return "transaction.charge"
        if self.event_type is not None:
            return DEDICATED_EVENT_TYPES[self.event_type]
        return self.action or f"{self.model._meta.model_name}.{self.change}"

    @property
    def dispatch_uid(self) -> str:
        """Signal ``dispatch_uid``: the same model, change and event registered twice is one hook."""
        return (
            f"django_synerise.hooks:{self.model._meta.label_lower}:{self.change}:{self.event_name}"
        )

    @property
    def signal(self) -> ModelSignal:
        """``post_delete`` for deletions, ``post_save`` otherwise."""
        return post_delete if self.change == "deleted" else post_save

    def build_event(self, instance: Model) -> Event | None:
        """The event for this saved or deleted ``instance``, or ``None`` when skipped.

        Skipped when ``when(instance, created)`` is false or nobody is
        identified. Raises whatever the user's callables or the event's
        validation raise.
        """
        if self.when is not None and not self.when(instance, self.change == "created"):
            return None
        if self.build is not None:
            return self.build(instance)
        if self.event_type == TRANSACTION:
            return self._build_transaction(instance)
        client = self._client(instance)
        if not client:
            return None
        params = self.params(instance) if self.params is not None else None
        if self.event_type is not None:
            return DedicatedEvent(self.event_type, client=client, params=params)
        return CustomEvent(self.event_name, client=client, params=params)

    def _client(self, instance: Model) -> Mapping[str, Any] | None:
        if self.client is None:
            return None
        return self.client(instance)

    def _build_transaction(self, instance: Model) -> Transaction | None:
        kwargs: dict[str, Any] = {}
        if self.transaction is not None:
            kwargs.update(self.transaction(instance))
        if not kwargs.get("client"):
            client = self._client(instance)
            if not client:
                return None
            kwargs["client"] = client
        kwargs.setdefault("order_id", str(instance.pk))
        kwargs.setdefault("source", synerise_settings.TRANSACTION_SOURCE)
        if self.params is not None and "metadata" not in kwargs:
            kwargs["metadata"] = self.params(instance)
        return Transaction(**kwargs)

    def fire(self, instance: Model) -> OutboxEvent | None:
        """Build and enqueue the event; log and swallow errors unless ``RAISE_ERRORS``."""
        try:
            if not synerise_settings.ENABLED:
                return None
            event = self.build_event(instance)
            if event is None:
                logger.debug(
                    "%s skipped for %s #%s: filtered by when= or no Synerise identifier",
                    self.event_name,
                    self.model._meta.label,
                    instance.pk,
                )
                return None
            if isinstance(event, ProfileUpdate):
                return _enqueue_profile(event)
            return _enqueue(event)
        except Exception:
            if _raise_errors():
                raise
            logger.exception(
                "django_synerise could not record a %s event for %s #%s",
                self.event_name,
                self.model._meta.label,
                instance.pk,
                extra={"synerise_action": self.event_name},
            )
            return None

    def __call__(self, sender: type[Model], instance: Model, **kwargs: Any) -> None:
        if kwargs.get("raw"):
            return  # loaddata: fixtures are not events
        if self.change != "deleted" and bool(kwargs.get("created")) != (self.change == "created"):
            return
        self.fire(instance)


_lock = threading.RLock()
# dispatch_uid → hook, so that hooks can be listed, replaced and removed.
_hooks: dict[str, ModelHook] = {}


def _register(hook: ModelHook) -> None:
    with _lock:
        previous = _hooks.pop(hook.dispatch_uid, None)
        if previous is not None:
            previous.signal.disconnect(sender=previous.model, dispatch_uid=previous.dispatch_uid)
        hook.signal.connect(hook, sender=hook.model, weak=False, dispatch_uid=hook.dispatch_uid)
        _hooks[hook.dispatch_uid] = hook


def _unregister(hook: ModelHook) -> None:
    with _lock:
        hook.signal.disconnect(sender=hook.model, dispatch_uid=hook.dispatch_uid)
        _hooks.pop(hook.dispatch_uid, None)


def registered_hooks() -> list[ModelHook]:
    """Every connected model hook (for introspection and tests)."""
    with _lock:
        return list(_hooks.values())


def _resolve_model(model: type[Model] | str) -> type[Model]:
    if isinstance(model, str):
        try:
            return apps.get_model(model)
        except (LookupError, ValueError) as err:
            raise ValueError(f"model {model!r} is not an installed model ({err})") from err
    if not (isinstance(model, type) and issubclass(model, Model)):
        raise TypeError(f"track_model() needs a model class or 'app_label.Model', not {model!r}")
    if model._meta.abstract:
        raise TypeError(
            f"{model.__name__} is abstract: Django sends no signals for it; track a concrete model"
        )
    return model


def _normalise_on(on: str | Iterable[str]) -> tuple[str, ...]:
    changes = (on,) if isinstance(on, str) else tuple(on)
    unknown = [change for change in changes if change not in CHANGES]
    if not changes or unknown:
        raise ValueError(f"on= must name some of {', '.join(CHANGES)}, not {on!r}")
    return tuple(dict.fromkeys(changes))


def _check_callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name}= must be a callable, not {value!r}")
    return value


def _make_hooks(
    model: type[Model] | str,
    *,
    action: str | None,
    event_type: str | None,
    on: str | Iterable[str],
    client: ClientFunc | None,
    params: ParamsFunc | None,
    when: WhenFunc | None,
    transaction: TransactionFunc | None,
) -> list[ModelHook]:
    model_class = _resolve_model(model)
    if action is not None and event_type is not None:
        raise ValueError("give either action= (a custom event) or event_type=, not both")
    if transaction is not None:
        if event_type not in (None, TRANSACTION):
            raise ValueError(f"transaction= maps to a transaction, but event_type={event_type!r}")
        if action is not None:
            raise ValueError("transaction= maps to a transaction; drop action=")
        event_type = TRANSACTION
    if event_type not in (None, TRANSACTION, *DEDICATED_EVENT_TYPES):
        raise ValueError(
            f"event_type={event_type!r} is neither 'transaction' nor a dedicated type "
            f"({', '.join(DEDICATED_EVENT_TYPES)}); use action= for a custom event"
        )
    if client is None and transaction is None:
        raise TypeError(
            "track_model() needs client=, a callable(instance) -> dict of Synerise "
            "identifiers, e.g. client=lambda order: {'email': order.email}"
        )
    hooks = [
        ModelHook(
            model=model_class,
            change=change,
            action=action,
            event_type=event_type,
            client=_check_callable("client", client),
            params=_check_callable("params", params),
            when=_check_callable("when", when),
            transaction=_check_callable("transaction", transaction),
        )
        for change in _normalise_on(on)
    ]
    for hook in hooks:
        if hook.event_type is None:
            # Refuse an impossible action now, not at the first save.
            CustomEvent(hook.event_name, client=_DUMMY_CLIENT)
    return hooks


@overload
def track_model(
    model: ModelT,
    *,
    action: str | None = ...,
    event_type: str | None = ...,
    on: str | Iterable[str] = ...,
    client: ClientFunc | None = ...,
    params: ParamsFunc | None = ...,
    when: WhenFunc | None = ...,
    transaction: TransactionFunc | None = ...,
) -> ModelT: ...


@overload
def track_model(
    model: str,
    *,
    action: str | None = ...,
    event_type: str | None = ...,
    on: str | Iterable[str] = ...,
    client: ClientFunc | None = ...,
    params: ParamsFunc | None = ...,
    when: WhenFunc | None = ...,
    transaction: TransactionFunc | None = ...,
) -> type[Model]: ...


@overload
def track_model(
    model: None = None,
    *,
    action: str | None = ...,
    event_type: str | None = ...,
    on: str | Iterable[str] = ...,
    client: ClientFunc | None = ...,
    params: ParamsFunc | None = ...,
    when: WhenFunc | None = ...,
    transaction: TransactionFunc | None = ...,
) -> Callable[[ModelT], ModelT]: ...


def track_model(
    model: type[Model] | str | None = None,
    *,
    action: str | None = None,
    event_type: str | None = None,
    on: str | Iterable[str] = ("created",),
    client: ClientFunc | None = None,
    params: ParamsFunc | None = None,
    when: WhenFunc | None = None,
    transaction: TransactionFunc | None = None,
) -> Any:
    """Send a Synerise event when instances of ``model`` are created, updated or deleted.

    Usable as a function (``track_model(Order, ...)``, returns the model) and
    as a class decorator (``@track_model(...)`` above the model class).

    Arguments:
        model: a concrete model class, or ``"app_label.Model"`` once apps are loaded.
        action: a custom event's action (``"review.posted"``).
        event_type: a dedicated type (``"registered"``, ``"added-to-favorites"``
            ...) or ``"transaction"`` for ``/v4/transactions``. With neither
            ``action`` nor ``event_type`` the action is ``"<model_name>.<change>"``.
        on: any of ``"created"``, ``"updated"``, ``"deleted"`` (default: created).
        client: ``f(instance) -> dict | None`` of Synerise identifiers
            (``id``, ``customId``, ``uuid``, ``email``); ``None`` or ``{}`` skips
            the event. Required unless ``transaction`` returns a ``client``.
        params: ``f(instance) -> dict | None``: the event's params (a
            transaction's ``metadata``).
        when: ``f(instance, created) -> bool``: send only when true
            (``created`` is ``False`` for updates and deletes).
        transaction: ``f(instance) -> dict`` of
            :class:`~django_synerise.events.Transaction` keyword arguments
            (``products``, ``revenue``, ``currency``, ``order_id`` ...); implies
            ``event_type="transaction"``. ``order_id`` defaults to the primary
            key, ``source`` to ``SYNERISE["TRANSACTION_SOURCE"]``.

    Declaring the same model, change and event again replaces the earlier
    declaration (one event per save, however often the code runs).
    Raises ``TypeError`` / ``ValueError`` for an invalid declaration, at once.
    """
    options: dict[str, Any] = {
        "action": action,
        "event_type": event_type,
        "on": on,
        "client": client,
        "params": params,
        "when": when,
        "transaction": transaction,
    }
    if model is None:

        def decorator(model_class: ModelT) -> ModelT:
            for hook in _make_hooks(model_class, **options):
                _register(hook)
            return model_class

        return decorator
    hooks = _make_hooks(model, **options)
    for hook in hooks:
        _register(hook)
    return hooks[0].model


def untrack_model(model: type[Model] | str) -> int:
    """Disconnect every hook of ``model``; return how many were removed."""
    model_class = _resolve_model(model)
    removed = [hook for hook in registered_hooks() if hook.model is model_class]
    for hook in removed:
        _unregister(hook)
    return len(removed)


def _record_hooks(
    model: type[Model] | str,
    *,
    name: str,
    on: str | Iterable[str],
    when: WhenFunc | None,
    build: BuildFunc,
) -> type[Model]:
    model_class = _resolve_model(model)
    changes = _normalise_on(on)
    if "deleted" in changes:
        raise ValueError(f"on= may name created and updated here, not deleted ({name})")
    _check_callable("when", when)
    for change in changes:
        _register(
            ModelHook(
                model=model_class,
                change=change,
                action=None,
                event_type=None,
                client=None,
                params=None,
                when=when,
                transaction=None,
                build=build,
                record_name=name,
            )
        )
    return model_class


def track_profile(
    model: type[Model] | str,
    *,
    client: ClientFunc,
    data: Callable[[Any], Mapping[str, Any] | None],
    on: str | Iterable[str] = ("created", "updated"),
    when: WhenFunc | None = None,
) -> type[Model]:
    """Keep a Synerise profile up to date from ``model``'s saves (``POST /v4/clients/batch``).

    Arguments:
        model: a concrete model class, or ``"app_label.Model"`` once apps are loaded.
        client: ``f(instance) -> dict | None`` of profile identifiers
            (``clientId``/``id``, ``customId``, ``uuid``, ``email``); ``None``
            or ``{}`` skips the save.
        data: ``f(instance) -> dict | None`` of profile fields (``firstName``,
            ``city``, ``agreements``, ``attributes`` ...; see
            :class:`~django_synerise.events.ProfileUpdate`). ``None`` values
            are left out, never sent as ``null``.
        on: ``"created"`` and/or ``"updated"``.
        when: ``f(instance, created) -> bool``: send only when true.

    A save whose profile (identifiers and fields) is the one last enqueued for
    those identifiers enqueues nothing, so saves that change nothing Synerise
    sees cost no request. Declaring the same model again replaces the earlier
    declaration. Raises ``TypeError`` / ``ValueError`` for an invalid
    declaration, at once. Returns the model.
    """
    _check_callable("client", client)
    _check_callable("data", data)
    if client is None or data is None:
        raise TypeError("track_profile() needs client= and data=, callables of the instance")

    def build(instance: Any) -> ProfileUpdate | None:
        identifiers = client(instance)
        if not identifiers:
            return None
        return ProfileUpdate(client=identifiers, data=data(instance))

    return _record_hooks(model, name="profile.update", on=on, when=when, build=build)


def track_catalog(
    model: type[Model] | str,
    *,
    catalog: int | str,
    key: str | Callable[[Any], str | int | None],
    value: Callable[[Any], Mapping[str, Any]],
    on: str | Iterable[str] = ("created", "updated"),
    when: WhenFunc | None = None,
) -> type[Model]:
    """Keep a Synerise catalog in step with ``model``'s saves (``/catalogs/bags/{id}/items/batch``).

    Arguments:
        model: a concrete model class, or ``"app_label.Model"``.
        catalog: the catalog's numeric id, or its name (looked up once at send time).
        key: the item key: an attribute name (``"sku"``) or ``f(instance) ->
            str | int | None``; ``None`` skips the save.
        value: ``f(instance) -> dict`` of the item's properties.
        on: ``"created"`` and/or ``"updated"``.
        when: ``f(instance, created) -> bool``: send only when true.

    Each catalog of a model is its own declaration; declaring the same model
    and catalog again replaces it. To load a whole catalog the first time,
    use ``manage.py synerise_catalog_load``. Returns the model.
    """
    ref = catalog_ref(catalog)
    _check_callable("value", value)
    if value is None:
        raise TypeError("track_catalog() needs value=, a callable(instance) -> dict")
    key_of: Callable[[Any], Any]
    if isinstance(key, str):
        key_of = operator.attrgetter(key)
    elif callable(key):
        key_of = key
    else:
        raise TypeError(f"key= must be an attribute name or a callable, not {key!r}")

    def build(instance: Any) -> CatalogItem | None:
        item_key = key_of(instance)
        if item_key is None or item_key == "":
            return None
        return CatalogItem(catalog, key=item_key, value=value(instance))

    return _record_hooks(model, name=f"catalog.item:{ref}", on=on, when=when, build=build)


# The user model's profile (SYNERISE["USER_PROFILES"]) ------------------------------------


def user_profile(user: Any) -> ProfileUpdate | None:
    """The profile ``SYNERISE["USER_PROFILES"]`` sends for ``user``, or ``None``.

    Identifiers from ``SYNERISE["USER_IDENTIFIERS"]`` (by default ``customId``
    = primary key and ``email``), fields ``firstName`` and ``lastName`` from
    the user's ``first_name`` and ``last_name`` when not empty.
    """
    client = user_client(user)
    if not client:
        return None
    data = {
        "firstName": getattr(user, "first_name", None) or None,
        "lastName": getattr(user, "last_name", None) or None,
    }
    return ProfileUpdate(client=client, data=data)


def _on_user_saved(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return
    try:
        if not synerise_settings.ENABLED or not synerise_settings.USER_PROFILES:
            return
        profile = user_profile(instance)
        if profile is not None:
            _enqueue_profile(profile)
    except Exception:
        if _raise_errors():
            raise
        logger.exception(
            "django_synerise could not record the profile of user #%s",
            instance.pk,
            extra={"synerise_action": "profile.update"},
        )


def connect_receivers() -> None:
    """Connect the auth receivers and the user-profile receiver (the app's ``ready()``).

    Each reads its settings when its signal arrives, so ``override_settings``
    needs no reconnecting.
    """
    user_logged_in.connect(
        _on_user_logged_in, weak=False, dispatch_uid="django_synerise.hooks.logged_in"
    )
    user_logged_out.connect(
        _on_user_logged_out, weak=False, dispatch_uid="django_synerise.hooks.logged_out"
    )
    post_save.connect(
        _on_user_saved,
        sender=get_user_model(),
        weak=False,
        dispatch_uid="django_synerise.hooks.user_profile",
    )


# Identity merge on login and registration ------------------------------------------------


def _tracker_identity_hash(request: HttpRequest) -> int | None:
    """``identityHash`` from the tracker's ``_snrs_p`` cookie, when it knows who the visitor is."""
    raw = request.COOKIES.get("_snrs_p") or ""
    for part in raw.split("&"):
        key, sep, value = part.partition(":")
        if sep and key.strip() == "identityHash":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def _same_person_or_anonymous(request: HttpRequest, previous: str, email: str) -> bool:
    """Whether the browser's previous uuid may be merged into the profile of ``email``.

    Not when the previous uuid is a UUIDv5 (a uuid this or another site reset
    at someone's login, and not this e-mail's: that is someone else on a
    shared browser), nor when the tracker's ``identityHash`` names someone
    else (the PHP SDK's ``IdentityManager.isMergeRequired``).
    """
    if uuid.UUID(previous).version == 5:
        return False
    known = _tracker_identity_hash(request)
    return known is None or known in (identity_hash(email), identity_hash(email.lower()))


def set_reset_cookie(request: HttpRequest, response: HttpResponseBase) -> bool:
    """Set ``_snrs_reset_uuid`` on ``response`` when a login or sign-up reset the visitor's uuid.

    Synerise's web tracker reads the cookie on the next page load and adopts
    its uuid (hub.synerise.com/developers/web/uuids). The cookie is readable
    by scripts (the tracker must read it), ``SameSite=Lax``, secure on HTTPS,
    for a year like the Magento plugin's, on ``SESSION_COOKIE_DOMAIN``.
    ``PageVisitMiddleware`` calls this for every response; a site without it
    calls it from its own middleware. Returns whether a cookie was set.
    """
    new = getattr(request, RESET_UUID_ATTRIBUTE, None)
    if not new:
        return False
    response.set_cookie(
        RESET_COOKIE_NAME,
        new,
        max_age=365 * 24 * 3600,
        path="/",
        domain=django_settings.SESSION_COOKIE_DOMAIN,
        secure=request.is_secure(),
        httponly=False,
        samesite="Lax",
    )
    return True


def identify(
    request: HttpRequest, user: Any, client: Mapping[str, Any]
) -> tuple[OutboxEvent | None, dict[str, Any]]:
    """Give a logging-in or signing-up visitor one profile; return ``(merge row, client)``.

    What Synerise's plugins do (PHP SDK ``IdentityManager``, Magento
    ``UuidManagement``, Sylius ``CustomerLoginProcessor``): the customer's uuid
    is the UUIDv5 of their e-mail in ``SYNERISE["UUID_NAMESPACE"]``. When the
    browser's tracker uuid (``_snrs_uuid``) differs from it:

    * a ``/v4/clients/batch`` record is enqueued: ``[{uuid: previous, email},
      {uuid: new, email}]`` when the visitor was anonymous or is the same
      person, so the anonymous history joins the profile; ``[{uuid: new,
      email}]`` otherwise (a second person on a shared browser keeps their
      events out of the first person's profile);
    * ``request.synerise_reset_uuid`` is set to the new uuid; the middleware
      sets the ``_snrs_reset_uuid`` cookie from it, and the tracker adopts it.

    The returned client carries the new uuid instead of the cookie's, and the
    caller enqueues its event *after* the returned row, so the merge reaches
    Synerise first. Without ``IDENTITY_MERGE`` or an e-mail, nothing changes.
    """
    out = dict(client)
    if not synerise_settings.IDENTITY_MERGE:
        return None, out
    email = (user_client(user) or {}).get("email")
    if not email:
        return None, out
    new = profile_uuid(email, synerise_settings.UUID_NAMESPACE)
    out["uuid"] = new
    # A sign-up view that logs the new user in identifies twice in one request:
    # the second time, the uuid the first one reset to is the browser's.
    previous = getattr(request, RESET_UUID_ATTRIBUTE, None) or get_cookie_uuid(request)
    if previous == new:
        # Its events still follow that request's merge (registered, then logged-in).
        return getattr(request, _MERGE_ROW_ATTRIBUTE, None), out
    merge_previous = (
        previous if previous and _same_person_or_anonymous(request, previous, email) else None
    )
    row = _enqueue(merge_profiles(email, new, merge_previous))
    setattr(request, RESET_UUID_ATTRIBUTE, new)
    setattr(request, _MERGE_ROW_ATTRIBUTE, row)
    return row, out


# Auth events ---------------------------------------------------------------------------


def _auth_event(
    switch: str, event_type: str, user: Any, request: HttpRequest | None
) -> OutboxEvent | None:
    action = DEDICATED_EVENT_TYPES[event_type]
    try:
        if not synerise_settings.ENABLED or not synerise_settings.AUTH_EVENTS[switch]:
            return None
        if request is not None and is_admin_request(request):
            return None  # staff signing in to the admin are not the shop's customers
        if not may_track(request):
            return None  # CONSENT, Sec-GPC or DNT refused
        # A request adds the visitor's cookie UUID (and lets CLIENT_RESOLVER decide).
        # resolve_client, not get_client: its errors are logged below, with the action.
        client = (
            resolve_client(request, user=user, link_cookie_uuid=True)
            if request is not None
            else user_client(user)
        )
        if not client:
            logger.debug("%s skipped: no Synerise identifier", action)
            return None
        # Built first: an invalid client must not leave a merge behind.
        event = DedicatedEvent(event_type, client=client)
        after = None
        if request is not None and event_type in ("logged-in", "registered"):
            try:
                after, merged = identify(request, user, client)
                if merged != event.client:
                    event = DedicatedEvent(event_type, client=merged)
            except Exception:
                # The event still goes, with the cookie's uuid as before.
                if _raise_errors():
                    raise
                logger.exception(
                    "django_synerise could not merge the visitor's profile before %s",
                    action,
                    extra={"synerise_action": "profile.merge"},
                )
        return _enqueue(event, request, after=after)
    except Exception:
        if _raise_errors():
            raise
        logger.exception(
            "django_synerise could not record a %s event",
            action,
            extra={"synerise_action": action},
        )
        return None


def _on_user_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    _auth_event("LOGGED_IN", "logged-in", user, request)


def _on_user_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:
        return  # logout() of a visitor who was not logged in
    _auth_event("LOGGED_OUT", "logged-out", user, request)


def track_registration(user: Any, request: HttpRequest | None = None) -> OutboxEvent | None:
    """Record a ``registered`` (``client.register``) event for a user who just signed up.

    Call it in your sign-up view after the user is saved::

        track_registration(user, request)

    With ``request``, the visitor's cookie UUID is sent with the user's
    identifiers (so the anonymous history joins the new profile) and a
    ``CLIENT_RESOLVER`` applies; without it, only the user's identifiers.
    Written in the current transaction; returns the outbox row, or ``None``
    when disabled, switched off (``SYNERISE["AUTH_EVENTS"]["REGISTERED"]``) or
    nobody could be identified. Never raises unless ``RAISE_ERRORS``.
    """
    return _auth_event("REGISTERED", "registered", user, request)
