// Comment moderation: the latest comments of every article, live, with hide; and the
// per-article switches that close comments (on the articles and comments pages too).

import { $, $$, send } from "./common.js";
import { highlight, timeElement } from "../live/render.js";

const LIMIT = 100;

/** Every "close comments" switch on the page: sent with fetch, kept in step live. */
export class CommentSwitches {
  constructor(root = document) {
    this.root = root;
    root.addEventListener("submit", (event) => {
      const form = event.target.closest('[data-desk="comments-switch"]');
      if (!form) return;
      event.preventDefault();
      this.toggle(form);
    });
  }

  async toggle(form) {
    const closing = form.dataset.closed !== "true";
    const buttonElement = $('[data-desk="comments-toggle"]', form);
    buttonElement.disabled = true;
    const result = await send(form.action, { closed: closing ? "1" : "0" });
    buttonElement.disabled = false;
    if (!result.ok) {
      $('[data-desk="comments-state"]', form).textContent = result.message;
      return;
    }
    this.set(result.data.article, result.data.closed);
  }

  /** Show `slug`'s comments as closed or open, wherever a switch for it is. */
  set(slug, closed) {
    for (const form of $$('[data-desk="comments-switch"]', this.root)) {
      if (form.dataset.article !== slug) continue;
      form.dataset.closed = closed ? "true" : "false";
      form.elements.closed.value = closed ? "0" : "1";
      $('[data-desk="comments-state"]', form).textContent = closed ? "Closed" : "Open";
      $('[data-desk="comments-toggle"]', form).textContent = closed
        ? "Open comments"
        : "Close comments";
    }
  }

  /** A blank switch for an article that just appeared on the page. */
  static element(slug, closed = false) {
    const form = document.createElement("form");
    form.className = "comments-switch";
    form.method = "post";
    form.action = `/editor/articles/${encodeURIComponent(slug)}/comments`;
    form.dataset.desk = "comments-switch";
    form.dataset.article = slug;
    form.dataset.closed = closed ? "true" : "false";
    const hidden = (name, value) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      return input;
    };
    const state = document.createElement("span");
    state.className = "comments-switch__state";
    state.dataset.desk = "comments-state";
    state.textContent = closed ? "Closed" : "Open";
    const toggle = document.createElement("button");
    toggle.type = "submit";
    toggle.className = "button button--quiet button--small";
    toggle.dataset.desk = "comments-toggle";
    toggle.textContent = closed ? "Open comments" : "Close comments";
    form.append(hidden("back", "comments"), hidden("closed", closed ? "0" : "1"), state, toggle);
    return form;
  }
}

export class Moderation {
  /**
   * @param {HTMLOListElement} list `[data-desk="comments"]`, rendered by the server
   * @param {{titles: Record<string, string>, empty: Element, discussions: Element}} options
   */
  constructor(list, { titles = {}, empty = null, discussions = null }) {
    this.list = list;
    this.titles = { ...titles };
    this.empty = empty;
    this.discussions = discussions;
    list.addEventListener("submit", (event) => {
      const form = event.target.closest('[data-desk="hide"]');
      if (!form) return;
      event.preventDefault();
      this.hide(form);
    });
  }

  row(slug, id) {
    for (const item of this.list.children) {
      if (item.dataset.commentId === id && item.dataset.article === slug) return item;
    }
    return null;
  }

  /** The newest comment on the page, as the desk names it (`<slug>/<id>`). */
  newest() {
    const first = this.list.firstElementChild;
    return first ? `${first.dataset.article}/${first.dataset.commentId}` : null;
  }

  added(comment) {
    if (this.row(comment.article, comment.id)) return;
    const item = this.render(comment);
    this.list.prepend(item);
    highlight(item, "desk-comment--new");
    while (this.list.children.length > LIMIT) this.list.lastElementChild.remove();
    this.ensureDiscussion(comment.article);
    this.updateEmpty();
  }

  /** A comment was hidden (by anyone): strike it through, keep it for the record. */
  hidden(slug, id, editor) {
    const item = this.row(slug, id);
    if (!item) return;
    item.classList.add("desk-comment--hidden");
    const actions = $(".desk-comment__actions", item);
    const mark = document.createElement("span");
    mark.className = "desk-comment__hidden";
    mark.dataset.desk = "hidden-by";
    mark.textContent = editor ? `Hidden by ${editor}` : "Hidden";
    actions.replaceChildren(mark);
  }

  async hide(form) {
    const item = form.closest("[data-comment-id]");
    const submit = $("button", form);
    submit.disabled = true;
    const result = await send(form.action);
    if (!result.ok) {
      submit.disabled = false;
      submit.textContent = "Hide (failed: try again)";
      submit.title = result.message;
      return;
    }
    this.hidden(item.dataset.article, item.dataset.commentId, result.data.by);
  }

  replaceAll(items, titles = {}) {
    Object.assign(this.titles, titles);
    this.list.replaceChildren(...items.map((comment) => this.render(comment)));
    for (const comment of items) this.ensureDiscussion(comment.article);
    this.updateEmpty();
  }

  render(comment) {
    const item = document.createElement("li");
    item.className = comment.hidden ? "desk-comment desk-comment--hidden" : "desk-comment";
    item.id = `comment-${comment.id}`;
    item.dataset.commentId = comment.id;
    item.dataset.article = comment.article;

    const meta = document.createElement("p");
    meta.className = "desk-comment__meta";
    const author = document.createElement("span");
    author.className = "desk-comment__author";
    author.textContent = comment.author;
    const link = document.createElement("a");
    link.href = `/articles/${encodeURIComponent(comment.article)}#comment-${comment.id}`;
    link.textContent = this.titles[comment.article] || comment.article;
    meta.append(author, " ", timeElement(comment.created_at), " on ", link);

    const text = document.createElement("p");
    text.className = "desk-comment__text";
    text.textContent = comment.text;

    const actions = document.createElement("p");
    actions.className = "desk-comment__actions";
    if (comment.hidden) {
      const mark = document.createElement("span");
      mark.className = "desk-comment__hidden";
      mark.dataset.desk = "hidden-by";
      mark.textContent = comment.hidden_by ? `Hidden by ${comment.hidden_by}` : "Hidden";
      actions.append(mark);
    } else {
      const form = document.createElement("form");
      form.method = "post";
      form.action = `/editor/articles/${encodeURIComponent(comment.article)}/comments/${comment.id}/hide`;
      form.dataset.desk = "hide";
      const submit = document.createElement("button");
      submit.type = "submit";
      submit.className = "button button--quiet button--small button--danger";
      submit.textContent = "Hide";
      form.append(submit);
      actions.append(form);
    }
    item.append(meta, text, actions);
    return item;
  }

  ensureDiscussion(slug) {
    if (!this.discussions) return;
    if ([...this.discussions.children].some((item) => item.dataset.article === slug)) return;
    const item = document.createElement("li");
    item.dataset.article = slug;
    const link = document.createElement("a");
    link.href = `/articles/${encodeURIComponent(slug)}`;
    link.textContent = this.titles[slug] || slug;
    const readers = document.createElement("span");
    readers.className = "desk-hint";
    const count = document.createElement("span");
    count.dataset.readersArticle = slug;
    count.textContent = "0";
    readers.append(" ", count, " reading");
    item.append(link, readers, CommentSwitches.element(slug));
    this.discussions.prepend(item);
  }

  updateEmpty() {
    if (this.empty) this.empty.hidden = this.list.children.length > 0;
  }
}
