// Rendering live briefs: DOM built with textContent only, never HTML from the server.
// The markup mirrors templates/_brief.html so server- and client-made items look alike.

const pad = (n) => String(n).padStart(2, "0");

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * `14:11` in the reader's time zone for the last 24 hours (a live feed's time of day),
 * `9 May` for anything older; the full date and time are in the element's title.
 */
export function formatClock(date, now = new Date()) {
  if (Math.abs(now.getTime() - date.getTime()) < DAY_MS) {
    return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }
  return date.toLocaleDateString(undefined, { day: "numeric", month: "short" });
}

export function formatDateTime(date) {
  return date.toLocaleString(undefined, { dateStyle: "long", timeStyle: "short" });
}

/** Rewrite a server-rendered `<time datetime>` (UTC) into the reader's local time. */
export function localizeTime(element) {
  const date = new Date(element.getAttribute("datetime"));
  if (Number.isNaN(date.getTime())) return;
  element.textContent =
    element.dataset.format === "datetime" ? formatDateTime(date) : formatClock(date);
  element.title = formatDateTime(date);
}

export function localizeTimes(root) {
  for (const element of root.querySelectorAll("time[datetime]")) localizeTime(element);
}

export function timeElement(iso, className) {
  const time = document.createElement("time");
  if (className) time.className = className;
  time.setAttribute("datetime", iso);
  time.textContent = iso;
  localizeTime(time);
  return time;
}

export function articleHref(slug) {
  return `/articles/${encodeURIComponent(slug)}`;
}

/** The contents of one brief's `<li>` (also used to correct it in place). */
function fillBrief(item, brief) {
  item.className = brief.breaking ? "brief brief--breaking" : "brief";
  item.dataset.briefId = brief.id;
  item.replaceChildren();
  item.append(timeElement(brief.published_at, "brief__time"));
  const body = document.createElement("p");
  body.className = "brief__body";
  if (brief.breaking) {
    const label = document.createElement("strong");
    label.className = "brief__label";
    label.textContent = "Breaking";
    body.append(label, " ");
  }
  const text = document.createElement(brief.article ? "a" : "span");
  text.className = "brief__text";
  text.textContent = brief.text;
  if (brief.article) text.href = articleHref(brief.article);
  body.append(text);
  if (brief.article) {
    // The linked article's comment count: filled in from the page, then by comments.count.
    const count = document.createElement("span");
    count.className = "brief__comments";
    count.dataset.commentCount = brief.article;
    const known = document.querySelector(`.brief__comments[data-comment-count="${CSS.escape(brief.article)}"]:not([hidden])`);
    if (known) count.textContent = known.textContent;
    else count.hidden = true;
    body.append(" ", count);
  }
  if (brief.updated_at && brief.updated_at !== brief.published_at) {
    const mark = document.createElement("span");
    mark.className = "brief__updated";
    mark.append("Updated ", timeElement(brief.updated_at));
    body.append(" ", mark);
  }
  item.append(body);
  return item;
}

export function briefElement(brief) {
  return fillBrief(document.createElement("li"), brief);
}

function publishedAt(item) {
  return item.querySelector(".brief__time")?.getAttribute("datetime") || "";
}

function prefersReducedMotion() {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}

export function highlight(element, className) {
  if (prefersReducedMotion()) return;
  element.classList.add(className);
  element.addEventListener("animationend", () => element.classList.remove(className), {
    once: true,
  });
}

/** The dismissible banner at the top of the page for breaking briefs. */
export class BreakingBanner {
  constructor(root) {
    this.root = root;
    this.text = root?.querySelector('[data-live="breaking-text"]');
    this.briefId = null;
    this.dismissed = new Set();
    root
      ?.querySelector('[data-live="breaking-dismiss"]')
      ?.addEventListener("click", () => this.dismiss());
  }

  show(brief) {
    if (!this.root || this.dismissed.has(brief.id)) return;
    this.briefId = brief.id;
    this.root.dataset.briefId = brief.id;
    const content = document.createElement(brief.article ? "a" : "span");
    content.textContent = brief.text;
    if (brief.article) content.href = articleHref(brief.article);
    this.text.replaceChildren(content);
    this.root.hidden = false;
  }

  /** A correction or retraction of the brief on show. */
  change(brief) {
    if (brief.id !== this.briefId) return;
    if (brief.breaking) this.show(brief);
    else this.hide();
  }

  remove(id) {
    if (id === this.briefId) this.hide();
  }

  dismiss() {
    if (this.briefId) this.dismissed.add(this.briefId);
    this.hide();
  }

  hide() {
    if (!this.root) return;
    this.root.hidden = true;
    this.briefId = null;
    delete this.root.dataset.briefId;
  }
}

/**
 * The live list of briefs, newest first.
 *
 * A new brief goes straight in (highlighted) only when the reader can see the top of the
 * list; otherwise it waits behind an "N new briefs" pill and a "(N)" in the title, so
 * nothing moves under the reader's eyes.
 */
export class BriefList {
  constructor(list, { limit = 0, pill = null, empty = null, banner = null } = {}) {
    this.list = list;
    this.limit = limit;
    this.pill = pill;
    this.empty = empty;
    this.banner = banner;
    this.pending = new Map(); // id -> brief, oldest first
    this.baseTitle = document.title;
    this.topInView = true;
    this.pill?.addEventListener("click", () => this.showPending({ scroll: true }));
    this.watchTop();
  }

  watchTop() {
    const sentinel = document.createElement("div");
    sentinel.className = "briefs__top";
    sentinel.setAttribute("aria-hidden", "true");
    (this.pill || this.list).before(sentinel);
    const rect = sentinel.getBoundingClientRect();
    this.topInView = rect.bottom >= 0 && rect.top <= window.innerHeight;
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((entries) => {
        for (const entry of entries) this.topInView = entry.isIntersecting;
      }).observe(sentinel);
    }
  }

  canInsertNow() {
    return document.visibilityState === "visible" && this.topInView && this.pending.size === 0;
  }

  find(id) {
    for (const item of this.list.children) if (item.dataset.briefId === id) return item;
    return null;
  }

  has(id) {
    return this.pending.has(id) || this.find(id) !== null;
  }

  published(brief) {
    if (brief.breaking && this.banner) this.banner.show(brief);
    if (this.has(brief.id)) return; // a replay after reconnect: shown already
    if (this.canInsertNow()) {
      this.insert(brief, { highlight: true });
    } else {
      this.pending.set(brief.id, brief);
      this.updatePending();
    }
  }

  updated(brief) {
    this.banner?.change(brief);
    if (this.pending.has(brief.id)) {
      this.pending.set(brief.id, brief);
      return;
    }
    const item = this.find(brief.id);
    if (item) {
      fillBrief(item, brief);
      highlight(item, "brief--new");
    }
  }

  deleted(id) {
    this.banner?.remove(id);
    if (this.pending.delete(id)) this.updatePending();
    this.find(id)?.remove();
    this.updateEmpty();
  }

  /** Replace everything with a fresh list (newest first), after a refetch. */
  replaceAll(briefs) {
    this.pending.clear();
    this.list.replaceChildren(...briefs.map(briefElement));
    this.trim();
    this.updatePending();
    this.updateEmpty();
  }

  /** Older briefs from "load more", at the end, skipping any already shown. */
  appendOlder(briefs) {
    for (const brief of briefs) if (!this.has(brief.id)) this.list.append(briefElement(brief));
    this.updateEmpty();
  }

  showPending({ scroll = false } = {}) {
    for (const brief of this.pending.values()) this.insert(brief, { highlight: true });
    this.pending.clear();
    this.updatePending();
    if (scroll) {
      this.list.scrollIntoView({
        block: "start",
        behavior: prefersReducedMotion() ? "auto" : "smooth",
      });
      this.list.querySelector("a, [tabindex]")?.focus({ preventScroll: true });
    }
  }

  insert(brief, { highlight: flash = false } = {}) {
    const item = briefElement(brief);
    // Newest first by publication time; replays arrive in order, this also orders stragglers.
    const before = [...this.list.children].find((other) => publishedAt(other) <= brief.published_at);
    this.list.insertBefore(item, before || null);
    if (flash) highlight(item, "brief--new");
    this.trim();
    this.updateEmpty();
  }

  trim() {
    if (this.limit <= 0) return;
    while (this.list.children.length > this.limit) this.list.lastElementChild.remove();
  }

  updatePending() {
    const count = this.pending.size;
    if (this.pill) {
      this.pill.hidden = count === 0;
      this.pill.textContent = count === 1 ? "1 new brief" : `${count} new briefs`;
    }
    document.title = count ? `(${count}) ${this.baseTitle}` : this.baseTitle;
  }

  updateEmpty() {
    if (this.empty) this.empty.hidden = this.list.children.length > 0;
  }
}
