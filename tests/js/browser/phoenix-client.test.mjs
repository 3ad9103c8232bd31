// The UI's own Phoenix client (assets/js/phoenix.js), run in Node with the
// `ws` transport against the real server and against small scripted
// servers: params re-read on every connect, reconnect and rejoin backoff,
// join errors, push replies and timeouts, heartbeats, stale join refs, and
// Presence sync semantics (phoenix-protocol.md §1.5, §4, §5.3).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket, { WebSocketServer } from "ws";
import { Server, withDeadline, DEADLINE_MS } from "../harness.mjs";
import { Socket, Presence, defaultReconnectAfterMs, defaultRejoinAfterMs } from "../../../assets/js/phoenix.js";

let server;
const sockets = [];

before(async () => {
  server = await new Server().start();
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await server?.cleanup();
});

function socket(url, opts) {
  const s = new Socket(url, { transport: WebSocket, ...opts });
  sockets.push(s);
  return s;
}

function once(register) {
  return new Promise((resolve) => {
    let done = false;
    register((...args) => {
      if (!done) {
        done = true;
        resolve(args);
      }
    });
  });
}

function joined(channel) {
  return withDeadline(
    new Promise((resolve, reject) => {
      channel.join().receive("ok", resolve).receive("error", (e) => reject(new Error(JSON.stringify(e))));
    }),
    DEADLINE_MS,
    `join of ${channel.topic}`,
  );
}

test("default backoff tables match the official client", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map(defaultReconnectAfterMs), [10, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000, 5000]);
  assert.deepEqual([1, 2, 3, 4, 5].map(defaultRejoinAfterMs), [1000, 2000, 5000, 10000, 10000]);
});

test("joins, pushes with replies, broadcasts, and recovers with params re-read on every reconnect", async () => {
  const alice = await server.register();
  let paramCalls = 0;
  const s = socket(server.socketUrl, {
    params: () => {
      paramCalls += 1;
      return { token: alice.token };
    },
    reconnectAfterMs: () => 20,
  });
  s.connect();
  let lastSeq = 0;
  const seen = [];
  const room = s.channel("room:lobby", () => (lastSeq ? { last_seq: lastSeq } : {}));
  room.on("new_msg", (m) => {
    seen.push(m.seq);
    lastSeq = Math.max(lastSeq, m.seq);
  });
  const replies = [];
  room.join().receive("ok", (r) => {
    replies.push(r);
    for (const m of r.messages) {
      seen.push(m.seq);
      lastSeq = Math.max(lastSeq, m.seq);
    }
  });
  await withDeadline(once((cb) => room.joinPush.receive("ok", cb)), DEADLINE_MS, "the join");
  assert.equal(paramCalls, 1);

  const ack = await withDeadline(
    new Promise((resolve, reject) => room.push("new_msg", { body: "one", client_id: "c-1" }).receive("ok", resolve).receive("error", reject)),
    DEADLINE_MS,
    "the new_msg reply",
  );
  assert.equal(ack.seq, 1);

  // The server dies; a message is posted while this client is away.
  await server.kill();
  await server.start();
  await server.postMessage(alice.token, "lobby", "two");
  await withDeadline(
    new Promise((resolve) => {
      const check = () => (seen.includes(2) ? resolve() : setTimeout(check, 10));
      check();
    }),
    10000,
    "message 2 after the reconnect",
  );
  assert.ok(paramCalls >= 2, "params were read again for the reconnect");
  assert.equal(replies.length, 2, "the channel rejoined by itself");
  assert.equal(replies[1].recovered, true);
  assert.deepEqual([...new Set(seen)].sort(), [1, 2]);
  assert.equal(seen.filter((x) => x === 2).length, 1, "no duplicate");
});

test("a refused join is retried with rejoinAfterMs and a push without reply times out", async () => {
  const bob = await server.register();
  const tries = [];
  const s = socket(server.socketUrl, {
    params: { token: bob.token },
    rejoinAfterMs: (n) => {
      tries.push(n);
      return 10;
    },
  });
  s.connect();
  const forbidden = s.channel("user:999999");
  const errors = [];
  forbidden.join().receive("error", (e) => errors.push(e.reason));
  await withDeadline(
    new Promise((resolve) => {
      const check = () => (errors.length >= 3 ? resolve() : setTimeout(check, 5));
      check();
    }),
    DEADLINE_MS,
    "three refused joins",
  );
  assert.deepEqual(tries.slice(0, 3), [1, 2, 3], "backoff counts tries");
  assert.equal(errors[0], "unauthorized");
  forbidden.leave();

  const room = s.channel("room:lobby");
  await joined(room);
  const t0 = Date.now();
  const [status] = await withDeadline(
    once((cb) => room.push("typing", {}, 150).receive("timeout", () => cb("timeout")).receive("ok", () => cb("ok"))),
    DEADLINE_MS,
    "the push timeout",
  );
  assert.equal(status, "timeout");
  assert.ok(Date.now() - t0 >= 140);
});

test("presence: state then diffs, one entry per user, several metas for several sockets", async () => {
  const carol = await server.register();
  const s1 = socket(server.socketUrl, { params: { token: carol.token } });
  const s2 = socket(server.socketUrl, { params: { token: carol.token } });
  s1.connect();
  s2.connect();
  const c1 = s1.channel("room:lobby");
  const presence = new Presence(c1);
  const syncs = [];
  presence.onSync(() => syncs.push(presence.list((id, { metas }) => ({ id, n: metas.length }))));
  await joined(c1);
  const key = String(carol.user.id);
  const until = (pred, what) =>
    withDeadline(
      new Promise((resolve) => {
        const check = () => (pred() ? resolve() : setTimeout(check, 5));
        check();
      }),
      DEADLINE_MS,
      what,
    );
  await until(() => presence.state[key] && presence.state[key].metas.length === 1, "own presence");
  const c2 = s2.channel("room:lobby");
  await joined(c2);
  await until(() => presence.state[key].metas.length === 2, "two metas for two sockets");
  assert.equal(presence.list().filter((p) => p.metas[0].username === carol.user.username).length, 1);
  c2.leave();
  await until(() => presence.state[key].metas.length === 1, "back to one meta");
  assert.ok(syncs.length >= 3);
});

test("Presence.syncDiff and syncState follow Phoenix semantics", () => {
  // The observed sequence of phoenix-protocol.md §5.3.
  let state = {};
  state = Presence.syncState(state, { u1: { metas: [{ phx_ref: "A" }] }, u2: { metas: [{ phx_ref: "B" }] } });
  state = Presence.syncDiff(state, { joins: { u1: { metas: [{ phx_ref: "C" }] } }, leaves: {} });
  assert.deepEqual(state.u1.metas.map((m) => m.phx_ref), ["A", "C"]);
  state = Presence.syncDiff(state, {
    joins: { u1: { metas: [{ phx_ref: "D", phx_ref_prev: "A" }] } },
    leaves: { u1: { metas: [{ phx_ref: "A" }] } },
  });
  assert.deepEqual(state.u1.metas.map((m) => m.phx_ref), ["C", "D"]);
  const left = [];
  state = Presence.syncDiff(state, { joins: {}, leaves: { u2: { metas: [{ phx_ref: "B" }] } } }, undefined, (key, current) => left.push([key, current.metas.length]));
  assert.equal(state.u2, undefined);
  assert.deepEqual(left, [["u2", 0]]);
  // Leaves of unknown keys are ignored; a full state drops what vanished.
  state = Presence.syncDiff(state, { joins: {}, leaves: { nobody: { metas: [{ phx_ref: "Z" }] } } });
  state = Presence.syncState(state, { u3: { metas: [{ phx_ref: "E" }] } });
  assert.deepEqual(Object.keys(state), ["u3"]);
});

/** A scripted server: `onFrame(ws, frame)` decides what to answer. */
async function scripted(onFrame, { refuse = false } = {}) {
  const attempts = [];
  const wss = new WebSocketServer({
    port: 0,
    host: "127.0.0.1",
    verifyClient: (_info, cb) => {
      attempts.push(Date.now());
      cb(!refuse, 403);
    },
  });
  await new Promise((resolve) => wss.once("listening", resolve));
  wss.on("connection", (ws) => ws.on("message", (data) => onFrame(ws, JSON.parse(String(data)))));
  return { url: `ws://127.0.0.1:${wss.address().port}/socket`, attempts, close: () => new Promise((r) => wss.close(r)) };
}

test("refused upgrades are retried on the reconnect schedule", async () => {
  const fake = await scripted(() => {}, { refuse: true });
  const s = socket(fake.url, {});
  s.connect();
  await withDeadline(
    new Promise((resolve) => {
      const check = () => (fake.attempts.length >= 7 ? resolve() : setTimeout(check, 5));
      check();
    }),
    DEADLINE_MS,
    "seven connection attempts",
  );
  s.disconnect();
  const gaps = fake.attempts.slice(1).map((t, i) => t - fake.attempts[i]);
  // Expected 10, 50, 100, 150, 200, 250 ms: growing, none much shorter than the table.
  const table = [10, 50, 100, 150, 200, 250];
  gaps.forEach((gap, i) => assert.ok(gap >= table[i] - 5, `gap ${i + 1} was ${gap} ms, expected about ${table[i]} ms`));
  assert.ok(gaps[5] > gaps[0] + 100, `the backoff grows: ${gaps.join(", ")}`);
  await fake.close();
});

test("an unanswered heartbeat closes the socket and reconnects; stale join refs are dropped", async () => {
  let connections = 0;
  const fake = await scripted((ws, [joinRef, ref, topic, event]) => {
    if (event === "phx_join") {
      ws.send(JSON.stringify([joinRef, ref, topic, "phx_reply", { status: "ok", response: {} }]));
      // A frame for an older join instance of the topic is ignored by the client.
      ws.send(JSON.stringify(["stale", null, topic, "ping", { stale: true }]));
      ws.send(JSON.stringify([joinRef, null, topic, "ping", { stale: false }]));
    }
    // Heartbeats are never answered.
  });
  const closes = [];
  const s = socket(fake.url, { heartbeatIntervalMs: 100, reconnectAfterMs: () => 10 });
  s.onOpen(() => {
    connections += 1;
  });
  s.onClose((e) => closes.push(e.reason || e.code));
  const channel = s.channel("room:fake");
  const pings = [];
  channel.on("ping", (p) => pings.push(p.stale));
  channel.join();
  s.connect();
  await withDeadline(
    new Promise((resolve) => {
      const check = () => (connections >= 2 ? resolve() : setTimeout(check, 5));
      check();
    }),
    DEADLINE_MS,
    "a reconnect after the heartbeat timeout",
  );
  assert.ok(closes.includes("heartbeat timeout"), `closes: ${JSON.stringify(closes)}`);
  assert.ok(pings.length >= 1);
  assert.ok(pings.every((stale) => stale === false), "the stale frame was dropped");
  s.disconnect();
  await fake.close();
});
