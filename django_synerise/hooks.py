"""Model and auth signal hooks: Synerise events from saves, deletes, logins and logouts.

Model hooks, three equivalent forms::

    from django_synerise import track_model

    @track_model(action="review.posted", client=lambda review: {"email": review.email})
    class Review(models.Model): ...

    # or in AppConfig.ready():
    track_model(Order, event_type="transaction", client=order_client, transaction=order_lines)

    # or in settings:
    SYNERISE = {"MODEL_EVENTS": [
        {"model": "shop.Order", "event_type": "transaction",
         "client": "shop.synerise.order_client", "transaction": "shop.synerise.order_lines"},
    ]}

The event is written by a ``post_save`` / ``post_delete`` receiver, in the same
database transaction as the save or delete: when the surrounding ``atomic()``
block rolls back, the event goes with it. (Without a transaction, Django
commits the save and the event separately, as it does any two statements.)
The write runs in a savepoint when a transaction is open, so a failed write
cannot poison the caller's transaction.

Django sends no signals for ``QuerySet.update()``, ``bulk_create()`` or
``bulk_update()``, and ``loaddata`` saves (``raw=True``) are ignored, so none
of those produce events. A hook follows Django's signal rules: it fires for
saves through that exact class, not its subclasses or proxies.

Auth events (each switchable in ``SYNERISE["AUTH_EVENTS"]``, read when the
signal arrives): ``user_logged_in`` → dedicated ``logged-in`` event
(``client.login``), ``user_logged_out`` → ``logged-out`` (``client.logout``),
both with the user's identifiers and the visitor's cookie UUID, so Synerise
merges the anonymous history into the profile. ``registered``
(``client.register``) is one call in your sign-up view:
:func:`track_registration`.

Errors never break a save or a login: they are logged on
``django_synerise.hooks`` with the event's action and swallowed, unless
``SYNERISE["RAISE_ERRORS"]`` is true. A broken ``MODEL_EVENTS`` setting,
though, raises :class:`~django_synerise.exceptions.SyneriseConfigurationError`
at start-up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from django.apps import apps
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import connections
from django.db import transaction as db_transaction
from django.db.models import Model
from django.db.models.signals import ModelSignal, post_delete, post_save
from django.http import HttpRequest

from . import outbox
from .conf import on_setting_changed, synerise_settings
from .events import DEDICATED_EVENT_TYPES, CustomEvent, DedicatedEvent, Event, Transaction
from .exceptions import SyneriseConfigurationError
from .identity import is_admin_request, may_track, resolve_client, user_client
from .models import OutboxEvent

__all__ = [
    "CHANGES",
    "ModelHook",
    "connect_configured_hooks",
    "registered_hooks",
    "track_model",
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

_MODEL_EVENT_KEYS = frozenset(
    {"model", "action", "event_type", "on", "client", "params", "when", "transaction"}
)
_DUMMY_CLIENT = {"customId": "validation"}


def _raise_errors() -> bool:
    return bool(synerise_settings.RAISE_ERRORS)


def _enqueue(event: Event, request: HttpRequest | None = None) -> OutboxEvent | None:
    """Write ``event`` in the caller's transaction, inside a savepoint when one is open.

    The savepoint matters on PostgreSQL: a failed INSERT would otherwise abort
    the caller's whole transaction even though we log and swallow the error.
    """
    alias = outbox.db_alias()
    if connections[alias].in_atomic_block:
        with db_transaction.atomic(using=alias):
            return outbox.enqueue(event, request=request)
    return outbox.enqueue(event, request=request)


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
    origin: str = "code"

    @property
    def event_name(self) -> str:
        """The Synerise action this hook produces (``client.register``, ``order.created``)."""
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
    origin: str,
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
            origin=origin,
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
            for hook in _make_hooks(model_class, origin="code", **options):
                _register(hook)
            return model_class

        return decorator
    hooks = _make_hooks(model, origin="code", **options)
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


def _setting_error(index: int, message: str) -> SyneriseConfigurationError:
    return SyneriseConfigurationError(
        f'SYNERISE["MODEL_EVENTS"][{index}] {message}. Fix it in the SYNERISE dict of your '
        "Django settings."
    )


def _hooks_from_settings() -> list[ModelHook]:
    hooks: list[ModelHook] = []
    for index, entry in enumerate(synerise_settings.MODEL_EVENTS):
        unknown = sorted(set(entry) - _MODEL_EVENT_KEYS)
        if unknown:
            raise _setting_error(
                index,
                f"has unknown key(s) {', '.join(unknown)}; valid keys are "
                f"{', '.join(sorted(_MODEL_EVENT_KEYS))}",
            )
        if "model" not in entry:
            raise _setting_error(index, 'needs "model": "app_label.ModelName"')
        options = {
            key: synerise_settings.import_callable(
                f'MODEL_EVENTS"][{index}]["{key}', entry.get(key)
            )
            for key in ("client", "params", "when", "transaction")
        }
        try:
            hooks.extend(
                _make_hooks(
                    entry["model"],
                    action=entry.get("action"),
                    event_type=entry.get("event_type"),
                    on=entry.get("on", ("created",)),
                    origin="settings",
                    **options,
                )
            )
        except (TypeError, ValueError) as err:
            raise _setting_error(index, f"is invalid: {err}") from err
    return hooks


def connect_configured_hooks() -> None:
    """Connect the auth receivers and the hooks of ``SYNERISE["MODEL_EVENTS"]``.

    Called from the app's ``ready()`` and again whenever ``MODEL_EVENTS``
    changes (``override_settings``): hooks from the previous setting are
    disconnected first; hooks declared in code are left alone. Raises
    :class:`~django_synerise.exceptions.SyneriseConfigurationError` for an
    invalid ``MODEL_EVENTS`` entry, before connecting any of them.
    """
    global _applied_model_events
    user_logged_in.connect(
        _on_user_logged_in, weak=False, dispatch_uid="django_synerise.hooks.logged_in"
    )
    user_logged_out.connect(
        _on_user_logged_out, weak=False, dispatch_uid="django_synerise.hooks.logged_out"
    )
    with _lock:
        _applied_model_events = _raw_model_events()
        hooks = _hooks_from_settings()
        _disconnect_settings_hooks()
        for hook in hooks:
            _register(hook)


def _disconnect_settings_hooks() -> None:
    with _lock:
        for old in [hook for hook in _hooks.values() if hook.origin == "settings"]:
            _unregister(old)


_NOT_APPLIED = object()
# The raw MODEL_EVENTS value the connected hooks came from.
_applied_model_events: Any = _NOT_APPLIED


def _raw_model_events() -> Any:
    # Read without synerise_settings on purpose: this runs on every SYNERISE
    # change, and a validated read would cache values and repeat warnings.
    raw = getattr(settings, "SYNERISE", None)
    return raw.get("MODEL_EVENTS", []) if isinstance(raw, Mapping) else []


def _reconnect_on_change() -> None:
    if not apps.ready:
        return
    if _applied_model_events is not _NOT_APPLIED and _raw_model_events() == _applied_model_events:
        return
    # conf's own receiver may not have run yet: make sure MODEL_EVENTS is fresh.
    synerise_settings.reload()
    try:
        connect_configured_hooks()
    except SyneriseConfigurationError:
        # A broken SYNERISE (perhaps a test of the settings themselves) must not
        # make override_settings fail here; the error surfaces where it is read.
        _disconnect_settings_hooks()
        logger.warning("SYNERISE changed; its MODEL_EVENTS are invalid", exc_info=True)
    finally:
        # Leave nothing cached from this early read: settings can still change
        # without a signal (pytest-django's ``del settings.SYNERISE``).
        synerise_settings.reload()


on_setting_changed(_reconnect_on_change)


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
        return _enqueue(DedicatedEvent(event_type, client=client), request)
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
