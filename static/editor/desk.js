// The editor pages' script: wires each page to the live feed. The briefs come over the
// reader's own live client (static/live/connection.js: WebSocket, then SSE, resumable);
// comments of every article, credits and reader counts over the desk's stream.

import { Connection } from "../live/connection.js";
import { localizeTimes, timeElement } from "../live/render.js";
import { DeskBriefs } from "./briefs.js";
import { $, $$, getJSON, readConfig, safely, showSignedOut } from "./common.js";
import { CommentSwitches, Moderation } from "./moderation.js";
import { PublishForm } from "./publish.js";
import { Queue, refreshQueueCount } from "./queue.js";
import { DeskStream } from "./stream.js";

const STATE_TEXT = { connected: "Live", reconnecting: "Reconnecting…", offline: "Offline" };
const CLOSED_COMMENTS = "closed comments";
const OPENED_COMMENTS = "opened comments";

function showStatus(state) {
  const status = $('[data-live="status"]');
  if (!status) return;
  status.hidden = false;
  status.dataset.state = state;
  const text = status.querySelector('[data-live="status-text"]');
  if (text) text.textContent = STATE_TEXT[state] || state;
}

// What the desk log says an editor did (as templates/editor/desk.html via views.did).
const DID = {
  "brief published": "published",
  "brief corrected": "corrected",
  "brief retracted": "retracted",
  "article created": "created the article",
  "article updated": "updated the article",
  "article closed comments": "closed comments on",
  "article opened comments": "opened comments on",
  "comment hidden": "hid the comment",
  "comment approved": "approved the comment",
  "comment featured": "featured the comment",
  "comment unfeatured": "unfeatured the comment",
  "comment cleared reports": "cleared the reports on",
  "article comment mode": "set the comment mode of",
};
const ACTIVITY_SHOWN = 20;

/** A new line at the top of the desk log, as editors act (on any process). */
function showActivity(entry) {
  const list = $('[data-desk="activity"]');
  if (!list) return;
  const item = document.createElement("li");
  const who = document.createElement("strong");
  who.textContent = entry.editor;
  const what = document.createElement("span");
  what.className = "desk-activity__what";
  what.textContent = entry.summary;
  const did = DID[`${entry.kind} ${entry.action}`] || `${entry.action} (${entry.kind})`;
  item.append(timeElement(entry.at), " ", who, ` ${did} `, what);
  list.prepend(item);
  while (list.children.length > ACTIVITY_SHOWN) list.lastElementChild.remove();
  const empty = $('[data-desk="activity-empty"]');
  if (empty) empty.hidden = true;
}

/** Readers connected now: the total, and per article wherever the page shows one. */
function showReaders(readers, titles) {
  for (const element of $$('[data-desk="readers-total"], [data-desk="readers-total-big"]')) {
    element.textContent = String(readers.total);
  }
  const list = $('[data-desk="readers-articles"]');
  if (list) {
    const top = Object.entries(readers.articles).slice(0, 10);
    list.replaceChildren(
      ...top.map(([slug, count]) => {
        const item = document.createElement("li");
        const link = document.createElement("a");
        link.href = `/articles/${encodeURIComponent(slug)}`;
        link.textContent = titles[slug] || slug;
        const number = document.createElement("span");
        number.className = "desk-count";
        number.dataset.readersArticle = slug;
        number.textContent = String(count);
        item.append(link, " ", number);
        return item;
      }),
    );
    const empty = $('[data-desk="readers-articles-empty"]');
    if (empty) empty.hidden = top.length > 0;
  }
  for (const element of $$("[data-readers-article]")) {
    element.textContent = String(readers.articles[element.dataset.readersArticle] || 0);
  }
}

function startDesk(config, stream) {
  const list = $('[data-desk="briefs"]');
  const briefs = new DeskBriefs(list, {
    briefs: config.briefs || [],
    empty: $('[data-desk="briefs-empty"]'),
    articleOptions: $('[data-desk="article"]'),
    max: config.max || 500,
  });
  const form = $('[data-desk="publish"]');
  if (form) {
    new PublishForm(form, { max: config.max || 500, onPublished: (b) => briefs.published(b) });
  }

  const refetch = async () => {
    const listing = await getJSON("/editor/data/briefs");
    briefs.replaceAll(listing.items);
    return listing.last_event_id;
  };
  const connection = new Connection(config.positions || { briefs: null });
  const apply = {
    "brief.published": (data) => briefs.published(data),
    "brief.updated": (data) => briefs.updated(data),
    "brief.deleted": (data) => briefs.deleted(data.id),
  };
  connection.addEventListener("state", (event) => showStatus(event.detail.state));
  connection.addEventListener("event", (event) => {
    safely(event.detail.type, () => apply[event.detail.type]?.(event.detail.data));
  });
  connection.addEventListener("subscribed", async (event) => {
    if (event.detail.recovered) return;
    try {
      const position = await refetch();
      connection.setPosition("briefs", position);
    } catch (error) {
      console.warn("livefeed desk: refetch of briefs failed", error);
    }
  });
  showStatus(connection.state);
  connection.start();

  stream.addEventListener("credit", (event) => {
    if (event.detail.kind === "brief") safely("credit", () => briefs.credit(event.detail));
    safely("activity", () => showActivity(event.detail));
  });
  // Credits sent while the desk stream was away are in the list: fetch it again.
  stream.addEventListener("reconnected", () => refetch().catch(() => {}));
  stream.addEventListener("signed-out", () => connection.stop());
}

function startComments(config, stream) {
  const moderation = new Moderation($('[data-desk="comments"]'), {
    titles: config.articles || {},
    empty: $('[data-desk="comments-empty"]'),
    discussions: $('[data-desk="discussions"]'),
  });
  let refetching = false;
  const refetch = async () => {
    if (refetching) return;
    refetching = true;
    try {
      const listing = await getJSON("/editor/data/comments");
      moderation.replaceAll(listing.items, listing.articles);
    } catch (error) {
      console.warn("livefeed desk: refetch of comments failed", error);
    } finally {
      refetching = false;
    }
  };
  stream.addEventListener("comment", (event) => {
    safely("comment", () => moderation.added(event.detail));
  });
  stream.addEventListener("credit", (event) => {
    const entry = event.detail;
    if (entry.kind === "comment" && entry.action === "hidden") {
      const [slug, id] = entry.id.split("/");
      safely("hidden", () => moderation.hidden(slug, id, entry.editor));
    }
  });
  stream.addEventListener("reconnected", refetch);
  // Each readers record names the newest comment anywhere: one we never got means a
  // notice was lost (a dropped pub/sub connection): refetch.
  stream.addEventListener("readers", (event) => {
    const latest = event.detail.latest_comment;
    if (!latest) return;
    const [slug, id] = latest.split("/");
    if (!moderation.row(slug, id)) refetch();
  });
  stream.addEventListener("state", (event) => showStatus(event.detail.state));
}

function startQueue(config, stream) {
  const queue = new Queue($('[data-desk="queue"]'), {
    titles: config.articles || {},
    empty: $('[data-desk="queue-empty"]'),
  });
  stream.addEventListener("queue", () => queue.refetch());
  stream.addEventListener("reconnected", () => queue.refetch());
  stream.addEventListener("state", (event) => showStatus(event.detail.state));
}

function start(config) {
  localizeTimes(document);
  const titles = config.articles || {};
  const switches = new CommentSwitches(document);
  const stream = new DeskStream();
  let hellos = 0;
  stream.addEventListener("hello", (event) => {
    showReaders(event.detail.readers, titles);
    if (hellos++ > 0) stream.dispatchEvent(new CustomEvent("reconnected"));
  });
  stream.addEventListener("readers", (event) => showReaders(event.detail.readers, titles));
  stream.addEventListener("credit", (event) => {
    const { kind, action, id } = event.detail;
    if (kind === "article" && (action === CLOSED_COMMENTS || action === OPENED_COMMENTS)) {
      switches.set(id, action === CLOSED_COMMENTS);
    }
  });
  stream.addEventListener("signed-out", () => showSignedOut());
  // The navigation badge on every desk page: counted now, and again as the queue changes.
  const count = () => refreshQueueCount().catch(() => {});
  if (config.page !== "queue") {
    stream.addEventListener("queue", count);
    stream.addEventListener("hello", count);
  }

  if (config.page === "desk") startDesk(config, stream);
  else if (config.page === "comments") startComments(config, stream);
  else if (config.page === "queue") startQueue(config, stream);
  else stream.addEventListener("state", (event) => showStatus(event.detail.state));
  stream.start();
}

const config = readConfig();
if (config) start(config);
