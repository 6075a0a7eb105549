// The service worker for breaking-news notifications (served at /sw.js, scope "/").
// It does nothing but Web Push: no caching, no fetch handler, so pages load as they would
// without it.

const FALLBACK_TITLE = "Breaking news";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function extend(event, promise) {
  try {
    event.waitUntil(promise);
  } catch {
    // an event dispatched by script (a test) cannot extend the worker's life; it still runs
  }
  return promise;
}

function readMessage(data) {
  if (!data) return {};
  try {
    const message = data.json();
    return message && typeof message === "object" ? message : {};
  } catch {
    return { text: data.text() };
  }
}

/** A page of this site only: a message can never send the reader elsewhere. */
function sameOriginUrl(path) {
  const url = new URL(typeof path === "string" ? path : "/", self.location.origin);
  return url.origin === self.location.origin ? url.href : new URL("/", self.location.origin).href;
}

self.addEventListener("push", (event) => {
  const message = readMessage(event.data);
  const title = typeof message.title === "string" ? message.title : FALLBACK_TITLE;
  const options = {
    body: typeof message.text === "string" ? message.text : "",
    // One notification per brief: a message sent twice replaces, never stacks.
    tag: message.id ? `brief-${message.id}` : "breaking",
    data: { url: sameOriginUrl(message.url), id: message.id || null },
    timestamp: message.published_at ? Date.parse(message.published_at) : Date.now(),
  };
  extend(event, self.registration.showNotification(title, options));
});

async function openPage(url) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const showing = windows.find((client) => client.url === url);
  if (showing) return showing.focus();
  try {
    const opened = await self.clients.openWindow(url);
    if (opened) return opened;
  } catch {
    // no window may be opened here (not from a click): reuse one of ours instead
  }
  const ours = windows.find((client) => "navigate" in client);
  if (ours) {
    const navigated = await ours.navigate(url);
    try {
      await navigated?.focus();
    } catch {
      // focusing needs a click as well; the page is on the brief either way
    }
    return navigated;
  }
  return null;
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  extend(event, openPage(sameOriginUrl(event.notification.data?.url)));
});
