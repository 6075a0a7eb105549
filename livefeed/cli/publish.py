"""Publishing a brief through Redis, as another service would: for Python services and the CLI.

    import redis, livefeed
    livefeed.publish_brief(redis.Redis.from_url("redis://localhost:6379/0"), "Talks ended")

The brief is validated here first (so a mistake fails in the caller, not in the
dead-letter stream), then added to the ingest stream, which livefeed publishes from in
order, exactly once. Works with ``redis.Redis``; with ``redis.asyncio.Redis``, await the
result.
"""

from __future__ import annotations

import json
from typing import Any

import redis as redis_client

from livefeed import limits, models
from livefeed.errors import Unavailable
from livefeed.storage.keys import Keys

DEFAULT_PREFIX = "livefeed:"


def brief_payload(
    text: str, *, breaking: bool = False, article: str | None = None, brief_id: str | None = None
) -> bytes:
    """The ingest JSON for a brief; raises ``livefeed.errors.InvalidInput`` if it is invalid."""
    payload: dict[str, Any] = {"text": text, "breaking": breaking}
    if article is not None:
        payload["article"] = article
    if brief_id is not None:
        payload["id"] = brief_id
    models.new_brief(payload, allow_id=True)  # validates; the stored brief is built by livefeed
    return json.dumps(payload, ensure_ascii=False).encode()


def publish_brief(
    redis: Any,
    text: str,
    *,
    breaking: bool = False,
    article: str | None = None,
    brief_id: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> Any:
    """Queue a brief on livefeed's ingest stream; returns the stream entry id.

    Without ``brief_id`` the brief's id is ``"i" + <entry id>``; with one, publishing the
    same id again (by either ingest path) publishes nothing new.
    """
    payload = brief_payload(text, breaking=breaking, article=article, brief_id=brief_id)
    return _queue(redis, payload, prefix)


def publish_to(url: str, payload: bytes, *, prefix: str = DEFAULT_PREFIX) -> str:
    """Queue a ``brief_payload`` on a short-lived client for ``url``; the stream entry id.

    Raises ``Unavailable`` when Redis cannot be reached.
    """
    client = redis_client.Redis.from_url(
        url, socket_timeout=limits.REDIS_CALL_TIMEOUT, socket_connect_timeout=3
    )
    try:
        entry = _queue(client, payload, prefix)
    except (redis_client.RedisError, OSError) as exc:
        raise Unavailable(str(exc)) from exc
    finally:
        client.close()
    return entry.decode() if isinstance(entry, bytes) else str(entry)


def _queue(redis: Any, payload: bytes, prefix: str) -> Any:
    return redis.xadd(Keys(prefix).ingest(), {"brief": payload})
