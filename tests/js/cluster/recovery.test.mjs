// Recovery across nodes (api.md §3 join payload, §4, §6): a client that
// loses its node (killed, or the connection cut) reconnects to another
// node and rejoins with `last_seq`: every message reaches it exactly once,
// in seq order, while others keep posting on the remaining nodes; a join
// with `last_seq` on one node while two others post; pushes resent with
// their client_id to another node after their node died are stored once.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Collector, DEADLINE_MS, withDeadline } from "../harness.mjs";
import { assertSeenOnceInOrder, range, trackingChannel } from "../longpoll-helpers.mjs";
import { suiteCluster } from "../cluster.mjs";

describe("cluster: recovery", () => {
  let alice;
  let bob;
  const cluster = suiteCluster({ name: "recovery" }, 2, (...users) => ([alice, bob] = users));
  const node = (i) => cluster.nodes[i];

  test("a client whose node dies or whose connection drops reconnects to another node with last_seq: every seq once, in order, while the others post", async (t) => {
    const room = (await node(1).createRoom(bob.token)).name;
    const topic = `room:${room}`;
    // The client's "load balancer": the next connection goes to `target`.
    let target = 0;
    const socket = await node(0).connect(alice.token);
    const closes = new Collector("closes");
    const opens = new Collector("opens");
    socket.onClose((e) => {
      socket.endPoint = `${node(target).socketUrl}/websocket`;
      closes.add(e.code);
    });
    socket.onOpen(() => opens.add(socket.endPoint));
    const tracked = trackingChannel(socket, topic);
    await tracked.joins.count(1);

    let posted = 0;
    let postOn = 0;
    /** Posts the next message on the next running node (round robin); resolves with its seq. */
    const postOne = async () => {
      posted += 1;
      do postOn = (postOn + 1) % 3;
      while (!node(postOn).running);
      return (await node(postOn).postMessage(bob.token, room, `msg ${posted}`)).seq;
    };
    for (let i = 0; i < 5; i++) await postOne();
    await tracked.until(5);

    const cycles = [
      // Node 1 is killed; the client goes to node 2.
      { from: 0, to: 1, drop: () => node(0).kill() },
      // The connection to node 2 is cut (no close frame); the client goes to node 3.
      { from: 1, to: 2, drop: () => socket.conn._socket.destroy() },
      // And back to node 1 (restarted meanwhile), the same way.
      { from: 2, to: 0, drop: () => socket.conn._socket.destroy() },
    ];
    for (const [n, { from, to, drop }] of cycles.entries()) {
      assert.equal(opens.items.length, n, "one open per cycle");
      const joinsBefore = tracked.joins.items.length;
      target = to;
      await drop();
      await closes.count(n + 1);
      // Post at once, one after another, so the rejoin lands in the middle of the stream.
      for (let i = 0; i < 20; i++) await postOne();
      const [opened] = (await opens.count(n + 1, 10000)).slice(n);
      assert.equal(opened, `${node(to).socketUrl}/websocket`, `cycle ${n + 1}: reconnected to node ${to + 1}`);
      const reply = (await tracked.joins.count(joinsBefore + 1, 10000))[joinsBefore];
      t.diagnostic(
        `cycle ${n + 1} (node ${from + 1} -> ${to + 1}): rejoin recovered [${reply.messages.map((m) => m.seq)}], last_seq ${reply.last_seq}`,
      );
      assert.equal(reply.error, undefined, `rejoin refused: ${JSON.stringify(reply)}`);
      assert.equal(reply.recovered, true, "the rejoin recovered from last_seq");
      assert.equal(reply.truncated, false);
      assert.equal(reply.epoch, tracked.joins.items[0].epoch, "one epoch on every node");
      for (let i = 0; i < 5; i++) await postOne();
      await tracked.until(posted);
      if (from === 0) await cluster.restart(0);
    }
    await assertSeenOnceInOrder(tracked, postOne, posted);
  });

  test("a join with last_seq on node 2 while nodes 1 and 3 post: exactly once, in order", async () => {
    const room = (await node(0).createRoom(bob.token)).name;
    await node(0).postMany(bob.token, room, 20, { concurrency: 4 });
    const total = 300;
    const posting = Promise.all([
      node(0).postMany(bob.token, room, (total - 20) / 2, { concurrency: 4, bodyOf: (i) => `one ${i}` }),
      node(2).postMany(alice.token, room, (total - 20) / 2, { concurrency: 4, bodyOf: (i) => `three ${i}` }),
    ]);
    const socket = await node(1).connect(alice.token);
    const tracked = trackingChannel(socket, `room:${room}`, 10);
    await tracked.joins.count(1);
    assert.equal(tracked.joins.items[0].recovered, true);
    assert.equal(tracked.joins.items[0].messages[0]?.seq, 11, "recovery starts right after last_seq");
    await posting;
    await tracked.until(total);
    await node(2).postMessage(bob.token, room, "barrier");
    await tracked.until(total + 1);
    assert.deepEqual(tracked.seqs, range(11, total + 1));
  });

  test("pushes in flight when their node dies, resent with the same client_ids to another node: each stored once, seqs gapless", async (t) => {
    const room = (await node(0).createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const count = 40;
    const clientIds = Array.from({ length: count }, (_, i) => `resend-${room}-${i}`);

    const first = node(0).raw({ token: alice.token, vsn: "2.0.0" });
    await withDeadline(first.opened, DEADLINE_MS, "the socket on node 1 to open", node(0));
    const { joinRef } = await first.join(topic);
    const refs = clientIds.map((client_id, i) => {
      const ref = first.nextRef();
      first.send([joinRef, ref, topic, "new_msg", { body: `m${i}`, client_id }]);
      return ref;
    });
    // Kill node 1 once a few pushes were acknowledged.
    const isReply = (f) => Array.isArray(f) && refs.includes(f[1]) && f[3] === "phx_reply";
    await first.frames.until((fs) => fs.filter(isReply).length >= 5, DEADLINE_MS, "5 acks");
    await node(0).kill();
    const acked = new Map();
    for (const f of first.frames.items.filter(isReply)) {
      assert.equal(f[4].status, "ok", JSON.stringify(f));
      acked.set(clientIds[refs.indexOf(f[1])], f[4].response);
    }
    t.diagnostic(`${acked.size} of ${count} pushes acknowledged before node 1 was killed`);

    // The client resends every push it has no ack for... and, to be sure
    // duplicates are harmless, every acknowledged one too, on node 2.
    const second = node(1).raw({ token: alice.token, vsn: "2.0.0" });
    await withDeadline(second.opened, DEADLINE_MS, "the socket on node 2 to open", node(1));
    const { joinRef: joinRef2 } = await second.join(topic);
    const refs2 = clientIds.map((client_id, i) => {
      const ref = second.nextRef();
      second.send([joinRef2, ref, topic, "new_msg", { body: `m${i}`, client_id }]);
      return ref;
    });
    const replies = await Promise.all(refs2.map((ref) => second.reply(ref)));
    const byClientId = new Map();
    replies.forEach((reply, i) => {
      assert.equal(reply[4].status, "ok", JSON.stringify(reply));
      byClientId.set(clientIds[i], reply[4].response);
    });
    for (const [clientId, original] of acked) {
      assert.deepEqual(byClientId.get(clientId), original, `${clientId}: the resend returns the acknowledged message`);
    }
    const seqs = [...byClientId.values()].map((r) => r.seq).sort((a, b) => a - b);
    assert.deepEqual(seqs, range(1, count), "one message per client_id, seqs gapless");

    await cluster.restart(0);
    const stored = await node(0).messages(alice.token, room, "limit=200");
    assert.deepEqual(
      stored.messages.map((m) => m.seq),
      range(1, count),
    );
    assert.deepEqual(stored.messages.map((m) => m.client_id).sort(), [...clientIds].sort(), "each client_id stored once");
    for (const m of stored.messages) assert.equal(m.id, byClientId.get(m.client_id).id);
  });
});
