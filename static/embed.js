// The live "Read next" column for pages on other sites (origins in LIVEFEED_ALLOWED_ORIGINS).
//
//   <div data-livefeed-read-next></div>
//   <script type="module" src="https://live.example.com/static/embed.js"></script>
//
// or, to choose the element and the number of briefs:
//
//   import { mountReadNext } from "https://live.example.com/static/embed.js";
//   mountReadNext(document.querySelector("#news"), { limit: 5 });
//
// The column lives in a shadow root, so the host page's styles do not leak in; the host
// styles it through CSS custom properties set on the element (they inherit into it):
//   --livefeed-font, --livefeed-color, --livefeed-background, --livefeed-accent,
//   --livefeed-muted, --livefeed-border, --livefeed-breaking.
// It connects over WebSocket, falls back to Server-Sent Events, and resumes from the last
// event it saw after a reconnect (the same Connection the livefeed pages use).

import { Connection, SseTransport, WebSocketTransport } from "./live/connection.js";
import { briefElement } from "./live/render.js";

const SERVER = new URL("..", import.meta.url); // this module is served from <server>/static/
const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 50;

class EmbedWebSocket extends WebSocketTransport {
  static kind = "websocket";
  constructor(handlers) {
    super(handlers, new URL("ws", SERVER).href);
  }
}

class EmbedSse extends SseTransport {
  static kind = "sse";
  constructor(handlers) {
    super(handlers, new URL("events", SERVER).href);
  }
}

const STYLE = `
:host { display: block; font: var(--livefeed-font, 15px/1.45 system-ui, sans-serif);
  color: var(--livefeed-color, inherit); background: var(--livefeed-background, transparent); }
.head { font-weight: 700; margin: 0 0 .5em; }
ol { list-style: none; margin: 0; padding: 0; }
li { padding: .5em 0; border-top: 1px solid var(--livefeed-border, rgba(127,127,127,.3)); }
.brief__time { display: block; font-size: .8em; color: var(--livefeed-muted, #666); }
.brief__body { margin: .1em 0 0; }
.brief__label { color: var(--livefeed-breaking, #b00020); text-transform: uppercase; font-size: .8em; }
a { color: var(--livefeed-accent, #0b57d0); text-decoration: none; }
a:hover { text-decoration: underline; }
.brief__updated { font-size: .8em; color: var(--livefeed-muted, #666); }
.empty { color: var(--livefeed-muted, #666); }
`;

function styleSheet() {
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(STYLE); // a constructed sheet: allowed under the host's style-src
  return sheet;
}

/** Links rendered by the shared renderer are site-relative: point them at this server. */
function absolutize(item) {
  for (const link of item.querySelectorAll("a[href]")) {
    link.href = new URL(link.getAttribute("href"), SERVER).href;
    link.target = "_top";
  }
  return item;
}

async function latest(limit) {
  const response = await fetch(new URL(`api/briefs?limit=${limit}`, SERVER), {
    headers: { Accept: "application/json" },
    credentials: "omit",
  });
  if (!response.ok) throw new Error(`livefeed: /api/briefs answered ${response.status}`);
  return response.json();
}

/** Render the live column into `element`; returns an object with stop(). */
export async function mountReadNext(element, { limit = DEFAULT_LIMIT, title = "Read next" } = {}) {
  limit = Math.max(1, Math.min(MAX_LIMIT, Number(limit) || DEFAULT_LIMIT));
  const root = element.shadowRoot || element.attachShadow({ mode: "open" });
  root.adoptedStyleSheets = [styleSheet()];
  const heading = document.createElement("p");
  heading.className = "head";
  heading.part = "title";
  heading.textContent = title;
  const list = document.createElement("ol");
  list.className = "briefs";
  list.setAttribute("aria-live", "polite");
  const empty = document.createElement("p");
  empty.className = "empty";
  empty.textContent = "No briefs yet.";
  root.replaceChildren(heading, list, empty);

  const find = (id) => [...list.children].find((item) => item.dataset.briefId === id) || null;
  const settle = () => {
    while (list.children.length > limit) list.lastElementChild.remove();
    empty.hidden = list.children.length > 0;
  };
  const replaceAll = (items) => {
    list.replaceChildren(...items.map((brief) => absolutize(briefElement(brief))));
    settle();
  };
  const apply = {
    "brief.published": (brief) => {
      if (!find(brief.id)) list.prepend(absolutize(briefElement(brief)));
    },
    "brief.updated": (brief) => find(brief.id)?.replaceWith(absolutize(briefElement(brief))),
    "brief.deleted": ({ id }) => find(id)?.remove(),
  };

  const first = await latest(limit);
  replaceAll(first.items);
  const connection = new Connection(
    { briefs: first.last_event_id },
    { transports: [EmbedWebSocket, EmbedSse] },
  );
  connection.addEventListener("event", ({ detail }) => {
    if (detail.topic !== "briefs") return;
    apply[detail.type]?.(detail.data);
    settle();
  });
  connection.addEventListener("subscribed", async ({ detail }) => {
    if (detail.recovered) return;
    try {
      const fresh = await latest(limit); // too far behind to replay: start from the list
      replaceAll(fresh.items);
      connection.setPosition("briefs", fresh.last_event_id);
    } catch (error) {
      console.warn("livefeed: refetch failed", error);
    }
  });
  connection.addEventListener("state", ({ detail }) => {
    element.dataset.livefeedState = detail.state;
    if (connection.kind) element.dataset.livefeedTransport = connection.kind;
  });
  connection.start();
  return { connection, stop: () => connection.stop() };
}

for (const element of document.querySelectorAll("[data-livefeed-read-next]")) {
  mountReadNext(element, { limit: element.dataset.limit || DEFAULT_LIMIT }).catch((error) =>
    console.warn("livefeed: could not embed Read next", error),
  );
}
