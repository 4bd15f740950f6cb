"""The Synerise API client: a batch of records to its endpoint, with the right credentials.

:class:`SyneriseClient` takes everything it needs through its constructor and
imports nothing from Django, so it can be used (and tested) on its own;
:func:`django_synerise.factory.build_client` builds one from the ``SYNERISE``
settings. It is the front of three layers, each in its own module:

* :mod:`~django_synerise.sending`: one HTTP attempt and the classification of
  its outcome into an exception (the table of what each status means is there);
* :mod:`~django_synerise.auth`: the workspace login, the JWT's lifetime and
  its cache;
* :mod:`~django_synerise.redaction`: keeping secrets out of every text.

Contract of :meth:`SyneriseClient.send` and :meth:`SyneriseClient.post`:

* exactly one HTTP attempt, except that a workspace token refused with 401 is
  replaced by a fresh login and the call is repeated once;
* any 2xx is success; every failure raises one
  :class:`~django_synerise.exceptions.SyneriseError` subclass (see
  :mod:`~django_synerise.sending`). Retrying is the caller's business (the
  outbox dispatcher backs off and honours ``retry_after``);
* no secret (API key, tracker key, JWT, Basic credentials) ever reaches an
  exception, a stored response text or a log record.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeAlias

import requests

from .auth import LOGIN_PATH, MemoryTokenCache, TokenCache, WorkspaceTokens, jwt_expiry
from .endpoints import Endpoint, SendOptions, endpoint_for
from .events import Event, dumps
from .exceptions import AuthenticationError, RetryableError
from .redaction import install_urllib3_filter, redact
from .sending import (
    MAX_RESPONSE_CHARS,
    HttpSender,
    Timeout,
    default_user_agent,
    logger,
    parse_retry_after,
)

__all__ = [
    "LOGIN_PATH",
    "MAX_RESPONSE_CHARS",
    "AuthMode",
    "CallAuth",
    "MemoryTokenCache",
    "Payload",
    "SyneriseClient",
    "TokenCache",
    "default_user_agent",
    "jwt_expiry",
    "parse_retry_after",
    "redact",
]

AuthMode = Literal["jwt", "basic"]
CallAuth = Literal["workspace", "jwt", "tracker"]

#: What :meth:`SyneriseClient.send` accepts per item: a record object, its
#: payload dict, or its JSON text exactly as stored in the outbox (sent as is,
#: without decoding, unless the endpoint shapes it).
Payload: TypeAlias = Event | Mapping[str, Any] | str


class SyneriseClient:
    """A connection to one Synerise workspace.

    Args (all keyword-only):
        base_url: API host, e.g. ``https://api.synerise.com`` (no trailing path).
        api_key: workspace API key; needed for every v4 call.
        tracker_key: web tracker key; authorizes AI (recommendation) events
            as the ``token`` query parameter. Without one they are sent with
            the workspace JWT, which the AI events API also takes.
        auth: ``"jwt"`` logs in at :data:`LOGIN_PATH` and sends
            ``Authorization: Bearer``; ``"basic"`` sends
            ``Basic base64(workspace_guid:api_key)`` and never logs in.
        workspace_guid: needed for ``auth="basic"``.
        api_version: the ``Api-Version`` header.
        timeout: ``(connect, read)`` seconds, or one number for both.
        session: a :class:`requests.Session` to use; one is created (and
            closed by :meth:`close`) when ``None``. Every call goes through
            it so connections are kept alive.
        token_cache: where the JWT is kept; default an in-process
            :class:`MemoryTokenCache`. Its key is a hash of the base URL and
            API key, never the key itself.
        token_refresh_margin: seconds before the JWT's ``exp`` at which it is
            renewed.
        token_lifetime: seconds a JWT is trusted when its ``exp`` is unreadable.
        user_agent: ``User-Agent`` header; default :func:`default_user_agent`.
        ai_events_api: ``"events-v1"`` (``/events/v1/...``) or ``"ai-compat"``
            (``/v4/events/ai-compat/...``).
        ai_timestamp_format: ``eventTimestamp`` of AI events built from
            :class:`AIEvent` objects: ``"unix-ms"`` or ``"iso8601"``.

    Raises :class:`ValueError` for an impossible argument. A missing key is
    only an error when a call needs it (a client may serve AI events only).
    Thread-safe: threads may share one client.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        tracker_key: str | None = None,
        auth: AuthMode = "jwt",
        workspace_guid: str | None = None,
        api_version: str = "4.4",
        timeout: Timeout = (3.05, 10.0),
        session: requests.Session | None = None,
        token_cache: TokenCache | None = None,
        token_refresh_margin: float = 60,
        token_lifetime: float = 3550,
        user_agent: str | None = None,
        ai_events_api: str = "events-v1",
        ai_timestamp_format: str = "unix-ms",
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with https:// or http://, not {base_url!r}")
        if auth not in ("jwt", "basic"):
            raise ValueError(f'auth must be "jwt" or "basic", not {auth!r}')
        if ai_events_api not in ("events-v1", "ai-compat"):
            raise ValueError(
                f'ai_events_api must be "events-v1" or "ai-compat", not {ai_events_api!r}'
            )
        if ai_timestamp_format not in ("unix-ms", "iso8601"):
            raise ValueError(
                f'ai_timestamp_format must be "unix-ms" or "iso8601", not {ai_timestamp_format!r}'
            )
        if token_lifetime <= 0:
            raise ValueError(f"token_lifetime must be positive, not {token_lifetime!r}")
        if token_refresh_margin < 0:
            raise ValueError(
                f"token_refresh_margin must not be negative, not {token_refresh_margin!r}"
            )
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self._tracker_key = tracker_key or None
        self.auth: AuthMode = auth
        self.workspace_guid = workspace_guid or None
        self.api_version = api_version
        self.user_agent = user_agent or default_user_agent()
        #: The settings paths and send-time shaping depend on.
        self.options = SendOptions(
            ai_events_api=ai_events_api, ai_timestamp_format=ai_timestamp_format
        )
        self._basic_credentials: str | None = None
        if self._api_key and self.workspace_guid:
            raw = f"{self.workspace_guid}:{self._api_key}".encode()
            self._basic_credentials = base64.b64encode(raw).decode("ascii")
        self._owns_session = session is None
        self.sender = HttpSender(
            base_url=self.base_url,
            session=session if session is not None else requests.Session(),
            timeout=timeout,
            secrets=self._secrets,
        )
        digest = hashlib.sha256(f"{self.base_url}\n{self._api_key or ''}".encode()).hexdigest()
        self.tokens = WorkspaceTokens(
            sender=self.sender,
            api_key=self._api_key,
            api_version=api_version,
            user_agent=self.user_agent,
            cache=token_cache if token_cache is not None else MemoryTokenCache(),
            #: Key of this workspace's JWT in the token cache.
            cache_key=f"django_synerise:jwt:{digest[:40]}",
            refresh_margin=float(token_refresh_margin),
            lifetime=float(token_lifetime),
        )
        install_urllib3_filter()

    def __repr__(self) -> str:
        return f"<SyneriseClient {self.base_url} auth={self.auth}>"

    # Read-only views of the layers' configuration.

    @property
    def session(self) -> requests.Session:
        return self.sender.session

    @property
    def timeout(self) -> Timeout:
        return self.sender.timeout

    @property
    def token_cache(self) -> TokenCache:
        return self.tokens.cache

    @property
    def token_cache_key(self) -> str:
        return self.tokens.cache_key

    @property
    def token_refresh_margin(self) -> float:
        return self.tokens.refresh_margin

    @property
    def token_lifetime(self) -> float:
        return self.tokens.lifetime

    @property
    def ai_events_api(self) -> str:
        return self.options.ai_events_api

    @property
    def ai_timestamp_format(self) -> str:
        return self.options.ai_timestamp_format

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Close the session if this client created it (a session passed in stays open)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> SyneriseClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- redaction -----------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` without this client's secrets (keys, Basic credentials, recent JWTs)."""
        return redact(text, self._secrets())

    def _secrets(self) -> list[str | None]:
        return [
            self._api_key,
            self._tracker_key,
            self._basic_credentials,
            self.workspace_guid,
            *self.tokens.recent(),
        ]

    # -- sending records -----------------------------------------------------

    def send(self, endpoint: Endpoint | str, items: Iterable[Payload], *, group: str = "") -> None:
        """POST ``items`` in one request to ``endpoint`` (a row of :mod:`~django_synerise.endpoints`).

        Items are record objects of the endpoint's kind, payload dicts, or
        JSON texts as the outbox stores them (joined without re-encoding;
        shaped first if the endpoint shapes at send time). ``group`` is the
        key the request's items share when the endpoint groups them (the AI
        event type); for record objects it defaults to theirs. Keeping within
        the endpoint's limits is the caller's job. An empty batch sends
        nothing. Raises :class:`ValueError` for a record of another kind or
        group, and a :class:`~django_synerise.exceptions.SyneriseError`
        subclass when the call fails.
        """
        row = endpoint if isinstance(endpoint, Endpoint) else endpoint_for(endpoint)
        texts, group = self._texts(row, items, group)
        if not texts:
            return
        if row.grouped_by is not None and not group:
            raise ValueError(f"{row.label} go one {row.grouped_by} per request: pass group=")
        if row.resolve is not None:
            group = row.resolve(self, group)
        body = row.body(texts, group, self.options)
        auth: CallAuth = "workspace"
        if row.auth == "ai":
            # The AI events API takes the tracker key or a workspace JWT (Basic is
            # not among its methods): without a tracker key, first-party beacons still go.
            auth = "tracker" if self._tracker_key else "jwt"
        self.post(row.url_path(self.options, group), body, auth=auth, count=len(texts))

    def _texts(self, row: Endpoint, items: Iterable[Payload], group: str) -> tuple[list[str], str]:
        texts: list[str] = []
        for index, item in enumerate(items):
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, Event):
                if item.kind != row.name:
                    raise ValueError(
                        f"item {index} is a {type(item).__name__} ({item.kind!r} kind); send it "
                        f"to the {item.kind!r} endpoint, not {row.name!r}"
                    )
                item_group = row.group_key(item.batch_type)
                if row.grouped_by is not None:
                    if not group:
                        group = item_group
                    elif item_group != group:
                        raise ValueError(
                            f"item {index} is a {item_group!r} event; every item in this "
                            f"request must be of the request's {row.grouped_by}, {group!r}"
                        )
                texts.append(self._serialize(item))
            elif isinstance(item, Mapping):
                texts.append(dumps(item))
            else:
                raise TypeError(
                    f"item {index} is a {type(item).__name__}; expected a record, "
                    "a payload dict or its JSON text"
                )
        return texts, group

    def _serialize(self, event: Event) -> str:
        # The stored form of every record; the endpoint shapes AI events when sending.
        return event.to_json()

    # -- the one HTTP path every call takes ----------------------------------

    def post(
        self,
        path: str,
        body: bytes,
        *,
        auth: CallAuth = "workspace",
        count: int | None = None,
    ) -> requests.Response:
        """POST a ready JSON ``body`` to ``path`` and return the 2xx response.

        ``path`` starts with ``/`` and has no query string. ``auth="workspace"``
        sends ``Api-Version`` and the workspace credentials (a JWT is fetched or
        reused, and replaced once on a 401; HTTP Basic with ``auth="basic"``);
        ``auth="jwt"`` sends the JWT whatever the client's auth mode;
        ``auth="tracker"`` adds the tracker key as the ``token`` query
        parameter and sends no credentials header. ``count`` (records in the
        body) is only used for logging.

        Raises a :class:`SyneriseError` subclass for any failure (see
        :mod:`~django_synerise.sending`), :class:`ValueError` when a needed key
        is missing.
        """
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError(f"path must start with / and carry no query string, not {path!r}")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": self.user_agent,
        }
        sender = self.sender
        if auth == "tracker":
            params = {"token": self._require_tracker_key()}
            if path.startswith("/v4/"):
                headers["Api-Version"] = self.api_version
            response = sender.post(path, body, headers, params, count)
            if response.status_code in (401, 403):
                raise sender.failure(
                    AuthenticationError,
                    "Synerise refused the tracker key",
                    response,
                    path,
                    hint='check SYNERISE["TRACKER_KEY"]',
                )
            sender.check(response, path)
            return response
        if auth not in ("workspace", "jwt"):
            raise ValueError(f'auth must be "workspace", "jwt" or "tracker", not {auth!r}')

        headers["Api-Version"] = self.api_version
        if auth == "workspace" and self.auth == "basic":
            headers["Authorization"] = f"Basic {self._require_basic_credentials()}"
            response = sender.post(path, body, headers, None, count)
            if response.status_code == 401:
                raise sender.failure(
                    AuthenticationError,
                    "Synerise refused the Basic credentials",
                    response,
                    path,
                    hint='check SYNERISE["WORKSPACE_GUID"] and SYNERISE["API_KEY"], and that '
                    "Basic auth is enabled for the key",
                )
            sender.check(response, path)
            return response

        token = self.tokens.get()
        headers["Authorization"] = f"Bearer {token}"
        response = sender.post(path, body, headers, None, count)
        if response.status_code == 401:
            # The token expired early or was revoked: the PHP SDK's recipe,
            # forget it, log in again, repeat the call once.
            logger.info("Synerise refused the workspace token on %s; logging in again", path)
            token = self.tokens.refresh(token)
            headers["Authorization"] = f"Bearer {token}"
            response = sender.post(path, body, headers, None, count)
            if response.status_code == 401:
                raise sender.failure(
                    AuthenticationError,
                    "Synerise refused a freshly issued workspace token",
                    response,
                    path,
                    hint="check the API key's permissions",
                )
        sender.check(response, path)
        return response

    def get_json(self, path: str, params: Mapping[str, str]) -> Any:
        """GET ``path`` with the workspace credentials and return the decoded JSON answer.

        For the few lookups sending needs (a catalog's id by name). A refused
        JWT is replaced once, as in :meth:`post`. Raises a
        :class:`~django_synerise.exceptions.SyneriseError` subclass for any
        failure, :class:`RetryableError` for an answer that is not JSON.
        """
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        sender = self.sender
        token = ""
        if self.auth == "basic":
            headers["Authorization"] = f"Basic {self._require_basic_credentials()}"
        else:
            token = self.tokens.get()
            headers["Authorization"] = f"Bearer {token}"
        query = dict(params)
        response = sender.post(path, b"", headers, query, None, method="GET")
        if response.status_code == 401 and token:
            headers["Authorization"] = f"Bearer {self.tokens.refresh(token)}"
            response = sender.post(path, b"", headers, query, None, method="GET")
        if response.status_code == 401:
            raise sender.failure(
                AuthenticationError, "Synerise refused the workspace credentials", response, path
            )
        sender.check(response, path)
        try:
            return response.json()
        except ValueError as err:
            raise RetryableError(
                f"Synerise answered {path} with something that is not JSON", endpoint=path
            ) from err

    def _require_tracker_key(self) -> str:
        if not self._tracker_key:
            raise ValueError(
                "tracker_key is required for AI events (recommendation.view, recommendation.click, "
                'item.search.click); set SYNERISE["TRACKER_KEY"]'
            )
        return self._tracker_key

    def _require_basic_credentials(self) -> str:
        if not self._basic_credentials:
            raise ValueError(
                'auth="basic" needs workspace_guid and api_key; set SYNERISE["WORKSPACE_GUID"] '
                'and SYNERISE["API_KEY"]'
            )
        return self._basic_credentials
