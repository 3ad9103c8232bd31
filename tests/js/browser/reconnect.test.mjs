// Never lose a message: the server is SIGKILLed and restarted on the same
// port and data directory while A writes. A's UI says it is reconnecting,
// the message A sent meanwhile stays pending and is delivered exactly once,
// and what B posted through the REST API meanwhile fills in with no gap and
// no duplicate. A pending message also survives a page reload.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as H from "./helpers.mjs";

const s = H.suite();

test("a message written while the server is down is delivered once after it restarts, with no gap", async () => {
  const bob = await s.server.register(undefined);
  const a = await H.signedInPage(s, { displayName: "Alice" });
  await H.send(a, "before the crash");
  await H.messageRow(a, "before the crash").waitFor({ timeout: H.UI_DEADLINE });
  await s.server.postMessage(bob.token, "lobby", "bob before the crash");
  await H.messageRow(a, "bob before the crash").waitFor({ timeout: H.UI_DEADLINE });

  await s.server.kill();
  const banner = a.locator("#banner");
  await banner.filter({ hasText: "Reconnecting" }).waitFor({ state: "visible", timeout: H.UI_DEADLINE });

  // A writes while the server is gone: the message is pending, not lost.
  const pending = await H.sendWhileDown(a, "written while the server was down");
  await H.screenshot(a, "20-reconnecting-pending");

  // Restart on the same port and data directory; B posts through REST at once.
  await s.server.start();
  const bobBodies = Array.from({ length: 5 }, (_, i) => `bob while alice was away ${i + 1}`);
  for (const body of bobBodies) await s.server.postMessage(bob.token, "lobby", body);

  await banner.waitFor({ state: "hidden", timeout: 20000 });
  await pending.waitFor({ state: "detached", timeout: H.UI_DEADLINE });
  await H.messageRow(a, "written while the server was down").waitFor({ timeout: H.UI_DEADLINE });
  for (const body of bobBodies) await H.messageRow(a, body).waitFor({ timeout: H.UI_DEADLINE });

  // 2 before + 5 from B + 1 from A = 8 messages, every seq once, in order.
  await H.assertDeliveredOnce(a, s.server, bob.token, { body: "written while the server was down", total: 8, label: "after the restart" });
  await H.screenshot(a, "21-reconnected");
  H.assertClean(a, "alice");
});

test("a pending message survives a page reload and is sent once when the socket is back", async () => {
  const a = await H.signedInPage(s, { displayName: "Rita Reload" });
  const token = await a.evaluate(() => JSON.parse(localStorage.getItem("confab:session")).token);
  const before = (await s.server.messages(token, "lobby", "limit=200")).messages.length;

  // From now on the page's sockets reach nothing (they open, but nobody answers),
  // and neither does the LongPoll the UI falls back to when a WebSocket stays mute.
  let blocked = true;
  const held = [];
  await a.routeWebSocket(/\/socket\/websocket/, (ws) => {
    if (blocked) held.push(ws);
    else ws.connectToServer();
  });
  await a.route(/\/socket\/longpoll/, (route) => (blocked ? route.abort() : route.continue()));
  await a.reload();
  await H.chatReady(a);
  await H.send(a, "typed into a dead connection");
  const pending = a.locator("#message-list li.is-pending", { hasText: "typed into a dead connection" });
  await pending.waitFor({ timeout: H.UI_DEADLINE });

  // Reload: the message is still there, still pending.
  await a.reload();
  await pending.waitFor({ timeout: H.UI_DEADLINE });
  await H.screenshot(a, "22-pending-after-reload");

  // Let the socket through: the message goes out once.
  blocked = false;
  for (const ws of held) ws.close({ code: 1001, reason: "test lets the socket through" });
  await H.messageRow(a, "typed into a dead connection").waitFor({ timeout: 20000 });
  await pending.waitFor({ state: "detached", timeout: H.UI_DEADLINE });
  const { messages } = await s.server.messages(token, "lobby", "limit=200");
  assert.equal(messages.length, before + 1);
  assert.equal(messages.filter((m) => m.body === "typed into a dead connection").length, 1);
  H.assertGapless(await H.renderedSeqs(a), messages.length, "after the reload");
  H.assertClean(a, "rita");
});
