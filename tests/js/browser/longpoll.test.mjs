// The web UI where WebSockets cannot open: it falls back to LongPoll (as
// phoenix.js 1.8's `longPollFallbackMs`) and everything works as before.
//
// A browser loads the UI through `startProxy` (longpoll-helpers.mjs), which
// forwards every HTTP request, long polls included, but refuses WebSocket
// upgrades. That page chats with a second user whose page talks to the
// server directly over a WebSocket: messages both ways, presence of both,
// then a server SIGKILL + restart on the same port (the proxy keeps pointing
// at it) after which the long-polling page reconnects and what was sent
// while the server was down is delivered once, with no gap. The fallback is
// remembered in sessionStorage `phx:fallback:LongPoll`, so a reload goes
// straight to LongPoll; a WebSocket that never opens, or opens but never
// answers the ping, falls back after the window too. Last, the UI's client
// itself (assets/js/phoenix.js + longpoll.js, run in Node with an
// instrumented fetch) keeps one GET and one POST in flight and batches
// frames, at most 100 per POST.
//
// The proxy rewrites Host to the server's address while the browser's
// Origin is the proxy's, so the server is started with both origins in
// CONFAB_ALLOWED_ORIGINS (otherwise LongPoll POSTs, which carry an Origin,
// are refused with status 403), on a port chosen before it starts.
//
// No sleeps: locator waits, and polling with deadlines.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Server, withDeadline, DEADLINE_MS } from "../harness.mjs";
import { Socket, LongPoll } from "../../../assets/js/phoenix.js";
import { startProxy } from "../longpoll-helpers.mjs";
import * as H from "./helpers.mjs";

const FALLBACK_KEY = "phx:fallback:LongPoll";

const s = H.suite(null);
let server;
let proxy; // refuses WebSocket upgrades with 403
let hangProxy; // never answers WebSocket upgrades

/** A TCP port free right now on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

before(async () => {
  server = new Server();
  // The allowed origins name the server's port, so it is fixed before the start.
  server.port = await freePort();
  proxy = await startProxy(server, { upgrade: "403" });
  hangProxy = await startProxy(server, { upgrade: "hang" });
  server.extraEnv = {
    CONFAB_ALLOWED_ORIGINS: [server.port, proxy.port, hangProxy.port].map((p) => `http://127.0.0.1:${p}`).join(","),
  };
  await server.start();
});

after(async () => {
  await proxy?.close();
  await hangProxy?.close();
  await server?.cleanup();
});

/** What `H.openPage` and `H.signedInPage` need to load the UI through a proxy. */
const via = (p) => ({ url: `http://127.0.0.1:${p.port}` });

const fallbackFlag = (page) => page.evaluate((key) => sessionStorage.getItem(key), FALLBACK_KEY);

const tokenOf = (page) => page.evaluate(() => JSON.parse(localStorage.getItem("confab:session")).token);

/** Waits until `page` lists exactly `people` online in lobby. */
async function seesOnline(page, people) {
  for (const who of people) await page.locator("#online-list").getByText(who.displayName).waitFor({ timeout: H.UI_DEADLINE });
  const heading = page.locator("#online-heading");
  await H.eventually(async () => ((await heading.textContent()) || "").includes(`Online in #lobby — ${people.length}`), {
    what: `${people.length} people online in lobby`,
  });
}

test("with WebSockets refused the UI long-polls: chat both ways, presence, and no loss across a server crash", async () => {
  const a = await H.signedInPage(s, { server: via(proxy), displayName: "Lola Longpoll" });
  const lola = a.user;

  // The WebSocket was tried, refused, and LongPoll took over and was remembered.
  await H.eventually(async () => (await fallbackFlag(a)) === "true", { what: `sessionStorage ${FALLBACK_KEY}` });
  assert.ok(proxy.upgrades.items.includes("/socket/websocket"), "the WebSocket was tried first");
  await H.eventually(() => proxy.requests.items.includes("POST /socket/longpoll"), { what: "a LongPoll POST" });
  assert.ok(proxy.requests.items.includes("GET /socket/longpoll"), "LongPoll GETs went through the proxy");
  const upgradesAfterFallback = proxy.upgrades.items.length;

  const b = await H.signedInPage(s, { server, displayName: "Wes Websocket" });
  const wes = b.user;
  assert.equal(await fallbackFlag(b), null, "the direct page stays on its WebSocket");

  // Presence of both, on both sides.
  await seesOnline(a, [lola, wes]);
  await seesOnline(b, [lola, wes]);

  // Messages both ways.
  await H.send(a, "hello from long-polling");
  await H.messageRow(b, "hello from long-polling").waitFor({ timeout: H.UI_DEADLINE });
  await H.messageRow(a, "hello from long-polling").waitFor({ timeout: H.UI_DEADLINE });
  await H.send(b, "hello back over the websocket");
  await H.messageRow(a, "hello back over the websocket").waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await a.locator("#banner").isVisible(), false, "nothing special shows while long-polling");
  await H.screenshot(a, "30-longpoll-chat");

  // The server dies: the long-polling page says it is reconnecting (with the quiet hint).
  await server.kill();
  const banner = a.locator("#banner");
  await banner.filter({ hasText: "Reconnecting" }).waitFor({ state: "visible", timeout: H.UI_DEADLINE });
  assert.match(await banner.textContent(), /\(long-polling\)/);

  // Written while the server is gone: pending, not lost.
  const pending = await H.sendWhileDown(a, "written while the server was down");
  await H.screenshot(a, "31-longpoll-reconnecting");

  // Restart on the same port and data directory; Wes posts through REST at once.
  await server.start();
  const wesToken = await tokenOf(b);
  const wesBodies = Array.from({ length: 5 }, (_, i) => `wes while lola was away ${i + 1}`);
  for (const body of wesBodies) await server.postMessage(wesToken, "lobby", body);

  await banner.waitFor({ state: "hidden", timeout: 20000 });
  await pending.waitFor({ state: "detached", timeout: H.UI_DEADLINE });
  await H.messageRow(a, "written while the server was down").waitFor({ timeout: H.UI_DEADLINE });
  for (const body of wesBodies) await H.messageRow(a, body).waitFor({ timeout: H.UI_DEADLINE });
  await H.messageRow(b, "written while the server was down").waitFor({ timeout: H.UI_DEADLINE });

  // 2 before + 1 from Lola + 5 from Wes = 8 messages, each stored and shown once, in order.
  await H.assertDeliveredOnce(a, server, wesToken, { body: "written while the server was down", total: 8, label: "long-polling page after the restart" });
  await H.eventually(async () => (await H.renderedSeqs(b)).length === 8, { what: "8 rendered messages for Wes" });
  H.assertGapless(await H.renderedSeqs(b), 8, "WebSocket page after the restart");

  // Both are back online, and the long-polling page never tried the WebSocket again.
  await seesOnline(a, [lola, wes]);
  await seesOnline(b, [lola, wes]);
  assert.equal(proxy.upgrades.items.length, upgradesAfterFallback, "reconnects stay on LongPoll");
  assert.equal(await fallbackFlag(a), "true");
  await H.screenshot(a, "32-longpoll-reconnected");

  H.assertClean(a, "lola");
  H.assertClean(b, "wes");
  await a.context().close();
  await b.context().close();
});

test("a reload after the fallback goes straight to LongPoll", async () => {
  const a = await H.signedInPage(s, { server: via(proxy), displayName: "Rhea Reload" });
  await H.eventually(async () => (await fallbackFlag(a)) === "true", { what: `sessionStorage ${FALLBACK_KEY}` });
  const upgrades = proxy.upgrades.items.length;

  await a.reload();
  await H.chatReady(a);
  await H.send(a, "sent after a reload");
  await H.messageRow(a, "sent after a reload").waitFor({ timeout: H.UI_DEADLINE });
  const token = await tokenOf(a);
  const { messages } = await server.messages(token, "lobby", "limit=200");
  assert.equal(messages.filter((m) => m.body === "sent after a reload").length, 1);
  assert.equal(proxy.upgrades.items.length, upgrades, "no WebSocket attempt after the reload");
  H.assertClean(a, "rhea");
  await a.context().close();
});

test("a WebSocket that never opens, or opens but never answers its ping, falls back after the window", async () => {
  // Never opens: the proxy holds the upgrade forever.
  const c = await H.signedInPage(s, { server: via(hangProxy), displayName: "Hana Hang" });
  await H.eventually(async () => (await fallbackFlag(c)) === "true", { what: "the fallback from a hanging upgrade" });
  assert.ok(hangProxy.upgrades.items.includes("/socket/websocket"));
  await H.send(c, "through a hanging proxy");
  await H.messageRow(c, "through a hanging proxy").waitFor({ timeout: H.UI_DEADLINE });

  // Opens (mocked) but nothing answers: the client pinged it, then fell back.
  const d = await H.openPage(s.browser, server);
  const mocked = [];
  await d.routeWebSocket(/\/socket\/websocket/, (ws) => {
    ws.onMessage((message) => mocked.push(String(message)));
  });
  await H.registerViaUi(d, { displayName: "Mia Mute" });
  await H.eventually(async () => (await fallbackFlag(d)) === "true", { what: "the fallback from a mute WebSocket" });
  assert.ok(
    mocked.some((m) => /^\[null,"\d+","phoenix","heartbeat",\{\}\]$/.test(m)),
    `the mute WebSocket got a ping; it got ${JSON.stringify(mocked).slice(0, 500)}`,
  );
  await H.send(d, "after a mute websocket");
  await H.messageRow(d, "after a mute websocket").waitFor({ timeout: H.UI_DEADLINE });

  const token = await tokenOf(d);
  const { messages } = await server.messages(token, "lobby", "limit=200");
  for (const body of ["through a hanging proxy", "after a mute websocket"]) {
    assert.equal(messages.filter((m) => m.body === body).length, 1, body);
  }
  H.assertClean(c, "hana");
  H.assertClean(d, "mia");
  await c.context().close();
  await d.context().close();
});

test("the UI's LongPoll transport keeps one GET and one POST in flight and batches frames, at most 100 per POST", async () => {
  const user = await server.register();
  const realFetch = globalThis.fetch;
  const inFlight = { GET: 0, POST: 0 };
  const most = { GET: 0, POST: 0 };
  const batches = [];
  // Counts a request as in flight from the call until its body has been read.
  globalThis.fetch = async (url, init = {}) => {
    const method = init.method || "GET";
    inFlight[method] += 1;
    most[method] = Math.max(most[method], inFlight[method]);
    if (method === "POST") batches.push(init.body.split("\n").length);
    try {
      const response = await realFetch(url, init);
      const text = await response.text();
      return new Response(text, { status: response.status, headers: response.headers });
    } finally {
      inFlight[method] -= 1;
    }
  };
  const socket = new Socket(server.socketUrl, { transport: LongPoll, params: { token: user.token }, sessionStorage: null });
  try {
    socket.connect();
    const channel = socket.channel("room:lobby", {});
    await withDeadline(
      new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", (e) => reject(new Error(JSON.stringify(e))))),
      DEADLINE_MS,
      "the join over LongPoll",
    );
    assert.ok(socket.isLongPoll() && socket.isConnected());
    assert.equal(socket.heartbeatTimer, null, "no heartbeats over LongPoll");

    // 250 pings pushed in one go: POSTs of 100, 100 and 50 frames, one at a time.
    const refs = new Set();
    const answered = new Set();
    const allAnswered = new Promise((resolve) => {
      socket.onMessage(({ ref, event }) => {
        if (event === "phx_reply" && refs.has(ref)) answered.add(ref);
        if (answered.size === 250) resolve();
      });
    });
    const postsBefore = batches.length;
    for (let i = 0; i < 250; i++) {
      const ref = socket.makeRef();
      refs.add(ref);
      socket.push({ topic: "phoenix", event: "heartbeat", payload: {}, ref });
    }
    await withDeadline(allAnswered, 15000, "250 ping replies over LongPoll");
    assert.deepEqual(batches.slice(postsBefore), [100, 100, 50]);
    assert.equal(most.GET, 1, "one GET in flight at a time");
    assert.equal(most.POST, 1, "one POST in flight at a time");
  } finally {
    socket.disconnect();
    globalThis.fetch = realFetch;
  }
});
