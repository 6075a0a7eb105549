// The moderation queue: pending comments, then reported ones by report count, live across
// every editor and process (each "queue" record makes the page refetch the queue), with
// keys: j/k move, a approve, h hide, f feature. The badge in the navigation counts it.

import { $, $$, getJSON, send } from "./common.js";
import { timeElement } from "../live/render.js";

const KEYS = { a: "approve", h: "hide", f: "feature" };

/** The navigation badge: how many comments wait, on every desk page. */
export function showQueueCount(count) {
  for (const badge of $$('[data-desk="queue-badge"]')) {
    badge.textContent = String(count);
    badge.hidden = count === 0;
  }
}

export async function refreshQueueCount() {
  const listing = await getJSON("/editor/data/queue");
  showQueueCount(listing.count);
  return listing;
}

function actionForm(comment, action, label) {
  const form = document.createElement("form");
  form.method = "post";
  form.action = `/editor/moderation/${encodeURIComponent(comment.article)}/${encodeURIComponent(comment.id)}/${action}`;
  form.dataset.desk = "queue-action";
  form.dataset.action = action;
  const button = document.createElement("button");
  button.type = "submit";
  button.className = "button button--small";
  if (action === "hide") button.classList.add("button--danger");
  else if (action !== "approve") button.classList.add("button--quiet");
  button.textContent = label;
  form.append(button);
  return form;
}

export class Queue {
  constructor(list, { titles = {}, empty = null } = {}) {
    this.list = list;
    this.titles = { ...titles };
    this.empty = empty;
    this.selected = null; // "<slug>/<id>"
    this.refetching = null;
    this.again = false;
    list.addEventListener("submit", (event) => {
      const form = event.target.closest('[data-desk="queue-action"]');
      if (!form) return;
      event.preventDefault();
      this.act(form);
    });
    list.addEventListener("focusin", (event) => {
      const item = event.target.closest("[data-comment-id]");
      if (item) this.select(item, { focus: false });
    });
    document.addEventListener("keydown", (event) => this.onKey(event));
    const first = list.firstElementChild;
    if (first) this.select(first, { focus: false });
  }

  ref(item) {
    return `${item.dataset.article}/${item.dataset.commentId}`;
  }

  items() {
    return [...this.list.children];
  }

  select(item, { focus = true } = {}) {
    for (const other of this.items()) other.classList.toggle("queue-item--selected", other === item);
    this.selected = item ? this.ref(item) : null;
    if (item && focus) item.focus();
  }

  current() {
    return this.items().find((item) => this.ref(item) === this.selected) || null;
  }

  onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest?.("input, textarea, select, [contenteditable]")) return;
    const items = this.items();
    if (!items.length) return;
    const at = items.indexOf(this.current());
    if (event.key === "j" || event.key === "k") {
      event.preventDefault();
      const next = event.key === "j" ? Math.min(items.length - 1, at + 1) : Math.max(0, at - 1);
      this.select(items[next]);
      return;
    }
    const action = KEYS[event.key];
    const form = this.current()?.querySelector(`[data-action="${action}"]`);
    if (!action || !form) return;
    event.preventDefault();
    this.act(form);
  }

  async act(form) {
    const item = form.closest("[data-comment-id]");
    const button = $("button", form);
    button.disabled = true;
    const result = await send(form.action);
    if (!result.ok) {
      button.disabled = false;
      button.title = result.message;
      button.textContent = `${button.textContent.replace(/ \(failed.*$/, "")} (failed: try again)`;
      return;
    }
    // Move on to the next comment, like a mail client; the refetch confirms it.
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    if (next) this.select(next);
    this.updateEmpty();
    this.refetch();
  }

  /** Refetch the whole queue (coalesced: one fetch at a time, one more if asked meanwhile). */
  async refetch() {
    if (this.refetching) {
      this.again = true;
      return;
    }
    this.refetching = true;
    try {
      do {
        this.again = false;
        const listing = await refreshQueueCount();
        this.replaceAll(listing.items, listing.articles);
      } while (this.again);
    } catch (error) {
      console.warn("livefeed desk: refetch of the queue failed", error);
    } finally {
      this.refetching = null;
    }
  }

  replaceAll(items, titles = {}) {
    Object.assign(this.titles, titles);
    const selected = this.selected;
    this.list.replaceChildren(...items.map((item) => this.render(item)));
    const keep = this.items().find((item) => this.ref(item) === selected);
    this.select(keep || this.list.firstElementChild, { focus: Boolean(keep) && this.list.contains(document.activeElement) });
    this.updateEmpty();
  }

  render(entry) {
    const item = document.createElement("li");
    item.className = `queue-item queue-item--${entry.state}`;
    item.tabIndex = -1;
    item.dataset.commentId = entry.id;
    item.dataset.article = entry.article;
    item.dataset.state = entry.state;
    const meta = document.createElement("p");
    meta.className = "desk-comment__meta";
    const state = document.createElement("strong");
    state.className = "queue-item__state";
    state.dataset.desk = "queue-state";
    state.textContent = entry.state === "pending" ? "Awaiting moderation" : `Reported ${entry.reports} ${entry.reports === 1 ? "time" : "times"}`;
    const author = document.createElement("span");
    author.className = "desk-comment__author";
    author.textContent = entry.author;
    const link = document.createElement("a");
    link.href = `/articles/${encodeURIComponent(entry.article)}#comment-${encodeURIComponent(entry.id)}`;
    link.textContent = this.titles[entry.article] || entry.article;
    meta.append(state, " ", author, " ", timeElement(entry.created_at), " on ", link);
    const text = document.createElement("p");
    text.className = "desk-comment__text";
    text.textContent = entry.text;
    item.append(meta, text);
    const reasons = Object.entries(entry.reasons || {});
    if (reasons.length) {
      const line = document.createElement("p");
      line.className = "queue-item__reasons desk-hint";
      const parts = reasons.map(([reason, n]) => `${reason.replace("_", " ")} ${n}`);
      for (const note of entry.notes || []) parts.push(`“${note}”`);
      line.textContent = parts.join(" · ");
      item.append(line);
    }
    const actions = document.createElement("div");
    actions.className = "desk-comment__actions queue-item__actions";
    const choices =
      entry.state === "pending"
        ? [["approve", "Approve"]]
        : [["feature", "Feature"], ["clear-reports", "Clear reports"]];
    for (const [action, label] of [...choices, ["hide", "Hide"]]) {
      actions.append(actionForm(entry, action, label));
    }
    item.append(actions);
    return item;
  }

  updateEmpty() {
    if (this.empty) this.empty.hidden = this.list.children.length > 0;
  }
}
