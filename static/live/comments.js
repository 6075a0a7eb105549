// Live comments and the comment form. Comment text is always set with textContent.

import { highlight, timeElement } from "./render.js";

const AUTHOR_KEY = "livefeed.author";
const PAGE_SIZE = 50;

export function commentCountText(count, more = false) {
  if (more) return `Latest ${count} comments`;
  return count === 1 ? "1 comment" : `${count} comments`;
}

export function commentElement(comment) {
  const item = document.createElement("li");
  item.className = "comment";
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
  return item;
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

/** The comment list, oldest first: new comments are appended, hidden ones removed. */
export class CommentList {
  constructor(list, { slug, count = null, earlier = null, more = false } = {}) {
    this.list = list;
    this.slug = slug;
    this.count = count;
    this.earlier = earlier;
    this.earlierBlock = earlier?.closest("p") || earlier;
    this.more = more;
    this.earlier?.addEventListener("click", (event) => {
      event.preventDefault();
      this.loadEarlier().catch((error) => console.warn("livefeed: earlier comments", error));
    });
  }

  find(id) {
    for (const item of this.list.children) if (item.dataset.commentId === id) return item;
    return null;
  }

  add(comment, { flash = true } = {}) {
    if (this.find(comment.id)) return; // our own post, or a replay after reconnect
    const item = commentElement(comment);
    this.list.append(item);
    if (flash) highlight(item, "comment--new");
    this.updateCount();
  }

  remove(id) {
    this.find(id)?.remove();
    this.updateCount();
  }

  /** A fresh page from the API (newest first), after a refetch. */
  replaceAll(comments, more) {
    this.more = more;
    this.list.replaceChildren(...[...comments].reverse().map(commentElement));
    if (this.earlierBlock) this.earlierBlock.hidden = !more;
    this.updateCount();
  }

  async loadEarlier() {
    const oldest = this.list.firstElementChild?.dataset.commentId;
    const url = new URL(`/api/articles/${encodeURIComponent(this.slug)}/comments`, location.href);
    url.searchParams.set("limit", String(PAGE_SIZE));
    if (oldest) url.searchParams.set("before", oldest);
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(await errorMessage(response));
    const { items } = await response.json();
    const fresh = items.filter((comment) => !this.find(comment.id));
    this.list.prepend(...fresh.reverse().map(commentElement));
    this.more = items.length === PAGE_SIZE;
    if (this.earlierBlock) this.earlierBlock.hidden = !this.more;
    this.updateCount();
  }

  updateCount() {
    if (!this.count) return;
    const count = this.list.children.length;
    if (count === 0 && !this.more && !document.getElementById("comment-form")) {
      this.count.textContent = "No comments"; // comments are closed: nothing to invite
    } else if (count === 0 && !this.more) {
      const link = document.createElement("a");
      link.href = "#comment-form";
      link.textContent = "Leave the first comment";
      this.count.replaceChildren(link);
    } else {
      this.count.textContent = commentCountText(count, this.more);
    }
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
    this.restoreAuthor();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.post().catch((error) => console.warn("livefeed: posting a comment", error));
    });
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
        body: JSON.stringify({ author: this.author.value, text: this.text.value }),
      });
    } catch {
      this.finish();
      this.note.textContent = "";
      this.showError("Could not reach the server. Check your connection and try again.");
      return;
    }
    if (response.status === 201) {
      const comment = await response.json();
      this.list.add(comment);
      this.rememberAuthor(this.author.value);
      this.text.value = "";
      this.finish();
      this.note.textContent = "Your comment is published.";
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
