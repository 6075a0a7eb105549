"""The breaking-news service worker in Chromium: the opt-in button, push, notificationclick."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from playwright.async_api import expect

from tests.browser.conftest import BROWSER_TIMEOUT_MS, Opener, wait_live
from tests.helpers import wait_for

NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.ready;
  const shown = await registration.getNotifications();
  return shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }));
}"""


async def test_the_page_offers_notifications_without_asking_on_load(
    live_server: Any, open_page: Opener
) -> None:
    # Counts permission prompts instead of showing one.
    asked = (
        "window.__asked = 0;"
        "Notification.requestPermission = async () => { window.__asked++; return 'default'; };"
    )
    page = (await open_page(f"{live_server.url}/", init_script=asked)).page
    button = page.get_by_role("button", name="Notify me of breaking news")
    await expect(button).to_be_visible()
    await wait_live(page)
    assert await page.evaluate("window.__asked") == 0
    assert await page.evaluate("navigator.serviceWorker.getRegistration('/')") is None
    await button.click()
    await wait_for(lambda: _asked(page), what="the permission prompt after the click")


async def _asked(page: Any) -> bool:
    return bool(await page.evaluate("window.__asked") == 1)


async def test_push_shows_the_brief_and_a_click_opens_its_article(
    live_server: Any, open_page: Opener
) -> None:
    page = (await open_page(f"{live_server.url}/")).page
    await page.context.grant_permissions(["notifications"], origin=live_server.url)
    await page.evaluate("navigator.serviceWorker.register('/sw.js', { scope: '/' })")
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    await wait_for(lambda: _controlled(page), what="the worker to control the page")

    cdp = await page.context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    await cdp.send("ServiceWorker.enable")
    scope = live_server.url + "/"

    def registration_id() -> str | None:
        # The latest live registration of our scope (a first event may list one being set up).
        live = [r for r in registrations if not r.get("isDeleted") and r["scopeURL"] == scope]
        return live[-1]["registrationId"] if live else None

    await wait_for(lambda: registration_id() is not None, what="the worker's registration id")
    message = {
        "id": "brief1",
        "title": "Breaking news",
        "text": "Bridge reopens",
        "url": "/articles/bridge",
    }
    shown: list[dict[str, Any]] = []

    async def notified() -> bool:
        shown[:] = await page.evaluate(NOTIFICATIONS)
        return bool(shown)

    async def pushed_and_shown() -> bool:
        # Chromium drops a push delivered while the worker is still starting: deliver again
        # until it shows (one notification all the same: they share the brief's tag).
        await cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": scope, "registrationId": registration_id(), "data": json.dumps(message)},
        )
        with contextlib.suppress(AssertionError):
            await wait_for(notified, timeout=2.0, what="the notification")
        return bool(shown)

    # The worker wakes, parses and shows it in Chromium's own time: a browser's deadline.
    await wait_for(pushed_and_shown, timeout=BROWSER_TIMEOUT_MS / 1000, what="the notification")
    assert shown == [
        {
            "title": "Breaking news",
            "body": "Bridge reopens",
            "tag": "brief-brief1",
            "data": {"url": f"{live_server.url}/articles/bridge", "id": "brief1"},
        }
    ]

    worker = page.context.service_workers[0]
    await worker.evaluate(
        """async () => {
          const [notification] = await self.registration.getNotifications();
          self.dispatchEvent(new NotificationEvent("notificationclick", { notification }));
        }"""
    )
    await page.wait_for_url(f"{live_server.url}/articles/bridge", timeout=BROWSER_TIMEOUT_MS)
    assert await page.evaluate(NOTIFICATIONS) == []  # the click closed it


async def _controlled(page: Any) -> bool:
    return bool(await page.evaluate("Boolean(navigator.serviceWorker.controller)"))
