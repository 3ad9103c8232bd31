// Handshake and auth (api.md §3, phoenix-protocol.md §1, checklist 1–5):
// token param, authToken subprotocol, refusals as HTTP 403, heartbeats.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Collector, join, joinChannel, ping, suiteServer } from "../harness.mjs";

describe("connect and join", () => {
  let alice;
  const server = suiteServer({ name: "connect" }, 1, (...users) => ([alice] = users));

  test("a token param connects and room:lobby joins with the recovery reply", async () => {
    const socket = await server.connect(alice.token);
    assert.equal(socket.isConnected(), true);
    const { response } = await join(socket, "room:lobby");
    assert.deepEqual(Object.keys(response).sort(), ["epoch", "last_seq", "messages", "recovered", "truncated"]);
    assert.equal(typeof response.epoch, "string");
    assert.ok(response.epoch.length > 0, "epoch is a non-empty string");
    assert.equal(response.last_seq, 0);
    assert.deepEqual(response.messages, []);
    assert.equal(response.recovered, false);
    assert.equal(response.truncated, false);
  });

  test("the epoch of a topic is stable across joins", async () => {
    const s1 = await server.connect(alice.token);
    const s2 = await server.connect(alice.token);
    const r1 = (await join(s1, "room:lobby")).response;
    const r2 = (await join(s2, "room:lobby")).response;
    assert.equal(r1.epoch, r2.epoch);
  });

  test("a bad token never opens: onError fires, onOpen never, no join succeeds", async () => {
    const socket = server.socket("not-a-valid-token");
    const opens = new Collector("opens");
    const errors = new Collector("errors");
    const closes = new Collector("closes");
    socket.onOpen(() => opens.add(true));
    socket.onError((e) => errors.add(e));
    socket.onClose((e) => closes.add(e.code));
    socket.connect();
    let joined = false;
    socket
      .channel("room:lobby", {})
      .join()
      .receive("ok", () => {
        joined = true;
      });
    // The client retries with backoff (50 ms here); three refused attempts
    // are the deadline by which an accept would have shown up.
    await errors.count(3, 5000);
    await closes.count(3, 5000);
    socket.disconnect();
    assert.equal(opens.items.length, 0, "onOpen must never fire for a refused token");
    assert.equal(joined, false, "no join may succeed");
    assert.ok(closes.items.every((code) => code !== 1000), `closes: ${closes.items}`);
  });

  test("a raw upgrade with a bad token is refused with HTTP 403", async () => {
    assert.equal(await server.refusedStatus({ token: "garbage", vsn: "2.0.0" }), 403);
  });

  test("a raw upgrade with no token is refused with HTTP 403", async () => {
    assert.equal(await server.refusedStatus({ vsn: "2.0.0" }), 403);
  });

  test("a token signed with another secret is refused with HTTP 403", async () => {
    // Same shape as a real token, different signature.
    const [h, p] = alice.token.split(".");
    const forged = `${h}.${p}.${Buffer.from("x".repeat(32)).toString("base64url")}`;
    assert.equal(await server.refusedStatus({ token: forged, vsn: "2.0.0" }), 403);
  });

  test("the authToken option (subprotocol) connects; the server answers the phoenix subprotocol", async () => {
    const socket = await server.connect(null, { authToken: alice.token });
    assert.equal(socket.conn.protocol, "phoenix");
    const { response } = await join(socket, "room:lobby");
    assert.equal(response.recovered, false);
    assert.equal(typeof response.epoch, "string");
  });

  test("a bad authToken is refused with HTTP 403", async () => {
    const b64 = Buffer.from("nope").toString("base64").replace(/=/g, "");
    const status = await server.refusedStatus({ vsn: "2.0.0" }, ["phoenix", `base64url.bearer.phx.${b64}`]);
    assert.equal(status, 403);
  });

  test("socket.ping gets a heartbeat reply (RTT callback fires)", async () => {
    const socket = await server.connect(alice.token);
    const rtt = await ping(socket);
    assert.equal(typeof rtt, "number");
    assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
    // Still answered after a join.
    await joinChannel(socket, "room:lobby");
    assert.equal(typeof (await ping(socket)), "number");
  });
});
