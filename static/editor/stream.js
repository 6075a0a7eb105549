// The desk's own live stream, /editor/live (Server-Sent Events): new comments everywhere,
// credits as editors act, readers connected now. Nothing is replayed, so every (re)connect
// starts with "hello" and the page refetches what it may have missed.
//
// Events (an EventTarget): "hello" and "readers" {readers, latest_comment},
// "comment" (a comment record), "credit" (a desk log entry), "state" {state}, "signed-out".

import { backoffDelay } from "../live/connection.js";
import { DESK_RECORD_TYPES } from "../live/event-types.js";
import { showSignedOut } from "./common.js";

export class DeskStream extends EventTarget {
  constructor(path = "/editor/live") {
    super();
    this.path = path;
    this.source = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.state = "reconnecting";
  }

  start() {
    this.open();
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
  }

  stop() {
    this.stopped = true;
    this.close();
    clearTimeout(this.timer);
    this.setState("offline");
  }

  open() {
    if (this.stopped) return;
    const source = new EventSource(this.path);
    this.source = source;
    source.onopen = () => {
      this.attempt = 0;
      this.setState("connected");
    };
    for (const type of DESK_RECORD_TYPES) {
      source.addEventListener(type, (record) => {
        let data;
        try {
          data = JSON.parse(record.data);
        } catch {
          return;
        }
        const name = type === "comment.created" ? "comment" : type;
        this.dispatchEvent(new CustomEvent(name, { detail: data }));
        if (type === "signed-out") this.stop();
      });
    }
    // EventSource would retry on its own schedule: close it, so our backoff applies, and
    // find out whether the session is still there.
    source.onerror = () => {
      this.close();
      this.setState("reconnecting");
      this.checkSession();
      const delay = backoffDelay(this.attempt++, 1000, 30000);
      this.timer = setTimeout(() => this.open(), delay);
    };
  }

  async checkSession() {
    try {
      const response = await fetch("/editor/data/credits?kind=brief", {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.status === 401) {
        showSignedOut();
        this.stop();
        this.dispatchEvent(new CustomEvent("signed-out", { detail: {} }));
      }
    } catch {
      // the server is unreachable: keep retrying
    }
  }

  reconnectNow() {
    if (this.stopped || this.source) return;
    clearTimeout(this.timer);
    this.open();
  }

  close() {
    if (!this.source) return;
    this.source.onopen = this.source.onerror = null;
    this.source.close();
    this.source = null;
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state } }));
  }
}
