"""What the app holds for Web Push: the store, the cluster's VAPID key, the rate limiter and
this process's dispatcher (which pushes only while it holds the lease)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from livefeed.push import vapid
from livefeed.push.dispatcher import Dispatcher, Sender
from livefeed.push.vapid import VapidKey
from livefeed.settings import Settings
from livefeed.stats import Stats
from livefeed.storage.content import Content
from livefeed.storage.keys import Keys
from livefeed.storage.push import PushStore
from livefeed.storage.ratelimit import RateLimiter


@dataclass
class PushService:
    store: PushStore
    vapid: VapidKey
    limiter: RateLimiter
    dispatcher: Dispatcher

    @classmethod
    async def open(
        cls,
        redis: Redis,
        keys: Keys,
        settings: Settings,
        content: Content,
        stats: Stats,
        owner: str,
    ) -> PushService:
        store = PushStore(redis, keys, owner)
        private = settings.vapid_private_key or await store.vapid_key(vapid.generate())
        key = VapidKey(private, settings.vapid_subject)
        sender = Sender(key, settings.push_allowed_endpoints)
        dispatcher = Dispatcher(store, content, stats, sender)
        return cls(store, key, RateLimiter(redis, keys), dispatcher)
