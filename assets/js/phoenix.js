// phoenix.js — the client side of the Phoenix Channels protocol (V2 JSON
// frames), written for confab to behave like the official `phoenix` JS
// client 1.8 (see shared/docs/phoenix-protocol.md):
//
//   Socket    one WebSocket to `<endPoint>/websocket?<params>&vsn=2.0.0`.
//             `params` may be a function; it is re-read on EVERY (re)connect,
//             so a refreshed token is picked up. Heartbeat every 30 s on topic
//             "phoenix"; no reply before the next one is due → close 1000
//             "heartbeat timeout" and reconnect. Any close we did not ask for
//             reconnects after reconnectAfterMs(tries) (10, 50, 100, 150, 200,
//             250, 500, 1000, 2000, then 5000 ms; reset on open). While the
//             page is hidden a due reconnect waits until it is visible again.
//             Frames sent while disconnected are buffered and flushed on open.
//   Fallback  with `longPollFallbackMs`, as phoenix.js 1.8: the WebSocket must
//             open AND answer a heartbeat ping within that window, else (or at
//             once on a WebSocket error before that) the socket switches to
//             the LongPoll transport (longpoll.js) for good, and once LongPoll
//             opens remembers it in sessionStorage `phx:fallback:LongPoll`, so
//             later page loads of the tab go straight to LongPoll. One
//             deviation: once the WebSocket has passed that check, later
//             reconnects stay on it (a failure then means the server is away,
//             not that WebSockets are blocked; phoenix.js falls back then too).
//   Channel   join / rejoin with rejoinAfterMs backoff (1 s, 2 s, 5 s, then
//             10 s), join timeout → phx_leave + rejoin, errored on transport
//             loss and rejoined as soon as the socket opens. `params` may be a
//             function, re-read on every rejoin. Messages whose join_ref is not
//             the channel's current one are dropped.
//   Push      one request with a ref, `.receive(status, cb)` hooks and a
//             timeout (default 10 s); pushes made before the join is
//             acknowledged are buffered.
//   Presence  presence_state / presence_diff sync with the same semantics as
//             Phoenix.Presence (diffs are queued until the state for the
//             current join arrives).
//
// No dependencies but longpoll.js; an ES module.

import { LongPoll } from "./longpoll.js";

export { LongPoll };

const VSN = "2.0.0";
const DEFAULT_TIMEOUT = 10000;
const HEARTBEAT_INTERVAL = 30000;
const LONGPOLL_TIMEOUT = 20000;
const FALLBACK_KEY = "phx:fallback:LongPoll";

const CHANNEL_EVENTS = {
  close: "phx_close",
  error: "phx_error",
  join: "phx_join",
  reply: "phx_reply",
  leave: "phx_leave",
};

const STATES = { closed: "closed", errored: "errored", joined: "joined", joining: "joining", leaving: "leaving" };

/** Default reconnect backoff of the official client, in ms, by attempt (1-based). */
export function defaultReconnectAfterMs(tries) {
  return [10, 50, 100, 150, 200, 250, 500, 1000, 2000][tries - 1] || 5000;
}

/** Default rejoin backoff of the official client, in ms, by attempt (1-based). */
export function defaultRejoinAfterMs(tries) {
  return [1000, 2000, 5000][tries - 1] || 10000;
}

const resolve = (value) => (typeof value === "function" ? value() : value);

/** A retry timer whose delay grows with the number of tries; `reset` starts over. */
class BackoffTimer {
  constructor(callback, delayOf) {
    this.callback = callback;
    this.delayOf = delayOf;
    this.tries = 0;
    this.timer = null;
  }

  reset() {
    this.tries = 0;
    clearTimeout(this.timer);
    this.timer = null;
  }

  scheduleTimeout() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.tries += 1;
      this.callback();
    }, this.delayOf(this.tries + 1));
  }
}

/** Appends `params` to `url` as a query string (nested objects as bracket keys). */
function appendParams(url, params) {
  const parts = [];
  const add = (key, value) => {
    if (value === undefined) return;
    if (value !== null && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) add(`${key}[${k}]`, v);
    } else if (value !== null) {
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
    }
  };
  for (const [key, value] of Object.entries(params || {})) add(key, value);
  if (parts.length === 0) return url;
  return `${url}${url.includes("?") ? "&" : "?"}${parts.join("&")}`;
}

// --------------------------------------------------------------------- Push

/** One message sent on a channel, awaiting a reply with its ref. */
export class Push {
  constructor(channel, event, payload, timeout) {
    this.channel = channel;
    this.event = event;
    this.payload = payload || (() => ({}));
    this.timeout = timeout;
    this.receivedResp = null;
    this.timeoutTimer = null;
    this.recHooks = [];
    this.sent = false;
    this.ref = null;
    this.refEvent = null;
  }

  /** Sends again with a new ref (used for rejoins). */
  resend(timeout) {
    this.timeout = timeout;
    this.reset();
    this.send();
  }

  send() {
    if (this.hasReceived("timeout")) return;
    this.startTimeout();
    this.sent = true;
    this.channel.socket.push({
      topic: this.channel.topic,
      event: this.event,
      payload: resolve(this.payload),
      ref: this.ref,
      join_ref: this.channel.joinRef(),
    });
  }

  /** Registers `callback(response)` for a reply with `status` ("ok", "error", "timeout", …). */
  receive(status, callback) {
    if (this.hasReceived(status)) callback(this.receivedResp.response);
    this.recHooks.push({ status, callback });
    return this;
  }

  reset() {
    this.cancelRefEvent();
    this.ref = null;
    this.refEvent = null;
    this.receivedResp = null;
    this.sent = false;
  }

  matchReceive({ status, response }) {
    for (const hook of this.recHooks) if (hook.status === status) hook.callback(response);
  }

  cancelRefEvent() {
    if (this.refEvent) this.channel.off(this.refEvent);
  }

  cancelTimeout() {
    clearTimeout(this.timeoutTimer);
    this.timeoutTimer = null;
  }

  startTimeout() {
    if (this.timeoutTimer) this.cancelTimeout();
    this.ref = this.channel.socket.makeRef();
    this.refEvent = this.channel.replyEventName(this.ref);
    this.channel.on(this.refEvent, (payload) => {
      this.cancelRefEvent();
      this.cancelTimeout();
      this.receivedResp = payload;
      this.matchReceive(payload);
    });
    this.timeoutTimer = setTimeout(() => this.trigger("timeout", {}), this.timeout);
  }

  hasReceived(status) {
    return Boolean(this.receivedResp && this.receivedResp.status === status);
  }

  trigger(status, response) {
    this.channel.trigger(this.refEvent, { status, response });
  }
}

// ------------------------------------------------------------------ Channel

/** One topic on a socket. Create with `socket.channel(topic, params)`. */
export class Channel {
  constructor(topic, params, socket) {
    this.state = STATES.closed;
    this.topic = topic;
    this.params = params || {};
    this.socket = socket;
    this.bindings = [];
    this.bindingRef = 0;
    this.timeout = socket.timeout;
    this.joinedOnce = false;
    this.joinPush = new Push(this, CHANNEL_EVENTS.join, () => resolve(this.params), this.timeout);
    this.pushBuffer = [];
    this.stateChangeRefs = [];

    this.rejoinTimer = new BackoffTimer(() => {
      if (this.socket.isConnected()) this.rejoin();
    }, socket.rejoinAfterMs);

    this.stateChangeRefs.push(this.socket.onError(() => this.rejoinTimer.reset()));
    this.stateChangeRefs.push(
      this.socket.onOpen(() => {
        this.rejoinTimer.reset();
        if (this.isErrored()) this.rejoin();
      }),
    );

    this.joinPush.receive("ok", () => {
      this.state = STATES.joined;
      this.rejoinTimer.reset();
      for (const push of this.pushBuffer) push.send();
      this.pushBuffer = [];
    });
    this.joinPush.receive("error", () => {
      this.state = STATES.errored;
      if (this.socket.isConnected()) this.rejoinTimer.scheduleTimeout();
    });
    this.joinPush.receive("timeout", () => {
      // Tell the server to drop the join that may still complete, then retry.
      const leave = new Push(this, CHANNEL_EVENTS.leave, () => ({}), this.timeout);
      leave.send();
      this.state = STATES.errored;
      this.joinPush.reset();
      if (this.socket.isConnected()) this.rejoinTimer.scheduleTimeout();
    });

    this.onClose(() => {
      this.rejoinTimer.reset();
      this.state = STATES.closed;
      this.socket.remove(this);
    });
    this.onError(() => {
      if (this.isJoining()) this.joinPush.reset();
      this.state = STATES.errored;
      if (this.socket.isConnected()) this.rejoinTimer.scheduleTimeout();
    });
    this.on(CHANNEL_EVENTS.reply, (payload, ref) => {
      this.trigger(this.replyEventName(ref), payload);
    });
  }

  /** Joins once; later joins happen by themselves. Returns the join Push. */
  join(timeout = this.timeout) {
    if (this.joinedOnce) throw new Error("tried to join multiple times: use a new channel");
    this.timeout = timeout;
    this.joinedOnce = true;
    this.rejoin();
    return this.joinPush;
  }

  /** Leaves the topic; the channel is closed at once locally. */
  leave(timeout = this.timeout) {
    this.rejoinTimer.reset();
    this.joinPush.cancelTimeout();
    this.state = STATES.leaving;
    const onClose = () => this.trigger(CHANNEL_EVENTS.close, "leave");
    const leavePush = new Push(this, CHANNEL_EVENTS.leave, () => ({}), timeout);
    leavePush.receive("ok", onClose).receive("timeout", onClose);
    leavePush.send();
    if (!this.canPush()) leavePush.trigger("ok", {});
    return leavePush;
  }

  onClose(callback) {
    return this.on(CHANNEL_EVENTS.close, callback);
  }

  onError(callback) {
    return this.on(CHANNEL_EVENTS.error, (reason) => callback(reason));
  }

  /** Calls `callback(payload, ref, joinRef)` for `event`; returns a ref for `off`. */
  on(event, callback) {
    const ref = this.bindingRef++;
    this.bindings.push({ event, ref, callback });
    return ref;
  }

  off(event, ref) {
    this.bindings = this.bindings.filter((b) => !(b.event === event && (ref === undefined || ref === b.ref)));
  }

  canPush() {
    return this.socket.isConnected() && this.isJoined();
  }

  /** Sends `event` with `payload`; returns a Push for `.receive()`. */
  push(event, payload, timeout = this.timeout) {
    if (!this.joinedOnce) throw new Error(`tried to push "${event}" to "${this.topic}" before joining`);
    const push = new Push(this, event, () => payload, timeout);
    if (this.canPush()) {
      push.send();
    } else {
      push.startTimeout();
      this.pushBuffer.push(push);
    }
    return push;
  }

  joinRef() {
    return this.joinPush.ref;
  }

  rejoin(timeout = this.timeout) {
    if (this.isLeaving()) return;
    this.socket.leaveOpenTopic(this.topic, this);
    this.state = STATES.joining;
    this.joinPush.resend(timeout);
  }

  /** Whether a frame belongs to this channel instance. */
  isMember(topic, joinRef) {
    if (this.topic !== topic) return false;
    if (joinRef && joinRef !== this.joinRef()) return false;
    return true;
  }

  trigger(event, payload, ref, joinRef) {
    for (const binding of this.bindings.filter((b) => b.event === event)) {
      binding.callback(payload, ref, joinRef || this.joinRef());
    }
  }

  replyEventName(ref) {
    return `chan_reply_${ref}`;
  }

  isClosed() {
    return this.state === STATES.closed;
  }
  isErrored() {
    return this.state === STATES.errored;
  }
  isJoined() {
    return this.state === STATES.joined;
  }
  isJoining() {
    return this.state === STATES.joining;
  }
  isLeaving() {
    return this.state === STATES.leaving;
  }
}

// ------------------------------------------------------------------- Socket

/**
 * The connection. `endPoint` is e.g. "/socket" (→ ws(s)://<host>/socket/websocket).
 * Options: params (object or function), timeout, heartbeatIntervalMs,
 * reconnectAfterMs(tries), rejoinAfterMs(tries), logger(kind, msg, data),
 * transport (WebSocket constructor, or LongPoll), longPollFallbackMs (off
 * unless set), longpollerTimeout (20 s per LongPoll request), sessionStorage
 * (where the fallback is remembered; default the page's).
 */
export class Socket {
  constructor(endPoint, opts = {}) {
    this.endPoint = `${endPoint}/websocket`;
    this.params = opts.params || {};
    this.timeout = opts.timeout || DEFAULT_TIMEOUT;
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs || HEARTBEAT_INTERVAL;
    this.reconnectAfterMs = opts.reconnectAfterMs || defaultReconnectAfterMs;
    this.rejoinAfterMs = opts.rejoinAfterMs || defaultRejoinAfterMs;
    this.logger = opts.logger || null;
    this.transport = opts.transport || globalThis.WebSocket || LongPoll;
    this.longPollFallbackMs = opts.longPollFallbackMs || 0;
    this.longpollerTimeout = opts.longpollerTimeout || LONGPOLL_TIMEOUT;
    this.sessionStore = opts.sessionStorage !== undefined ? opts.sessionStorage : pageSessionStorage();
    // The WebSocket attempt on probation, see connectWithFallback.
    this.fallbackCheck = null;
    this.primaryPassedHealthCheck = false;
    this.fellBack = false;
    this.channels = [];
    this.sendBuffer = [];
    this.ref = 0;
    this.conn = null;
    this.closeWasClean = false;
    this.pendingHeartbeatRef = null;
    this.heartbeatTimer = null;
    this.heartbeatTimeoutTimer = null;
    this.waitingForVisible = false;
    this.stateChangeCallbacks = { open: [], close: [], error: [], message: [] };
    this.reconnectTimer = new BackoffTimer(() => {
      if (typeof document !== "undefined" && document.visibilityState === "hidden") {
        this.waitingForVisible = true;
        return;
      }
      this.teardown(() => this.connect());
    }, this.reconnectAfterMs);

    if (typeof document !== "undefined") {
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "visible" && this.waitingForVisible) {
          this.waitingForVisible = false;
          if (!this.isConnected() && !this.closeWasClean) this.teardown(() => this.connect());
        }
      });
    }
  }

  log(kind, msg, data) {
    if (this.logger) this.logger(kind, msg, data);
  }

  /** The URL of the next connection attempt; `params` is re-read here. */
  endPointURL() {
    let url = this.endPoint;
    if (!/^wss?:\/\//.test(url)) {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      url = url.startsWith("//") ? `${scheme}${url}` : `${scheme}//${location.host}${url}`;
    }
    return appendParams(appendParams(url, resolve(this.params)), { vsn: VSN });
  }

  connect() {
    if (this.conn) return;
    this.closeWasClean = false;
    this.waitingForVisible = false;
    if (this.longPollFallbackMs && this.transport !== LongPoll && !this.primaryPassedHealthCheck) {
      this.connectWithFallback();
    } else {
      this.transportConnect();
    }
  }

  transportConnect() {
    const conn = new this.transport(this.endPointURL());
    this.conn = conn;
    conn.binaryType = "arraybuffer";
    conn.timeout = this.longpollerTimeout;
    conn.onopen = () => this.onConnOpen(conn);
    conn.onerror = (error) => this.onConnError(conn, error);
    conn.onmessage = (event) => this.onConnMessage(conn, event);
    conn.onclose = (event) => this.onConnClose(conn, event);
  }

  /** Closes for good (no reconnect) until `connect()` is called again. */
  disconnect(callback, code, reason) {
    this.closeWasClean = true;
    this.reconnectTimer.reset();
    this.teardown(callback, code, reason);
  }

  onOpen(callback) {
    return this.addCallback("open", callback);
  }
  onClose(callback) {
    return this.addCallback("close", callback);
  }
  onError(callback) {
    return this.addCallback("error", callback);
  }
  onMessage(callback) {
    return this.addCallback("message", callback);
  }

  addCallback(kind, callback) {
    const ref = this.makeRef();
    this.stateChangeCallbacks[kind].push([ref, callback]);
    return ref;
  }

  /** Removes callbacks registered with onOpen/onClose/onError/onMessage. */
  off(refs) {
    for (const kind of Object.keys(this.stateChangeCallbacks)) {
      this.stateChangeCallbacks[kind] = this.stateChangeCallbacks[kind].filter(([ref]) => !refs.includes(ref));
    }
  }

  fire(kind, ...args) {
    for (const [, callback] of this.stateChangeCallbacks[kind]) callback(...args);
  }

  isConnected() {
    return Boolean(this.conn) && this.conn.readyState === 1;
  }

  /** Whether the socket uses (or will use, once connected) the LongPoll transport. */
  isLongPoll() {
    return this.transport === LongPoll;
  }

  connectionState() {
    if (!this.conn) return "closed";
    return ["connecting", "open", "closing", "closed"][this.conn.readyState] || "closed";
  }

  /** A new channel for `topic`; join it with `.join()`. */
  channel(topic, params) {
    const channel = new Channel(topic, params, this);
    this.channels.push(channel);
    return channel;
  }

  remove(channel) {
    this.off(channel.stateChangeRefs);
    this.channels = this.channels.filter((c) => c !== channel);
  }

  /** Leaves another joined/joining channel instance of `topic`: one per topic, as the official client. */
  leaveOpenTopic(topic, except) {
    const dup = this.channels.find((c) => c !== except && c.topic === topic && (c.isJoined() || c.isJoining()));
    if (dup) {
      this.log("transport", `leaving duplicate topic "${topic}"`);
      dup.leave();
    }
  }

  /** Encodes and sends a frame now, or buffers it until the socket opens. */
  push({ topic, event, payload, ref, join_ref: joinRef }) {
    const text = JSON.stringify([joinRef ?? null, ref ?? null, topic, event, payload]);
    this.log("push", `${topic} ${event} (${joinRef}, ${ref})`, payload);
    if (this.isConnected()) this.conn.send(text);
    else this.sendBuffer.push(text);
  }

  makeRef() {
    this.ref += 1;
    return String(this.ref);
  }

  // ------------------------------------------------------------ internals

  /**
   * Drops the current connection without waiting for its close event: the
   * channels are errored (so they rejoin on the next open) and close
   * callbacks run now. Does not schedule a reconnect.
   */
  teardown(callback, code, reason) {
    const conn = this.conn;
    this.clearHeartbeat();
    this.cancelFallback();
    if (conn) {
      this.conn = null;
      // No-ops, not null: `ws` (Node) reports closing a CONNECTING socket as an
      // error event, which throws when nothing listens.
      const ignore = () => {};
      conn.onopen = conn.onerror = conn.onmessage = conn.onclose = ignore;
      if (conn.readyState === 0 || conn.readyState === 1) {
        try {
          if (code) conn.close(code, reason || "");
          else conn.close();
        } catch {
          // close() throws for codes a browser refuses; the socket goes anyway.
        }
      }
      this.triggerChanError("connection_closed");
      this.fire("close", { code: code || 1005, reason: reason || "", wasClean: true });
    }
    if (callback) callback();
  }

  /** Connects now instead of waiting for the backoff (e.g. when the browser goes online). */
  reconnectNow() {
    if (this.isConnected()) return;
    this.closeWasClean = false;
    this.reconnectTimer.reset();
    this.teardown(() => this.connect());
  }

  onConnOpen(conn) {
    if (conn !== this.conn) return;
    this.log("transport", `${this.isLongPoll() ? "LongPoll" : "WebSocket"} connected to ${this.endPoint}`);
    this.closeWasClean = false;
    this.reconnectTimer.reset();
    this.flushSendBuffer();
    this.resetHeartbeat();
    if (this.fallbackCheck && this.fallbackCheck.conn === conn) this.pingForFallback();
    if (this.fellBack && this.isLongPoll() && !this.primaryPassedHealthCheck) this.storeSession(FALLBACK_KEY, "true");
    this.fire("open");
  }

  onConnError(conn, error) {
    if (conn !== this.conn) return;
    this.log("transport", "error", error);
    this.fire("error", error);
    this.triggerChanError("connection_error");
    if (this.conn === conn && this.fallbackCheck && this.fallbackCheck.conn === conn) this.fallBack("error");
  }

  onConnClose(conn, event) {
    if (conn !== this.conn) return;
    this.log("transport", `close ${event.code} ${event.reason || ""}`);
    if (this.fallbackCheck && this.fallbackCheck.conn === conn) {
      this.fallBack(`close ${event.code}`);
      return;
    }
    this.conn = null;
    this.clearHeartbeat();
    this.triggerChanError("connection_closed");
    if (!this.closeWasClean) this.reconnectTimer.scheduleTimeout();
    this.fire("close", event);
  }

  triggerChanError(reason) {
    for (const channel of this.channels) {
      if (!(channel.isErrored() || channel.isLeaving() || channel.isClosed())) {
        channel.trigger(CHANNEL_EVENTS.error, { source: "transport", reason });
      }
    }
  }

  flushSendBuffer() {
    if (!this.isConnected()) return;
    for (const text of this.sendBuffer) this.conn.send(text);
    this.sendBuffer = [];
  }

  onConnMessage(conn, event) {
    if (conn !== this.conn) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      this.log("receive", "unparsable frame", event.data);
      return;
    }
    if (!Array.isArray(frame)) return;
    const [joinRef, ref, topic, eventName, payload] = frame;
    if (this.fallbackCheck && ref != null && ref === this.fallbackCheck.pingRef) {
      this.log("transport", "the WebSocket answered its first ping: no LongPoll fallback");
      this.primaryPassedHealthCheck = true;
      this.cancelFallback();
    }
    if (ref !== null && ref !== undefined && ref === this.pendingHeartbeatRef) {
      clearTimeout(this.heartbeatTimeoutTimer);
      this.heartbeatTimeoutTimer = null;
      this.pendingHeartbeatRef = null;
      this.heartbeatTimer = setTimeout(() => this.sendHeartbeat(), this.heartbeatIntervalMs);
    }
    this.log("receive", `${topic} ${eventName} (${joinRef}, ${ref})`, payload);
    for (const channel of [...this.channels]) {
      if (channel.isMember(topic, joinRef)) channel.trigger(eventName, payload, ref, joinRef);
    }
    this.fire("message", { join_ref: joinRef, ref, topic, event: eventName, payload });
  }

  resetHeartbeat() {
    this.clearHeartbeat();
    if (this.conn && this.conn.skipHeartbeat) return; // LongPoll: no heartbeats
    this.heartbeatTimer = setTimeout(() => this.sendHeartbeat(), this.heartbeatIntervalMs);
  }

  clearHeartbeat() {
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.heartbeatTimeoutTimer);
    this.heartbeatTimer = null;
    this.heartbeatTimeoutTimer = null;
    this.pendingHeartbeatRef = null;
  }

  sendHeartbeat() {
    if (!this.isConnected()) return;
    this.pendingHeartbeatRef = this.makeRef();
    this.push({ topic: "phoenix", event: "heartbeat", payload: {}, ref: this.pendingHeartbeatRef });
    this.heartbeatTimeoutTimer = setTimeout(() => this.heartbeatTimeout(), this.heartbeatIntervalMs);
  }

  // ------------------------------------------------------- LongPoll fallback

  /**
   * Connects over the WebSocket on probation: it must open and answer a ping
   * within `longPollFallbackMs` (restarted when it opens, as phoenix.js), or
   * the socket falls back to LongPoll; an error or close before that falls
   * back at once. Straight to LongPoll if this tab already fell back.
   */
  connectWithFallback() {
    if (this.getSession(FALLBACK_KEY)) {
      this.log("transport", "LongPoll remembered from an earlier page of this tab");
      this.fellBack = true;
      this.transport = LongPoll;
      this.transportConnect();
      return;
    }
    this.transportConnect();
    const check = { conn: this.conn, pingRef: null, timer: null };
    check.timer = setTimeout(() => this.fallBack("timeout"), this.longPollFallbackMs);
    this.fallbackCheck = check;
  }

  pingForFallback() {
    const check = this.fallbackCheck;
    clearTimeout(check.timer);
    check.timer = setTimeout(() => this.fallBack("no answer to the ping"), this.longPollFallbackMs);
    check.pingRef = this.makeRef();
    this.push({ topic: "phoenix", event: "heartbeat", payload: {}, ref: check.pingRef });
  }

  cancelFallback() {
    if (!this.fallbackCheck) return;
    clearTimeout(this.fallbackCheck.timer);
    this.fallbackCheck = null;
  }

  /** Drops the WebSocket attempt (channels error and rejoin later) and connects over LongPoll now. */
  fallBack(reason) {
    this.log("transport", `falling back to LongPoll (${reason})`);
    this.cancelFallback();
    this.fellBack = true;
    this.transport = LongPoll;
    this.teardown(() => this.connect());
  }

  getSession(key) {
    try {
      return this.sessionStore ? this.sessionStore.getItem(key) : null;
    } catch {
      return null;
    }
  }

  storeSession(key, value) {
    try {
      if (this.sessionStore) this.sessionStore.setItem(key, value);
    } catch {
      // Storage full or denied: the fallback is just not remembered.
    }
  }

  heartbeatTimeout() {
    if (!this.pendingHeartbeatRef) return;
    this.log("transport", "heartbeat timeout: closing and reconnecting");
    this.triggerChanError("heartbeat_timeout");
    this.teardown(null, 1000, "heartbeat timeout");
    this.reconnectTimer.scheduleTimeout();
  }
}

// ----------------------------------------------------------------- Presence

/**
 * Phoenix.Presence on a channel: `onSync(cb)`, `onJoin(cb)`, `onLeave(cb)`,
 * `list(chooser)`. Keys are user ids; each key has `metas` (one per socket).
 */
export class Presence {
  constructor(channel, opts = {}) {
    const events = opts.events || { state: "presence_state", diff: "presence_diff" };
    this.state = {};
    this.pendingDiffs = [];
    this.channel = channel;
    this.joinRef = null;
    this.caller = { onJoin() {}, onLeave() {}, onSync() {} };

    this.stateRef = channel.on(events.state, (newState) => {
      const { onJoin, onLeave, onSync } = this.caller;
      this.joinRef = this.channel.joinRef();
      this.state = Presence.syncState(this.state, newState, onJoin, onLeave);
      for (const diff of this.pendingDiffs) this.state = Presence.syncDiff(this.state, diff, onJoin, onLeave);
      this.pendingDiffs = [];
      onSync();
    });
    this.diffRef = channel.on(events.diff, (diff) => {
      const { onJoin, onLeave, onSync } = this.caller;
      if (this.inPendingSyncState()) {
        this.pendingDiffs.push(diff);
      } else {
        this.state = Presence.syncDiff(this.state, diff, onJoin, onLeave);
        onSync();
      }
    });
  }

  onJoin(callback) {
    this.caller.onJoin = callback;
  }
  onLeave(callback) {
    this.caller.onLeave = callback;
  }
  onSync(callback) {
    this.caller.onSync = callback;
  }

  list(chooser) {
    return Presence.list(this.state, chooser);
  }

  inPendingSyncState() {
    return !this.joinRef || this.joinRef !== this.channel.joinRef();
  }

  /** Applies a full state: joins for new refs, leaves for vanished ones. */
  static syncState(currentState, newState, onJoin, onLeave) {
    const state = clone(currentState);
    const joins = {};
    const leaves = {};
    for (const [key, presence] of Object.entries(state)) {
      if (!newState[key]) leaves[key] = presence;
    }
    for (const [key, newPresence] of Object.entries(newState)) {
      const current = state[key];
      if (current) {
        const newRefs = newPresence.metas.map((m) => m.phx_ref);
        const curRefs = current.metas.map((m) => m.phx_ref);
        const joinedMetas = newPresence.metas.filter((m) => !curRefs.includes(m.phx_ref));
        const leftMetas = current.metas.filter((m) => !newRefs.includes(m.phx_ref));
        if (joinedMetas.length > 0) joins[key] = { ...newPresence, metas: joinedMetas };
        if (leftMetas.length > 0) leaves[key] = { ...clone(current), metas: leftMetas };
      } else {
        joins[key] = newPresence;
      }
    }
    return Presence.syncDiff(state, { joins, leaves }, onJoin, onLeave);
  }

  /** Applies one diff: joins first, then leaves (a key with no metas left is removed). */
  static syncDiff(state, diff, onJoin = () => {}, onLeave = () => {}) {
    const { joins, leaves } = clone(diff);
    for (const [key, newPresence] of Object.entries(joins || {})) {
      const current = state[key];
      state[key] = clone(newPresence);
      if (current) {
        const joinedRefs = state[key].metas.map((m) => m.phx_ref);
        const kept = current.metas.filter((m) => !joinedRefs.includes(m.phx_ref));
        state[key].metas.unshift(...kept);
      }
      onJoin(key, current, newPresence);
    }
    for (const [key, leftPresence] of Object.entries(leaves || {})) {
      const current = state[key];
      if (!current) continue;
      const refsToRemove = leftPresence.metas.map((m) => m.phx_ref);
      current.metas = current.metas.filter((m) => !refsToRemove.includes(m.phx_ref));
      onLeave(key, current, leftPresence);
      if (current.metas.length === 0) delete state[key];
    }
    return state;
  }

  /** `chooser(key, presence)` over the state (default: the presences). */
  static list(presences, chooser = (key, presence) => presence) {
    return Object.entries(presences).map(([key, presence]) => chooser(key, presence));
  }
}

/** The page's sessionStorage, or null where there is none or it is denied. */
function pageSessionStorage() {
  try {
    return globalThis.sessionStorage || null;
  } catch {
    return null;
  }
}

function clone(value) {
  return value === undefined ? value : JSON.parse(JSON.stringify(value));
}
