// The publish form: a live character count, the breaking toggle, Ctrl+Enter to publish.
// A brief is one line, so line breaks (pasted, or Enter) become spaces.

import { $, briefLength, send } from "./common.js";
import { formatClock } from "../live/render.js";

const LINE_BREAK = /[\r\n\u2028\u2029]/;
const LINE_BREAKS = /\r\n|[\r\n\u2028\u2029]/g;

export class PublishForm {
  constructor(form, { max, onPublished = () => {} }) {
    this.form = form;
    this.max = max;
    this.onPublished = onPublished;
    this.text = $('[data-desk="brief-text"]', form);
    this.count = $('[data-desk="count"]', form);
    this.breaking = $('[data-desk="breaking"]', form);
    this.article = $('[data-desk="article"]', form);
    this.button = $('[data-desk="publish-button"]', form);
    this.note = $('[data-desk="publish-note"]', form);
    this.busy = false;

    this.text.addEventListener("input", () => this.onInput());
    this.text.addEventListener("keydown", (event) => {
      // A brief is one line: Enter alone adds nothing.
      if (event.key === "Enter" && !event.isComposing && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
      }
    });
    // Ctrl+Enter (⌘+Enter) publishes from anywhere in the form: text, toggle, article.
    form.addEventListener("keydown", (event) => this.onKey(event));
    this.breaking?.addEventListener("change", () => this.showBreaking());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.publish();
    });
    this.onInput();
    this.showBreaking();
  }

  onInput() {
    if (LINE_BREAK.test(this.text.value)) {
      const at = this.text.selectionStart;
      this.text.value = this.text.value.replace(LINE_BREAKS, " ");
      this.text.setSelectionRange(at, at);
    }
    const length = briefLength(this.text.value);
    this.count.textContent = `${length} / ${this.max}`;
    this.count.dataset.state = length > this.max ? "over" : "ok";
    this.button.disabled = this.busy || length === 0 || length > this.max;
  }

  onKey(event) {
    if (event.key !== "Enter" || event.isComposing || !(event.ctrlKey || event.metaKey)) return;
    event.preventDefault();
    this.publish();
  }

  showBreaking() {
    this.form.classList.toggle("publish--breaking", Boolean(this.breaking?.checked));
  }

  say(text, state = "ok") {
    this.note.textContent = text;
    this.note.dataset.state = state;
  }

  async publish() {
    const length = briefLength(this.text.value);
    if (this.busy || length === 0 || length > this.max) return;
    this.busy = true;
    this.button.disabled = true;
    this.say("Publishing…");
    const result = await send("/editor/briefs", {
      text: this.text.value,
      breaking: this.breaking?.checked ? "1" : "",
      article: this.article?.value || "",
    });
    this.busy = false;
    if (!result.ok) {
      this.say(result.message, "error");
      this.onInput();
      return;
    }
    const brief = result.data;
    this.text.value = "";
    if (this.breaking) this.breaking.checked = false;
    if (this.article) this.article.value = "";
    this.showBreaking();
    this.onInput();
    this.text.focus();
    const at = formatClock(new Date(brief.published_at));
    this.say(`${brief.breaking ? "Breaking brief" : "Brief"} published at ${at}.`);
    this.onPublished(brief);
  }
}
