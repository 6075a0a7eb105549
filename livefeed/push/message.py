"""One push message: the brief as the service worker reads it, encrypted per RFC 8291."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import http_ece  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.asymmetric import ec

from livefeed import limits


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def payload(brief: dict[str, Any]) -> bytes:
    """What the service worker shows: a title, the brief, and the page a click opens."""
    article = brief.get("article")
    message = {
        "id": brief["id"],
        "title": "Breaking news",
        "text": brief["text"],
        "url": f"/articles/{article}" if article else "/",
        "published_at": brief.get("published_at"),
    }
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def encrypt(data: bytes, p256dh: str, auth: str) -> bytes:
    """``aes128gcm`` (RFC 8188) body for a subscription's keys, with a fresh sender key."""
    sender = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        data,
        private_key=sender,
        dh=_unb64(p256dh),
        auth_secret=_unb64(auth),
        version="aes128gcm",
    )
    return body


def topic(brief_id: str) -> str:
    """RFC 8030 ``Topic`` (at most 32 base64url characters): a message sent again for the
    same brief replaces the undelivered copy at the push service instead of adding one."""
    return base64.urlsafe_b64encode(hashlib.sha256(brief_id.encode()).digest()).decode()[:32]


def headers(authorization: str, brief_id: str) -> dict[str, str]:
    return {
        "TTL": str(limits.PUSH_TTL),
        "Urgency": "high",
        "Topic": topic(brief_id),
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
        "Authorization": authorization,
    }


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` (seconds or an HTTP date), capped; None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (moment - datetime.now(UTC)).total_seconds()
    return max(0.0, min(seconds, limits.PUSH_RETRY_AFTER_MAX))
