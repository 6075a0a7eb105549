// The desk's live list of recent briefs: correct in place, retract after a confirmation.
// Rows mirror templates/editor/_brief_row.html; every text goes in with textContent.

import { $, briefLength, byline, send } from "./common.js";
import { highlight, timeElement } from "../live/render.js";

function button(label, className, action) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = `button button--small ${className}`;
  element.textContent = label;
  element.dataset.desk = action;
  return element;
}

function actionLink(label, href, className, action) {
  const link = document.createElement("a");
  link.className = `button button--quiet button--small ${className}`;
  link.href = href;
  link.textContent = label;
  link.dataset.desk = action;
  return link;
}

export class DeskBriefs {
  /**
   * @param {HTMLOListElement} list the `[data-desk="briefs"]` list, rendered by the server
   * @param {{briefs: object[], empty: Element, articleOptions: HTMLSelectElement, max: number, limit: number}} options
   */
  constructor(list, { briefs = [], empty = null, articleOptions = null, max = 500, limit = 50 }) {
    this.list = list;
    this.empty = empty;
    this.articleOptions = articleOptions;
    this.max = max;
    this.limit = limit;
    this.briefs = new Map(briefs.map((brief) => [brief.id, brief]));
    this.credits = new Map(briefs.map((brief) => [brief.id, brief.credits || {}]));
    list.addEventListener("click", (event) => this.onClick(event));
  }

  row(id) {
    for (const item of this.list.children) if (item.dataset.briefId === id) return item;
    return null;
  }

  onClick(event) {
    const target = event.target.closest("[data-desk]");
    const row = target?.closest("[data-brief-id]");
    if (!target || !row) return;
    const id = row.dataset.briefId;
    if (!this.briefs.has(id)) return; // not loaded yet: the plain link still works
    if (target.dataset.desk === "correct") {
      event.preventDefault();
      this.edit(row, id);
    } else if (target.dataset.desk === "retract") {
      event.preventDefault();
      this.confirmRetract(row, id);
    }
  }

  // -- live events ------------------------------------------------------------------------

  published(brief) {
    this.briefs.set(brief.id, brief);
    if (brief.credits) this.credits.set(brief.id, brief.credits);
    if (this.row(brief.id)) return; // our own publish, or a replay
    const row = this.render(brief);
    const after = [...this.list.children].find(
      (item) => (this.briefs.get(item.dataset.briefId)?.published_at || "") <= brief.published_at,
    );
    this.list.insertBefore(row, after || null);
    highlight(row, "desk-brief--new");
    while (this.list.children.length > this.limit) this.list.lastElementChild.remove();
    this.updateEmpty();
  }

  updated(brief) {
    this.briefs.set(brief.id, brief);
    if (brief.credits) this.credits.set(brief.id, brief.credits);
    const row = this.row(brief.id);
    if (!row) return;
    if (row.dataset.mode) {
      // Never pull the text from under an editor who is correcting it.
      const note = $('[data-desk="edit-note"]', row);
      if (note) note.textContent = "Someone changed this brief meanwhile: saving will say so.";
      return;
    }
    const fresh = this.render(brief);
    row.replaceWith(fresh);
    highlight(fresh, "desk-brief--new");
  }

  deleted(id) {
    this.briefs.delete(id);
    this.row(id)?.remove();
    this.updateEmpty();
  }

  credit(entry) {
    const credits = { ...(this.credits.get(entry.id) || {}), [entry.action]: entry.editor };
    this.credits.set(entry.id, credits);
    const row = this.row(entry.id);
    const line = row && $('[data-desk="credit"]', row);
    if (line) line.textContent = byline(credits);
  }

  replaceAll(items) {
    this.briefs = new Map(items.map((brief) => [brief.id, brief]));
    this.credits = new Map(items.map((brief) => [brief.id, brief.credits || {}]));
    const editing = new Map(
      [...this.list.children]
        .filter((row) => row.dataset.mode)
        .map((row) => [row.dataset.briefId, row]),
    );
    this.list.replaceChildren(
      ...items.map((brief) => editing.get(brief.id) || this.render(brief)),
    );
    this.updateEmpty();
  }

  updateEmpty() {
    if (this.empty) this.empty.hidden = this.list.children.length > 0;
  }

  // -- rendering --------------------------------------------------------------------------

  render(brief) {
    const row = document.createElement("li");
    row.className = brief.breaking ? "desk-brief desk-brief--breaking" : "desk-brief";
    row.id = `brief-${brief.id}`;
    row.dataset.briefId = brief.id;
    row.dataset.updatedAt = brief.updated_at;

    const view = document.createElement("div");
    view.className = "desk-brief__view";
    const line = document.createElement("p");
    line.className = "desk-brief__line";
    line.append(timeElement(brief.published_at, "desk-brief__time"), " ");
    if (brief.breaking) {
      const label = document.createElement("strong");
      label.className = "desk-brief__label";
      label.textContent = "Breaking";
      line.append(label, " ");
    }
    const text = document.createElement("span");
    text.className = "desk-brief__text";
    text.textContent = brief.text;
    line.append(text);

    const meta = document.createElement("p");
    meta.className = "desk-brief__meta";
    if (brief.article) {
      const link = document.createElement("a");
      link.className = "desk-brief__article";
      link.href = `/articles/${encodeURIComponent(brief.article)}`;
      link.textContent = this.articleTitle(brief.article);
      meta.append(link);
    }
    if (brief.updated_at && brief.updated_at !== brief.published_at) {
      const updated = document.createElement("span");
      updated.className = "desk-brief__updated";
      updated.append("Updated ", timeElement(brief.updated_at));
      meta.append(updated);
    }
    const credit = document.createElement("span");
    credit.className = "desk-brief__credit";
    credit.dataset.desk = "credit";
    credit.textContent = byline(this.credits.get(brief.id));
    meta.append(credit);
    view.append(line, meta);

    const actions = document.createElement("p");
    actions.className = "desk-brief__actions";
    actions.append(
      actionLink("Correct", `/editor/briefs/${brief.id}/correct`, "", "correct"),
      actionLink("Retract", `/editor/briefs/${brief.id}/retract`, "button--danger", "retract"),
    );
    row.append(view, actions);
    return row;
  }

  articleTitle(slug) {
    const option = [...(this.articleOptions?.options || [])].find((o) => o.value === slug);
    return option ? option.textContent : slug;
  }

  restore(row, id) {
    const brief = this.briefs.get(id);
    if (brief) row.replaceWith(this.render(brief));
    else row.remove();
  }

  // -- correct in place -------------------------------------------------------------------

  edit(row, id) {
    const brief = this.briefs.get(id);
    const form = document.createElement("form");
    form.className = "desk-brief__edit";
    form.dataset.desk = "correct-form";
    const text = document.createElement("textarea");
    text.name = "text";
    text.rows = 2;
    text.value = brief.text;
    text.setAttribute("aria-label", "Corrected text");
    const count = document.createElement("span");
    count.className = "publish__count";
    const breakingLabel = document.createElement("label");
    breakingLabel.className = "switch";
    const breaking = document.createElement("input");
    breaking.type = "checkbox";
    breaking.checked = brief.breaking;
    const breakingText = document.createElement("span");
    breakingText.textContent = "Breaking";
    breakingLabel.append(breaking, breakingText);
    const article = document.createElement("select");
    article.setAttribute("aria-label", "Links to");
    if (this.articleOptions) {
      for (const option of this.articleOptions.options) article.append(option.cloneNode(true));
    }
    article.value = brief.article || "";
    if (article.value !== (brief.article || "")) {
      const option = new Option(brief.article, brief.article); // an article beyond the list
      article.append(option);
      article.value = brief.article;
    }
    const save = button("Save correction", "", "save");
    save.type = "submit";
    const cancel = button("Cancel", "button--quiet", "cancel");
    const note = document.createElement("p");
    note.className = "publish__note";
    note.dataset.desk = "edit-note";
    note.setAttribute("role", "status");
    const options = document.createElement("div");
    options.className = "publish__options";
    options.append(breakingLabel, article, count, save, cancel);
    form.append(text, options, note);

    const recount = () => {
      text.value = text.value.replace(/\r\n|[\r\n\u2028\u2029]/g, " ");
      const length = briefLength(text.value);
      count.textContent = `${length} / ${this.max}`;
      count.dataset.state = length > this.max ? "over" : "ok";
      save.disabled = length === 0 || length > this.max;
    };
    text.addEventListener("input", recount);
    text.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.restore(row, id);
      if (event.key !== "Enter" || event.isComposing) return;
      event.preventDefault();
      if (event.ctrlKey || event.metaKey) form.requestSubmit();
    });
    cancel.addEventListener("click", () => this.restore(row, id));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      save.disabled = true;
      note.textContent = "Saving…";
      const result = await send(`/editor/briefs/${id}`, {
        text: text.value,
        breaking: breaking.checked ? "1" : "",
        article: article.value,
        base: brief.updated_at,
      });
      if (!result.ok) {
        note.textContent = result.message;
        note.dataset.state = "error";
        save.disabled = false;
        return;
      }
      this.briefs.set(id, result.data);
      this.credits.set(id, result.data.credits || {});
      this.restore(row, id);
    });

    row.dataset.mode = "edit";
    row.replaceChildren(form);
    recount();
    text.focus();
    text.setSelectionRange(text.value.length, text.value.length);
  }

  // -- retract, after a confirmation ------------------------------------------------------

  confirmRetract(row, id) {
    const box = document.createElement("div");
    box.className = "desk-confirm";
    box.setAttribute("role", "alertdialog");
    box.setAttribute("aria-label", "Retract this brief?");
    const question = document.createElement("p");
    question.textContent =
      "Retract this brief? It disappears at once from every open page. This cannot be undone.";
    const quote = document.createElement("p");
    quote.className = "desk-brief__text";
    quote.textContent = this.briefs.get(id).text;
    const yes = button("Retract", "button--danger", "confirm-retract");
    const no = button("Keep it", "button--quiet", "keep");
    const note = document.createElement("p");
    note.setAttribute("role", "status");
    const actions = document.createElement("p");
    actions.className = "desk-actions";
    actions.append(yes, no);
    box.append(question, quote, actions, note);
    no.addEventListener("click", () => this.restore(row, id));
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      const result = await send(`/editor/briefs/${id}/retract`);
      if (!result.ok) {
        note.textContent = result.message;
        yes.disabled = false;
        return;
      }
      this.deleted(id);
    });
    row.dataset.mode = "confirm";
    row.replaceChildren(box);
    no.focus();
  }
}
