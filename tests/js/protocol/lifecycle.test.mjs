// Socket lifecycle (api.md §1, §3; checklist 7, 8): idle sockets are closed
// by the server (not with 1000); SIGTERM closes sockets with 1001 and the
// process exits 0.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { Collector, join, suiteServer, withDeadline } from "../harness.mjs";

describe("heartbeat timeout", () => {
  let alice;
  const server = suiteServer({ name: "idle", env: { CONFAB_HEARTBEAT_TIMEOUT_SECS: "1" } }, 1, (...users) => ([alice] = users));

  test("a socket that sends nothing is closed by the server within ~3 s, not with 1000", async () => {
    const raw = server.raw({ token: alice.token, vsn: "2.0.0" });
    await withDeadline(raw.opened, 5000, "open", server);
    const opened = Date.now();
    const { code, at } = await withDeadline(raw.closed, 3500, "the idle close", server);
    assert.notEqual(code, 1000);
    assert.notEqual(code, 1005, "the server sends a close frame with a code");
    assert.notEqual(code, 1006, "the server closes cleanly (close frame), not by dropping");
    const after = at - opened;
    assert.ok(after >= 800, `closed after ${after} ms, before the 1 s timeout`);
  });

  test("a socket that keeps sending heartbeats stays open past the timeout", async () => {
    const raw = server.raw({ token: alice.token, vsn: "2.0.0" });
    await withDeadline(raw.opened, 5000, "open", server);
    let closed = null;
    raw.closed.then((c) => {
      closed = c;
    });
    // Heartbeat every 300 ms for 2.4 s (2.4 × the timeout); each is awaited.
    const started = Date.now();
    while (Date.now() - started < 2400) {
      const sentAt = Date.now();
      await raw.heartbeat(2000);
      await delay(Math.max(0, 300 - (Date.now() - sentAt))); // the client's heartbeat cadence
    }
    assert.equal(closed, null, `closed while heartbeating: ${JSON.stringify(closed)}`);
  });
});

describe("shutdown", () => {
  let alice;
  const server = suiteServer({ name: "shutdown" }, 1, (...users) => ([alice] = users));

  test("SIGTERM: connected clients see close code 1001; exit code 0; acknowledged messages survive", async () => {
    const raw = server.raw({ token: alice.token, vsn: "2.0.0" });
    await withDeadline(raw.opened, 5000, "open", server);
    await raw.join("room:lobby");

    const socket = await server.connect(alice.token);
    const { channel } = await join(socket, "room:lobby");
    const closes = new Collector("phoenix closes");
    socket.onClose((event) => closes.add(event.code));
    const acked = await new Promise((resolve, reject) =>
      channel
        .push("new_msg", { body: "before shutdown" })
        .receive("ok", resolve)
        .receive("error", reject)
        .receive("timeout", () => reject(new Error("timeout"))),
    );

    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, server.tail());
    const { code } = await withDeadline(raw.closed, 5000, "the raw socket's close", server);
    assert.equal(code, 1001);
    const [phoenixCode] = await closes.count(1);
    assert.equal(phoenixCode, 1001);

    // The acknowledged message is there after a restart.
    socket.disconnect();
    await server.start();
    const page = await server.messages(alice.token, "lobby");
    assert.ok(
      page.messages.some((m) => m.seq === acked.seq && m.body === "before shutdown"),
      JSON.stringify(page),
    );
  });
});
