// Recovery (api.md §3 join payload, §4 delivery): a client that rejoins
// with `last_seq` gets every later message exactly once and in order —
// across a server crash (SIGKILL) and restart, while messages are being
// posted during the join; epoch mismatch; truncation at 1000 and paging.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Collector, join, push, suiteServer } from "../harness.mjs";
import { assertSeenOnceInOrder, range, trackingChannel } from "../longpoll-helpers.mjs";

describe("recovery", () => {
  let alice;
  let bob;
  const server = suiteServer({ name: "recovery" }, 2, (...users) => ([alice, bob] = users));

  test("reconnect after SIGKILL + restart: every seq exactly once, in order, no gaps", async (t) => {
    // The reconnect backoff differs per cycle so that messages posted right
    // after the restart land before the rejoin (slow reconnect: they come in
    // the join reply), during it, or after it (fast reconnect: broadcasts).
    const backoffs = [1500, 300, 150, 10];
    let backoff = backoffs[0];
    const socket = await server.connect(alice.token, { reconnectAfterMs: () => backoff });
    const opens = new Collector("opens");
    const closes = new Collector("closes");
    socket.onOpen(() => opens.add(Date.now()));
    socket.onClose((e) => closes.add(e.code));
    const tracked = trackingChannel(socket, "room:lobby");
    await tracked.joins.count(1);
    assert.deepEqual(tracked.joins.items[0].messages, []);

    let posted = 0;
    const postOne = async () => {
      posted += 1;
      const message = await server.postMessage(bob.token, "lobby", `msg ${posted}`);
      return message.seq;
    };
    for (let i = 0; i < 5; i++) await postOne();
    await tracked.until(5);

    for (let cycle = 1; cycle <= backoffs.length; cycle++) {
      backoff = backoffs[cycle - 1];
      const joinsBefore = tracked.joins.items.length;
      const opensBefore = opens.items.length;
      const seenBefore = tracked.seqs.length;
      await server.kill();
      await closes.count(cycle); // the client noticed the drop
      assert.equal(tracked.seqs.length, seenBefore, "nothing arrives while the server is down");

      await server.start(); // same data directory, same port
      await server.healthy();
      // Race the client's reconnect and rejoin: post at once, one after
      // another, so the rejoin can land in the middle of the stream.
      for (let i = 0; i < 20; i++) await postOne();
      await opens.count(opensBefore + 1, 10000);
      const rejoin = await tracked.joins.count(joinsBefore + 1, 10000);
      const reply = rejoin[joinsBefore];
      t.diagnostic(
        `cycle ${cycle} (backoff ${backoff} ms): rejoin recovered [${reply.messages.map((m) => m.seq)}], last_seq ${reply.last_seq}`,
      );
      assert.equal(reply.error, undefined, `rejoin refused: ${JSON.stringify(reply)}`);
      assert.equal(reply.recovered, true, "the rejoin recovered from last_seq");
      assert.equal(reply.truncated, false);
      assert.equal(reply.epoch, tracked.joins.items[0].epoch, "the epoch survives a restart");
      // And more after the rejoin.
      for (let i = 0; i < 5; i++) await postOne();
      await tracked.until(posted);
    }

    await assertSeenOnceInOrder(tracked, postOne, posted);
  });

  test("a socket push acknowledged ok survives SIGKILL", async () => {
    const room = (await server.createRoom(bob.token)).name;
    const socket = await server.connect(bob.token);
    const { channel } = await join(socket, `room:${room}`);
    const acks = await Promise.all(
      Array.from({ length: 20 }, (_, i) => push(channel, "new_msg", { body: `durable ${i}` })),
    );
    for (const a of acks) assert.equal(a.status, "ok");
    await server.kill(); // immediately after the last ack
    socket.disconnect();
    await server.start();
    const page = await server.messages(bob.token, room);
    assert.deepEqual(
      page.messages.map((m) => m.seq),
      range(1, 20),
    );
    for (const a of acks) {
      const stored = page.messages.find((m) => m.seq === a.response.seq);
      assert.equal(stored.id, a.response.id);
      assert.equal(stored.inserted_at, a.response.inserted_at);
    }
  });

  test("join with last_seq while messages are being posted: exactly once, in order", async () => {
    const room = (await server.createRoom(bob.token)).name;
    await server.postMany(bob.token, room, 20, { concurrency: 4 });
    const socket = await server.connect(alice.token);
    const total = 400;
    const posting = server.postMany(bob.token, room, total - 20, { concurrency: 8, bodyOf: (i) => `late ${i}` });
    // Join in the middle of the stream.
    const tracked = trackingChannel(socket, `room:${room}`, 10);
    await tracked.joins.count(1);
    assert.equal(tracked.joins.items[0].recovered, true);
    assert.equal(tracked.joins.items[0].messages[0]?.seq, 11, "recovery starts right after last_seq");
    await posting;
    await tracked.until(total);
    await server.postMessage(bob.token, room, "barrier");
    await tracked.until(total + 1);
    assert.deepEqual(tracked.seqs, range(11, total + 1));
  });

  test("a mismatched epoch: recovered false and the newest messages", async () => {
    const room = (await server.createRoom(bob.token)).name;
    const topic = `room:${room}`;
    await server.postMany(bob.token, room, 55);
    const socket = await server.connect(alice.token);

    const { response: fresh } = await join(socket, topic, {});
    const epoch = fresh.epoch;

    const other = await server.connect(alice.token);
    const { response: matching } = await join(other, topic, { last_seq: 3, epoch });
    assert.equal(matching.recovered, true);
    assert.equal(matching.truncated, false);
    assert.deepEqual(
      matching.messages.map((m) => m.seq),
      range(4, 55),
    );

    const third = await server.connect(alice.token);
    const { response: mismatched } = await join(third, topic, { last_seq: 3, epoch: `${epoch}-other` });
    assert.equal(mismatched.recovered, false);
    assert.equal(mismatched.truncated, false);
    assert.equal(mismatched.epoch, epoch, "the reply carries the topic's real epoch");
    assert.equal(mismatched.last_seq, 55);
    assert.deepEqual(
      mismatched.messages.map((m) => m.seq),
      range(6, 55),
      "as if no last_seq were given: the newest 50",
    );
  });

  test("more than 1000 missed: truncated, 1000 messages, then history pages the rest", async () => {
    const room = (await server.createRoom(bob.token)).name;
    const topic = `room:${room}`;
    await server.postMany(bob.token, room, 1005, { concurrency: 16 });
    const socket = await server.connect(alice.token);
    const { channel, response } = await join(socket, topic, { last_seq: 2 }, { timeout: 10000 });
    assert.equal(response.recovered, true);
    assert.equal(response.truncated, true);
    assert.equal(response.last_seq, 1005);
    assert.equal(response.messages.length, 1000);
    assert.deepEqual(
      response.messages.map((m) => m.seq),
      range(3, 1002),
    );

    const page = await push(channel, "history", { after_seq: 1002 });
    assert.equal(page.status, "ok");
    assert.deepEqual(
      page.response.messages.map((m) => m.seq),
      [1003, 1004, 1005],
    );
    assert.equal(page.response.has_more, false);

    const limited = await push(channel, "history", { after_seq: 990, limit: 10 });
    assert.deepEqual(
      limited.response.messages.map((m) => m.seq),
      range(991, 1000),
    );
    assert.equal(limited.response.has_more, true);

    // Pages are capped at 200.
    const capped = await push(channel, "history", { before_seq: 1006, limit: 500 });
    assert.equal(capped.response.messages.length, 200);
    assert.equal(capped.response.messages[0].seq, 806);
    assert.equal(capped.response.has_more, true);

    // Exactly 1000 missed is not truncated.
    const other = await server.connect(alice.token);
    const { response: exact } = await join(other, topic, { last_seq: 5 }, { timeout: 10000 });
    assert.equal(exact.messages.length, 1000);
    assert.equal(exact.truncated, false);
  });
});
