"""Services: everything one app holds, typed, built once by ``create_app``.

Routes, transports and tests reach it through ``services_of`` alone; nothing else reads
``app.state``. What a service needs Redis to answer before it exists (the Web Push keys,
the session signing key) is opened by the app's lifespan into a ``Late`` slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from livefeed.fanout.desk import DeskFeed
from livefeed.fanout.hub import Hub
from livefeed.fanout.readers import Readers
from livefeed.ingest import Ingest
from livefeed.push.service import PushService
from livefeed.settings import Settings
from livefeed.stats import Stats
from livefeed.storage.connect import Client
from livefeed.storage.content import Content
from livefeed.storage.desk import Desk
from livefeed.storage.editors import Editors
from livefeed.storage.eventlog import EventLog
from livefeed.storage.keys import Keys
from livefeed.storage.logins import LoginGuard
from livefeed.storage.moderation import Moderation
from livefeed.storage.presence import Presence
from livefeed.storage.sessions import Sessions

T = TypeVar("T")


class Late(Generic[T]):
    """One service the lifespan opens after ``create_app``, because building it takes a
    Redis round trip (a key kept in Redis). Set once, before the app serves a request.

    A slot rather than an Optional field of a mutable Services: every other service stays
    frozen and non-optional, and reading this one too early fails loudly, naming it.
    """

    __slots__ = ("_name", "_value")

    def __init__(self, name: str) -> None:
        self._name = name
        self._value: T | None = None

    def set(self, value: T) -> None:
        self._value = value

    def get(self) -> T:
        """The service; RuntimeError before the lifespan opened it."""
        if self._value is None:
            raise RuntimeError(f"{self._name} is opened by the app's lifespan, not yet started")
        return self._value

    def get_or_none(self) -> T | None:
        """The service, or None while the app is not started (or failed to start)."""
        return self._value


@dataclass(frozen=True, slots=True)
class Services:
    """What one app holds: settings, Redis clients, the hub, content, the desk, readers, stats.

    Built (not started) by ``create_app``: Redis clients connect on first use, and the
    app's lifespan starts the hub, ingest, presence and push, and stops them all again. An
    app's lifespan runs once.
    """

    settings: Settings
    stats: Stats
    keys: Keys
    redis: Client
    ingest_redis: Client  # bytes in, blocking reads: the ingest consumer's own connections
    log: EventLog
    content: Content
    hub: Hub
    ingest: Ingest
    readers: Readers
    desk: Desk
    desk_feed: DeskFeed
    moderation: Moderation
    editors: Editors
    sessions: Sessions
    logins: LoginGuard
    presence: Presence
    push: Late[PushService]
    session_key: Late[bytes]


def services_of(where: HTTPConnection | Starlette) -> Services:
    """The Services of the app serving ``where`` (a request or WebSocket), or of an app."""
    app = where.app if isinstance(where, HTTPConnection) else where
    found = getattr(app.state, "services", None)
    if not isinstance(found, Services):
        raise RuntimeError("expected an app made by livefeed.app.create_app")
    return found


def attach(app: Starlette, services: Services) -> None:
    """Give ``app`` its Services (``create_app`` does, once)."""
    app.state.services = services
