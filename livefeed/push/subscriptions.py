"""What a browser sends to subscribe, checked: the endpoint (SSRF rule) and the keys.

A subscription's endpoint is a URL the server will POST to: it must be ``https://`` and its
host must not be a loopback, private, link-local or otherwise non-public address (a name is
resolved and every address it has must be public), so nobody can make the server call into
its own network. ``LIVEFEED_PUSH_ALLOWED_ENDPOINTS`` admits other URL prefixes (a test push
service on loopback). Anything else is ``422``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from urllib.parse import urlsplit

from livefeed import limits
from livefeed.errors import InvalidInput

RESOLVE_TIMEOUT = 3.0
_FIELDS = {"endpoint", "expirationTime", "keys"}


@dataclass(frozen=True, slots=True)
class PushSubscription:
    endpoint: str
    p256dh: str
    auth: str

    def to_record(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PushSubscription:
        keys = record["keys"]
        return cls(record["endpoint"], keys["p256dh"], keys["auth"])


def _b64(text: object, field: str, length: int) -> bytes:
    if not isinstance(text, str) or len(text) > 256:
        raise InvalidInput(f"keys.{field} must be a base64url string")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput(f"keys.{field} must be base64url") from None
    if len(raw) != length:
        raise InvalidInput(f"keys.{field} must be {length} bytes")
    return raw


def parse_subscription(payload: object) -> PushSubscription:
    """A browser's ``PushSubscription.toJSON()``, or InvalidInput (the endpoint is checked
    separately, with ``check_endpoint``)."""
    if not isinstance(payload, dict):
        raise InvalidInput("expected a PushSubscription JSON object")
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}")
    endpoint = payload.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidInput("endpoint must be a URL")
    if len(endpoint) > limits.PUSH_ENDPOINT_MAX:
        raise InvalidInput(f"endpoint is longer than {limits.PUSH_ENDPOINT_MAX} characters")
    keys = payload.get("keys")
    if not isinstance(keys, dict) or set(keys) != {"p256dh", "auth"}:
        raise InvalidInput("keys must hold exactly p256dh and auth")
    point = _b64(keys["p256dh"], "p256dh", 65)
    if point[0] != 4:
        raise InvalidInput("keys.p256dh must be an uncompressed P-256 point")
    _b64(keys["auth"], "auth", 16)
    return PushSubscription(endpoint, keys["p256dh"], keys["auth"])


def _is_public(address: IPv4Address | IPv6Address) -> bool:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def is_admitted(endpoint: str, allowed_prefixes: tuple[str, ...]) -> bool:
    return any(endpoint.startswith(prefix) for prefix in allowed_prefixes if prefix)


def check_endpoint_syntax(endpoint: str, allowed_prefixes: tuple[str, ...]) -> str | None:
    """The host to resolve, None when admitted outright; InvalidInput when refused."""
    if is_admitted(endpoint, allowed_prefixes):
        return None
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidInput("endpoint must be a URL") from None
    if parts.scheme != "https" or not host:
        raise InvalidInput("endpoint must be an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("endpoint must not carry credentials")
    try:
        literal = ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not _is_public(literal):
            raise InvalidInput("endpoint must not point at a private or local address")
        return None
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost") or "." not in name:
        raise InvalidInput("endpoint must not point at a private or local address")
    return name


async def check_endpoint(endpoint: str, allowed_prefixes: tuple[str, ...]) -> None:
    """Refuse (InvalidInput) an endpoint the server must never call; resolves host names."""
    name = check_endpoint_syntax(endpoint, allowed_prefixes)
    if name is None:
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(name, 443, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT
        )
    except (OSError, TimeoutError):
        raise InvalidInput(f"endpoint host {name!r} cannot be resolved") from None
    for info in infos:
        if not _is_public(ip_address(str(info[4][0]).split("%")[0])):
            raise InvalidInput("endpoint must not point at a private or local address")
