"""The push dispatcher: one per cluster (a lease), pushing each breaking brief once to every
subscription.

- It follows the briefs log from a cursor kept in Redis; a breaking ``brief.published``
  becomes a job, queued together with the cursor's move (so a takeover neither repeats nor
  skips one). Briefs published while no dispatcher ran are queued when one starts, within
  the push window.
- A job walks the subscriptions; each one's outcome is marked in Redis the moment the push
  service answers, and a dispatcher taking over skips marked ones. A process killed between
  a push service accepting a message and the mark resends it with the same RFC 8030
  ``Topic``, which replaces the undelivered copy, and the notification carries the brief's
  tag, so the reader still sees one.
- ``429`` and ``5xx`` (and network errors) are retried with doubling back-off, or after the
  push service's ``Retry-After``; ``404``/``410`` remove the subscription; other answers
  mark it failed for this brief.
- Retracting the brief (or correcting it to not breaking) cancels what is not sent yet.
- It never delays the live feed: it runs beside the readers' tasks, bounded in concurrency,
  and encrypts in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from livefeed import events, limits, models
from livefeed.errors import InvalidInput
from livefeed.events import EventId
from livefeed.lifecycle import stop_tasks
from livefeed.push import message
from livefeed.push.subscriptions import PushSubscription, check_endpoint_syntax
from livefeed.push.vapid import VapidKey
from livefeed.stats import Stats
from livefeed.storage.content import Content
from livefeed.storage.eventlog import GONE
from livefeed.storage.lease import Backoff, keep_holding
from livefeed.storage.push import FAILED, REMOVED, SENT, PushStore

logger = logging.getLogger("livefeed.push")

_DELIVERED = {200, 201, 202}
_GONE = {404, 410}


def _audience(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True, slots=True)
class Sender:
    """Posts one encrypted notification to one subscription, signed with our VAPID key."""

    vapid: VapidKey
    allowed_endpoints: tuple[str, ...]

    async def post(
        self, client: httpx.AsyncClient, brief_id: str, sub: PushSubscription, data: bytes
    ) -> tuple[int | None, float | None]:
        """The push service's status (None: no answer) and its Retry-After, in seconds."""
        try:
            # Settings may have changed since it subscribed: never call into our network.
            # (A host name was resolved and checked when it subscribed.)
            check_endpoint_syntax(sub.endpoint, self.allowed_endpoints)
        except InvalidInput:
            return 404, None  # refused now: forget it like a gone subscription
        body = await asyncio.to_thread(message.encrypt, data, sub.p256dh, sub.auth)
        auth = self.vapid.authorization(_audience(sub.endpoint))
        try:
            response = await client.post(
                sub.endpoint, content=body, headers=message.headers(auth, brief_id)
            )
        except httpx.HTTPError as exc:
            logger.debug("push to %s: %s", _audience(sub.endpoint), exc)
            return None, None
        return response.status_code, message.retry_after(response.headers.get("retry-after"))


class Dispatcher:
    """Pushes breaking briefs while this process holds the dispatcher lease."""

    def __init__(self, store: PushStore, content: Content, stats: Stats, sender: Sender) -> None:
        self._store = store
        self._content = content
        self._stats = stats
        self._sender = sender
        self._task: asyncio.Task[None] | None = None

    @property
    def holds_lease(self) -> bool:
        return self._store.lease.held

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="livefeed-push-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
        await self._store.lease.release()  # a standby takes over at once

    async def _run(self) -> None:
        poll = limits.PUSH_STANDBY_POLL
        await keep_holding(
            self._store.lease, self._hold, Backoff(poll, poll), "push dispatcher", logger
        )

    async def _hold(self) -> None:
        await self._store.lease.wait_to_take(limits.PUSH_STANDBY_POLL)
        logger.info("dispatching breaking-news pushes (%s)", self._store.lease.holder)
        work = asyncio.create_task(self._dispatch())
        keeper = asyncio.create_task(self._keep_lease())
        try:
            done, _ = await asyncio.wait({work, keeper}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raise what ended it
        finally:
            await stop_tasks([work, keeper])

    async def _keep_lease(self) -> None:
        """Returns when the lease is lost, which stops the work at once."""
        while True:
            await asyncio.sleep(limits.PUSH_LEASE_RENEW)
            if not await self._store.lease.renew():
                logger.warning("lost the push dispatcher lease; standing by")
                return

    async def _dispatch(self) -> None:
        limits_ = httpx.Limits(max_connections=limits.PUSH_CONCURRENCY)
        async with httpx.AsyncClient(timeout=limits.PUSH_TIMEOUT, limits=limits_) as client:
            while True:
                await self._queue_new()
                for job in await self._store.jobs():
                    await self._push(client, job)
                    await self._queue_new()
                await asyncio.sleep(limits.PUSH_POLL)

    # -- jobs -----------------------------------------------------------------------------

    async def _queue_new(self) -> None:
        cursor = EventId.parse(await self._store.cursor())
        if cursor is None:  # the first dispatcher ever: push what is published from now on
            await self._store.queue([], str(await self._content.log.position(events.BRIEFS)))
            return
        found = await self._content.log.read_since(events.BRIEFS, cursor)
        if found is GONE:
            logger.warning("push dispatcher: the briefs log moved on; pushing from now on")
            await self._store.queue([], str(await self._content.log.position(events.BRIEFS)))
            return
        if not found:
            return
        now = time.time()
        jobs = []
        for event in found:
            if event.type != events.BRIEF_PUBLISHED:
                continue
            data = json.loads(event.frame)["data"]
            if data.get("breaking"):
                jobs.append({**data, "queued_at": now})
        await self._store.queue(jobs, str(found[-1].id))

    async def _still_up(self, brief_id: str) -> bool:
        brief = await self._content.get_brief(brief_id)
        return brief is not None and brief.breaking

    async def _push(self, client: httpx.AsyncClient, job: dict[str, Any]) -> None:
        brief_id = str(job["id"])
        # Old news is not pushed: a brief found late (no dispatcher ran) past the window is
        # dropped, as is a job a crashed cluster left behind.
        try:
            published = models.time_ms(str(job.get("published_at"))) / 1000
        except ValueError:
            published = 0.0  # not a brief we wrote: drop it rather than retry it forever
        if time.time() - published > limits.PUSH_WINDOW:
            logger.info("push of brief %s dropped: older than the push window", brief_id)
            await self._store.finish(brief_id)
            return
        current = await self._content.get_brief(brief_id)
        if current is None or not current.breaking:
            logger.info("push of brief %s cancelled: retracted or no longer breaking", brief_id)
            await self._store.finish(brief_id)
            return
        # The brief as it stands now: a correction made before the push goes out is pushed.
        data = message.payload(current.to_json())
        cancelled = asyncio.Event()
        watcher = asyncio.create_task(self._watch(brief_id, cancelled))
        try:
            await self._push_all(client, brief_id, data, cancelled)
        finally:
            await stop_tasks([watcher])
        if cancelled.is_set():
            logger.info("push of brief %s cancelled: retracted or no longer breaking", brief_id)
        await self._store.finish(brief_id)

    async def _watch(self, brief_id: str, cancelled: asyncio.Event) -> None:
        while True:
            if not await self._still_up(brief_id):
                cancelled.set()
                return
            await asyncio.sleep(limits.PUSH_CANCEL_CHECK)

    async def _push_all(
        self, client: httpx.AsyncClient, brief_id: str, data: bytes, cancelled: asyncio.Event
    ) -> None:
        done = await self._store.marks(brief_id)
        slots = asyncio.Semaphore(limits.PUSH_CONCURRENCY)
        sends: set[asyncio.Task[None]] = set()
        try:
            cursor = 0
            while not cancelled.is_set():
                cursor, batch = await self._store.scan(cursor)
                for sid, record in batch:
                    if sid in done:
                        continue
                    done.add(sid)  # HSCAN may return an entry twice
                    await slots.acquire()
                    if cancelled.is_set():
                        slots.release()
                        break
                    sub = PushSubscription.from_record(record)
                    send = self._send(client, brief_id, sid, sub, data, cancelled, slots)
                    sends.add(asyncio.create_task(send))
                if cursor == 0:
                    break
            if sends:
                await asyncio.gather(*sends)
        finally:
            await stop_tasks(list(sends))

    async def _send(
        self,
        client: httpx.AsyncClient,
        brief_id: str,
        sid: str,
        sub: PushSubscription,
        data: bytes,
        cancelled: asyncio.Event,
        slots: asyncio.Semaphore,
    ) -> None:
        """Deliver to one subscription; holds a slot except while waiting to retry."""
        try:
            for attempt in range(1, limits.PUSH_ATTEMPTS + 1):
                if cancelled.is_set():
                    return
                status, wait = await self._sender.post(client, brief_id, sub, data)
                if status in _DELIVERED:
                    await self._outcome(brief_id, sid, SENT)
                    return
                if status in _GONE:
                    await self._outcome(brief_id, sid, REMOVED)
                    return
                retryable = status is None or status == 429 or status >= 500
                if not retryable or attempt == limits.PUSH_ATTEMPTS:
                    logger.info("push to %s failed (%s)", _audience(sub.endpoint), status)
                    await self._outcome(brief_id, sid, FAILED)
                    return
                if wait is None:
                    base = limits.PUSH_BACKOFF_MIN * 2 ** (attempt - 1)
                    wait = base * (1 + random.random() / 2)
                self._stats.pushes["retried"] += 1
                slots.release()
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(cancelled.wait(), wait)
                finally:
                    await slots.acquire()
        finally:
            slots.release()

    async def _outcome(self, brief_id: str, sid: str, outcome: str) -> None:
        await self._store.mark(brief_id, sid, outcome)
        self._stats.pushes[outcome] += 1
