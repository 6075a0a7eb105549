"""A push service of the tests' own, on loopback: RFC 8030 in, RFC 8291 decryption out.

It stands where FCM or Mozilla's autopush would: livefeed POSTs encrypted messages to a
subscription's endpoint; the service checks the VAPID ``Authorization`` (RFC 8292), decrypts
each body with the subscription's private key and auth secret (which a browser would hold),
and keeps it for delivery. As RFC 8030 says, a message with the ``Topic`` of a message not
yet delivered replaces it. Endpoints can be told to answer 410, or 429 with ``Retry-After``
a number of times first, or to answer slowly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import http_ece
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from tests.helpers import free_port, wait_for


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Browser:
    """What a browser keeps for one push subscription: its keys, and the JSON it sends us."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self) -> dict[str, Any]:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)},
        }


@dataclass
class Receipt:
    """One POST the service accepted."""

    name: str
    at: float
    headers: dict[str, str]
    message: dict[str, Any]


class PushService:
    """The push service under uvicorn on a free loopback port, in the test's event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.browsers: dict[str, Browser] = {}
        self.receipts: list[Receipt] = []  # every accepted POST, in order
        self.inbox: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # name -> topic
        self.attempts: dict[str, list[float]] = defaultdict(list)  # every POST, by endpoint
        self.scripted: dict[str, list[tuple[int, dict[str, str]]]] = {}  # answers to give first
        self.gone: set[str] = set()
        self.delay = 0.0
        self.errors: list[str] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def browser(self, name: str) -> Browser:
        browser = Browser(f"{self.url}/push/{name}")
        self.browsers[name] = browser
        return browser

    def delivered(self, name: str) -> list[dict[str, Any]]:
        """The messages the browser named ``name`` would receive now."""
        return list(self.inbox[name].values())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return  # the sender died mid-request: nothing was pushed
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        status, headers = await self._handle(scope, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _handle(self, scope: Any, body: bytes) -> tuple[int, dict[str, str]]:
        name = scope["path"].rsplit("/", 1)[-1]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.attempts[name].append(time.monotonic())
        if self.delay:
            await asyncio.sleep(self.delay)
        browser = self.browsers.get(name)
        if scope["method"] != "POST" or browser is None or name in self.gone:
            return 410, {}
        script = self.scripted.get(name)
        if script:
            return script.pop(0)
        try:
            assert Vapid02.verify(headers["authorization"]), "VAPID signature"
            assert headers["content-encoding"] == "aes128gcm"
            plain = http_ece.decrypt(
                body,
                private_key=browser.private_key,
                auth_secret=browser.auth,
                version="aes128gcm",
            )
            message = json.loads(plain)
        except Exception as exc:  # a bad message is a test failure, reported by the test
            self.errors.append(f"{name}: {exc!r}")
            return 400, {}
        receipt = Receipt(name, time.monotonic(), headers, message)
        self.receipts.append(receipt)
        # RFC 8030 section 5.4: same Topic replaces the message not yet delivered.
        topic = headers.get("topic") or f"untopiced-{len(self.receipts)}"
        self.inbox[name][topic] = message
        return 201, {"Location": f"{self.url}/message/{len(self.receipts)}"}

    async def start(self) -> None:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning")
        config.lifespan = "off"
        self._server = server = uvicorn.Server(config)
        # The signals stay pytest's (uvicorn >= 0.29 captures them while it serves).
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        await wait_for(lambda: server.started or self._task.done(), what="the push service")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 20)

    async def __aenter__(self) -> PushService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
