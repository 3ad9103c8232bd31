// Helpers for the LongPoll and binary-payload tests.
//
// - `RawLongPoll`: speaks the LongPoll transport (phoenix-protocol.md §6) with
//   plain `fetch`, exposing every HTTP status, header and JSON body.
// - `startProxy`: a small HTTP proxy in front of a server that forwards every
//   request but refuses (403), drops or never answers WebSocket upgrades, so
//   the official client's `longPollFallbackMs` has something to fall back from.
// - `MemoryStorage`: a Storage-compatible object for the client's
//   `sessionStorage` option (Node has no sessionStorage).
// - `trackingChannel`: a channel whose join params carry the highest seq seen
//   (recovery), recording every message from join replies and broadcasts.
// - Byte helpers: a real 1×1 PNG, ArrayBuffer conversion, REST uploads.
//
// Waits are event driven (a reply, a frame, a poll answer); time is only
// measured where the protocol itself is time based (the 10 s poll window).

import assert from "node:assert/strict";
import http from "node:http";
import { Collector, DEADLINE_MS } from "./harness.mjs";

// ------------------------------------------------------------------ bytes

/** A valid 1×1 PNG (67 bytes). */
export const PNG_1X1 = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
);

/** A small GIF header followed by `n` filler bytes (sniffed as image/gif). */
export function gifBytes(n = 16) {
  return Buffer.concat([Buffer.from("GIF89a"), Buffer.alloc(n, 7)]);
}

/** A fresh ArrayBuffer holding exactly the bytes of `bytes` (Buffer, Uint8Array or array). */
export function toArrayBuffer(bytes) {
  return Uint8Array.from(bytes).buffer;
}

/** The bytes of an ArrayBuffer / view as a Buffer (for deepEqual). */
export function bytesOf(data) {
  if (data instanceof ArrayBuffer) return Buffer.from(new Uint8Array(data));
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new Error(`not binary: ${Object.prototype.toString.call(data)}`);
}

/** Raw-body REST upload to `/api/rooms/{room}/attachments`; resolves with `{status, body}`. */
export async function uploadRest(server, token, room, bytes, contentType = "application/octet-stream") {
  const res = await fetch(`${server.url}/api/rooms/${room}/attachments`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": contentType },
    body: bytes,
  });
  const text = await res.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body, headers: res.headers };
}

/** `GET /api/attachments/{id}`; resolves with `{status, headers, bytes}`. */
export async function fetchAttachment(server, token, id) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const res = await fetch(`${server.url}/api/attachments/${id}`, { headers });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

// -------------------------------------------------------------- storage

/** Minimal Storage for the phoenix `sessionStorage` option. */
export class MemoryStorage {
  constructor() {
    this.storage = {};
  }
  getItem(key) {
    return Object.prototype.hasOwnProperty.call(this.storage, key) ? this.storage[key] : null;
  }
  setItem(key, value) {
    this.storage[key] = String(value);
  }
  removeItem(key) {
    delete this.storage[key];
  }
}

// ------------------------------------------------------------ raw LongPoll

/** Query string from ordered `[key, value]` pairs (duplicates kept, undefined skipped). */
function queryOf(pairs) {
  return pairs
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join("&");
}

/**
 * One LongPoll session driven by hand. `params` are the user's query params
 * (usually `{token: userToken}`); the session token is appended last as a
 * second `token`, as phoenix.js does.
 */
export class RawLongPoll {
  constructor(server, params = {}, { vsn = "2.0.0", headers = {} } = {}) {
    this.server = server;
    this.params = params;
    this.vsn = vsn;
    this.headers = headers;
    this.session = null;
    this.ref = 0;
    /** Every frame received by `get()`, decoded from its JSON string. */
    this.frames = new Collector("longpoll frames");
    /** Every raw element of every `messages` array (to check their type). */
    this.rawMessages = [];
  }

  nextRef() {
    this.ref += 1;
    return String(this.ref);
  }

  /** The LongPoll URL; `session` (default: the current one) is appended as the last `token`. */
  url(session = this.session) {
    const pairs = Object.entries(this.params);
    if (this.vsn != null) pairs.push(["vsn", this.vsn]); // null: no vsn at all (V1)
    if (session) pairs.push(["token", session]);
    const qs = queryOf(pairs);
    return `${this.server.url}/socket/longpoll${qs ? `?${qs}` : ""}`;
  }

  async request(method, { body, headers = {}, session, signal } = {}) {
    const res = await fetch(this.url(session), {
      method,
      headers: { ...this.headers, ...headers },
      body,
      signal,
    });
    const text = await res.text();
    let json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {}
    return { http: res.status, headers: res.headers, text, body: json };
  }

  /** GET; records returned frames. Resolves with the response. */
  async get(opts = {}) {
    const res = await this.request("GET", { headers: { accept: "application/json", ...opts.headers }, ...opts });
    if (res.body && Array.isArray(res.body.messages)) {
      for (const m of res.body.messages) {
        this.rawMessages.push(m);
        this.frames.add(typeof m === "string" ? JSON.parse(m) : { notAString: m });
      }
    }
    return res;
  }

  /** The session-creating GET; stores the session token. Resolves with the response. */
  async open(opts = {}) {
    const res = await this.get({ ...opts, session: null });
    if (res.body && res.body.status === 410 && res.body.token) this.session = res.body.token;
    return res;
  }

  /** POST of `lines` (array of strings or frames) as ndjson, or a raw string body. */
  async post(lines, { contentType = "application/x-ndjson", session } = {}) {
    const body = Array.isArray(lines)
      ? lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n")
      : lines;
    return this.request("POST", { body, headers: { "content-type": contentType }, session });
  }

  /**
   * Polls until `predicate(frames)` holds; each GET returns as soon as frames
   * are queued, so this is event driven. Fails after `ms`.
   */
  async pollUntil(predicate, ms = DEADLINE_MS, what = "frames") {
    const until = Date.now() + ms;
    for (;;) {
      if (predicate(this.frames.items)) return this.frames.items;
      const left = until - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out after ${ms} ms polling for ${what}; got ${JSON.stringify(this.frames.items).slice(0, 2000)}`,
        );
      }
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), left);
      try {
        const res = await this.get({ signal: controller.signal });
        if (!res.body || ![200, 204].includes(res.body.status)) {
          throw new Error(`poll answered ${res.http} ${res.text}`);
        }
      } catch (e) {
        if (e.name !== "AbortError") throw e;
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /** Polls until a frame with ref `ref` arrives; resolves with it. */
  async reply(ref, ms = DEADLINE_MS) {
    await this.pollUntil((frames) => frames.some((f) => Array.isArray(f) && f[1] === ref), ms, `a reply to ${ref}`);
    return this.frames.items.find((f) => Array.isArray(f) && f[1] === ref);
  }

  /** POSTs a V2 join and polls for its reply. Resolves with `{joinRef, reply, post}`. */
  async join(topic, payload = {}, ms = DEADLINE_MS) {
    const ref = this.nextRef();
    const post = await this.post([[ref, ref, topic, "phx_join", payload]]);
    if (!post.body || post.body.status !== 200) throw new Error(`join POST answered ${post.text}`);
    const reply = await this.reply(ref, ms);
    return { joinRef: ref, reply, post };
  }

  /** POSTs a push and polls for its reply. */
  async push(joinRef, topic, event, payload = {}, ms = DEADLINE_MS) {
    const ref = this.nextRef();
    const post = await this.post([[joinRef, ref, topic, event, payload]]);
    if (!post.body || post.body.status !== 200) throw new Error(`push POST answered ${post.text}`);
    return this.reply(ref, ms);
  }
}

/** A V2 client→server binary push frame (kind 0), as phoenix.js encodes it. */
export function binaryPushFrame(joinRef, ref, topic, event, payload) {
  const enc = (s) => Buffer.from(s ?? "", "utf8");
  const [j, r, t, e] = [enc(joinRef), enc(ref), enc(topic), enc(event)];
  return Buffer.concat([Buffer.from([0, j.length, r.length, t.length, e.length]), j, r, t, e, Buffer.from(payload)]);
}

/**
 * Decodes a V2 server→client binary frame (phoenix-protocol.md §2.3):
 * kind 0 push `{joinRef, topic, event}`, kind 1 reply `{joinRef, ref, topic, status}`,
 * kind 2 broadcast `{topic, event}`; each with `payload` (Buffer).
 */
export function decodeServerBinary(buf) {
  const kind = buf[0];
  const lens = kind === 1 ? [...buf.subarray(1, 5)] : kind === 0 ? [...buf.subarray(1, 4)] : [...buf.subarray(1, 3)];
  let offset = 1 + lens.length;
  const fields = lens.map((n) => {
    const s = buf.subarray(offset, offset + n).toString("utf8");
    offset += n;
    return s;
  });
  const payload = Buffer.from(buf.subarray(offset));
  if (kind === 0) return { kind, joinRef: fields[0], topic: fields[1], event: fields[2], payload };
  if (kind === 1) return { kind, joinRef: fields[0], ref: fields[1], topic: fields[2], status: fields[3], payload };
  return { kind, topic: fields[0], event: fields[1], payload };
}

// ----------------------------------------------------------------- proxy

/**
 * An HTTP proxy to `target` (a Server) that forwards every plain request
 * (long polls included) and treats WebSocket upgrades per `upgrade`:
 * "403" answers HTTP 403, "destroy" drops the connection, "hang" never answers.
 * Resolves with `{port, socketUrl, upgrades, requests, close()}`.
 */
export async function startProxy(target, { upgrade = "403" } = {}) {
  const upgrades = new Collector("proxied upgrade attempts");
  const requests = new Collector("proxied requests");
  const held = new Set();
  const server = http.createServer((req, res) => {
    requests.add(`${req.method} ${req.url.split("?")[0]}`);
    const upstream = http.request(
      {
        host: "127.0.0.1",
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: `127.0.0.1:${target.port}` },
      },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.on("aborted", () => upstream.destroy());
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on("upgrade", (req, socket) => {
    upgrades.add(req.url.split("?")[0]);
    socket.on("error", () => {});
    if (upgrade === "403") {
      socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    } else if (upgrade === "destroy") {
      socket.destroy();
    } else {
      held.add(socket);
      socket.on("close", () => held.delete(socket));
    }
  });
  server.on("clientError", (_e, socket) => socket.destroy());
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    port,
    socketUrl: `ws://127.0.0.1:${port}/socket`,
    upgrades,
    requests,
    async close() {
      for (const s of held) s.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// --------------------------------------------------------------- recovery

/**
 * Joins `topic` with params computed at every (re)join from the highest seq
 * seen so far; records every message seen from join replies and `new_msg`
 * broadcasts, in arrival order.
 */
export function trackingChannel(socket, topic, initialSeq = 0) {
  const state = {
    lastSeen: initialSeq,
    seqs: [],
    seen: new Collector(`${topic} seqs`),
    joins: new Collector(`${topic} join replies`),
    paramsSent: [],
  };
  const record = (message) => {
    state.seqs.push(message.seq);
    state.lastSeen = Math.max(state.lastSeen, message.seq);
    state.seen.add(message.seq);
  };
  const channel = socket.channel(topic, () => {
    const params = { last_seq: state.lastSeen };
    state.paramsSent.push(params);
    return params;
  });
  channel.on("new_msg", record);
  channel
    .join()
    .receive("ok", (response) => {
      response.messages.forEach(record);
      state.joins.add(response);
    })
    .receive("error", (response) => state.joins.add({ error: response }));
  state.channel = channel;
  state.until = (seq, ms = 10000) => state.seen.until(() => state.lastSeen >= seq, ms, `seq ${seq}`);
  return state;
}

/**
 * The end of a recovery test on a room that holds only the `posted`
 * messages: one more (from `postOne`, which returns its seq) as a barrier —
 * per-topic delivery is in seq order, so a duplicate of anything earlier
 * would arrive before it — then every seq was seen exactly once, in order,
 * and every (re)join asked with a numeric `last_seq`.
 */
export async function assertSeenOnceInOrder(tracked, postOne, posted) {
  const last = await postOne();
  assert.equal(last, posted + 1, "the barrier follows every posted message");
  await tracked.until(last);
  assert.deepEqual(tracked.seqs, range(1, last), `seqs seen: ${tracked.seqs}`);
  for (const params of tracked.paramsSent) assert.equal(typeof params.last_seq, "number");
}

/** 1..n style inclusive range. */
export function range(from, to) {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
