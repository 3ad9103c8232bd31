// Test harness for confab's protocol conformance suite.
//
// Starts the real server binary on a fresh data directory, talks to it over
// REST (fetch) and over the Phoenix Channels protocol, both with the official
// `phoenix` client (transport: `ws`) and with raw `ws` sockets.
//
// Under `npm run test:pg` (postgres.mjs sets CONFAB_TEST_PG_URL and
// CONFAB_TEST_PG_BIN) every server keeps its data in PostgreSQL: a fresh
// database per server (per data directory, kept across restarts), passed
// as CONFAB_DATABASE_URL unless the test sets a database itself.
//
// Synchronisation is always event driven: helpers resolve when a frame,
// reply or event arrives. Timeouts are failure deadlines only.

import { execFile, spawn, spawnSync } from "node:child_process";
import { after, before } from "node:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import WebSocket from "ws";
import { Socket } from "phoenix";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const BINARY = path.resolve(HERE, process.env.CONFAB_BIN || "../../target/debug/confab");

/** Default failure deadline for a single awaited event. */
export const DEADLINE_MS = 5000;

const FAST_ENV = {
  CONFAB_ARGON2_MEMORY_KIB: "8192",
  CONFAB_ARGON2_ITERATIONS: "1",
  CONFAB_LOG_LEVEL: process.env.CONFAB_TEST_LOG || "info",
  CONFAB_LOG_FORMAT: "text",
  // One test user often holds several sockets.
  CONFAB_MAX_SOCKETS_PER_USER: "50",
};

/** Whether `setpriv --pdeathsig` is there to tie a child's life to this process. */
const HAS_SETPRIV = spawnSync("setpriv", ["--version"], { stdio: "ignore" }).status === 0;

/** The PostgreSQL server of `npm run test:pg`, or null (the embedded store). */
const POSTGRES = process.env.CONFAB_TEST_PG_URL
  ? { url: new URL(process.env.CONFAB_TEST_PG_URL), bin: process.env.CONFAB_TEST_PG_BIN || "" }
  : null;

let databases = 0;
/** Creates a fresh database on the PostgreSQL server; resolves with its URL. */
function createDatabase() {
  databases += 1;
  const name = `confab_${process.pid}_${databases}`;
  const { hostname, port, username } = POSTGRES.url;
  const createdb = POSTGRES.bin ? path.join(POSTGRES.bin, "createdb") : "createdb";
  return new Promise((resolve, reject) => {
    execFile(createdb, ["-h", hostname, "-p", port, "-U", username, name], (error, _stdout, stderr) => {
      if (error) reject(new Error(`createdb ${name} failed: ${error.message}\n${stderr}`));
      else resolve(`postgres://${username}@${hostname}:${port}/${name}`);
    });
  });
}

let counter = 0;
/** A name unique within this process (usernames, room names, client ids). */
export function unique(prefix = "x") {
  counter += 1;
  return `${prefix}${process.pid.toString(36)}${counter}`.toLowerCase().slice(0, 32);
}

/** Rejects after `ms` with a message naming what was awaited. */
export function withDeadline(promise, ms, what, server) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const tail = server ? `\n--- server output (tail) ---\n${server.tail()}` : "";
      reject(new Error(`timed out after ${ms} ms waiting for ${what}${tail}`));
    }, ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Collects items (frames, events) and lets tests await a condition over
 * everything collected so far. Conditions are re-checked on every new item.
 */
export class Collector {
  constructor(label = "items") {
    this.label = label;
    this.items = [];
    this.waiters = new Set();
  }

  add(item) {
    this.items.push(item);
    for (const waiter of [...this.waiters]) waiter.check();
  }

  /** Resolves with the items once `predicate(items)` is truthy. */
  until(predicate, ms = DEADLINE_MS, what = "a condition") {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          let ok;
          try {
            ok = predicate(this.items);
          } catch (e) {
            this.waiters.delete(waiter);
            clearTimeout(waiter.timer);
            reject(e);
            return;
          }
          if (ok) {
            this.waiters.delete(waiter);
            clearTimeout(waiter.timer);
            resolve(this.items);
          }
        },
      };
      waiter.timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new Error(
            `timed out after ${ms} ms waiting for ${what} on ${this.label}; got ${this.items.length}: ` +
              JSON.stringify(this.items).slice(0, 2000),
          ),
        );
      }, ms);
      this.waiters.add(waiter);
      waiter.check();
    });
  }

  /** Resolves once at least `n` items were collected. */
  count(n, ms = DEADLINE_MS) {
    return this.until((items) => items.length >= n, ms, `${n} ${this.label}`);
  }

  /** Resolves with the first item matching `predicate` (already collected or future). */
  async find(predicate, ms = DEADLINE_MS, what = "a matching item") {
    const items = await this.until((items) => items.some(predicate), ms, what);
    return items.find(predicate);
  }
}

/** Collects every `event` pushed to `channel` (payloads). */
export function collect(channel, event) {
  const collector = new Collector(`${channel.topic} ${event}`);
  channel.on(event, (payload) => collector.add(payload));
  return collector;
}

/** Joins; resolves with the ok response, rejects with an Error carrying `.response` (error) or `.timeout`. */
export function joinChannel(socket, topic, params = {}, { timeout = DEADLINE_MS, leaveOnError = true } = {}) {
  const channel = socket.channel(topic, params);
  const joined = new Promise((resolve, reject) => {
    channel
      .join(timeout)
      .receive("ok", (response) => resolve(response))
      .receive("error", (response) => {
        // The client would retry forever; stop it unless the test wants it.
        if (leaveOnError) channel.leave();
        const err = new Error(`join ${topic} refused: ${JSON.stringify(response)}`);
        err.response = response;
        err.channel = channel;
        reject(err);
      })
      .receive("timeout", () => {
        if (leaveOnError) channel.leave();
        const err = new Error(`join ${topic} timed out`);
        err.timeout = true;
        err.channel = channel;
        reject(err);
      });
  });
  joined.channel = channel;
  return joined;
}

/** Joins and returns `{channel, response}`. */
export async function join(socket, topic, params = {}, opts = {}) {
  const promise = joinChannel(socket, topic, params, opts);
  const response = await promise;
  return { channel: promise.channel, response };
}

/** Pushes; resolves with `{status, response}` for ok and error replies, rejects on timeout. */
export function push(channel, event, payload = {}, timeout = DEADLINE_MS) {
  return new Promise((resolve, reject) => {
    channel
      .push(event, payload, timeout)
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => reject(new Error(`push ${event} on ${channel.topic} timed out`)));
  });
}

/** Resolves with the RTT of a heartbeat (`socket.ping`). */
export function ping(socket, ms = DEADLINE_MS) {
  return withDeadline(
    new Promise((resolve, reject) => {
      if (!socket.ping((rtt) => resolve(rtt))) reject(new Error("socket not connected"));
    }),
    ms,
    "a heartbeat reply",
  );
}

/**
 * Disconnects a phoenix socket and cancels its channels' timers (join and
 * push timeouts, rejoin backoff) so nothing keeps the test process alive.
 */
export function closeSocket(socket) {
  for (const channel of [...socket.channels]) {
    try {
      channel.rejoinTimer.reset();
      channel.joinPush.cancelTimeout();
      for (const p of channel.pushBuffer) p.cancelTimeout();
      channel.leave(0);
    } catch {}
  }
  try {
    socket.disconnect();
  } catch {}
  socket.reconnectTimer.reset();
}

/**
 * The server of a `describe` block: started before its tests with `users`
 * freshly registered accounts (handed to `ready` in order, which may be
 * async and set up more), cleaned up after them.
 */
export function suiteServer(options, users = 0, ready = () => {}) {
  const server = new Server(options);
  before(async () => {
    await server.start();
    const accounts = [];
    for (let i = 0; i < users; i++) accounts.push(await server.register());
    await ready(...accounts);
  });
  after(() => server.cleanup());
  return server;
}

/**
 * A running (or stopped) confab server process with a private data
 * directory. With `dieWithParent`, the process is started through
 * `setpriv --pdeathsig KILL` (where available), so it dies with this
 * process even if this process is killed.
 */
export class Server {
  constructor({ env = {}, name = "confab", dieWithParent = false } = {}) {
    this.extraEnv = env;
    this.name = name;
    this.dieWithParent = dieWithParent && HAS_SETPRIV;
    this.proc = null;
    this.port = null;
    this.dataDir = null;
    this.output = [];
    this.sockets = new Set();
    this.raws = new Set();
    this.starts = 0;
    this.databaseUrl = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  get socketUrl() {
    return `ws://127.0.0.1:${this.port}/socket`;
  }

  /** The last `n` characters of everything the server printed. */
  tail(n = 6000) {
    const text = this.output.join("");
    return text.length > n ? text.slice(-n) : text;
  }

  log(line) {
    this.output.push(`[harness] ${line}\n`);
  }

  async start() {
    if (!this.dataDir) this.dataDir = await mkdtemp(path.join(tmpdir(), "confab-js-"));
    const namesDatabase = "CONFAB_DATABASE_URL" in this.extraEnv || "CONFAB_DATABASE_URL_FILE" in this.extraEnv;
    if (POSTGRES && !namesDatabase && !this.databaseUrl) this.databaseUrl = await createDatabase();
    const listen = `127.0.0.1:${this.port ?? 0}`;
    // Restarting on a just-freed port can race with the kernel: retry briefly.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.spawnOnce(listen);
        return this;
      } catch (e) {
        if (this.port && attempt < 20 && /cannot listen|in use/i.test(String(e.message))) {
          await delay(100);
          continue;
        }
        throw e;
      }
    }
  }

  spawnOnce(listen) {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CONFAB_")) env[k] = v;
    Object.assign(env, FAST_ENV, this.extraEnv);
    if (this.databaseUrl) env.CONFAB_DATABASE_URL = this.databaseUrl;
    this.starts += 1;
    this.log(`start #${this.starts}: ${BINARY} serve --listen ${listen} --data ${this.dataDir}`);
    const args = ["serve", "--listen", listen, "--data", this.dataDir];
    const [program, argv] = this.dieWithParent ? ["setpriv", ["--pdeathsig", "KILL", "--", BINARY, ...args]] : [BINARY, args];
    const proc = spawn(program, argv, {
      cwd: this.dataDir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.proc = proc;
    proc.exited = new Promise((resolve) => {
      proc.on("exit", (code, signal) => {
        this.log(`exited code=${code} signal=${signal}`);
        resolve({ code, signal });
      });
    });
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (chunk) => this.output.push(chunk));
    proc.stdout.setEncoding("utf8");
    return new Promise((resolve, reject) => {
      let buffer = "";
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        reject(new Error(`${this.name} did not print its listening line within 15 s\n${this.tail()}`));
      }, 15000);
      proc.stdout.on("data", (chunk) => {
        this.output.push(chunk);
        if (done) return;
        buffer += chunk;
        const m = buffer.match(/confab listening on http:\/\/([\d.]+):(\d+)/);
        if (m) {
          done = true;
          clearTimeout(timer);
          const port = Number(m[2]);
          if (this.port && this.port !== port) {
            reject(new Error(`restarted on port ${port}, expected ${this.port}`));
            return;
          }
          this.port = port;
          resolve();
        }
      });
      proc.on("error", (e) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        reject(new Error(`cannot start ${BINARY}: ${e.message}`));
      });
      proc.exited.then(({ code, signal }) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        reject(new Error(`${this.name} exited before listening (code ${code}, signal ${signal})\n${this.tail()}`));
      });
    });
  }

  get running() {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGTERM and wait for the exit; resolves with `{code, signal}`. */
  async stop(ms = 15000) {
    if (!this.running) return this.proc ? this.proc.exited : null;
    this.proc.kill("SIGTERM");
    return withDeadline(this.proc.exited, ms, `${this.name} to exit after SIGTERM`, this);
  }

  /** SIGKILL and wait for the exit. */
  async kill() {
    if (!this.running) return this.proc ? this.proc.exited : null;
    this.proc.kill("SIGKILL");
    return this.proc.exited;
  }

  /** Starts again on the same data directory and the same port. */
  async restart() {
    if (this.running) await this.stop();
    return this.start();
  }

  /** Stops everything this server started: clients, process, data directory. */
  async cleanup() {
    for (const socket of this.sockets) closeSocket(socket);
    this.sockets.clear();
    for (const raw of this.raws) raw.terminate();
    this.raws.clear();
    if (this.running) {
      try {
        await this.stop();
      } catch {
        await this.kill();
      }
    }
    if (this.dataDir) await rm(this.dataDir, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------- REST

  /** fetch against the server; resolves with `{status, body, headers}` (body parsed when JSON). */
  async request(method, urlPath, { token, body } = {}) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(this.url + urlPath, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed = text;
    if ((res.headers.get("content-type") || "").includes("json") && text) parsed = JSON.parse(text);
    return { status: res.status, body: parsed, headers: res.headers };
  }

  async expect(status, method, urlPath, opts) {
    const res = await this.request(method, urlPath, opts);
    if (res.status !== status) {
      throw new Error(`${method} ${urlPath}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res.body;
  }

  /** Registers a fresh account; resolves with `{token, user}`. */
  async register(username = unique("u"), password = "correct horse battery") {
    const body = await this.expect(201, "POST", "/api/register", { body: { username, password } });
    return { token: body.token, user: body.user };
  }

  async createRoom(token, name = unique("r"), isPrivate = false) {
    const body = await this.expect(201, "POST", "/api/rooms", { token, body: { name, private: isPrivate } });
    return body.room;
  }

  async addMember(token, room, username) {
    await this.expect(204, "POST", `/api/rooms/${room}/members`, { token, body: { username } });
  }

  async removeMember(token, room, username) {
    await this.expect(204, "DELETE", `/api/rooms/${room}/members/${username}`, { token });
  }

  /** Posts a message via REST; resolves with the message object. */
  async postMessage(token, room, body, clientId) {
    const payload = { body };
    if (clientId !== undefined) payload.client_id = clientId;
    const res = await this.request("POST", `/api/rooms/${room}/messages`, { token, body: payload });
    if (res.status !== 201 && res.status !== 200) {
      throw new Error(`POST /api/rooms/${room}/messages: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res.body.message;
  }

  /** Posts `count` messages with bounded concurrency; bodies from `bodyOf(i)` (1-based). */
  async postMany(token, room, count, { concurrency = 16, bodyOf = (i) => `m${i}` } = {}) {
    let next = 1;
    const worker = async () => {
      while (next <= count) {
        const i = next++;
        await this.postMessage(token, room, bodyOf(i));
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  }

  async messages(token, room, query = "") {
    return this.expect(200, "GET", `/api/rooms/${room}/messages${query ? `?${query}` : ""}`, { token });
  }

  /** Resolves once `/healthz` answers 200 (polling is the only way to see a port come up). */
  async healthy(ms = 10000) {
    const until = Date.now() + ms;
    for (;;) {
      try {
        const res = await fetch(`${this.url}/healthz`);
        if (res.status === 200) return;
      } catch {}
      if (Date.now() > until) throw new Error(`/healthz not up within ${ms} ms\n${this.tail()}`);
      await delay(5);
    }
  }

  // ------------------------------------------------------------ phoenix

  /**
   * A phoenix `Socket` on this server. `auth` is a token string (sent as the
   * `token` param), a params function, or null (no params). Not connected.
   */
  socket(auth, opts = {}) {
    const params = typeof auth === "string" ? { token: auth } : auth || undefined;
    const socket = new Socket(this.socketUrl, {
      transport: WebSocket,
      params,
      // Reconnect quickly in tests (the default table goes up to 5 s).
      reconnectAfterMs: () => 50,
      rejoinAfterMs: () => 200,
      ...opts,
    });
    this.sockets.add(socket);
    return socket;
  }

  /** A connected phoenix `Socket`; rejects if the first attempt errors or the deadline passes. */
  async connect(auth, opts = {}) {
    const socket = this.socket(auth, opts);
    await withDeadline(
      new Promise((resolve, reject) => {
        const refs = [];
        const done = (fn) => {
          socket.off(refs);
          fn();
        };
        refs.push(socket.onOpen(() => done(resolve)));
        refs.push(
          socket.onError((error) => {
            done(() => {
              socket.disconnect();
              reject(new Error(`socket did not open: ${error && (error.message || error.type || error)}`));
            });
          }),
        );
        socket.connect();
      }),
      DEADLINE_MS,
      "the socket to open",
      this,
    );
    return socket;
  }

  // ------------------------------------------------------------- raw ws

  /** The WebSocket URL with a query string built from `query` (values as given, undefined omitted). */
  wsUrl(query = {}) {
    const qs = Object.entries(query)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join("&");
    return `ws://127.0.0.1:${this.port}/socket/websocket${qs ? `?${qs}` : ""}`;
  }

  /** A raw `ws` client; see RawClient. */
  raw(query, wsOpts) {
    const raw = new RawClient(this.wsUrl(query), wsOpts);
    this.raws.add(raw);
    return raw;
  }

  /** Resolves with the HTTP status with which an upgrade to `query` is refused (rejects if it opens). */
  refusedStatus(query, wsOpts) {
    return withDeadline(
      new Promise((resolve, reject) => {
        const ws = new WebSocket(this.wsUrl(query), wsOpts);
        ws.on("unexpected-response", (req, res) => {
          resolve(res.statusCode);
          req.destroy();
        });
        ws.on("open", () => {
          ws.terminate();
          reject(new Error("the upgrade was accepted"));
        });
        ws.on("error", () => {});
      }),
      DEADLINE_MS,
      "the upgrade refusal",
      this,
    );
  }
}

/** A raw WebSocket speaking JSON frames; every received frame is parsed into `frames`. */
export class RawClient {
  constructor(url, wsOpts) {
    this.ws = new WebSocket(url, wsOpts);
    this.frames = new Collector(`raw frames`);
    this.ref = 0;
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      this.ws.once("error", reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once("close", (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() }));
    });
    this.ws.on("error", () => {});
    this.ws.on("message", (data, isBinary) => {
      const text = data.toString();
      let frame;
      try {
        frame = isBinary ? { binary: data } : JSON.parse(text);
      } catch {
        frame = { unparsable: text };
      }
      this.frames.add(frame);
    });
  }

  nextRef() {
    this.ref += 1;
    return String(this.ref);
  }

  send(frame) {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Resolves with the first (V2) frame whose ref (index 1) equals `ref`. */
  reply(ref, ms = DEADLINE_MS) {
    return this.frames.find((f) => Array.isArray(f) && f[1] === ref, ms, `a reply with ref ${JSON.stringify(ref)}`);
  }

  /** Sends a V2 heartbeat and resolves with its reply; doubles as an ordering barrier. */
  async heartbeat(ms = DEADLINE_MS) {
    const ref = this.nextRef();
    this.send([null, ref, "phoenix", "heartbeat", {}]);
    return this.reply(ref, ms);
  }

  /** Sends a V2 join and resolves with its reply. */
  async join(topic, payload = {}, ms = DEADLINE_MS) {
    const ref = this.nextRef();
    this.send([ref, ref, topic, "phx_join", payload]);
    const reply = await this.reply(ref, ms);
    return { joinRef: ref, reply };
  }

  terminate() {
    try {
      this.ws.terminate();
    } catch {}
  }
}
