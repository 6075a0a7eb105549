// The live connection: WebSocket first, Server-Sent Events when a WebSocket cannot be
// opened; one state machine (connected | reconnecting | offline) that owns every
// reconnect, so a page never holds two connections or retries in a tight loop.
//
// Events (this is an EventTarget):
//   "state"      detail {state, reason}       the state changed
//   "event"      detail {type, topic, id, data} a live event, in topic order
//   "subscribed" detail {topic, recovered}    a topic is live; recovered=false: refetch it

import { SSE_RECORD_TYPES } from "./event-types.js";

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30000;
const TRY_LATER_MIN_MS = 5000; // after 1013 "too slow": give the server room first
const GOING_AWAY_MAX_MS = 1000; // after 1001: reconnect now, spread over a second
const OPEN_TIMEOUT_MS = 10000; // a transport that has not opened by then has failed
const PING_INTERVAL_MS = 25000;
const PONG_TIMEOUT_MS = 10000;

export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY_VIOLATION = 1008;
export const CLOSE_TRY_AGAIN_LATER = 1013;

/** Full jitter: a random delay in [0, min(cap, base * 2^attempt)). */
export function backoffDelay(attempt, base = BACKOFF_BASE_MS, cap = BACKOFF_CAP_MS) {
  return Math.random() * Math.min(cap, base * 2 ** Math.min(attempt, 16));
}

/** The SSE cursor for several topics: URL-safe base64 of {topic: last event id}. */
export function encodeCursor(positions) {
  const bytes = new TextEncoder().encode(JSON.stringify(positions));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function sameOriginUrl(path, scheme) {
  const url = new URL(path, window.location.href);
  if (scheme === "ws") url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/** One WebSocket to /ws; subscribes every topic with its `since` once open. */
export class WebSocketTransport {
  static kind = "websocket";

  constructor(handlers, path = "/ws") {
    this.handlers = handlers;
    this.url = sameOriginUrl(path, "ws");
    this.socket = null;
  }

  open(positions) {
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      for (const [topic, since] of Object.entries(positions)) {
        this.send(since ? { type: "subscribe", topic, since } : { type: "subscribe", topic });
      }
      this.handlers.open();
    };
    socket.onmessage = (message) => {
      if (typeof message.data === "string") this.handlers.message(message.data);
    };
    // An error is always followed by close, which carries the code we act on.
    socket.onerror = () => {};
    socket.onclose = (close) => this.handlers.close({ code: close.code, reason: close.reason });
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
    }
  }

  close() {
    const socket = this.socket;
    this.socket = null;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
    try {
      socket.close(1000);
    } catch {
      // closing a socket that never opened may throw in old browsers; it is gone either way
    }
  }
}

/** One EventSource on /events; the topics and their cursor are in the URL. */
export class SseTransport {
  static kind = "sse";

  constructor(handlers, path = "/events") {
    this.handlers = handlers;
    this.path = path;
    this.source = null;
  }

  open(positions) {
    const url = new URL(this.path, window.location.href);
    for (const topic of Object.keys(positions)) url.searchParams.append("topic", topic);
    if (Object.values(positions).some(Boolean)) {
      const known = Object.fromEntries(Object.entries(positions).filter(([, id]) => id));
      url.searchParams.set("since", encodeCursor(known));
    }
    const source = new EventSource(url.href);
    this.source = source;
    source.onopen = () => this.handlers.open();
    const deliver = (record) => this.handlers.message(record.data);
    for (const type of SSE_RECORD_TYPES) source.addEventListener(type, deliver);
    source.onmessage = deliver;
    // EventSource would reconnect by itself on its own schedule: close it so ours applies.
    source.onerror = () => {
      this.close();
      this.handlers.close({ code: 0, reason: "stream ended" });
    };
  }

  send() {
    // One-way: the subscriptions are fixed by the URL.
  }

  close() {
    const source = this.source;
    this.source = null;
    if (source) {
      source.onopen = source.onmessage = source.onerror = null;
      source.close();
    }
  }
}

export class Connection extends EventTarget {
  /**
   * @param {Record<string, string|null>} positions topic -> last event id known (from the page)
   * @param {{transports?: Array<typeof WebSocketTransport | typeof SseTransport>}} options
   */
  constructor(positions, options = {}) {
    super();
    this.positions = { ...positions };
    this.transports = options.transports || [WebSocketTransport, SseTransport];
    this.preferred = 0; // index of the transport that last worked
    this.state = "reconnecting";
    this.reason = "starting";
    this.generation = 0; // bumped per attempt: callbacks of older attempts are ignored
    this.transport = null;
    this.opened = false;
    this.attempt = 0; // consecutive failed cycles, drives the backoff
    this.cycle = []; // transports still to try in this cycle, in order
    this.timers = new Set();
    this.stopped = true;
    this.blocked = false; // the server said 1008: only an outside trigger reconnects
  }

  get kind() {
    return this.transport ? this.transport.constructor.kind : null;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.listenToPage();
    this.connectNow("start");
  }

  stop() {
    this.stopped = true;
    this.teardown();
    this.setState("offline", "stopped");
    this.unlistenToPage?.();
  }

  /** Remember a position learned elsewhere (a list refetched over HTTP). */
  setPosition(topic, id) {
    this.positions[topic] = id;
  }

  /** Follow one more topic from `since` (another tab needs it), on the same connection. */
  subscribe(topic, since) {
    if (topic in this.positions) return;
    this.positions[topic] = since || null;
    if (this.state === "connected" && this.kind === "websocket") {
      this.transport.send(since ? { type: "subscribe", topic, since } : { type: "subscribe", topic });
    } else if (this.state === "connected" || this.connecting) {
      // SSE fixes its topics in the URL, and an opening socket already has its list.
      this.teardown();
      this.cycle = this.transportOrder();
      this.attemptNext("new topic");
    } // else: waiting to retry, and the next attempt includes it
  }

  /** Stop following a topic (the other tab that needed it has gone). */
  unsubscribe(topic) {
    delete this.positions[topic];
    if (this.kind === "websocket") this.transport.send({ type: "unsubscribe", topic });
    // Over SSE the topic stays in the stream until the next reconnect, which leaves it out.
  }

  /** Reconnect at once (online, tab visible again, back-forward cache), unless connected. */
  connectNow(reason) {
    if (this.stopped || this.state === "connected" || this.connecting) return;
    if (typeof navigator !== "undefined" && navigator.onLine === false) {
      this.teardown();
      this.setState("offline", "browser offline");
      return;
    }
    this.blocked = false;
    this.teardown();
    this.cycle = this.transportOrder();
    this.attemptNext(reason);
  }

  // -- internals ---------------------------------------------------------------------------

  transportOrder() {
    const order = [this.transports[this.preferred]];
    for (const transport of this.transports) if (!order.includes(transport)) order.push(transport);
    return order;
  }

  attemptNext(reason) {
    const Transport = this.cycle.shift();
    const generation = ++this.generation;
    const current = (fn) => (...args) => {
      if (generation === this.generation) fn(...args);
    };
    this.setState("reconnecting", reason);
    this.opened = false;
    this.connecting = true;
    this.transport = new Transport({
      open: current(() => this.onOpen(Transport)),
      message: current((text) => this.onMessage(text)),
      close: current((info) => this.onClose(info)),
    });
    this.later(
      current(() => {
        if (!this.opened) this.onClose({ code: 0, reason: "open timed out" });
      }),
      OPEN_TIMEOUT_MS,
    );
    try {
      this.transport.open({ ...this.positions });
    } catch (error) {
      // e.g. a WebSocket constructor refused by the browser: treat like a failed open
      console.warn("livefeed: could not open", Transport.kind, error);
      queueMicrotask(current(() => this.onClose({ code: 0, reason: String(error) })));
    }
  }

  onOpen(Transport) {
    this.opened = true;
    this.connecting = false;
    this.preferred = this.transports.indexOf(Transport);
    this.setState("connected", Transport.kind);
    if (Transport.kind === "websocket") this.schedulePing(this.generation);
  }

  onMessage(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      console.warn("livefeed: ignored a frame that is not JSON");
      return;
    }
    this.lastMessageAt = Date.now();
    if (!frame || typeof frame.type !== "string") return;
    if (frame.type === "pong" || frame.type === "unsubscribed") return;
    if (frame.type === "error") {
      console.warn("livefeed: server error frame", frame.code, frame.message);
      if (frame.code === "unavailable") {
        // A subscription the server could not make (Redis away): the connection would
        // stay open and deliver nothing. Start over later and resume, as after a 1013.
        this.onClose({ code: CLOSE_TRY_AGAIN_LATER, reason: "server unavailable" });
      }
      return;
    }
    if (frame.type === "subscribed") {
      this.attempt = 0; // a working subscription ends the failure streak
      this.emit("subscribed", { topic: frame.topic, recovered: frame.recovered !== false });
      return;
    }
    if (typeof frame.topic === "string" && typeof frame.id === "string") {
      if (!(frame.topic in this.positions)) return; // unsubscribed, still in flight
      this.positions[frame.topic] = frame.id;
      this.emit("event", frame);
    }
  }

  onClose({ code, reason }) {
    const opened = this.opened;
    this.teardown();
    if (this.stopped) return;
    if (code === CLOSE_POLICY_VIOLATION) {
      // The server refuses this client; retrying blindly would only repeat that.
      this.blocked = true;
      this.setState("offline", reason || "refused by the server");
      return;
    }
    if (navigator.onLine === false) {
      this.setState("offline", "browser offline");
      return;
    }
    if (!opened && this.cycle.length > 0) {
      this.attemptNext(`${reason || "failed"}; trying another transport`); // no wait
      return;
    }
    let delay;
    if (code === CLOSE_GOING_AWAY) {
      delay = Math.random() * GOING_AWAY_MAX_MS;
    } else if (code === CLOSE_TRY_AGAIN_LATER) {
      delay = TRY_LATER_MIN_MS + backoffDelay(this.attempt);
      this.attempt += 1;
    } else {
      delay = backoffDelay(this.attempt);
      this.attempt += 1;
    }
    this.setState("reconnecting", reason || `closed (${code})`);
    this.later(() => {
      if (this.stopped || this.blocked) return;
      this.cycle = this.transportOrder();
      this.attemptNext("retrying");
    }, delay);
  }

  schedulePing(generation) {
    this.later(() => {
      if (generation !== this.generation || !this.transport) return;
      const sentAt = Date.now();
      this.transport.send({ type: "ping" });
      this.later(() => {
        if (generation !== this.generation) return;
        if (!(this.lastMessageAt >= sentAt)) {
          this.onClose({ code: 0, reason: "no answer to ping" });
        } else {
          this.schedulePing(generation);
        }
      }, PONG_TIMEOUT_MS);
    }, PING_INTERVAL_MS);
  }

  teardown() {
    this.generation += 1;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.connecting = false;
    this.opened = false;
    if (this.transport) {
      this.transport.close();
      this.transport = null;
    }
  }

  later(fn, ms) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  setState(state, reason) {
    this.reason = reason;
    if (state === this.state) return;
    this.state = state;
    this.emit("state", { state, reason });
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  listenToPage() {
    const onOnline = () => this.connectNow("back online");
    const onOffline = () => {
      this.teardown();
      this.setState("offline", "browser offline");
    };
    const onVisible = () => {
      if (document.visibilityState === "visible") this.connectNow("tab visible");
    };
    const onPageShow = (event) => {
      if (event.persisted) this.connectNow("page restored");
    };
    // A page with an open connection cannot enter the back-forward cache: close it.
    const onPageHide = (event) => {
      if (event.persisted) {
        this.teardown();
        this.setState("reconnecting", "page hidden");
      }
    };
    window.addEventListener("online", onOnline);
    window.addEventListener("offline", onOffline);
    document.addEventListener("visibilitychange", onVisible);
    window.addEventListener("pageshow", onPageShow);
    window.addEventListener("pagehide", onPageHide);
    this.unlistenToPage = () => {
      window.removeEventListener("online", onOnline);
      window.removeEventListener("offline", onOffline);
      document.removeEventListener("visibilitychange", onVisible);
      window.removeEventListener("pageshow", onPageShow);
      window.removeEventListener("pagehide", onPageHide);
    };
  }
}
