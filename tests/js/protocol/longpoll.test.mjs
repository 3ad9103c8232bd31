// LongPoll transport (phoenix-protocol.md §6, checklist items 44–51):
// - the official phoenix client with `transport: LongPoll` chatting with
//   WebSocket clients (messages and Presence both ways), ignores, `authToken`
//   via `X-Phoenix-AuthToken`, recovery after SIGKILL + restart and after a
//   graceful restart, logout ending the session, the per-user socket limit;
// - `longPollFallbackMs` behind a proxy that blocks WebSocket upgrades;
// - the raw wire with fetch: statuses in the JSON body, the `token`
//   query-param clash, the 100-line POST limit, origin check, V1, the 10 s
//   poll window and the 15 s idle end of a session.
//
// Waits are event driven (replies, frames, presence syncs). Only the poll
// window and the idle timeout are time based; both run concurrently so the
// file stays well under a minute.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { LongPoll, Socket } from "phoenix";
import { Collector, DEADLINE_MS, closeSocket, collect, join, push, suiteServer, unique, withDeadline } from "../harness.mjs";
import { joinWatched } from "../presence-helpers.mjs";
import { MemoryStorage, RawLongPoll, assertSeenOnceInOrder, range, startProxy, trackingChannel } from "../longpoll-helpers.mjs";

const LP = { transport: LongPoll };

/** Resolves when `socket` opens; rejects on the first error. */
function opened(socket, ms = DEADLINE_MS) {
  return withDeadline(
    new Promise((resolve, reject) => {
      const refs = [];
      refs.push(
        socket.onOpen(() => {
          socket.off(refs);
          resolve();
        }),
      );
      refs.push(
        socket.onError((e) => {
          socket.off(refs);
          reject(new Error(`socket error: ${e && (e.message || e.type || e)}`));
        }),
      );
    }),
    ms,
    "the socket to open",
  );
}

function isLongPoll(socket) {
  return socket.connection && socket.connection.transport instanceof LongPoll;
}

describe("LongPoll with the official client", () => {
  let alice;
  let bob;
  const server = suiteServer({ name: "longpoll" }, 2, (...users) => ([alice, bob] = users));

  test("join room:lobby, push new_msg; a WebSocket client sees the messages and presence both ways", async () => {
    const A = String(alice.user.id);
    const B = String(bob.user.id);
    const lp = await server.connect(alice.token, LP);
    assert.ok(isLongPoll(lp), "the socket runs over LongPoll");
    const { channel: lpChan, response, watch: lpWatch } = await joinWatched(lp, "room:lobby");
    assert.equal(typeof response.epoch, "string");
    assert.equal(typeof response.last_seq, "number");
    const lpMsgs = collect(lpChan, "new_msg");

    const ws = await server.connect(bob.token);
    const { channel: wsChan, watch: wsWatch } = await joinWatched(ws, "room:lobby");
    const wsMsgs = collect(wsChan, "new_msg");

    // Presence both ways.
    const seenByWs = await wsWatch.until((v) => v[A]?.length === 1 && v[B]?.length === 1, DEADLINE_MS, "alice and bob");
    assert.equal(seenByWs[A][0].username, alice.user.username);
    const seenByLp = await lpWatch.until((v) => v[A]?.length === 1 && v[B]?.length === 1, DEADLINE_MS, "alice and bob");
    assert.equal(seenByLp[B][0].username, bob.user.username);
    assert.equal(seenByLp[A][0].phx_ref, seenByWs[A][0].phx_ref, "one meta, the same on both sides");

    // LongPoll → WebSocket.
    const body1 = `from longpoll ${unique()}`;
    const ack = await push(lpChan, "new_msg", { body: body1, client_id: unique("c") });
    assert.equal(ack.status, "ok", JSON.stringify(ack));
    assert.equal(typeof ack.response.seq, "number");
    const got = await wsMsgs.find((m) => m.body === body1);
    assert.equal(got.seq, ack.response.seq);
    assert.equal(got.user.username, alice.user.username);
    await lpMsgs.find((m) => m.body === body1); // the sender's own socket gets the broadcast too

    // WebSocket → LongPoll.
    const body2 = `from websocket ${unique()}`;
    const ack2 = await push(wsChan, "new_msg", { body: body2 });
    assert.equal(ack2.status, "ok");
    const got2 = await lpMsgs.find((m) => m.body === body2);
    assert.equal(got2.seq, ack2.response.seq);
    assert.equal(got2.user.username, bob.user.username);
    assert.deepEqual(
      lpMsgs.items.map((m) => m.seq),
      [ack.response.seq, ack2.response.seq],
      "in seq order, each once",
    );

    // Other LongPoll events work too (history, typing reaches the WebSocket).
    const typing = collect(wsChan, "typing");
    lpChan.push("typing", {});
    const t = await typing.find((p) => p.user.id === alice.user.id);
    assert.equal(t.user.username, alice.user.username);
    const hist = await push(lpChan, "history", { limit: 2 });
    assert.equal(hist.status, "ok");
    assert.deepEqual(
      hist.response.messages.map((m) => m.body),
      [body1, body2],
    );

    // Leaves both ways: the WebSocket leaves → LongPoll sees it; LongPoll leaves → WebSocket sees it.
    closeSocket(ws);
    await lpWatch.until((v) => !(B in v) && v[A]?.length === 1, DEADLINE_MS, "bob to leave");
    const ws2 = await server.connect(bob.token);
    const { watch: ws2Watch } = await joinWatched(ws2, "room:lobby");
    await ws2Watch.until((v) => v[A]?.length === 1, DEADLINE_MS, "alice present");
    lpChan.leave();
    await ws2Watch.until((v) => !(A in v), DEADLINE_MS, "alice (LongPoll) to leave");
    closeSocket(lp);
    closeSocket(ws2);
  });

  /**
   * A LongPoll socket of a new user `a` in a new room, a WebSocket of the
   * user `c` whom `a` ignores (before connecting if `ignoreFirst`, else once
   * joined), a bystander `e` and a barrier sender `d`. `check()` sends
   * typing + a message as `c`, then a barrier as `d`, and asserts that the
   * LongPoll socket saw the barrier but nothing from `c`.
   */
  async function ignoreScene(ignoreFirst) {
    const [a, c, d, e] = [await server.register(), await server.register(), await server.register(), await server.register()];
    const room = (await server.createRoom(d.token)).name;
    const topic = `room:${room}`;
    const ignore = () => server.expect(204, "PUT", `/api/me/ignores/${c.user.username}`, { token: a.token });
    if (ignoreFirst) await ignore();
    const lp = await server.connect(a.token, LP);
    const { channel: lpChan } = await join(lp, topic);
    const lpMsgs = collect(lpChan, "new_msg");
    const lpTyping = collect(lpChan, "typing");
    if (!ignoreFirst) await ignore();
    const cSock = await server.connect(c.token);
    const { channel: cChan } = await join(cSock, topic);
    const eSock = await server.connect(e.token);
    const { channel: eChan } = await join(eSock, topic);
    const eMsgs = collect(eChan, "new_msg");
    const eTyping = collect(eChan, "typing");
    return {
      async check() {
        cChan.push("typing", {});
        const ack = await push(cChan, "new_msg", { body: "from the ignored user" });
        assert.equal(ack.status, "ok");
        // Seen by the bystander = published before the barrier below.
        await eMsgs.find((m) => m.seq === ack.response.seq);
        await eTyping.find((t) => t.user.id === c.user.id);
        const barrier = await server.postMessage(d.token, room, "barrier");
        await lpMsgs.find((m) => m.seq === barrier.seq, DEADLINE_MS, "the barrier");
        assert.deepEqual(
          lpMsgs.items.filter((m) => m.user.id === c.user.id).map((m) => m.body),
          [],
          "the LongPoll ignorer got the ignored user's messages",
        );
        assert.deepEqual(
          lpTyping.items.filter((t) => t.user.id === c.user.id),
          [],
          "the LongPoll ignorer got the ignored user's typing",
        );
      },
      close() {
        for (const s of [lp, cSock, eSock]) closeSocket(s);
      },
    };
  }

  test("ignores apply to a LongPoll session opened after the ignore was set", async () => {
    const scene = await ignoreScene(true);
    try {
      await scene.check();
    } finally {
      scene.close();
    }
  });

  test("ignores apply to a LongPoll session already open when the ignore is set", async () => {
    const scene = await ignoreScene(false);
    try {
      await scene.check();
    } finally {
      scene.close();
    }
  });

  test("authToken travels in X-Phoenix-AuthToken: connect, join, push; a bad one never opens", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const lp = await server.connect(null, { ...LP, authToken: alice.token });
    assert.ok(isLongPoll(lp));
    const { channel } = await join(lp, `room:${room}`);
    const ack = await push(channel, "new_msg", { body: "via authToken" });
    assert.equal(ack.status, "ok");
    const page = await server.messages(alice.token, room);
    assert.equal(page.messages.at(-1).user.username, alice.user.username);
    closeSocket(lp);

    await assert.rejects(server.connect(null, { ...LP, authToken: "not-a-token" }), /did not open/);
  });

  test("several pushes in one event-loop turn go out as one batch and are all answered in order", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const lp = await server.connect(alice.token, LP);
    const { channel } = await join(lp, `room:${room}`);
    const msgs = collect(channel, "new_msg");
    const acks = await Promise.all(Array.from({ length: 30 }, (_, i) => push(channel, "new_msg", { body: `b${i}` })));
    for (const a of acks) assert.equal(a.status, "ok", JSON.stringify(a));
    await msgs.count(30);
    assert.deepEqual(
      msgs.items.map((m) => m.seq),
      range(1, 30),
    );
    assert.deepEqual(
      [...acks.map((a) => a.response.seq)].sort((x, y) => x - y),
      range(1, 30),
    );
    closeSocket(lp);
  });
});

describe("LongPoll recovery after SIGKILL + restart", () => {
  let alice;
  let bob;
  const server = suiteServer({ name: "longpoll-recovery" }, 2, (...users) => ([alice, bob] = users));

  test("the LongPoll client rejoins by itself with last_seq: every seq exactly once, in order, incl. REST posts made while it was down", async (t) => {
    const room = (await server.createRoom(bob.token)).name;
    let backoff = 50;
    const lp = await server.connect(alice.token, { ...LP, reconnectAfterMs: () => backoff });
    const opens = new Collector("opens");
    const closes = new Collector("closes");
    lp.onOpen(() => opens.add(Date.now()));
    lp.onClose((e) => closes.add(e.code));
    const tracked = trackingChannel(lp, `room:${room}`);
    await tracked.joins.count(1);
    const epoch = tracked.joins.items[0].epoch;

    let posted = 0;
    const postOne = async () => {
      posted += 1;
      return (await server.postMessage(bob.token, room, `msg ${posted}`)).seq;
    };
    for (let i = 0; i < 5; i++) await postOne();
    await tracked.until(5);

    // Cycle 1: the client stays away (a long backoff) until messages were
    // posted over REST after the restart; then it is let back in. Those
    // messages can only reach it through the rejoin's recovery.
    // Cycle 2: a fast reconnect racing a stream of REST posts.
    for (const slow of [true, false]) {
      backoff = slow ? 600000 : 20;
      const joinsBefore = tracked.joins.items.length;
      const opensBefore = opens.items.length;
      const seenBefore = tracked.seqs.length;
      const closesBefore = closes.items.length;
      await server.kill();
      await closes.count(closesBefore + 1, 10000);
      await server.start();
      await server.healthy();
      if (slow) {
        const before = posted;
        for (let i = 0; i < 7; i++) await postOne();
        assert.equal(tracked.seqs.length, seenBefore, "nothing arrives while the client is away");
        // Let it back in: reschedule the reconnect with a short backoff.
        backoff = 20;
        lp.reconnectTimer.reset();
        lp.reconnectTimer.scheduleTimeout();
        const rejoin = await tracked.joins.count(joinsBefore + 1, 10000);
        const reply = rejoin[joinsBefore];
        assert.equal(reply.error, undefined, `rejoin refused: ${JSON.stringify(reply)}`);
        assert.equal(reply.recovered, true);
        assert.equal(reply.epoch, epoch, "the epoch survives a restart");
        assert.deepEqual(
          reply.messages.map((m) => m.seq),
          range(before + 1, posted),
          "the posts made while it was down come in the rejoin reply",
        );
      } else {
        for (let i = 0; i < 20; i++) await postOne();
        const rejoin = await tracked.joins.count(joinsBefore + 1, 10000);
        const reply = rejoin[joinsBefore];
        assert.equal(reply.error, undefined, `rejoin refused: ${JSON.stringify(reply)}`);
        assert.equal(reply.recovered, true);
        t.diagnostic(`fast cycle: rejoin recovered [${reply.messages.map((m) => m.seq)}]`);
      }
      await opens.count(opensBefore + 1, 10000);
      assert.ok(isLongPoll(lp), "still LongPoll after the reconnect");
      for (let i = 0; i < 5; i++) await postOne();
      await tracked.until(posted);
    }
    await assertSeenOnceInOrder(tracked, postOne, posted);
    closeSocket(lp);
  });
});

describe("LongPoll across a graceful restart (SIGTERM)", () => {
  let alice;
  const server = suiteServer({ name: "longpoll-sigterm" }, 1, (...users) => ([alice] = users));

  test("a held GET does not hold up the shutdown; the client comes back and rejoins", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const lp = await server.connect(alice.token, LP);
    const opens = new Collector("opens");
    lp.onOpen(() => opens.add(true));
    const tracked = trackingChannel(lp, `room:${room}`);
    await tracked.joins.count(1);
    await server.postMessage(alice.token, room, "before");
    await tracked.until(1);
    // The client now holds a GET open (nothing pending).
    const started = Date.now();
    const exit = await server.stop();
    const took = Date.now() - started;
    assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}`);
    assert.ok(took < 5000, `shutdown took ${took} ms with a LongPoll GET held (grace is 8 s)`);
    await server.start();
    await server.postMessage(alice.token, room, "after");
    await opens.count(1, 10000);
    await tracked.joins.count(2, 10000);
    await tracked.until(2);
    assert.deepEqual(tracked.seqs, [1, 2]);
    closeSocket(lp);
  });
});

describe("LongPoll refusals the official client can act on", () => {
  let alice;
  let bob;
  const server = suiteServer({ name: "longpoll-limits", env: { CONFAB_MAX_SOCKETS_PER_USER: "1" } }, 2, (...users) => ([alice, bob] = users));

  // phoenix.js handles only 200/204/410/403/500 (and unparsable bodies) from a
  // GET; any other status makes longpoll.js throw "unhandled poll status" and
  // the transport stops for good (§6.3).
  const HANDLED = [200, 204, 403, 410, 500];

  test("over the per-user socket limit: the refusal is a status phoenix.js handles (403 or 500), not 429", async () => {
    const ws = await server.connect(alice.token); // the one allowed socket
    try {
      const raw = await new RawLongPoll(server, { token: alice.token }).open();
      assert.equal(raw.http, 200);
      assert.ok(
        HANDLED.includes(raw.body.status),
        `a refused LongPoll connect answered ${raw.text}; phoenix.js throws "unhandled poll status ${raw.body.status}" and never retries`,
      );
    } finally {
      closeSocket(ws);
    }
  });

  test("over the per-user socket limit: the official LongPoll client errors, retries, and gets in once a slot frees", async () => {
    const ws = await server.connect(alice.token); // the one allowed socket
    const lp = server.socket(alice.token, LP);
    const errors = new Collector("longpoll errors");
    const opens = new Collector("longpoll opens");
    lp.onError((e) => errors.add(e));
    lp.onOpen(() => opens.add(true));
    lp.connect();
    try {
      await errors.count(1, DEADLINE_MS);
      assert.equal(opens.items.length, 0);
      closeSocket(ws); // frees the slot
      await opens.count(1, 10000);
      const { channel } = await join(lp, "room:lobby");
      assert.equal((await push(channel, "new_msg", { body: "got in" })).status, "ok");
    } finally {
      closeSocket(lp);
      closeSocket(ws);
    }
  });

  test("logout of the token a LongPoll session was opened with ends it at once: presence leaves, reconnects are refused", async () => {
    const carol = await server.register();
    const C = String(carol.user.id);
    const room = (await server.createRoom(bob.token)).name;
    const observer = await server.connect(bob.token);
    const { watch } = await joinWatched(observer, `room:${room}`);
    const lp = await server.connect(carol.token, LP);
    const errors = new Collector("longpoll errors");
    lp.onError((e) => errors.add(e));
    await join(lp, `room:${room}`);
    await watch.until((v) => v[C]?.length === 1, DEADLINE_MS, "carol present");

    const started = Date.now();
    await server.expect(204, "POST", "/api/logout", { token: carol.token });
    await watch.until((v) => !(C in v), DEADLINE_MS, "carol's LongPoll presence to leave");
    assert.ok(Date.now() - started < 5000, "left at once, not after the idle timeout");
    await errors.until((e) => e.includes(403), DEADLINE_MS, "the reconnect to be refused (403)");
    closeSocket(lp);
    closeSocket(observer);
  });
});

describe("longPollFallbackMs behind a proxy that blocks WebSocket upgrades", () => {
  let alice;
  let bob;
  const server = suiteServer({ name: "longpoll-fallback" }, 2, (...users) => ([alice, bob] = users));

  /** The official client with WebSocket as primary and LongPoll fallback, through `proxy`. */
  function fallbackSocket(proxy, token, storage) {
    const socket = new Socket(proxy.socketUrl, {
      transport: WebSocket,
      params: { token },
      longPollFallbackMs: 500,
      sessionStorage: storage,
      reconnectAfterMs: () => 50,
      rejoinAfterMs: () => 200,
    });
    server.sockets.add(socket);
    return socket;
  }

  async function chatsThrough(socket, room) {
    const direct = await server.connect(bob.token);
    const { channel: wsChan } = await join(direct, `room:${room}`);
    const wsMsgs = collect(wsChan, "new_msg");
    const { channel } = await join(socket, `room:${room}`);
    const lpMsgs = collect(channel, "new_msg");
    const body = `fallback ${unique()}`;
    const ack = await push(channel, "new_msg", { body });
    assert.equal(ack.status, "ok", JSON.stringify(ack));
    await wsMsgs.find((m) => m.body === body && m.user.id === alice.user.id);
    const ack2 = await push(wsChan, "new_msg", { body: `${body} reply` });
    assert.equal(ack2.status, "ok");
    await lpMsgs.find((m) => m.body === `${body} reply`);
    closeSocket(direct);
  }

  test("upgrade refused with 403: falls back to LongPoll, joins and chats; the fallback is remembered", async () => {
    const proxy = await startProxy(server, { upgrade: "403" });
    const storage = new MemoryStorage();
    const room = (await server.createRoom(alice.token)).name;
    try {
      const socket = fallbackSocket(proxy, alice.token, storage);
      const opens = new Collector("opens (true = over LongPoll)");
      const errors = new Collector("errors");
      socket.onOpen(() => opens.add(isLongPoll(socket)));
      socket.onError((e) => errors.add(String(e && (e.message || e.type || e))));
      socket.connect();
      await opens.until((o) => o.includes(true), 10000, "the LongPoll fallback to open");
      assert.deepEqual(opens.items, [true], "the WebSocket never opened");
      assert.ok(errors.items.length >= 1, "the refused upgrade surfaced as an error first");
      assert.equal(proxy.upgrades.items.length, 1, "one WebSocket attempt, then LongPoll");
      assert.ok(isLongPoll(socket), "fell back to LongPoll");
      assert.ok(
        proxy.requests.items.some((r) => r === "GET /socket/longpoll"),
        "long polls went through the proxy",
      );
      await chatsThrough(socket, room);
      assert.equal(storage.getItem("phx:fallback:LongPoll"), "true", "the fallback is remembered in sessionStorage");
      closeSocket(socket);

      // A new socket with the same session storage goes straight to LongPoll.
      const upgradesBefore = proxy.upgrades.items.length;
      const again = fallbackSocket(proxy, alice.token, storage);
      const openAgain = opened(again, 10000);
      again.connect();
      await openAgain;
      assert.ok(isLongPoll(again));
      assert.equal(proxy.upgrades.items.length, upgradesBefore, "no WebSocket attempt when the fallback is remembered");
      const { channel } = await join(again, `room:${room}`);
      assert.equal((await push(channel, "new_msg", { body: "remembered" })).status, "ok");
      closeSocket(again);
    } finally {
      await proxy.close();
    }
  });

  test("upgrade never answered: falls back after longPollFallbackMs and chats", async () => {
    const proxy = await startProxy(server, { upgrade: "hang" });
    const room = (await server.createRoom(alice.token)).name;
    try {
      const socket = fallbackSocket(proxy, alice.token, new MemoryStorage());
      const started = Date.now();
      const open = opened(socket, 10000);
      socket.connect();
      await open;
      const took = Date.now() - started;
      assert.ok(isLongPoll(socket), "fell back to LongPoll");
      assert.ok(took >= 490, `opened after ${took} ms: not before the 500 ms fallback window`);
      assert.equal(proxy.upgrades.items.length, 1);
      await chatsThrough(socket, room);
      closeSocket(socket);
    } finally {
      await proxy.close();
    }
  });
});

describe("LongPoll wire protocol (raw fetch)", () => {
  let alice;
  let bob;
  const server = suiteServer({ name: "longpoll-raw" }, 2, (...users) => ([alice, bob] = users));

  const hb = (ref) => [null, ref, "phoenix", "heartbeat", {}];

  test("first GET without a session: HTTP 200 {status:410, token, messages:[]}, no-store, JSON", async () => {
    const lp = new RawLongPoll(server, { token: alice.token });
    const res = await lp.open();
    assert.equal(res.http, 200);
    assert.match(res.headers.get("content-type"), /^application\/json/);
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.deepEqual(Object.keys(res.body).sort(), ["messages", "status", "token"]);
    assert.equal(res.body.status, 410);
    assert.deepEqual(res.body.messages, []);
    assert.equal(typeof res.body.token, "string");
    assert.ok(res.body.token.length > 10);
    assert.notEqual(res.body.token, alice.token, "the session token is not the user's token");
  });

  test("refused connects: {status:403} in an HTTP 200 (bad token, no token, bad vsn)", async () => {
    for (const [label, lp] of [
      ["bad token", new RawLongPoll(server, { token: "nope" })],
      ["no token", new RawLongPoll(server, {})],
      ["bad vsn", new RawLongPoll(server, { token: alice.token }, { vsn: "3.0.0" })],
    ]) {
      const res = await lp.open();
      assert.equal(res.http, 200, label);
      assert.deepEqual(res.body, { status: 403 }, label);
      assert.equal(res.headers.get("cache-control"), "no-store", label);
    }
  });

  test("the user's token param followed by a forged session token: a NEW session (410 + new token), which works", async () => {
    const lp = new RawLongPoll(server, { token: alice.token });
    const forged = alice.token.slice(0, -4) + "AAAA";
    for (const [i, session] of [forged, "garbage", alice.token].entries()) {
      const res = await lp.get({ session });
      assert.equal(res.http, 200);
      assert.equal(res.body.status, 410, `session ${session.slice(0, 12)}…: ${res.text}`);
      assert.equal(typeof res.body.token, "string");
      assert.notEqual(res.body.token, session);
      assert.deepEqual(res.body.messages, []);
      lp.session = res.body.token;
      const post = await lp.post([hb(`hb-${i}`)]);
      assert.deepEqual(post.body, { status: 200 });
      const reply = await lp.reply(`hb-${i}`);
      assert.deepEqual(reply, [null, `hb-${i}`, "phoenix", "phx_reply", { status: "ok", response: {} }]);
    }
  });

  test("POST without a valid session: {status:410} (forged, the user's access token, none)", async () => {
    const lp = new RawLongPoll(server, { token: alice.token });
    const forged = alice.token.slice(0, -4) + "AAAA";
    for (const session of [forged, alice.token, null]) {
      const res = await lp.post([hb("1")], { session });
      assert.equal(res.http, 200);
      assert.deepEqual(res.body, { status: 410 }, `session ${session && session.slice(0, 12)}`);
    }
  });

  test("a session token is not an access token: REST refuses it", async () => {
    const lp = new RawLongPoll(server, { token: alice.token });
    await lp.open();
    const res = await server.request("GET", "/api/me", { token: lp.session });
    assert.equal(res.status, 401);
  });

  test("POST with 101 lines: status 400 with an error; 100 lines are all handled, replies oldest first", async () => {
    const lp = new RawLongPoll(server, { token: alice.token });
    await lp.open();
    const tooMany = await lp.post(range(1, 101).map((i) => hb(`x${i}`)));
    assert.equal(tooMany.http, 200);
    assert.equal(tooMany.body.status, 400);
    assert.equal(typeof tooMany.body.error, "string");
    assert.ok(tooMany.body.error.length > 0);
    await server.healthy(); // still up

    // Nothing of the refused POST was handled; exactly 100 lines are.
    const ok = await lp.post(range(1, 100).map((i) => hb(`h${i}`)));
    assert.deepEqual(ok.body, { status: 200 });
    await lp.pollUntil((frames) => frames.length >= 100, DEADLINE_MS, "100 heartbeat replies");
    assert.deepEqual(
      lp.frames.items.map((f) => f[1]),
      range(1, 100).map((i) => `h${i}`),
      "replies in order, none from the refused POST",
    );
    for (const m of lp.rawMessages) assert.equal(typeof m, "string", "each message is a JSON-encoded string");
    // The session survived the bad POST and \r\n line ends are accepted.
    const crlf = await lp.post(`${JSON.stringify(hb("crlf1"))}\r\n${JSON.stringify(hb("crlf2"))}\r\n`);
    assert.deepEqual(crlf.body, { status: 200 });
    await lp.reply("crlf2");
  });

  test("a malformed line (not '[', not base64): status 400; the session survives", async () => {
    const lp = new RawLongPoll(server, { token: alice.token });
    await lp.open();
    for (const bad of ["not base64 at all!", "{\"topic\":\"x\"}", "%%%"]) {
      const res = await lp.post([hb("a"), bad]);
      assert.equal(res.http, 200);
      assert.equal(res.body.status, 400, `${bad}: ${res.text}`);
      assert.equal(typeof res.body.error, "string");
    }
    const res = await lp.post([hb("after")]);
    assert.deepEqual(res.body, { status: 200 });
    await lp.reply("after");
    assert.ok(!lp.frames.items.some((f) => f[1] === "a"), "no line of a refused POST was handled");
  });

  test("a join via POST: {status:200}; the next GET carries the reply as a JSON-encoded string, then presence_state", async () => {
    const lp = new RawLongPoll(server, { token: alice.token });
    await lp.open();
    const post = await lp.post([["7", "7", "room:lobby", "phx_join", {}]]);
    assert.equal(post.http, 200);
    assert.deepEqual(post.body, { status: 200 });
    assert.equal(post.headers.get("cache-control"), "no-store");
    const res = await lp.get();
    assert.equal(res.http, 200);
    assert.equal(res.body.status, 200);
    assert.equal(res.body.token, lp.session, "the session token is repeated");
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.ok(res.body.messages.length >= 1);
    for (const m of res.body.messages) assert.equal(typeof m, "string");
    const reply = JSON.parse(res.body.messages[0]);
    assert.deepEqual(reply.slice(0, 4), ["7", "7", "room:lobby", "phx_reply"]);
    assert.equal(reply[4].status, "ok");
    assert.equal(reply[4].response.recovered, false);
    const state = await lp.pollUntil((fs) => fs.some((f) => f[3] === "presence_state"), DEADLINE_MS, "presence_state");
    const stateFrame = state.find((f) => f[3] === "presence_state");
    assert.equal(stateFrame[0], "7");
    assert.equal(stateFrame[1], null);
    assert.ok(String(alice.user.id) in stateFrame[4]);
    // A push, and a text body that is not ndjson (one whole frame).
    const ack = await lp.push("7", "room:lobby", "new_msg", { body: "raw longpoll" });
    assert.equal(ack[0], "7");
    assert.equal(ack[4].status, "ok");
    const single = await lp.post(JSON.stringify(hb("plain")), { contentType: "text/plain" });
    assert.deepEqual(single.body, { status: 200 });
    await lp.reply("plain");
  });

  test("a held GET returns as soon as a POST queues a reply (one GET and one POST at a time)", async () => {
    const lp = new RawLongPoll(server, { token: alice.token });
    await lp.open();
    const started = Date.now();
    const held = lp.get();
    // Give the GET a head start without relying on it: either order must work.
    const post = await lp.post([hb("during")]);
    assert.deepEqual(post.body, { status: 200 });
    const res = await held;
    assert.equal(res.body.status, 200, res.text);
    assert.ok(Date.now() - started < 5000, "the held GET was answered early, not at the end of the window");
    assert.ok(res.body.messages.some((m) => JSON.parse(m)[1] === "during"));
    await lp.reply("during");
  });

  test("the session token in x-phoenix-longpoll-token wins over the query; X-Phoenix-AuthToken opens a session", async () => {
    const opener = new RawLongPoll(server, {}, { headers: { "x-phoenix-authtoken": alice.token } });
    const res = await opener.open();
    assert.equal(res.body.status, 410, res.text);
    const session = opener.session;

    // Query carries only the user's token (not a session): the header's session is used.
    const viaHeader = new RawLongPoll(server, { token: alice.token }, { headers: { "x-phoenix-longpoll-token": session } });
    const post = await viaHeader.post([hb("hdr")], { session: null });
    assert.deepEqual(post.body, { status: 200 });
    const got = await viaHeader.get({ session: null });
    assert.equal(got.body.status, 200, got.text);
    assert.equal(got.body.token, session);
    assert.deepEqual(JSON.parse(got.body.messages[0]).slice(0, 2), [null, "hdr"]);
  });

  test("origin check: a foreign Origin gets {status:403} on GET and POST; the server's own origin is accepted", async () => {
    const evil = new RawLongPoll(server, { token: alice.token }, { headers: { origin: "http://evil.example" } });
    const refused = await evil.open();
    assert.equal(refused.http, 200);
    assert.deepEqual(refused.body, { status: 403 });
    const same = new RawLongPoll(server, { token: alice.token }, { headers: { origin: server.url } });
    assert.equal((await same.open()).body.status, 410);
    evil.session = same.session;
    assert.deepEqual((await evil.post([hb("evil")])).body, { status: 403 });
    assert.deepEqual((await same.post([hb("same")])).body, { status: 200 });
  });

  test("no vsn means V1 over LongPoll too: a legacy (non-ndjson) POST of one object frame; replies are V1 objects", async () => {
    const lp = new RawLongPoll(server, { token: alice.token }, { vsn: null });
    assert.equal((await lp.open()).body.status, 410);
    const post = await lp.post(
      JSON.stringify({ topic: "room:lobby", event: "phx_join", payload: {}, ref: "j1" }),
      { contentType: "application/json" },
    );
    assert.deepEqual(post.body, { status: 200 });
    await lp.pollUntil((fs) => fs.some((f) => f.ref === "j1"), DEADLINE_MS, "the V1 join reply");
    const reply = lp.frames.items.find((f) => f.ref === "j1");
    assert.deepEqual(Object.keys(reply).sort(), ["event", "payload", "ref", "topic"]);
    assert.equal(reply.event, "phx_reply");
    assert.equal(reply.payload.status, "ok");
  });

  test("OPTIONS preflight echoes the requested headers and allows get, post, options; other methods: 400", async () => {
    const res = await fetch(`${server.url}/socket/longpoll?vsn=2.0.0`, {
      method: "OPTIONS",
      headers: {
        origin: server.url,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-phoenix-authtoken",
      },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-headers"), "content-type,x-phoenix-authtoken");
    assert.equal(res.headers.get("access-control-allow-methods"), "get, post, options");
    assert.equal(res.headers.get("access-control-max-age"), "3600");
    assert.equal(await res.text(), "");
    const put = await fetch(`${server.url}/socket/longpoll?vsn=2.0.0&token=${alice.token}`, { method: "PUT" });
    assert.equal(put.status, 400);
  });

  test("a frame that decodes badly inside a valid line ends only that session; others are unaffected", async () => {
    const victim = new RawLongPoll(server, { token: alice.token });
    await victim.open();
    const other = new RawLongPoll(server, { token: bob.token });
    await other.open();
    const res = await victim.post(["[not json"]);
    assert.equal(res.http, 200);
    const next = await victim.get();
    assert.equal(next.body.status, 410, `the malformed frame ended the session: ${next.text}`);
    const post = await other.post([hb("other")]);
    assert.deepEqual(post.body, { status: 200 });
    await other.reply("other");
  });

  // The two time-based checks run side by side (~10 s and ~16 s).
  describe("time based", { concurrency: true }, () => {
    test("a GET with nothing pending is answered {status:204, token, messages:[]} after ~10 s", async () => {
      const lp = new RawLongPoll(server, { token: alice.token });
      await lp.open();
      const started = Date.now();
      const res = await withDeadline(lp.get(), 15000, "the poll window to end", server);
      const took = Date.now() - started;
      assert.equal(res.http, 200);
      assert.deepEqual(res.body, { status: 204, token: lp.session, messages: [] });
      assert.ok(took >= 9000 && took <= 15000, `answered after ${took} ms`);
      // The session lives on.
      assert.deepEqual((await lp.post([hb("alive")])).body, { status: 200 });
      await lp.reply("alive");
    });

    test("a session with no GET for > 15 s ends: its presence leaves, its token gets 410; a polling one lives", async () => {
      const carol = await server.register();
      const dave = await server.register();
      const C = String(carol.user.id);
      const D = String(dave.user.id);
      const room = (await server.createRoom(bob.token)).name;
      const topic = `room:${room}`;
      const observer = await server.connect(bob.token);
      const { watch } = await joinWatched(observer, topic);

      const idle = new RawLongPoll(server, { token: carol.token });
      await idle.open();
      await idle.join(topic);
      const lastIdleGet = Date.now();
      const busy = new RawLongPoll(server, { token: dave.token });
      await busy.open();
      await busy.join(topic);
      await watch.until((v) => v[C]?.length === 1 && v[D]?.length === 1, DEADLINE_MS, "carol and dave");

      // `busy` keeps polling; `idle` never polls again.
      const stop = new AbortController();
      const polling = (async () => {
        while (!stop.signal.aborted) {
          try {
            const res = await busy.get({ signal: stop.signal });
            if (res.body.status !== 200 && res.body.status !== 204) throw new Error(`busy poll: ${res.text}`);
          } catch (e) {
            if (e.name === "AbortError") return;
            throw e;
          }
        }
      })();
      try {
        const view = await watch.until((v) => !(C in v), 22000, "the idle session's presence to leave");
        const took = Date.now() - lastIdleGet;
        assert.ok(took >= 14500, `left after ${took} ms, before the 15 s idle limit`);
        assert.equal(view[D]?.length, 1, "the polling session stays");
        const get = await idle.get();
        assert.equal(get.http, 200);
        assert.equal(get.body.status, 410, get.text);
        assert.deepEqual((await idle.post([hb("late")])).body, { status: 410 });
        // The polling session is alive well past 15 s.
        assert.deepEqual((await busy.post([hb("still")])).body, { status: 200 });
        await withDeadline(
          busy.frames.find((f) => f[1] === "still", 5000),
          6000,
          "the busy session's reply",
        );
      } finally {
        stop.abort();
        await polling.catch(() => {});
      }
      closeSocket(observer);
    });
  });
});
