// Wires a page to the live feed: reads what the server embedded (topic positions taken with
// the lists it rendered), connects, and routes every event to its renderer.

import { Connection } from "./connection.js";
import { SharedConnection } from "./shared.js";
import { BreakingBanner, BriefList, localizeTime, localizeTimes } from "./render.js";
import { CommentForm, CommentList, commentCountText } from "./comments.js";

const STATE_TEXT = {
  connected: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};
const COMMENTS_PAGE = 50;
const BRIEFS_PAGE = 20;

const $ = (selector) => document.querySelector(selector);

function readConfig() {
  const block = document.getElementById("live-config");
  if (!block) return null;
  try {
    return JSON.parse(block.textContent);
  } catch (error) {
    console.warn("livefeed: unreadable live-config", error);
    return null;
  }
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return response.json();
}

function showStatus(state, transport) {
  const status = $('[data-live="status"]');
  if (!status) return;
  status.hidden = false;
  status.dataset.state = state;
  if (transport) status.dataset.transport = transport;
  const text = status.querySelector('[data-live="status-text"]');
  if (text) text.textContent = STATE_TEXT[state] || state;
}

function applyArticle(article) {
  const title = $('[data-live="article-title"]');
  if (title) title.textContent = article.title;
  const summary = $('[data-live="article-summary"]');
  if (summary) summary.textContent = article.summary;
  const body = $('[data-live="article-body"]');
  if (body) {
    body.replaceChildren(
      ...article.body.map((text) => {
        const paragraph = document.createElement("p");
        paragraph.textContent = text;
        return paragraph;
      }),
    );
  }
  const updated = $('[data-live="article-updated"]');
  const time = updated?.querySelector("time");
  if (updated && time && article.updated_at !== article.published_at) {
    time.setAttribute("datetime", article.updated_at);
    localizeTime(time);
    updated.hidden = false;
  }
}

function wireLoadMore(briefs) {
  const link = $('[data-live="load-more"]');
  if (!link) return;
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    const last = briefs.list.lastElementChild?.dataset.briefId;
    const url = new URL("/api/briefs", location.href);
    url.searchParams.set("limit", String(BRIEFS_PAGE));
    if (last) url.searchParams.set("before", last);
    try {
      const { items } = await getJSON(url.pathname + url.search);
      briefs.appendOlder(items);
      if (items.length < BRIEFS_PAGE) link.closest("p").hidden = true;
    } catch (error) {
      console.warn("livefeed: load more", error);
      window.location.href = link.href; // the plain link still works
    }
  });
}

function start(config) {
  localizeTimes(document);
  const slug = config.slug || null;
  const banner = new BreakingBanner($('[data-live="breaking"]'));
  const briefs = new BriefList($('[data-live="briefs"]'), {
    limit: config.briefsLimit || 0,
    pill: $('[data-live="new-briefs"]'),
    empty: $('[data-live="briefs-empty"]'),
    banner,
  });
  wireLoadMore(briefs);

  let comments = null;
  const commentList = $('[data-live="comments"]');
  if (slug && commentList) {
    comments = new CommentList(commentList, {
      slug,
      count: $('[data-live="comment-count"]'),
      earlier: $('[data-live="earlier-comments"]'),
      more: Boolean(config.commentsMore),
    });
    const form = $('form[data-live="comment-form"]');
    if (form) new CommentForm(form, { slug, list: comments });
  }

  const commentsTopic = slug ? `comments:${slug}` : null;
  const articleTopic = slug ? `article:${slug}` : null;

  const apply = {
    "brief.published": (data) => briefs.published(data),
    "brief.updated": (data) => briefs.updated(data),
    "brief.deleted": (data) => briefs.deleted(data.id),
    "comment.created": (data) => comments?.add(data),
    "comment.deleted": (data) => comments?.remove(data.id),
    "comment.updated": (data) => comments?.update(data),
    "article.updated": (data) => {
      if (data.slug === slug) applyArticle(data);
    },
    "comments.count": (data) => {
      if (data.article === slug) comments?.setCount(data.count);
      for (const element of document.querySelectorAll("[data-comment-count]")) {
        if (element.dataset.commentCount === data.article) {
          const words = commentCountText(data.count);
          element.textContent = element.classList.contains("brief__comments") ? `· ${words}` : words;
          element.hidden = false;
        }
      }
    },
  };

  // While a topic is refetched, its live events are applied and also kept, then applied
  // again on top of the fresh list: every change is idempotent, so the result is current.
  const refetching = new Map(); // topic -> events seen during the refetch

  function dispatch(event) {
    refetching.get(event.topic)?.push(event);
    try {
      apply[event.type]?.(event.data);
    } catch (error) {
      console.warn("livefeed: could not render", event.type, error);
    }
  }

  const refetchers = {
    briefs: async () => {
      const limit = config.briefsLimit || BRIEFS_PAGE;
      const listing = await getJSON(`/api/briefs?limit=${limit}`);
      briefs.replaceAll(listing.items);
      return listing.last_event_id;
    },
  };
  if (slug) {
    const path = `/api/articles/${encodeURIComponent(slug)}`;
    refetchers[commentsTopic] = async () => {
      const listing = await getJSON(`${path}/comments?limit=${COMMENTS_PAGE}`);
      comments?.replaceAll(listing.items, listing.featured, listing.items.length === COMMENTS_PAGE);
      return listing.last_event_id;
    };
    refetchers[articleTopic] = async () => {
      applyArticle(await getJSON(path));
      return null; // an article carries no position: the next live event gives one
    };
  }

  async function refetch(topic) {
    const fetcher = refetchers[topic];
    if (!fetcher || refetching.has(topic)) return;
    const seen = [];
    refetching.set(topic, seen);
    try {
      const position = await fetcher();
      refetching.delete(topic); // replaying must not record again
      for (const event of seen) dispatch(event);
      // A live event seen meanwhile is a position at least as safe as the list's.
      if (position && seen.length === 0) connection.setPosition(topic, position);
    } catch (error) {
      console.warn("livefeed: refetch of", topic, "failed", error);
    } finally {
      refetching.delete(topic);
    }
  }

  // The tabs of one browser share one connection where the browser can coordinate them.
  const Live = SharedConnection.supported() ? SharedConnection : Connection;
  const connection = new Live(config.positions || { briefs: null });
  connection.addEventListener("role", (event) => {
    const status = $('[data-live="status"]');
    if (status) status.dataset.role = event.detail.role;
  });
  connection.addEventListener("state", (event) => showStatus(event.detail.state, connection.kind));
  connection.addEventListener("event", (event) => dispatch(event.detail));
  connection.addEventListener("subscribed", (event) => {
    if (!event.detail.recovered) refetch(event.detail.topic);
  });
  showStatus(connection.state, null);
  connection.start();
}

const config = readConfig();
if (config) start(config);
