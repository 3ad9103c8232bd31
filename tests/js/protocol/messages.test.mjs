// Channel events on room topics (api.md §3): new_msg replies and
// broadcasts, idempotent client_id, error replies, private rooms and
// membership, leave, history.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { collect, join, joinChannel, ping, push, suiteServer, unique, withDeadline } from "../harness.mjs";

const RFC3339_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function assertMessageShape(message, { topic, seq, user, body }) {
  const keys = Object.keys(message).sort();
  const expected = ["body", "id", "inserted_at", "mentions", "seq", "topic", "user"];
  if ("client_id" in message) expected.push("client_id");
  assert.deepEqual(keys, expected.sort(), `message keys: ${JSON.stringify(message)}`);
  assert.equal(typeof message.id, "number");
  assert.equal(message.topic, topic);
  assert.equal(message.seq, seq);
  assert.deepEqual(message.user, { id: user.id, username: user.username, display_name: user.display_name });
  assert.equal(message.body, body);
  assert.match(message.inserted_at, RFC3339_MS);
  assert.deepEqual(message.mentions, []);
}

describe("messages", () => {
  let alice;
  let bob;
  const server = suiteServer({ name: "messages", env: { CONFAB_MAX_BODY_CHARS: "10" } }, 2, (...users) => ([alice, bob] = users));

  /** The channels on `topic` of a fresh socket of each of `users`, in order. */
  async function joinedAs(topic, ...users) {
    const channels = [];
    for (const user of users) channels.push((await join(await server.connect(user.token), topic)).channel);
    return channels;
  }

  test("new_msg: ok reply {id, seq, inserted_at}; broadcast reaches others and the sender's other socket; seqs 1,2,3", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const [ca1, ca2, cb] = await joinedAs(topic, alice, alice, bob);
    const onA2 = collect(ca2, "new_msg");
    const onB = collect(cb, "new_msg");

    const acks = [];
    for (const body of ["one", "two", "three"]) {
      const { status, response } = await push(ca1, "new_msg", { body });
      assert.equal(status, "ok", JSON.stringify(response));
      assert.deepEqual(Object.keys(response).sort(), ["id", "inserted_at", "seq"]);
      assert.match(response.inserted_at, RFC3339_MS);
      acks.push(response);
    }
    assert.deepEqual(
      acks.map((a) => a.seq),
      [1, 2, 3],
    );
    assert.equal(new Set(acks.map((a) => a.id)).size, 3, "ids are unique");

    for (const received of [await onB.count(3), await onA2.count(3)]) {
      assert.deepEqual(
        received.map((m) => m.seq),
        [1, 2, 3],
      );
      ["one", "two", "three"].forEach((body, i) => {
        assertMessageShape(received[i], { topic, seq: i + 1, user: alice.user, body });
        assert.equal(received[i].id, acks[i].id);
        assert.equal(received[i].inserted_at, acks[i].inserted_at);
        assert.equal("client_id" in received[i], false, "no client_id when none was sent");
      });
    }
  });

  test("the same client_id twice: same id and seq, one broadcast", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const [ca, cb] = await joinedAs(topic, alice, bob);
    const onB = collect(cb, "new_msg");

    const clientId = unique("cid-");
    const first = await push(ca, "new_msg", { body: "hello", client_id: clientId });
    const second = await push(ca, "new_msg", { body: "hello", client_id: clientId });
    assert.equal(first.status, "ok");
    assert.equal(second.status, "ok");
    assert.equal(second.response.id, first.response.id);
    assert.equal(second.response.seq, first.response.seq);
    assert.equal(first.response.seq, 1);

    // Barrier: a later message; broadcasts of a topic are delivered in seq order.
    const third = await push(ca, "new_msg", { body: "after" });
    assert.equal(third.response.seq, 2, "the duplicate consumed no seq");
    const received = await onB.until((items) => items.some((m) => m.seq === 2), 5000, "seq 2");
    assert.deepEqual(
      received.map((m) => m.seq),
      [1, 2],
    );
    assert.equal(received[0].client_id, clientId);
    assertMessageShape(received[0], { topic, seq: 1, user: alice.user, body: "hello" });
  });

  test("the same client_id pushed concurrently from two sockets: one message, one broadcast", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const [c1, c2, cb] = await joinedAs(topic, alice, alice, bob);
    const onB = collect(cb, "new_msg");
    const clientId = unique("race-");
    const replies = await Promise.all([
      push(c1, "new_msg", { body: "race", client_id: clientId }),
      push(c2, "new_msg", { body: "race", client_id: clientId }),
      push(c1, "new_msg", { body: "race", client_id: clientId }),
      push(c2, "new_msg", { body: "race", client_id: clientId }),
    ]);
    for (const r of replies) assert.equal(r.status, "ok", JSON.stringify(r));
    assert.equal(new Set(replies.map((r) => r.response.id)).size, 1, JSON.stringify(replies));
    assert.equal(replies[0].response.seq, 1);
    const after = await push(c1, "new_msg", { body: "after" });
    assert.equal(after.response.seq, 2);
    const received = await onB.until((items) => items.some((m) => m.seq === 2), 5000, "seq 2");
    assert.deepEqual(
      received.map((m) => m.seq),
      [1, 2],
    );
  });

  test("concurrent pushes from several sockets: gapless seqs, every receiver sees them in seq order", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const senders = [];
    for (const who of [alice, alice, bob]) senders.push((await join(await server.connect(who.token), topic)).channel);
    const { channel: watcher } = await join(await server.connect(bob.token), topic);
    const seen = collect(watcher, "new_msg");
    const perSender = 30;
    const replies = await Promise.all(
      senders.flatMap((channel, s) =>
        Array.from({ length: perSender }, (_, i) => push(channel, "new_msg", { body: `s${s}-${i}` })),
      ),
    );
    const total = senders.length * perSender;
    for (const r of replies) assert.equal(r.status, "ok", JSON.stringify(r));
    assert.deepEqual(
      replies.map((r) => r.response.seq).sort((x, y) => x - y),
      range(1, total),
    );
    const received = await seen.count(total);
    assert.deepEqual(
      received.map((m) => m.seq),
      range(1, total),
    );
    // Each sender's own pushes keep their order.
    senders.forEach((_, s) => {
      const mine = replies.slice(s * perSender, (s + 1) * perSender).map((r) => r.response.seq);
      assert.deepEqual(
        mine,
        [...mine].sort((x, y) => x - y),
        `sender ${s} seqs out of push order: ${mine}`,
      );
    });
  });

  test("client_id is per user and shared by REST and socket pushes", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const a = await server.connect(alice.token);
    const { channel } = await join(a, `room:${room}`);
    const clientId = unique("cid-");
    const viaSocket = await push(channel, "new_msg", { body: "once", client_id: clientId });
    assert.equal(viaSocket.status, "ok");
    // The same user over REST: the original message, 200 not 201.
    const res = await server.request("POST", `/api/rooms/${room}/messages`, {
      token: alice.token,
      body: { body: "once", client_id: clientId },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.message.id, viaSocket.response.id);
    assert.equal(res.body.message.seq, viaSocket.response.seq);
    // Another user with the same client_id: a different message.
    const bobs = await server.postMessage(bob.token, room, "once", clientId);
    assert.notEqual(bobs.id, viaSocket.response.id);
    assert.equal(bobs.seq, viaSocket.response.seq + 1);
  });

  test("typing: broadcast {user} to the others on the topic, not to the sender's socket, no reply needed", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const a = await server.connect(alice.token);
    const b = await server.connect(bob.token);
    const { channel: ca } = await join(a, topic);
    const { channel: cb } = await join(b, topic);
    const onA = collect(ca, "typing");
    const onB = collect(cb, "typing");
    ca.push("typing", {});
    const [event] = await onB.count(1);
    assert.deepEqual(event, {
      user: { id: alice.user.id, username: alice.user.username, display_name: alice.user.display_name },
    });
    // Barrier: the sender's heartbeat is answered after anything the typing
    // push queued for its socket.
    await ping(a);
    assert.deepEqual(onA.items, [], "the sender's own socket gets no typing echo");
  });

  test("error replies: empty_body, body_too_long, unknown_event", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const a = await server.connect(alice.token);
    const { channel } = await join(a, `room:${room}`);
    assert.deepEqual(await push(channel, "new_msg", { body: "" }), {
      status: "error",
      response: { reason: "empty_body" },
    });
    assert.deepEqual(await push(channel, "new_msg", { body: "   " }), {
      status: "error",
      response: { reason: "empty_body" },
    });
    assert.deepEqual(await push(channel, "new_msg", {}), { status: "error", response: { reason: "empty_body" } });
    assert.deepEqual(await push(channel, "new_msg", { body: "x".repeat(11) }), {
      status: "error",
      response: { reason: "body_too_long" },
    });
    // Exactly at the limit (10 characters, counted as characters not bytes) is fine.
    const atLimit = await push(channel, "new_msg", { body: "é".repeat(10) });
    assert.equal(atLimit.status, "ok", JSON.stringify(atLimit));
    assert.equal(atLimit.response.seq, 1, "refused pushes consumed no seq");
    const unknown = await push(channel, "no_such_event", {});
    assert.equal(unknown.status, "error");
    assert.equal(unknown.response.reason, "unknown_event");
  });

  test("join of an unknown room: error not_found", async () => {
    const a = await server.connect(alice.token);
    await assert.rejects(joinChannel(a, "room:nope"), (err) => {
      assert.deepEqual(err.response, { reason: "not_found" });
      return true;
    });
  });

  test("private room: non-member unauthorized; member after add; removal sends phx_close", async () => {
    const room = (await server.createRoom(alice.token, unique("priv"), true)).name;
    const topic = `room:${room}`;
    const b = await server.connect(bob.token);
    await assert.rejects(joinChannel(b, topic), (err) => {
      assert.deepEqual(err.response, { reason: "unauthorized" });
      return true;
    });

    await server.addMember(alice.token, room, bob.user.username);
    const { channel, response } = await join(b, topic);
    assert.equal(response.recovered, false);
    // Bob's second socket on the room is ejected too; Alice's is not.
    const b2 = await server.connect(bob.token);
    const { channel: second } = await join(b2, topic);
    const secondClosed = new Promise((resolve) => second.onClose(() => resolve(true)));
    const a = await server.connect(alice.token);
    const { channel: alices } = await join(a, topic);
    const alicesMessages = collect(alices, "new_msg");

    const closed = new Promise((resolve) => channel.onClose(() => resolve(channel.state)));
    const errors = [];
    channel.onError((e) => errors.push(e));
    await server.removeMember(alice.token, room, bob.user.username);
    const state = await withDeadline(closed, 5000, "phx_close after the removal", server);
    assert.equal(state, "closed");
    assert.deepEqual(errors, [], "removal is a close, not an error");
    assert.equal(await withDeadline(secondClosed, 5000, "phx_close on bob's second socket", server), true);
    await server.postMessage(alice.token, room, "still here");
    await alicesMessages.count(1);
    assert.equal(alices.state, "joined", "the owner's channel stays joined");

    // B no longer receives the room's messages and cannot rejoin.
    await assert.rejects(joinChannel(b, topic), (err) => {
      assert.deepEqual(err.response, { reason: "unauthorized" });
      return true;
    });
  });

  test("leave: resolves ok and the left socket gets no more broadcasts", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const left = await server.connect(bob.token);
    const stays = await server.connect(bob.token);
    const { channel: leaving } = await join(left, topic);
    const { channel: staying } = await join(stays, topic);

    // Everything the left socket receives on this topic, whatever the channel object.
    const leftFrames = [];
    left.onMessage((msg) => {
      if (msg.topic === topic && msg.event === "new_msg") leftFrames.push(msg);
    });
    const onStaying = collect(staying, "new_msg");

    // The ok of phx_leave: the client resolves it locally, so also wait for
    // the server's reply on the wire.
    const serverLeaveReply = new Promise((resolve) => {
      left.onMessage((msg) => {
        if (msg.topic === topic && msg.event === "phx_reply" && msg.payload.status === "ok") resolve(msg);
      });
    });
    const status = await new Promise((resolve) => {
      leaving
        .leave()
        .receive("ok", () => resolve("ok"))
        .receive("timeout", () => resolve("timeout"));
    });
    assert.equal(status, "ok");
    await withDeadline(serverLeaveReply, 5000, "the server's reply to phx_leave", server);

    await server.postMessage(alice.token, room, "ping 1");
    await server.postMessage(alice.token, room, "ping 2");
    await onStaying.count(2);
    // Barrier on the left socket: a heartbeat sent now is answered after
    // anything queued for it before.
    await ping(left);
    assert.deepEqual(leftFrames, [], "a left socket must not receive the topic's broadcasts");
  });

  test("history: newest 50 ascending; before_seq; REST ?after=", async () => {
    const room = (await server.createRoom(alice.token)).name;
    await server.postMany(alice.token, room, 60, { concurrency: 1 });
    const a = await server.connect(alice.token);
    const { channel, response } = await join(a, `room:${room}`);
    assert.equal(response.last_seq, 60);
    assert.deepEqual(
      response.messages.map((m) => m.seq),
      range(11, 60),
      "the join reply carries the newest 50",
    );

    const newest = await push(channel, "history", {});
    assert.equal(newest.status, "ok");
    assert.deepEqual(
      newest.response.messages.map((m) => m.seq),
      range(11, 60),
    );
    assert.equal(newest.response.has_more, true);
    assertMessageShape(newest.response.messages[0], {
      topic: `room:${room}`,
      seq: 11,
      user: alice.user,
      body: "m11",
    });

    const oldest = await push(channel, "history", { before_seq: 11 });
    assert.equal(oldest.status, "ok");
    assert.deepEqual(
      oldest.response.messages.map((m) => m.seq),
      range(1, 10),
    );
    assert.equal(oldest.response.has_more, false);

    const limited = await push(channel, "history", { before_seq: 30, limit: 5 });
    assert.deepEqual(
      limited.response.messages.map((m) => m.seq),
      [25, 26, 27, 28, 29],
    );
    assert.equal(limited.response.has_more, true);

    const rest = await server.messages(alice.token, room, "after=55");
    assert.deepEqual(
      rest.messages.map((m) => m.seq),
      [56, 57, 58, 59, 60],
    );
    assert.equal(rest.has_more, false);
  });
});

function range(from, to) {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
