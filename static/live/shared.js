// One live connection for all the tabs of a browser: the tab holding a Web Lock leads and
// runs the real Connection for the union of every tab's topics; the others follow over a
// BroadcastChannel. Ten open articles cost the server one socket. When the leader closes,
// the lock passes to another tab, which connects from its own positions and the others
// join it again.
//
// Same interface as Connection: start(), setPosition(), .state, .kind, and the events
// "state", "event" and "subscribed".

import { Connection } from "./connection.js";

const CHANNEL = "livefeed";
const LOCK = "livefeed-leader";
const JOIN_TIMEOUT_MS = 3000; // no leader answered: run a connection of our own
const TOPICS_MAX = 16; // the server's subscriptions per connection
const FROM_LEADER = new Set(["leader", "joined", "state", "event", "subscribed"]);
const HEARTBEAT_MS = 10000; // the leader says it is alive ...
const LEADER_SILENT_MS = 35000; // ... and a follower that hears nothing this long goes alone

function newTabId() {
  return window.crypto?.randomUUID?.() || `${Date.now()}-${Math.random()}`;
}

export class SharedConnection extends EventTarget {
  static supported() {
    return Boolean(navigator.locks && window.BroadcastChannel);
  }

  constructor(positions, options = {}) {
    super();
    this.positions = { ...positions }; // this tab's topics, with the last id it saw
    this.options = options;
    this.tab = newTabId();
    this.role = "follower"; // follower | leader | alone
    this.state = "reconnecting";
    this.transportKind = null;
    this.connection = null; // the real one, as leader or alone
    this.members = new Map(); // leader only: tab -> its topics
    this.channel = null;
    this.joinTimer = null;
  }

  get kind() {
    return this.transportKind;
  }

  start() {
    this.setRole("follower");
    this.channel = new BroadcastChannel(CHANNEL);
    this.channel.onmessage = (message) => {
      try {
        this.onMessage(message.data);
      } catch (error) {
        console.warn("livefeed: shared connection message", error);
      }
    };
    window.addEventListener("pagehide", () => {
      if (this.role === "follower") this.post({ t: "leave", tab: this.tab });
    });
    // The leader may be a background tab whose retry timers the browser slows down: a tab
    // the reader is looking at asks it to reconnect now.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.role === "follower") {
        if (this.state !== "connected") this.post({ t: "poke", tab: this.tab });
      }
    });
    this.heardAt = Date.now();
    setInterval(() => this.tick(), HEARTBEAT_MS);
    // Resolves only when this tab closes: the lock is held for the page's life.
    navigator.locks.request(LOCK, () => this.lead()).catch((error) => {
      console.warn("livefeed: cannot lead", error);
      this.runAlone();
    });
    this.join(false);
  }

  setPosition(topic, id) {
    if (topic in this.positions) this.positions[topic] = id;
    this.connection?.setPosition(topic, id);
  }

  // -- roles -------------------------------------------------------------------------------

  join(rejoin) {
    if (this.role !== "follower") return;
    clearTimeout(this.joinTimer);
    this.post({ t: "join", tab: this.tab, positions: this.positions, rejoin });
    this.joinTimer = setTimeout(() => {
      if (this.role === "follower" && !this.joined) this.runAlone();
    }, JOIN_TIMEOUT_MS);
  }

  lead() {
    clearTimeout(this.joinTimer);
    const positions = this.connection ? this.connection.positions : this.positions;
    this.stopConnection();
    this.setRole("leader");
    this.members.clear();
    this.startConnection({ ...positions });
    this.post({ t: "leader", tab: this.tab });
    return new Promise(() => {});
  }

  runAlone() {
    if (this.role !== "follower") return;
    this.setRole("alone");
    this.startConnection({ ...this.positions });
  }

  tick() {
    if (this.role === "leader") {
      this.post({ t: "state", state: this.state, kind: this.transportKind });
    } else if (this.role === "follower" && this.joined) {
      // A leader that fell silent (a frozen tab) must not leave this tab without news.
      if (Date.now() - this.heardAt > LEADER_SILENT_MS) this.runAlone();
    }
  }

  // -- the real connection (leader or alone) ------------------------------------------------

  startConnection(positions) {
    const connection = new Connection(positions, this.options);
    this.connection = connection;
    const current = (fn) => (event) => {
      if (this.connection === connection) fn(event.detail);
    };
    connection.addEventListener(
      "state",
      current(({ state }) => {
        this.setState(state, connection.kind);
        this.post({ t: "state", state, kind: connection.kind });
      }),
    );
    connection.addEventListener(
      "event",
      current((frame) => {
        this.deliver(frame);
        if (this.role === "leader") this.post({ t: "event", frame });
      }),
    );
    connection.addEventListener(
      "subscribed",
      current((detail) => {
        this.deliverSubscribed(detail);
        if (this.role === "leader") this.post({ t: "subscribed", detail });
      }),
    );
    connection.start();
  }

  stopConnection() {
    const connection = this.connection;
    this.connection = null; // first, so its "offline" on stop is not reported
    connection?.stop();
  }

  // -- messages between tabs ---------------------------------------------------------------

  post(message) {
    try {
      this.channel?.postMessage(message);
    } catch (error) {
      console.warn("livefeed: broadcast failed", error);
    }
  }

  onMessage(message) {
    if (!message || typeof message.t !== "string") return;
    if (this.role === "leader") {
      if (message.t === "join") this.admit(message);
      else if (message.t === "leave") this.release(message.tab);
      else if (message.t === "poke") this.connection.connectNow("a tab became visible");
      return;
    }
    if (this.role !== "follower") return; // alone: on our own until we lead
    if (FROM_LEADER.has(message.t)) this.heardAt = Date.now();
    switch (message.t) {
      case "leader":
        this.joined = false;
        this.join(true);
        break;
      case "joined":
        if (message.tab !== this.tab) break;
        clearTimeout(this.joinTimer);
        this.joined = true;
        if (message.alone) {
          this.runAlone();
          break;
        }
        this.setState(message.state, message.kind);
        // Topics the leader already had: what happened before we listened is fetched.
        for (const topic of message.covered) this.emit("subscribed", { topic, recovered: false });
        break;
      case "state":
        this.setState(message.state, message.kind);
        break;
      case "event":
        this.deliver(message.frame);
        break;
      case "subscribed":
        this.deliverSubscribed(message.detail);
        break;
      default:
        break;
    }
  }

  /** Leader: a tab joins; subscribe what it needs that we lack, from its own positions. */
  admit({ tab, positions, rejoin }) {
    const current = this.connection.positions;
    const topics = Object.keys(positions);
    const fresh = topics.filter((topic) => !(topic in current));
    if (Object.keys(current).length + fresh.length > TOPICS_MAX) {
      this.post({ t: "joined", tab, alone: true });
      return;
    }
    this.members.set(tab, topics);
    const covered = rejoin ? [] : topics.filter((topic) => topic in current);
    for (const topic of fresh) this.connection.subscribe(topic, positions[topic]);
    this.post({ t: "joined", tab, covered, state: this.state, kind: this.transportKind });
  }

  /** Leader: a tab left; stop following the topics nobody needs any more. */
  release(tab) {
    if (!this.members.delete(tab)) return;
    const needed = new Set(Object.keys(this.positions));
    for (const topics of this.members.values()) for (const topic of topics) needed.add(topic);
    for (const topic of Object.keys(this.connection.positions)) {
      if (!needed.has(topic)) this.connection.unsubscribe(topic);
    }
  }

  // -- this tab's own view -----------------------------------------------------------------

  deliver(frame) {
    if (!(frame.topic in this.positions)) return; // another tab's topic
    this.positions[frame.topic] = frame.id;
    this.emit("event", frame);
  }

  deliverSubscribed(detail) {
    if (detail.topic in this.positions) this.emit("subscribed", detail);
  }

  setRole(role) {
    this.role = role;
    this.emit("role", { role });
  }

  setState(state, kind) {
    this.transportKind = kind || this.transportKind;
    if (state === this.state) return;
    this.state = state;
    this.emit("state", { state });
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}
