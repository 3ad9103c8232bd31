// The V1 serializer (phoenix-protocol.md §1.2, §2.2, checklist 2, 10, 12):
// `vsn=1.0.0` or no `vsn` selects object frames; server frames carry exactly
// topic/event/payload/ref; unsupported versions are refused with 403.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { suiteServer, withDeadline } from "../harness.mjs";

const V1_KEYS = ["event", "payload", "ref", "topic"];

describe("V1 serializer", () => {
  let alice;
  let room;
  const server = suiteServer({ name: "raw-v1" }, 1, async (user) => {
    alice = user;
    room = (await server.createRoom(alice.token)).name;
  });

  async function v1(vsn) {
    const raw = server.raw({ token: alice.token, vsn });
    await withDeadline(raw.opened, 5000, "the raw V1 socket to open", server);
    return raw;
  }

  const byRef = (raw, ref, what = `a V1 frame with ref ${ref}`) =>
    raw.frames.find((f) => !Array.isArray(f) && f.ref === ref && f.event === "phx_reply", 5000, what);

  for (const [label, vsn] of [
    ["vsn=1.0.0", "1.0.0"],
    ["no vsn", undefined],
  ]) {
    test(`${label}: object frames in, object frames with exactly topic/event/payload/ref out`, async () => {
      const raw = await v1(vsn);
      const topic = `room:${room}`;

      raw.send({ topic: "phoenix", event: "heartbeat", payload: {}, ref: "1" });
      assert.deepEqual(await byRef(raw, "1"), {
        topic: "phoenix",
        event: "phx_reply",
        payload: { status: "ok", response: {} },
        ref: "1",
      });

      // A V1 join without join_ref: the channel's join ref is the join's ref.
      raw.send({ topic, event: "phx_join", payload: {}, ref: "2" });
      const joined = await byRef(raw, "2");
      assert.deepEqual(Object.keys(joined).sort(), V1_KEYS);
      assert.equal(joined.topic, topic);
      assert.equal(joined.payload.status, "ok");
      assert.equal(typeof joined.payload.response.epoch, "string");

      raw.send({ topic, event: "new_msg", payload: { body: "v1 hello" }, ref: "3" });
      const ack = await byRef(raw, "3");
      assert.deepEqual(Object.keys(ack).sort(), V1_KEYS);
      assert.equal(ack.payload.status, "ok");
      const broadcast = await raw.frames.find((f) => f.event === "new_msg" && f.payload.id === ack.payload.response.id);
      assert.deepEqual(Object.keys(broadcast).sort(), V1_KEYS);
      assert.equal(broadcast.ref, null);
      assert.equal(broadcast.topic, topic);
      assert.equal(broadcast.payload.body, "v1 hello");

      raw.send({ topic, event: "no_such_event", payload: {}, ref: "4" });
      const refused = await byRef(raw, "4");
      assert.deepEqual(refused, {
        topic,
        event: "phx_reply",
        payload: { status: "error", response: { reason: "unknown_event" } },
        ref: "4",
      });

      raw.send({ topic, event: "phx_leave", payload: {}, ref: "5" });
      assert.deepEqual(await byRef(raw, "5"), {
        topic,
        event: "phx_reply",
        payload: { status: "ok", response: {} },
        ref: "5",
      });
      const close = await raw.frames.find((f) => f.event === "phx_close");
      assert.deepEqual(close, { topic, event: "phx_close", payload: {}, ref: "2" }, "phx_close carries the join ref");

      for (const frame of raw.frames.items) {
        assert.ok(!Array.isArray(frame), `V1 frames are objects: ${JSON.stringify(frame)}`);
        assert.deepEqual(Object.keys(frame).sort(), V1_KEYS, JSON.stringify(frame));
      }
    });
  }

  test("V1 client join_ref is accepted and never echoed", async () => {
    const raw = await v1("1.0.0");
    raw.send({ topic: "room:lobby", event: "phx_join", payload: {}, ref: "10", join_ref: "10" });
    const joined = await byRef(raw, "10");
    assert.deepEqual(Object.keys(joined).sort(), V1_KEYS);
    assert.equal(joined.payload.status, "ok");
  });

  test("a V1 frame missing a required key closes the socket with a non-1000 code", async () => {
    const raw = await v1("1.0.0");
    raw.send({ topic: "phoenix", event: "heartbeat", payload: {} });
    const { code } = await withDeadline(raw.closed, 5000, "the close after a frame without ref", server);
    assert.notEqual(code, 1000);
  });

  test("a binary frame on V1 closes the socket with a non-1000 code", async () => {
    const raw = await v1("1.0.0");
    raw.ws.send(Buffer.from([0, 1, 1, 7, 9]));
    const { code } = await withDeadline(raw.closed, 5000, "the close after a binary frame", server);
    assert.notEqual(code, 1000);
  });

  for (const vsn of ["3.0.0", "2.1.0", "1.1.0", "banana", ""]) {
    test(`vsn=${JSON.stringify(vsn)} is refused with HTTP 403`, async () => {
      assert.equal(await server.refusedStatus({ token: alice.token, vsn }), 403);
    });
  }

  test("vsn=2.0.1 and 1.0.3 are accepted (~> 2.0.0 / ~> 1.0.0)", async () => {
    const v2 = server.raw({ token: alice.token, vsn: "2.0.1" });
    await withDeadline(v2.opened, 5000, "vsn 2.0.1 to open");
    v2.send([null, "1", "phoenix", "heartbeat", {}]);
    assert.ok(Array.isArray(await v2.reply("1")));
    const v1raw = await v1("1.0.3");
    v1raw.send({ topic: "phoenix", event: "heartbeat", payload: {}, ref: "1" });
    assert.equal((await byRef(v1raw, "1")).event, "phx_reply");
  });
});
