// longpoll.js — the LongPoll transport of the Phoenix protocol
// (shared/docs/phoenix-protocol.md §6), for networks where WebSockets cannot
// open. It looks like a WebSocket to phoenix.js (readyState, send, close,
// onopen/onerror/onmessage/onclose), so channels, pushes, presence, rejoin and
// recovery run over it unchanged; phoenix.js switches to it by itself (see
// `longPollFallbackMs` there).
//
// Owns one LongPoll session: its session token, the one GET in flight that
// polls `<endPoint>/longpoll` for frames, and the one POST in flight that
// carries queued frames (one per line, at most 100 per POST, the rest waiting
// for the next one). Every request is a `fetch` aborted after `timeout` ms
// (20 s). It never reconnects by itself: on any failure it reports error then
// close, and the socket reconnects with its usual backoff through a fresh
// LongPoll (a new session).
//
// GET answers (the HTTP status is always 200; only the body's `status` counts):
//   410 without a session token  → the session token; the transport is open
//   200 / 204                    → frames (each dispatched in its own task) / nothing; poll again
//   410 with a session token     → session gone: close 3410 "session_gone"
//   403                          → refused: close 1008 "forbidden" (chat.js then re-checks the sign-in)
//   500, other, unreadable, network error → close 1011; timeout → close 1005 "timeout"
// A POST answered with anything but 200 closes with 1011.
//
// No heartbeats are sent over LongPoll (`skipHeartbeat`), as in phoenix.js.

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

/** Most frames in one POST (the server ignores or refuses more). */
const MAX_BATCH = 100;

/** An abandoned request: its answer is no longer ours. */
const STALE = Symbol("stale");

export class LongPoll {
  /** `endPoint` is the WebSocket URL phoenix.js built: ws(s)://host/…/websocket?params&vsn=2.0.0. */
  constructor(endPoint) {
    this.pollEndpoint = endPoint
      .replace(/^ws:\/\//, "http://")
      .replace(/^wss:\/\//, "https://")
      .replace(/\/websocket(\?|$)/, "/longpoll$1");
    this.token = null;
    this.timeout = 20000;
    this.skipHeartbeat = true;
    this.binaryType = "arraybuffer";
    this.readyState = CONNECTING;
    this.onopen = this.onerror = this.onmessage = this.onclose = null;
    this.requests = new Set();
    this.messageTimers = new Set();
    this.queue = [];
    this.posting = false;
    this.postTimer = null;
    // The caller sets the callbacks and `timeout` first (and may close us at once).
    setTimeout(() => this.poll(), 0);
  }

  /** The poll URL: the user's params, then the session token as the LAST `token`. */
  url() {
    if (!this.token) return this.pollEndpoint;
    const sep = this.pollEndpoint.includes("?") ? "&" : "?";
    return `${this.pollEndpoint}${sep}token=${encodeURIComponent(this.token)}`;
  }

  isActive() {
    return this.readyState === CONNECTING || this.readyState === OPEN;
  }

  async poll() {
    if (!this.isActive()) return;
    const answer = await this.request("GET", { Accept: "application/json" }, null);
    if (answer === STALE) return;
    if (answer === "timeout") return this.fail("timeout", 1005, "timeout");
    const status = answer ? answer.status : 0;
    if (status === 410 && this.token !== null) return this.fail(410, 3410, "session_gone");
    if (answer && answer.token) this.token = answer.token;
    switch (status) {
      case 410:
        this.readyState = OPEN;
        this.emit("onopen", {});
        return this.poll();
      case 200:
        for (const data of Array.isArray(answer.messages) ? answer.messages : []) {
          // One task per frame, like WebSocket message events: promise
          // callbacks of one frame's handlers run before the next frame.
          const timer = setTimeout(() => {
            this.messageTimers.delete(timer);
            if (this.readyState === OPEN) this.emit("onmessage", { data });
          }, 0);
          this.messageTimers.add(timer);
        }
        return this.poll();
      case 204:
        return this.poll();
      case 403:
        this.emit("onerror", 403);
        return this.close(1008, "forbidden", false);
      default:
        // 500, an unknown status, an unreadable body or a network error: retry with backoff.
        return this.fail(status || 500, 1011, "internal server error");
    }
  }

  /** Queues a frame (a string; binary data goes as a base64 line) for the next POST. */
  send(data) {
    if (!this.isActive()) return;
    this.queue.push(typeof data === "string" ? data : toBase64(data));
    // Frames pushed in the same task go in one POST.
    if (!this.posting && !this.postTimer) {
      this.postTimer = setTimeout(() => {
        this.postTimer = null;
        this.flush();
      }, 0);
    }
  }

  /** POSTs up to MAX_BATCH queued frames; the next batch waits for this one's answer. */
  async flush() {
    if (this.posting || this.queue.length === 0 || !this.isActive()) return;
    const batch = this.queue.splice(0, MAX_BATCH);
    this.posting = true;
    const answer = await this.request("POST", { "Content-Type": "application/x-ndjson" }, batch.join("\n"));
    if (answer === STALE) return;
    this.posting = false;
    if (answer === "timeout") return this.fail("timeout", 1005, "timeout");
    if (!answer || answer.status !== 200) return this.fail((answer && answer.status) || 500, 1011, "internal server error");
    this.flush();
  }

  /** Closes for good: pending requests are aborted, queued frames dropped. */
  close(code = 1005, reason = "", wasClean = true) {
    if (this.readyState === CLOSED) return;
    this.stop();
    this.emit("onclose", { code, reason, wasClean });
  }

  // ------------------------------------------------------------ internals

  /** Like a failed WebSocket: no longer open, then error, then close. */
  fail(error, code, reason) {
    if (!this.isActive()) return;
    this.stop();
    this.emit("onerror", error);
    this.emit("onclose", { code, reason, wasClean: false });
  }

  stop() {
    this.readyState = CLOSED;
    // Forget the requests before aborting them: their answers are not ours any more.
    const requests = this.requests;
    this.requests = new Set();
    for (const controller of requests) controller.abort();
    for (const timer of this.messageTimers) clearTimeout(timer);
    this.messageTimers.clear();
    clearTimeout(this.postTimer);
    this.postTimer = null;
    this.queue = [];
    this.posting = false;
  }

  /** Calls a handler; like an event listener's, its exception is reported but does not stop the polling. */
  emit(handler, arg) {
    if (typeof this[handler] !== "function") return;
    try {
      this[handler](arg);
    } catch (error) {
      setTimeout(() => {
        throw error;
      }, 0);
    }
  }

  /**
   * One fetch with a `timeout`: resolves with the JSON body (null if the
   * request failed or the body is not JSON), "timeout", or STALE once we
   * stopped caring about it.
   */
  async request(method, headers, body) {
    const controller = new AbortController();
    this.requests.add(controller);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeout);
    let answer = null;
    try {
      const response = await fetch(this.url(), { method, headers, body, signal: controller.signal, cache: "no-store" });
      answer = JSON.parse(await response.text());
    } catch {
      answer = null;
    } finally {
      clearTimeout(timer);
    }
    if (!this.requests.delete(controller)) return STALE;
    return timedOut ? "timeout" : answer;
  }
}

function toBase64(data) {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let binary = "";
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
  return btoa(binary);
}
