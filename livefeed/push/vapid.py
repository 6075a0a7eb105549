"""VAPID (RFC 8292) keys: loaded from ``LIVEFEED_VAPID_PRIVATE_KEY`` or generated once.

Push services tie a subscription to the public key it was made with, so every process of a
cluster must use the same key pair, and keep it across restarts: a generated key is kept
in Redis (``SET NX``: the first process's key wins) and read back by every process.
"""

from __future__ import annotations

import base64
import time

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02  # type: ignore[import-untyped]

# A signed token stays valid this long (RFC 8292 allows at most 24 h) and is reused
# until an hour before it expires, so signing is not paid per message.
TOKEN_LIFETIME = 12 * 3600
TOKEN_REUSE = TOKEN_LIFETIME - 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def generate() -> str:
    """A new private key as base64url of its 32 raw bytes (the form the setting accepts)."""
    vapid = Vapid02()
    vapid.generate_keys()
    value: int = vapid.private_key.private_numbers().private_value
    return b64url(value.to_bytes(32, "big"))


class VapidKey:
    """The application server's key pair, and the ``Authorization`` header it signs."""

    def __init__(self, private_key: str, subject: str) -> None:
        text = private_key.strip()
        if "BEGIN" in text:
            self._vapid = Vapid02.from_pem(text.encode())
        else:
            self._vapid = Vapid02.from_string(text)
        self._subject = subject
        self._tokens: dict[str, tuple[float, str]] = {}  # audience -> (signed at, header)
        point = self._vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.public_key = b64url(point)  # applicationServerKey for PushManager.subscribe

    def authorization(self, audience: str) -> str:
        """``vapid t=<JWT>,k=<public key>`` for the push service at ``audience``."""
        now = time.time()
        cached = self._tokens.get(audience)
        if cached is not None and now - cached[0] < TOKEN_REUSE:
            return cached[1]
        claims = {"aud": audience, "exp": int(now) + TOKEN_LIFETIME, "sub": self._subject}
        header = str(self._vapid.sign(claims)["Authorization"])
        self._tokens[audience] = (now, header)
        return header
