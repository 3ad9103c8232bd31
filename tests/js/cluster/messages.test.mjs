// Messages with clients on different nodes of a cluster (api.md §3, §4,
// §6): one gapless seq order per topic whichever nodes the senders use,
// every receiver gets every message once and in seq order; a client_id
// resent to another node returns the original; typing, edits, deletes and
// reactions reach the other nodes, never ahead of their message.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Collector, collect, join, ping, push, unique } from "../harness.mjs";
import { range } from "../longpoll-helpers.mjs";
import { suiteCluster } from "../cluster.mjs";

/** Every `events` frame of `topic` that reaches `socket`, in arrival order, as `{event, payload}`. */
function everyEvent(socket, topic, events) {
  const seen = new Collector(`${topic} ${events.join("/")}`);
  socket.onMessage((msg) => {
    if (msg.topic === topic && events.includes(msg.event)) seen.add({ event: msg.event, payload: msg.payload });
  });
  return seen;
}

describe("cluster: messages", () => {
  let alice;
  let bob;
  let carol;
  const cluster = suiteCluster({ name: "messages" }, 3, (...users) => ([alice, bob, carol] = users));
  const node = (i) => cluster.nodes[i];

  /** `who`'s channel on `topic` over a fresh socket to node `i`. */
  async function channelOn(i, who, topic, params = {}) {
    const socket = await node(i).connect(who.token);
    const { channel, response } = await join(socket, topic, params);
    return { socket, channel, response };
  }

  test("senders on three nodes: gapless seqs; a receiver on every node gets every message once, in seq order", async () => {
    const room = (await node(0).createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const senders = [];
    for (const [i, who] of [alice, bob, carol].entries()) senders.push((await channelOn(i, who, topic)).channel);
    const watchers = [];
    for (let i = 0; i < 3; i++) watchers.push(collect((await channelOn(i, bob, topic)).channel, "new_msg"));

    const perSender = 30;
    const restPerNode = 5;
    const [replies, rest] = await Promise.all([
      Promise.all(
        senders.flatMap((channel, s) =>
          Array.from({ length: perSender }, (_, k) => push(channel, "new_msg", { body: `s${s}-${k}` })),
        ),
      ),
      // REST posts on every node at the same time.
      Promise.all(
        [0, 1, 2].flatMap((i) =>
          Array.from({ length: restPerNode }, (_, k) => node(i).postMessage(carol.token, room, `rest${i}-${k}`)),
        ),
      ),
    ]);
    const total = senders.length * perSender + 3 * restPerNode;
    for (const r of replies) assert.equal(r.status, "ok", JSON.stringify(r));
    const seqs = [...replies.map((r) => r.response.seq), ...rest.map((m) => m.seq)].sort((x, y) => x - y);
    assert.deepEqual(seqs, range(1, total), "one gapless seq order across the nodes");
    assert.equal(new Set(replies.map((r) => r.response.id)).size, replies.length, "ids are unique");

    const bodyOf = new Map();
    replies.forEach((r, n) => bodyOf.set(r.response.seq, `s${Math.floor(n / perSender)}-${n % perSender}`));
    for (const m of rest) bodyOf.set(m.seq, m.body);
    for (const [i, watcher] of watchers.entries()) {
      const received = await watcher.count(total);
      assert.deepEqual(
        received.map((m) => m.seq),
        range(1, total),
        `the receiver on node ${i + 1}`,
      );
      for (const m of received) {
        assert.equal(m.body, bodyOf.get(m.seq), `node ${i + 1}: body of seq ${m.seq}`);
        assert.equal(m.topic, topic);
      }
    }
    // Each sender's pushes keep their order.
    senders.forEach((_, s) => {
      const mine = replies.slice(s * perSender, (s + 1) * perSender).map((r) => r.response.seq);
      assert.deepEqual(mine, [...mine].sort((x, y) => x - y), `sender ${s} seqs out of push order: ${mine}`);
    });
    // Nothing more arrives later: a barrier message is the next thing on every node.
    const barrier = await node(1).postMessage(alice.token, room, "barrier");
    assert.equal(barrier.seq, total + 1);
    for (const [i, watcher] of watchers.entries()) {
      const received = await watcher.count(total + 1);
      assert.deepEqual(
        received.map((m) => m.seq),
        range(1, total + 1),
        `node ${i + 1} after the barrier`,
      );
    }
    const stored = await node(2).messages(bob.token, room, "limit=200");
    assert.deepEqual(
      stored.messages.map((m) => m.seq),
      range(1, total + 1),
    );
  });

  test("a client_id resent to another node: the same id and seq in the reply, one message stored, one broadcast", async () => {
    const room = (await node(0).createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const { channel: on1 } = await channelOn(0, alice, topic);
    const { channel: on2 } = await channelOn(1, alice, topic);
    const { channel: watcher } = await channelOn(2, bob, topic);
    const seen = collect(watcher, "new_msg");

    const clientId = unique("cid-");
    const first = await push(on1, "new_msg", { body: "once", client_id: clientId });
    assert.equal(first.status, "ok", JSON.stringify(first));
    // The client lost the reply and resends on another node.
    const second = await push(on2, "new_msg", { body: "once", client_id: clientId });
    assert.equal(second.status, "ok", JSON.stringify(second));
    assert.deepEqual(second.response, first.response, "the original message's id, seq and inserted_at");
    // And over REST on a third node: 200 with the original.
    const viaRest = await node(2).request("POST", `/api/rooms/${room}/messages`, {
      token: alice.token,
      body: { body: "once", client_id: clientId },
    });
    assert.equal(viaRest.status, 200, JSON.stringify(viaRest.body));
    assert.equal(viaRest.body.message.id, first.response.id);
    assert.equal(viaRest.body.message.seq, first.response.seq);

    const after = await push(on2, "new_msg", { body: "after" });
    assert.equal(after.response.seq, 2, "the resends consumed no seq");
    const received = await seen.until((items) => items.some((m) => m.seq === 2), 5000, "seq 2");
    assert.deepEqual(
      received.map((m) => [m.seq, m.body, m.client_id]),
      [
        [1, "once", clientId],
        [2, "after", undefined],
      ],
      "one broadcast per message",
    );
    const stored = await node(1).messages(bob.token, room);
    assert.deepEqual(
      stored.messages.map((m) => [m.seq, m.id]),
      [
        [1, first.response.id],
        [2, after.response.id],
      ],
    );
  });

  test("the same client_id pushed at once to three nodes: one message, one broadcast", async () => {
    const room = (await node(0).createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const channels = [];
    for (let i = 0; i < 3; i++) channels.push((await channelOn(i, alice, topic)).channel);
    const { channel: watcher } = await channelOn(0, bob, topic);
    const seen = collect(watcher, "new_msg");
    const clientId = unique("race-");
    const replies = await Promise.all(
      [...channels, ...channels].map((c) => push(c, "new_msg", { body: "race", client_id: clientId })),
    );
    for (const r of replies) assert.equal(r.status, "ok", JSON.stringify(r));
    assert.equal(new Set(replies.map((r) => r.response.id)).size, 1, JSON.stringify(replies));
    assert.equal(replies[0].response.seq, 1);
    const after = await push(channels[2], "new_msg", { body: "after" });
    assert.equal(after.response.seq, 2);
    const received = await seen.until((items) => items.some((m) => m.seq === 2), 5000, "seq 2");
    assert.deepEqual(
      received.map((m) => m.seq),
      [1, 2],
    );
  });

  test("typing on one node reaches the others' sockets on other nodes, not the sender's own socket", async () => {
    const room = (await node(0).createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const sender = await channelOn(0, alice, topic);
    const ownOther = await channelOn(2, alice, topic);
    const bobs = await channelOn(1, bob, topic);
    const onB = collect(bobs.channel, "typing");
    const bobsMessages = collect(bobs.channel, "new_msg");
    const onC = collect((await channelOn(2, carol, topic)).channel, "typing");
    const onOwn = collect(sender.channel, "typing");
    const onOwnOther = collect(ownOther.channel, "typing");

    sender.channel.push("typing", {});
    const expected = {
      user: { id: alice.user.id, username: alice.user.username, display_name: alice.user.display_name },
    };
    assert.deepEqual((await onB.count(1))[0], expected);
    assert.deepEqual((await onC.count(1))[0], expected);
    // A message from the same socket after the typing is a barrier on
    // every node: it leaves node 1 on the bus after the typing.
    const seenOwnOther = collect(ownOther.channel, "new_msg");
    await push(sender.channel, "new_msg", { body: "barrier" });
    await seenOwnOther.count(1);
    await bobsMessages.count(1);
    await ping(sender.socket);
    assert.deepEqual(onOwn.items, [], "the sender's socket gets no typing echo");
    assert.equal(onB.items.length, 1, "one typing event per push");
    // The sender's other socket (on another node) is told, as on one node.
    assert.deepEqual(onOwnOther.items, [expected], "the sender's other socket");
  });

  test("edits, deletes and reactions from other nodes reach every node after their message, in the order they were made", async () => {
    const room = (await node(0).createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const author = await channelOn(0, alice, topic);
    const reactor = await channelOn(1, bob, topic);
    const watchers = [];
    for (let i = 0; i < 3; i++) {
      const w = await channelOn(i, carol, topic);
      watchers.push(everyEvent(w.socket, topic, ["new_msg", "msg_updated", "msg_deleted", "reaction"]));
    }

    // Pipelined: the post, then at once an edit and a reaction of it by its
    // author on node 1 (the room is new, so the post is seq 1).
    const pushes = Promise.all([
      push(author.channel, "new_msg", { body: "first draft" }),
      push(author.channel, "edit_msg", { seq: 1, body: "final text" }),
      push(author.channel, "react", { seq: 1, emoji: "👀" }),
    ]);
    const [posted, edited, reacted] = await pushes;
    assert.equal(posted.status, "ok", JSON.stringify(posted));
    assert.equal(posted.response.seq, 1);
    assert.equal(edited.status, "ok", JSON.stringify(edited));
    assert.deepEqual(reacted, { status: "ok", response: { on: true } });
    // Each step waits until every node has the one before (the order of
    // events is tested on its own below).
    const everywhere = (n) => Promise.all(watchers.map((w) => w.count(n)));
    await everywhere(3);
    // From node 2: a reaction, then the author deletes on node 1.
    assert.deepEqual(await push(reactor.channel, "react", { seq: 1, emoji: "👍" }), { status: "ok", response: { on: true } });
    // Someone else's message cannot be edited from another node either.
    const refused = await push(reactor.channel, "edit_msg", { seq: 1, body: "hijack" });
    assert.equal(refused.status, "error", JSON.stringify(refused));
    await everywhere(4);
    assert.equal((await push(author.channel, "delete_msg", { seq: 1 })).status, "ok");
    await everywhere(5);
    const second = await push(reactor.channel, "new_msg", { body: "barrier" });
    assert.equal(second.response.seq, 2);

    for (const [i, watcher] of watchers.entries()) {
      const seen = await watcher.until(
        (items) => items.some((e) => e.event === "new_msg" && e.payload.seq === 2),
        5000,
        `the barrier on node ${i + 1}`,
      );
      const what = `the receiver on node ${i + 1}: ${JSON.stringify(seen)}`;
      assert.deepEqual(
        seen.map((e) => e.event),
        ["new_msg", "msg_updated", "reaction", "reaction", "msg_deleted", "new_msg"],
        what,
      );
      assert.equal(seen[0].payload.body, "first draft", what);
      assert.equal(seen[1].payload.seq, 1, what);
      assert.equal(seen[1].payload.body, "final text", what);
      assert.ok(seen[1].payload.edited_at, what);
      assert.deepEqual(seen[2].payload, { seq: 1, emoji: "👀", user_id: alice.user.id, on: true }, what);
      assert.deepEqual(seen[3].payload, { seq: 1, emoji: "👍", user_id: bob.user.id, on: true }, what);
      assert.equal(seen[4].payload.seq, 1, what);
    }
    // Every node reads the same stored state.
    for (let i = 0; i < 3; i++) {
      const { messages } = await node(i).messages(carol.token, room);
      assert.equal(messages[0].deleted, true, `node ${i + 1}`);
      assert.ok(!messages[0].body, `the body is erased: ${JSON.stringify(messages[0])}`);
      assert.equal(messages[1].body, "barrier");
    }
  });

  // Edits, deletes and reactions carry the seq of their message: a node's
  // sequencer holds them until it has delivered that message, reading it
  // from the database if the bus is slow or lost it. When the message's
  // node is slower on the bus than the node of the edit, a client on a
  // third node must still get the message first (phoenix clients drop an
  // edit of a message they do not have).
  test(
    "an edit and a reaction made on node 2 reach node 3 after their message from node 1, even when node 1's bus path is slow",
    async () => {
      const room = (await node(0).createRoom(alice.token)).name;
      const topic = `room:${room}`;
      const watcher = await channelOn(2, carol, topic);
      const seen = everyEvent(watcher.socket, topic, ["new_msg", "msg_updated", "reaction"]);
      const { channel: editor } = await channelOn(1, alice, topic); // the author's other tab
      const { channel: reactor } = await channelOn(1, bob, topic);

      // NATS server 1 freezes for a moment: node 1's broadcasts wait in its
      // connection (well within the 1 s silence bound), node 2's do not.
      cluster.nats[0].pause();
      try {
        const message = await node(0).postMessage(alice.token, room, "first draft");
        assert.equal((await push(editor, "edit_msg", { seq: message.seq, body: "final text" })).status, "ok");
        assert.deepEqual(await push(reactor, "react", { seq: message.seq, emoji: "👍" }), {
          status: "ok",
          response: { on: true },
        });
        // Whatever node 3 delivers while node 1's broadcast is held up.
        await seen.count(1, 2000).catch(() => {});
      } finally {
        cluster.nats[0].resume();
      }
      const events = await seen.count(3);
      assert.deepEqual(
        events.map((e) => e.event),
        ["new_msg", "msg_updated", "reaction"],
        `node 3 got ${JSON.stringify(events)}`,
      );
      // What a client shows in the end: the edited text.
      const bodies = events.filter((e) => e.event !== "reaction").map((e) => e.payload.body);
      assert.equal(bodies.at(-1), "final text", `the last body node 3 sent: ${JSON.stringify(bodies)}`);
    },
  );
});
