"""Services: built by create_app, found through services_of, offered to the server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.types import Message

from livefeed.app import create_app
from livefeed.lifecycle import DRAIN_READERS
from livefeed.services import Services, services_of
from livefeed.settings import Settings
from tests.helpers import TIMEOUT

UNUSED_REDIS = "redis://127.0.0.1:1/0"  # create_app connects to nothing; the lifespan does


def test_a_request_finds_the_services_of_its_app() -> None:
    app = create_app(Settings(redis_url=UNUSED_REDIS))
    services = services_of(app)
    request = HTTPConnection({"type": "http", "app": app, "headers": []})
    assert isinstance(services, Services)
    assert services_of(request) is services
    assert services.settings.redis_url == UNUSED_REDIS


def test_an_app_not_made_by_create_app_has_no_services() -> None:
    with pytest.raises(RuntimeError, match="create_app"):
        services_of(Starlette())


def test_a_service_the_lifespan_opens_cannot_be_read_before_it_runs() -> None:
    services = services_of(create_app(Settings(redis_url=UNUSED_REDIS)))
    assert services.push.get_or_none() is None
    with pytest.raises(RuntimeError, match="Web Push"):
        services.push.get()


async def test_the_lifespan_offers_the_server_the_readers_drain(settings: Settings) -> None:
    app = create_app(settings)
    state: dict[str, Any] = {}
    received: asyncio.Queue[Message] = asyncio.Queue()
    sent: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    running = asyncio.create_task(app(scope, received.get, sent.put))
    await received.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(sent.get(), TIMEOUT))["type"] == "lifespan.startup.complete"
    services = services_of(app)
    assert services.push.get_or_none() is not None
    await state[DRAIN_READERS]()
    assert services.readers.going_away.is_set()
    await received.put({"type": "lifespan.shutdown"})
    assert (await asyncio.wait_for(sent.get(), TIMEOUT))["type"] == "lifespan.shutdown.complete"
    await asyncio.wait_for(running, TIMEOUT)
