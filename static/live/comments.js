// Live comments and the comment form. Comment text is always set with textContent.

import { highlight, timeElement } from "./render.js";

const AUTHOR_KEY = "livefeed.author";
const PAGE_SIZE = 50;

export function commentCountText(count) {
  return count === 1 ? "1 comment" : `${count} comments`;
}

const REPORT_REASONS = [
  ["spam", "Spam"],
  ["abuse", "Abusive"],
  ["off_topic", "Off topic"],
  ["other", "Other"],
];

function actionButton(label, name) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "comment__action";
  button.dataset.live = name;
  button.textContent = label;
  return button;
}

/** One comment's `<li>`, as templates/_comment.html renders it. */
export function commentElement(comment, { pending = false } = {}) {
  const item = document.createElement("li");
  item.className = "comment";
  if (comment.reply_to) item.classList.add("comment--reply");
  else item.dataset.createdAt = comment.created_at;
  item.dataset.commentId = comment.id;
  item.id = `comment-${comment.id}`;
  const meta = document.createElement("p");
  meta.className = "comment__meta";
  const author = document.createElement("span");
  author.className = "comment__author";
  author.textContent = comment.author;
  meta.append(author, " ", timeElement(comment.created_at, "comment__time"));
  const text = document.createElement("p");
  text.className = "comment__text";
  text.textContent = comment.text;
  item.append(meta, text);
  if (pending) {
    item.classList.add("comment--pending");
    item.dataset.pending = "true";
    const mark = document.createElement("p");
    mark.className = "comment__pending";
    mark.dataset.live = "pending-mark";
    mark.textContent = "Awaiting moderation: only you can see this comment for now.";
    item.append(mark);
  } else {
    const actions = document.createElement("p");
    actions.className = "comment__actions";
    if (!comment.reply_to && document.getElementById("comment-form")) {
      const reply = document.createElement("a");
      reply.className = "comment__action";
      reply.dataset.live = "reply";
      reply.href = `?reply_to=${encodeURIComponent(comment.id)}#comment-form`;
      reply.textContent = "Reply";
      actions.append(reply);
    }
    actions.append(actionButton("Report", "report"));
    if (!comment.reply_to) {
      const count = document.createElement("span");
      count.className = "comment__reply-count";
      count.dataset.live = "reply-count";
      actions.append(count);
      setReplyCount(count, comment.reply_count || 0);
    }
    item.append(actions);
  }
  if (!comment.reply_to) {
    const replies = document.createElement("ol");
    replies.className = "comment__replies";
    replies.dataset.live = "replies";
    item.append(replies);
    for (const reply of comment.replies || []) replies.append(commentElement(reply));
  }
  setFeatured(item, Boolean(comment.featured));
  return item;
}

function setReplyCount(element, count) {
  element.dataset.count = String(count);
  element.textContent = count === 1 ? "1 reply" : `${count} replies`;
  element.hidden = count <= 0;
}

/** A reply arrived (+1) or left (-1): the count beside its top-level comment follows. */
function bumpReplies(parent, delta) {
  const element = parent?.querySelector(':scope > .comment__actions [data-live="reply-count"]');
  if (element) setReplyCount(element, Math.max(0, Number(element.dataset.count || 0) + delta));
}

function setFeatured(item, featured) {
  item.classList.toggle("comment--featured", featured);
  const meta = item.querySelector(":scope > .comment__meta");
  const badge = meta?.querySelector('[data-live="featured-badge"]');
  if (featured && !badge && meta) {
    const mark = document.createElement("strong");
    mark.className = "comment__badge";
    mark.dataset.live = "featured-badge";
    mark.textContent = "Featured";
    meta.prepend(mark, " ");
  } else if (!featured && badge) {
    badge.nextSibling?.remove?.();
    badge.remove();
  }
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.message === "string") return body.error.message;
  } catch {
    // not our JSON error: fall through to a generic message
  }
  return `The server answered ${response.status}. Please try again.`;
}

/** What this browser posted that waits for moderation, per article, for a day. */
class PendingStore {
  constructor(slug) {
    this.key = `livefeed.pending.${slug}`;
  }

  all() {
    try {
      const saved = JSON.parse(localStorage.getItem(this.key) || "[]");
      const fresh = saved.filter((c) => Date.now() - Date.parse(c.created_at) < 86_400_000);
      return Array.isArray(fresh) ? fresh : [];
    } catch {
      return [];
    }
  }

  save(items) {
    try {
      if (items.length) localStorage.setItem(this.key, JSON.stringify(items));
      else localStorage.removeItem(this.key);
    } catch {
      // storage can be disabled: the comment still reaches the editors
    }
  }

  add(comment) {
    this.save([...this.all().filter((c) => c.id !== comment.id), comment]);
  }

  forget(id) {
    this.save(this.all().filter((c) => c.id !== id));
  }
}

/**
 * The comment list: threads oldest first (new ones append), replies under their comment,
 * featured comments pinned at the top, and this browser's own pending comments marked.
 */
export class CommentList {
  constructor(list, { slug, count = null, earlier = null, more = false } = {}) {
    this.list = list;
    this.slug = slug;
    this.count = count;
    this.earlier = earlier;
    this.earlierBlock = earlier?.closest("p") || earlier;
    this.more = more;
    this.pending = new PendingStore(slug);
    this.earlier?.addEventListener("click", (event) => {
      event.preventDefault();
      this.loadEarlier().catch((error) => console.warn("livefeed: earlier comments", error));
    });
    list.addEventListener("click", (event) => {
      const button = event.target.closest('[data-live="report"]');
      if (button) this.openReport(button.closest("[data-comment-id]"));
    });
    for (const button of list.querySelectorAll('[data-live="report"]')) button.hidden = false;
    for (const comment of this.pending.all()) {
      if (!this.find(comment.id)) this.addPending(comment);
    }
  }

  find(id) {
    for (const item of this.list.querySelectorAll("[data-comment-id]")) {
      if (item.dataset.commentId === id) return item;
    }
    return null;
  }

  place(item, comment) {
    if (comment.reply_to) {
      const parent = this.find(comment.reply_to);
      const replies = parent?.querySelector(':scope > [data-live="replies"]');
      if (!replies) return false; // its thread is not on this page
      replies.append(item);
      if (item.dataset.pending !== "true") bumpReplies(parent, 1);
      return true;
    }
    this.list.append(item);
    return true;
  }

  add(comment, { flash = true } = {}) {
    const existing = this.find(comment.id);
    if (existing && existing.dataset.pending !== "true") return; // our own post, or a replay
    existing?.remove(); // our pending comment, approved: shown for real now
    this.pending.forget(comment.id);
    const item = commentElement(comment);
    if (!this.place(item, comment)) return;
    if (comment.featured) this.pin(item);
    if (flash) highlight(item, "comment--new");
    if (existing) item.scrollIntoView?.({ block: "nearest" });
  }

  addPending(comment) {
    this.pending.add(comment);
    const item = commentElement(comment, { pending: true });
    if (!this.place(item, comment)) this.list.append(item);
  }

  remove(id) {
    const item = this.find(id);
    if (item?.classList.contains("comment--reply")) {
      bumpReplies(item.parentElement?.closest("[data-comment-id]"), -1);
    }
    item?.remove();
  }

  /** `comment.updated`: featured comments move to the top, unfeatured ones back in order. */
  update(comment) {
    const item = this.find(comment.id);
    if (!item) {
      if (comment.featured && !comment.reply_to) this.add(comment);
      return;
    }
    setFeatured(item, Boolean(comment.featured));
    if (comment.reply_to) return;
    if (comment.featured) {
      this.pin(item);
      highlight(item, "comment--new");
    } else {
      this.unpin(item);
    }
  }

  pin(item) {
    this.list.prepend(item);
  }

  unpin(item) {
    const at = item.dataset.createdAt || "";
    const later = [...this.list.children].find(
      (other) =>
        other !== item &&
        !other.classList.contains("comment--featured") &&
        (other.dataset.createdAt || "") > at,
    );
    this.list.insertBefore(item, later || null);
  }

  setCount(count) {
    if (!this.count) return;
    this.count.dataset.count = String(count);
    if (count === 0 && !document.getElementById("comment-form")) {
      this.count.textContent = "No comments"; // comments are closed: nothing to invite
    } else if (count === 0) {
      const link = document.createElement("a");
      link.href = "#comment-form";
      link.textContent = "Leave the first comment";
      this.count.replaceChildren(link);
    } else {
      this.count.textContent = commentCountText(count);
    }
  }

  /** A fresh page from the API (threads newest first, featured apart), after a refetch. */
  replaceAll(threads, featured, more) {
    this.more = more;
    const pinned = new Set(featured.map((c) => c.id));
    const byId = new Map(threads.map((t) => [t.id, t]));
    const items = [
      ...featured.map((c) => commentElement(byId.get(c.id) || c)),
      ...[...threads].reverse().filter((t) => !pinned.has(t.id)).map((t) => commentElement(t)),
    ];
    this.list.replaceChildren(...items);
    for (const comment of this.pending.all()) if (!this.find(comment.id)) this.addPending(comment);
    if (this.earlierBlock) this.earlierBlock.hidden = !more;
  }

  oldestThread() {
    let oldest = null;
    for (const item of this.list.children) {
      if (item.dataset.pending === "true" || !item.dataset.createdAt) continue;
      if (!oldest || item.dataset.createdAt < oldest.dataset.createdAt) oldest = item;
    }
    return oldest?.dataset.commentId || null;
  }

  async loadEarlier() {
    const oldest = this.oldestThread();
    const url = new URL(`/api/articles/${encodeURIComponent(this.slug)}/comments`, location.href);
    url.searchParams.set("limit", String(PAGE_SIZE));
    if (oldest) url.searchParams.set("before", oldest);
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(await errorMessage(response));
    const { items } = await response.json();
    const fresh = items.filter((thread) => !this.find(thread.id));
    const first = [...this.list.children].find((i) => !i.classList.contains("comment--featured"));
    for (const thread of fresh.reverse()) this.list.insertBefore(commentElement(thread), first || null);
    this.more = items.length === PAGE_SIZE;
    if (this.earlierBlock) this.earlierBlock.hidden = !this.more;
  }

  /** The small report form under a comment: a reason, an optional note, Send. */
  openReport(item) {
    if (!item || item.querySelector(":scope > .comment-report")) return;
    const form = document.createElement("form");
    form.className = "comment-report";
    form.dataset.live = "report-form";
    const reason = document.createElement("select");
    reason.name = "reason";
    reason.setAttribute("aria-label", "Why are you reporting this comment?");
    for (const [value, label] of REPORT_REASONS) reason.append(new Option(label, value));
    const note = document.createElement("input");
    note.name = "note";
    note.type = "text";
    note.maxLength = 500;
    note.placeholder = "Note (optional)";
    note.setAttribute("aria-label", "Note for the editors (optional)");
    const send = document.createElement("button");
    send.type = "submit";
    send.className = "button button--small";
    send.textContent = "Send report";
    const status = document.createElement("span");
    status.dataset.live = "report-status";
    status.setAttribute("role", "status");
    form.append(reason, note, send, status);
    const anchor = item.querySelector(":scope > .comment__actions");
    anchor.after(form);
    reason.focus();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      send.disabled = true;
      const url = `/api/articles/${encodeURIComponent(this.slug)}/comments/${encodeURIComponent(item.dataset.commentId)}/reports`;
      const body = { reason: reason.value };
      if (note.value.trim()) body.note = note.value;
      try {
        const response = await fetch(url, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(body),
        });
        if (response.status === 202) {
          form.replaceChildren(status);
          status.textContent = "Thank you: an editor will look at it.";
          return;
        }
        status.textContent = await errorMessage(response);
      } catch {
        status.textContent = "Could not reach the server. Try again.";
      }
      send.disabled = false;
    });
  }
}

/** The comment form, posted with fetch; the server's own error message is shown beside it. */
export class CommentForm {
  constructor(form, { slug, list }) {
    this.form = form;
    this.slug = slug;
    this.list = list;
    this.error = form.querySelector('[data-live="form-error"]');
    this.note = form.querySelector('[data-live="form-note"]');
    this.submit = form.querySelector('[type="submit"]');
    this.author = form.elements.namedItem("author");
    this.text = form.elements.namedItem("text");
    this.busy = false;
    this.blockedUntil = 0;
    this.replyTo = form.querySelector('[data-live="reply-to"]');
    this.replying = form.querySelector('[data-live="replying"]');
    this.restoreAuthor();
    // "Reply" fills this form's reply_to (without JavaScript the link reloads the page
    // with ?reply_to=, and the server fills it).
    list.list.addEventListener("click", (event) => {
      const link = event.target.closest('[data-live="reply"]');
      if (!link) return;
      event.preventDefault();
      this.replyToComment(link.closest("[data-comment-id]"));
    });
    form.querySelector('[data-live="reply-cancel"]')?.addEventListener("click", (event) => {
      event.preventDefault();
      this.cancelReply();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.post().catch((error) => console.warn("livefeed: posting a comment", error));
    });
  }

  payload() {
    const body = { author: this.author.value, text: this.text.value };
    if (this.replyTo?.value) body.reply_to = this.replyTo.value;
    return body;
  }

  replyToComment(item) {
    if (!item || !this.replyTo) return;
    this.replyTo.value = item.dataset.commentId;
    const author = item.querySelector(".comment__author")?.textContent || "";
    const name = this.replying?.querySelector('[data-live="replying-author"]');
    if (name) name.textContent = author;
    if (this.replying) this.replying.hidden = false;
    this.text.focus();
  }

  cancelReply() {
    if (this.replyTo) this.replyTo.value = "";
    if (this.replying) this.replying.hidden = true;
  }

  restoreAuthor() {
    try {
      const saved = localStorage.getItem(AUTHOR_KEY);
      if (saved && !this.author.value) this.author.value = saved;
    } catch {
      // storage can be disabled; the name is only a convenience
    }
  }

  rememberAuthor(name) {
    try {
      localStorage.setItem(AUTHOR_KEY, name);
    } catch {
      // see restoreAuthor
    }
  }

  async post() {
    if (this.busy || Date.now() < this.blockedUntil) return;
    this.busy = true;
    this.submit.disabled = true;
    this.showError(null);
    this.note.textContent = "Posting…";
    let response;
    try {
      response = await fetch(`/api/articles/${encodeURIComponent(this.slug)}/comments`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(this.payload()),
      });
    } catch {
      this.finish();
      this.note.textContent = "";
      this.showError("Could not reach the server. Check your connection and try again.");
      return;
    }
    if (response.status === 201) {
      const comment = await response.json();
      const pending = comment.status === "pending";
      if (pending) this.list.addPending(comment);
      else this.list.add(comment);
      this.rememberAuthor(this.author.value);
      this.text.value = "";
      this.cancelReply();
      this.finish();
      this.note.textContent = pending
        ? "Thank you: your comment is awaiting moderation."
        : "Your comment is published.";
      return;
    }
    const message = await errorMessage(response);
    this.note.textContent = "";
    if (response.status === 429) {
      const seconds = Number.parseInt(response.headers.get("Retry-After") || "", 10);
      this.blockFor(Number.isFinite(seconds) && seconds > 0 ? seconds : 60, message);
      this.busy = false;
      return;
    }
    this.finish();
    this.showError(message);
  }

  finish() {
    this.busy = false;
    this.submit.disabled = false;
  }

  /** Honour Retry-After: the button stays off, with a countdown, until posting may work. */
  blockFor(seconds, message) {
    this.blockedUntil = Date.now() + seconds * 1000;
    this.submit.disabled = true;
    this.showError(message);
    const tick = () => {
      const left = Math.ceil((this.blockedUntil - Date.now()) / 1000);
      if (left <= 0) {
        this.submit.disabled = false;
        this.note.textContent = "";
        this.showError(null);
        return;
      }
      this.note.textContent = `You can post again in ${left} s.`;
      setTimeout(tick, 1000);
    };
    tick();
  }

  showError(message) {
    if (!this.error) return;
    this.error.textContent = message || "";
    this.error.hidden = !message;
  }
}
