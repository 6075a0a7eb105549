"""Signed-in editor browsers: one short record per session, expiring when idle.

A session is named by a random id that only the browser holds (in a signed cookie);
Redis keeps the record under the id's SHA-256 digest, so a copy of the database cannot
be replayed as a cookie. The record holds the editor's name, the session's CSRF token
and the account version it was opened with (a changed password or a removed account
ends it). Records expire after ``SESSION_IDLE`` without use and are refused after
``SESSION_MAX`` whatever happens.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

from livefeed import limits
from livefeed.storage.connect import Client, text
from livefeed.storage.keys import Keys


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    editor: str
    csrf: str
    version: str
    started: float  # Unix time
    touched: float


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def session_tag(session_id: str) -> str:
    """How desk notices name a session (not its id, not its key)."""
    return hashlib.sha256(b"tag:" + session_id.encode()).hexdigest()[:16]


class Sessions:
    """Start, find, refresh and end editor sessions."""

    def __init__(self, redis: Client, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def signing_key(self, configured: str | None) -> bytes:
        """The key that signs session cookies: the configured one, else one kept in Redis.

        Keeping a generated key in Redis lets every process (and the next start) accept the
        same cookies; whoever can read it can already write sessions into Redis directly.
        """
        if configured:
            return configured.encode()
        key = self._keys.editors.secret
        await self._redis.set(key, secrets.token_urlsafe(32), nx=True)
        value = await self._redis.get(key)
        return text(value).encode()

    async def start(self, editor: str, version: str) -> Session:
        now = time.time()
        session = Session(
            id=secrets.token_urlsafe(32),
            editor=editor,
            csrf=secrets.token_urlsafe(32),
            version=version,
            started=now,
            touched=now,
        )
        key = self._keys.editors.session(_digest(session.id))
        fields = {
            "editor": editor,
            "csrf": session.csrf,
            "version": version,
            "started": repr(now),
            "touched": repr(now),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, limits.SESSION_IDLE)
            await pipe.execute()
        return session

    async def find(self, session_id: str) -> Session | None:
        """The live session of that id, refreshing its idle timer now and then."""
        key = self._keys.editors.session(_digest(session_id))
        raw = await self._redis.hgetall(key)
        if not raw:
            return None
        fields = {text(k): text(v) for k, v in raw.items()}
        try:
            session = Session(
                id=session_id,
                editor=fields["editor"],
                csrf=fields["csrf"],
                version=fields["version"],
                started=float(fields["started"]),
                touched=float(fields["touched"]),
            )
        except (KeyError, ValueError):
            return None
        now = time.time()
        if now - session.started > limits.SESSION_MAX:
            await self._redis.delete(key)
            return None
        if now - session.touched > limits.SESSION_TOUCH:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, "touched", repr(now))
                pipe.expire(key, limits.SESSION_IDLE)
                await pipe.execute()
        return session

    async def end(self, session_id: str) -> None:
        """End a session; its open desk streams, on every process, end at once."""
        await self._redis.delete(self._keys.editors.session(_digest(session_id)))
        notice = {"type": "signed-out", "data": {"session": session_tag(session_id)}}
        await self._redis.publish(self._keys.desk.notices, json.dumps(notice))
