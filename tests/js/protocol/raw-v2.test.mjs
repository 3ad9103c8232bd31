// Raw V2 frame conformance (phoenix-protocol.md §2.1, §3, checklist 9–27,
// 52) with a plain `ws` client: exact reply shapes, refs echoed with their
// JSON type, routing of joins/leaves/pushes, stale join refs, closes for
// malformed and oversized frames, the per-socket channel limit.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { suiteServer, withDeadline } from "../harness.mjs";

/** After a barrier, how long to keep watching for a frame that must not come. */
const QUIET_MS = 300;

const OK_EMPTY = { status: "ok", response: {} };

describe("raw V2 frames", () => {
  let alice;
  let roomA;
  let roomB;
  const server = suiteServer(
    { name: "raw-v2", env: { CONFAB_MAX_FRAME_BYTES: "2048", CONFAB_MAX_TOPICS_PER_SOCKET: "2" } },
    1,
    async (user) => {
      alice = user;
      roomA = (await server.createRoom(alice.token)).name;
      roomB = (await server.createRoom(alice.token)).name;
    },
  );

  async function client() {
    const raw = server.raw({ token: alice.token, vsn: "2.0.0" });
    await withDeadline(raw.opened, 5000, "the raw socket to open", server);
    return raw;
  }

  test("every server frame is a 5-element array with an object payload", async () => {
    const raw = await client();
    await raw.heartbeat();
    await raw.join("room:lobby");
    raw.send([null, raw.nextRef(), "room:nope", "phx_join", {}]);
    raw.send([null, raw.nextRef(), "room:lobby", "no_such_event", {}]);
    await raw.heartbeat();
    for (const frame of raw.frames.items) {
      assert.ok(Array.isArray(frame), JSON.stringify(frame));
      assert.equal(frame.length, 5, JSON.stringify(frame));
      assert.equal(typeof frame[4], "object");
      assert.ok(frame[4] !== null && !Array.isArray(frame[4]), JSON.stringify(frame));
    }
  });

  test("heartbeat reply shape, even with no channel joined", async () => {
    const raw = await client();
    raw.send([null, "h1", "phoenix", "heartbeat", {}]);
    assert.deepEqual(await raw.reply("h1"), [null, "h1", "phoenix", "phx_reply", OK_EMPTY]);
  });

  test("heartbeat reply join_ref is null even when the heartbeat carried one (§3.2)", async () => {
    const raw = await client();
    raw.send(["some-join-ref", "h2", "phoenix", "heartbeat", {}]);
    assert.deepEqual(await raw.reply("h2"), [null, "h2", "phoenix", "phx_reply", OK_EMPTY]);
  });

  test("push on an unjoined topic: error 'unmatched topic' with join_ref null", async () => {
    const raw = await client();
    raw.send([null, "p1", "room:lobby", "new_msg", { body: "x" }]);
    assert.deepEqual(await raw.reply("p1"), [
      null,
      "p1",
      "room:lobby",
      "phx_reply",
      { status: "error", response: { reason: "unmatched topic" } },
    ]);
    raw.send(["77", "p2", "room:lobby", "history", {}]);
    assert.deepEqual(await raw.reply("p2"), [
      null,
      "p2",
      "room:lobby",
      "phx_reply",
      { status: "error", response: { reason: "unmatched topic" } },
    ]);
  });

  test("join of an unroutable topic: error 'unmatched topic' with join_ref null; no state kept", async () => {
    const raw = await client();
    for (const topic of ["foo:bar", "room:", "lobby"]) {
      const ref = raw.nextRef();
      raw.send([ref, ref, topic, "phx_join", {}]);
      assert.deepEqual(await raw.reply(ref), [
        null,
        ref,
        topic,
        "phx_reply",
        { status: "error", response: { reason: "unmatched topic" } },
      ]);
    }
    const ref = raw.nextRef();
    raw.send([null, ref, "foo:bar", "history", {}]);
    assert.equal((await raw.reply(ref))[4].response.reason, "unmatched topic");
  });

  test("join ok: [J, J, topic, phx_reply, {status: ok, response}]", async () => {
    const raw = await client();
    const { joinRef, reply } = await raw.join("room:lobby");
    assert.equal(reply[0], joinRef);
    assert.equal(reply[1], joinRef);
    assert.equal(reply[2], "room:lobby");
    assert.equal(reply[3], "phx_reply");
    assert.equal(reply[4].status, "ok");
    assert.equal(reply[4].response.recovered, false);
  });

  test("a refused join keeps its join_ref in the reply and sends no phx_close", async () => {
    const raw = await client();
    raw.send(["j9", "j9", "room:nope", "phx_join", {}]);
    assert.deepEqual(await raw.reply("j9"), [
      "j9",
      "j9",
      "room:nope",
      "phx_reply",
      { status: "error", response: { reason: "not_found" } },
    ]);
    await raw.heartbeat();
    await delay(QUIET_MS);
    assert.equal(raw.frames.items.filter((f) => f[3] === "phx_close").length, 0);
  });

  test("duplicate join: the new join's ok reply first, then phx_close for the old join ref", async () => {
    const raw = await client();
    const first = await raw.join(`room:${roomA}`);
    const secondRef = raw.nextRef();
    raw.send([secondRef, secondRef, `room:${roomA}`, "phx_join", {}]);
    const close = await raw.frames.find((f) => f[3] === "phx_close", 5000, "phx_close of the old instance");
    assert.deepEqual(close, [first.joinRef, first.joinRef, `room:${roomA}`, "phx_close", {}]);
    const items = raw.frames.items;
    const replyIndex = items.findIndex((f) => f[1] === secondRef);
    assert.ok(replyIndex >= 0, "the new join was answered");
    assert.equal(items[replyIndex][0], secondRef);
    assert.equal(items[replyIndex][4].status, "ok");
    assert.ok(replyIndex < items.indexOf(close), "the new join reply precedes the old instance's phx_close");

    // The new instance works; the old join ref is stale.
    const live = raw.nextRef();
    raw.send([secondRef, live, `room:${roomA}`, "history", {}]);
    const liveReply = await raw.reply(live);
    assert.equal(liveReply[0], secondRef);
    assert.equal(liveReply[4].status, "ok");
    const stale = raw.nextRef();
    raw.send([first.joinRef, stale, `room:${roomA}`, "history", {}]);
    await raw.heartbeat();
    await delay(QUIET_MS);
    assert.equal(
      raw.frames.items.some((f) => f[1] === stale),
      false,
      "a push with the replaced join ref gets no reply",
    );
  });

  test("leave: ok reply (J, r) then phx_close (J, J); the topic is then unjoined", async () => {
    const raw = await client();
    const { joinRef } = await raw.join(`room:${roomA}`);
    const leaveRef = raw.nextRef();
    raw.send([joinRef, leaveRef, `room:${roomA}`, "phx_leave", {}]);
    const close = await raw.frames.find((f) => f[3] === "phx_close", 5000, "phx_close after leave");
    assert.deepEqual(close, [joinRef, joinRef, `room:${roomA}`, "phx_close", {}]);
    const items = raw.frames.items;
    const replyIndex = items.findIndex((f) => f[1] === leaveRef);
    assert.deepEqual(items[replyIndex], [joinRef, leaveRef, `room:${roomA}`, "phx_reply", OK_EMPTY]);
    assert.ok(replyIndex < items.indexOf(close), "the leave reply precedes phx_close");

    const after = raw.nextRef();
    raw.send([joinRef, after, `room:${roomA}`, "history", {}]);
    assert.equal((await raw.reply(after))[4].response.reason, "unmatched topic");
  });

  test("leave of a topic not joined: ok reply with the refs echoed", async () => {
    const raw = await client();
    raw.send(["5", "6", `room:${roomB}`, "phx_leave", {}]);
    assert.deepEqual(await raw.reply("6"), ["5", "6", `room:${roomB}`, "phx_reply", OK_EMPTY]);
  });

  test("push with a stale join_ref: no reply at all, nothing stored; a stale leave is ignored", async () => {
    const raw = await client();
    const topic = `room:${roomB}`;
    const { joinRef } = await raw.join(topic);
    const before = (await server.messages(alice.token, roomB)).messages.length;

    const staleRef = raw.nextRef();
    raw.send(["not-the-join-ref", staleRef, topic, "new_msg", { body: "stale" }]);
    const staleLeave = raw.nextRef();
    raw.send(["not-the-join-ref", staleLeave, topic, "phx_leave", {}]);
    // Barrier: the heartbeat is answered after both were processed.
    await raw.heartbeat();
    await delay(QUIET_MS);
    assert.equal(raw.frames.items.some((f) => f[1] === staleRef), false, "no reply to a stale push");
    assert.equal(raw.frames.items.some((f) => f[1] === staleLeave), false, "no reply to a stale leave");
    assert.equal((await server.messages(alice.token, roomB)).messages.length, before, "nothing stored");

    // Still joined: a push with the right join ref, and one with a null join ref, are answered.
    const good = raw.nextRef();
    raw.send([joinRef, good, topic, "history", {}]);
    assert.equal((await raw.reply(good))[4].status, "ok");
    const nullRef = raw.nextRef();
    raw.send([null, nullRef, topic, "history", {}]);
    const nullReply = await raw.reply(nullRef);
    assert.equal(nullReply[0], joinRef, "the reply carries the channel's join ref");
    assert.equal(nullReply[4].status, "ok");
    raw.send([joinRef, raw.nextRef(), topic, "phx_leave", {}]);
    await raw.frames.find((f) => f[3] === "phx_close");
  });

  test("numeric refs are echoed as numbers", async () => {
    const raw = await client();
    raw.send([null, 7, "phoenix", "heartbeat", {}]);
    assert.deepEqual(await raw.reply(7), [null, 7, "phoenix", "phx_reply", OK_EMPTY]);
    raw.send([1, 1, "room:lobby", "phx_join", {}]);
    const joined = await raw.reply(1);
    assert.equal(joined[0], 1);
    assert.equal(joined[4].status, "ok");
    raw.send([1, 2, "room:lobby", "history", {}]);
    const history = await raw.reply(2);
    assert.deepEqual(history.slice(0, 4), [1, 2, "room:lobby", "phx_reply"]);
    raw.send([1, 3, "room:lobby", "phx_leave", {}]);
    const close = await raw.frames.find((f) => f[3] === "phx_close");
    assert.deepEqual(close, [1, 1, "room:lobby", "phx_close", {}]);
  });

  test("extra array elements are ignored", async () => {
    const raw = await client();
    raw.send([null, "x1", "phoenix", "heartbeat", {}, "extra", 42, { more: true }]);
    assert.deepEqual(await raw.reply("x1"), [null, "x1", "phoenix", "phx_reply", OK_EMPTY]);
  });

  test("broadcasts: [null, null, topic, new_msg, message]", async () => {
    const raw = await client();
    const topic = `room:${roomA}`;
    await raw.join(topic);
    const message = await server.postMessage(alice.token, roomA, "bcast");
    const frame = await raw.frames.find((f) => f[3] === "new_msg" && f[4].id === message.id);
    assert.deepEqual(frame, [null, null, topic, "new_msg", message]);
  });

  test("binary V2 push (kind 0) is decoded and routed; an unknown binary kind closes with a non-1000 code", async () => {
    const binary = (joinRef, ref, topic, event, payload) => {
      const [j, r, t, e] = [joinRef, ref, topic, event].map((x) => Buffer.from(x, "utf8"));
      return Buffer.concat([Buffer.from([0, j.length, r.length, t.length, e.length]), j, r, t, e, payload]);
    };
    const raw = await client();
    raw.ws.send(binary("", "b1", "room:lobby", "new_msg", Buffer.from([1, 2, 3])));
    assert.deepEqual(await raw.reply("b1"), [
      null,
      "b1",
      "room:lobby",
      "phx_reply",
      { status: "error", response: { reason: "unmatched topic" } },
    ]);
    const { joinRef } = await raw.join("room:lobby");
    raw.ws.send(binary(joinRef, "b2", "room:lobby", "new_msg", Buffer.from([1, 2, 3])));
    const refused = await raw.reply("b2");
    assert.deepEqual(refused.slice(0, 4), [joinRef, "b2", "room:lobby", "phx_reply"]);
    assert.equal(refused[4].status, "error", "binary message bodies are refused, not stored");
    raw.ws.send(Buffer.from([5, 1, 2, 3]));
    const { code } = await withDeadline(raw.closed, 5000, "the close after a bad binary kind", server);
    assert.notEqual(code, 1000);
  });

  for (const [label, frame] of [
    ["not json", "not json"],
    ["a JSON object on V2", JSON.stringify({ topic: "phoenix", event: "heartbeat", payload: {}, ref: "1" })],
    ["an array of fewer than 5 elements", JSON.stringify([null, "1", "phoenix", "heartbeat"])],
    ["a non-string topic", JSON.stringify([null, "1", 5, "heartbeat", {}])],
  ]) {
    test(`a malformed frame (${label}) closes that socket with a non-1000 code; others are unaffected`, async () => {
      const bystander = await client();
      const raw = await client();
      await raw.heartbeat();
      raw.send(frame);
      const { code } = await withDeadline(raw.closed, 5000, "the close after a malformed frame", server);
      assert.notEqual(code, 1000);
      assert.equal(code, 1007, `expected 1007 (invalid payload), got ${code}`);
      assert.deepEqual((await bystander.heartbeat()).slice(2), ["phoenix", "phx_reply", OK_EMPTY]);
    });
  }

  test("a text frame that is not valid UTF-8 closes with 1007 (a close frame, not a dropped connection)", async () => {
    const bystander = await client();
    const raw = await client();
    await raw.heartbeat();
    raw.ws.send(Buffer.from([0x5b, 0xff, 0xfe, 0x5d]), { binary: false });
    const { code } = await withDeadline(raw.closed, 5000, "the close after invalid UTF-8", server);
    assert.equal(code, 1007, `expected a close frame with 1007, got ${code} (1006 = no close frame)`);
    assert.deepEqual((await bystander.heartbeat()).slice(2), ["phoenix", "phx_reply", OK_EMPTY]);
  });

  test("a frame over max_frame_bytes closes with 1009; others are unaffected", async () => {
    const bystander = await client();
    const raw = await client();
    const { joinRef } = await raw.join(`room:${roomA}`);
    raw.send([joinRef, raw.nextRef(), `room:${roomA}`, "new_msg", { body: "y".repeat(3000) }]);
    const { code } = await withDeadline(raw.closed, 5000, "the close after an oversized frame", server);
    assert.equal(code, 1009);
    assert.deepEqual((await bystander.heartbeat()).slice(2), ["phoenix", "phx_reply", OK_EMPTY]);
  });

  test("a frame just under max_frame_bytes is accepted", async () => {
    const raw = await client();
    const ref = raw.nextRef();
    const base = JSON.stringify([null, ref, "phoenix", "heartbeat", { pad: "" }]);
    raw.send([null, ref, "phoenix", "heartbeat", { pad: "z".repeat(2048 - base.length) }]);
    assert.equal((await raw.reply(ref))[4].status, "ok");
  });

  test("the channel limit: a third join gets 'too many channels joined'", async () => {
    const raw = await client();
    await raw.join("room:lobby");
    const { joinRef } = await raw.join(`room:${roomA}`);
    const third = await raw.join(`room:${roomB}`);
    assert.deepEqual(third.reply, [
      third.joinRef,
      third.joinRef,
      `room:${roomB}`,
      "phx_reply",
      { status: "error", response: { reason: "too many channels joined" } },
    ]);
    // A duplicate join of an already joined topic is not a new channel.
    const again = await raw.join(`room:${roomA}`);
    assert.equal(again.reply[4].status, "ok", JSON.stringify(again.reply));
    await raw.frames.find((f) => f[3] === "phx_close" && f[0] === joinRef);
    // After a leave there is room again.
    raw.send([again.joinRef, raw.nextRef(), `room:${roomA}`, "phx_leave", {}]);
    await raw.frames.find((f) => f[3] === "phx_close" && f[0] === again.joinRef);
    const fourth = await raw.join(`room:${roomB}`);
    assert.equal(fourth.reply[4].status, "ok");
  });
});
