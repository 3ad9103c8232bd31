// Direct conversations and personal topics with clients on different
// nodes (api.md §2, §3, §5, §6): `dm:<id>` with its two parties on two
// nodes, `user:<id>` events (conversation_created, unread, mention,
// room_added) raised by a change on another node, `@here` counting users
// present through other nodes.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { collect, join, push, unique } from "../harness.mjs";
import { joinWatched } from "../presence-helpers.mjs";
import { suiteCluster } from "../cluster.mjs";

describe("cluster: conversations and personal topics", () => {
  const cluster = suiteCluster({ name: "conversations" });
  const node = (i) => cluster.nodes[i];

  /** `who`'s socket on node `i` joined to `user:<id>`, collecting its events. */
  async function personal(i, who) {
    const socket = await node(i).connect(who.token);
    const { channel, response } = await join(socket, `user:${who.user.id}`);
    assert.deepEqual(response, {});
    const events = {};
    for (const e of ["conversation_created", "unread", "mention", "room_added", "room_removed"]) events[e] = collect(channel, e);
    return { socket, channel, ...events };
  }

  async function channelOn(i, who, topic, params = {}) {
    const socket = await node(i).connect(who.token);
    return { socket, ...(await join(socket, topic, params)) };
  }

  async function send(channel, body) {
    const reply = await push(channel, "new_msg", { body });
    assert.equal(reply.status, "ok", JSON.stringify(reply.response));
    return reply.response.seq;
  }

  const brief = (u) => ({ id: u.user.id, username: u.user.username, display_name: u.user.display_name });

  test("dm:<id> with its parties on nodes 1 and 2, opened on node 3: conversation_created on both; socket and REST posts from three nodes reach both in order; unread and read across nodes; both present", async () => {
    const u1 = await node(0).register(unique("u"));
    const u2 = await node(1).register(unique("u"));
    const p1 = await personal(0, u1);
    const p2 = await personal(1, u2);

    const opened = await node(2).request("POST", "/api/conversations", { token: u1.token, body: { username: u2.user.username } });
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    const { id } = opened.body.conversation;
    const topic = `dm:${id}`;
    const [toU2] = await p2.conversation_created.count(1);
    assert.equal(toU2.conversation.id, id);
    assert.equal(toU2.conversation.topic, topic);
    const { id: withId, username, display_name } = toU2.conversation.with;
    assert.deepEqual({ id: withId, username, display_name }, brief(u1));
    const [toU1] = await p1.conversation_created.count(1);
    assert.equal(toU1.conversation.id, id);
    assert.equal(toU1.conversation.with.id, u2.user.id);
    // Opening it again on another node: the same conversation, no new event.
    const again = await node(1).request("POST", "/api/conversations", { token: u2.token, body: { username: u1.user.username } });
    assert.equal(again.status, 200);
    assert.equal(again.body.conversation.id, id);

    const { channel: c1 } = await channelOn(0, u1, topic);
    const { channel: c2, watch } = await joinWatched(await node(1).connect(u2.token), topic);
    const { channel: c2b } = await channelOn(2, u2, topic);
    const seen = [c1, c2, c2b].map((c) => collect(c, "new_msg"));

    // Each post's `unread` is awaited before the next post: events on
    // user:<id> raised by different nodes have no order between them.
    assert.equal(await send(c1, "hello from node 1"), 1);
    assert.deepEqual(await p2.unread.count(1), [{ topic, last_seq: 1, unread: 1 }]);
    const viaRest = await node(2).expect(201, "POST", `/api/conversations/${id}/messages`, {
      token: u2.token,
      body: { body: "hello over REST on node 3" },
    });
    assert.equal(viaRest.message.seq, 2);
    assert.deepEqual(await p1.unread.count(1), [{ topic, last_seq: 2, unread: 1 }]);
    assert.equal(await send(c2, "hello from node 2"), 3);
    assert.deepEqual((await p1.unread.count(2))[1], { topic, last_seq: 3, unread: 2 });
    for (const [n, got] of seen.entries()) {
      const items = await got.count(3);
      assert.deepEqual(
        items.map((m) => [m.seq, m.body, m.user.id, m.topic]),
        [
          [1, "hello from node 1", u1.user.id, topic],
          [2, "hello over REST on node 3", u2.user.id, topic],
          [3, "hello from node 2", u2.user.id, topic],
        ],
        `receiver ${n}`,
      );
    }

    // u1 reads on node 3: the personal topic on node 1 hears it.
    const { channel: reader } = await channelOn(2, u1, topic);
    assert.deepEqual(await push(reader, "read", { seq: 3 }), { status: "ok", response: { seq: 3 } });
    assert.deepEqual((await p1.unread.count(3))[2], { topic, last_seq: 3, unread: 0, unread_mentions: 0 });
    const listed = (await node(1).expect(200, "GET", "/api/conversations", { token: u1.token })).conversations;
    assert.equal(listed.find((c) => c.id === id).unread, 0);
    assert.equal(p2.unread.items.length, 1, "u2's own posts raised nothing");
    assert.equal(p1.conversation_created.items.length + p2.conversation_created.items.length, 2, "one event each");

    // Both parties present with every socket: u1 on nodes 1 and 3, u2 on nodes 2 and 3.
    await watch.until(
      (v) => v[String(u1.user.id)]?.length === 2 && v[String(u2.user.id)]?.length === 2,
      5000,
      "both parties present with every socket",
    );
  });

  test("dm:<id>: a party away from node 2 rejoins on node 3 with last_seq and gets exactly what it missed, then live messages", async () => {
    const u1 = await node(0).register(unique("u"));
    const u2 = await node(0).register(unique("u"));
    const { id } = (await node(0).expect(201, "POST", "/api/conversations", { token: u2.token, body: { username: u1.user.username } })).conversation;
    const topic = `dm:${id}`;
    const { channel: c1 } = await channelOn(0, u1, topic);
    const first = await channelOn(1, u2, topic);
    const live = collect(first.channel, "new_msg");
    await send(c1, "one");
    await send(c1, "two");
    await live.count(2);
    first.socket.disconnect();
    for (const body of ["three", "four", "five"]) await send(c1, body);

    const again = await channelOn(2, u2, topic, { last_seq: 2, epoch: first.response.epoch });
    assert.equal(again.response.recovered, true);
    assert.equal(again.response.truncated, false);
    assert.equal(again.response.epoch, first.response.epoch, "one epoch on every node");
    assert.equal(again.response.last_seq, 5);
    assert.deepEqual(
      again.response.messages.map((m) => [m.seq, m.body]),
      [
        [3, "three"],
        [4, "four"],
        [5, "five"],
      ],
    );
    const after = collect(again.channel, "new_msg");
    await send(c1, "six");
    await node(1).expect(201, "POST", `/api/conversations/${id}/messages`, { token: u1.token, body: { body: "seven" } });
    assert.deepEqual(
      (await after.count(2)).map((m) => m.seq),
      [6, 7],
      "live messages follow the recovered ones, none twice",
    );
  });

  test("mentions: @name on node 1 reaches the user's personal topics on nodes 2 and 3; @here names the users present through other nodes only; read on another node clears unread_mentions", async () => {
    const alice = await node(0).register(unique("alice"));
    const bob = await node(0).register(unique("bob"));
    const carol = await node(0).register(unique("carol"));
    const dave = await node(0).register(unique("dave"));
    const room = (await node(0).createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const bob2 = await personal(1, bob);
    const bob3 = await personal(2, bob);
    const carol3 = await personal(2, carol); // online, but not in the room
    const dave3 = await personal(2, dave);
    const { channel: ca, watch } = await joinWatched(await node(0).connect(alice.token), topic);
    const { channel: cb } = await channelOn(1, bob, topic);
    await channelOn(2, dave, topic);
    // @here is resolved on node 1 from its view of the topic's presence.
    await watch.until((v) => String(bob.user.id) in v && String(dave.user.id) in v, 5000, "bob and dave present on node 1");
    const seen = collect(ca, "new_msg");

    const named = await send(ca, `hi @${bob.user.username}`);
    for (const [n, p] of [bob2, bob3].entries()) {
      const mention = await p.mention.find((m) => m.seq === named, undefined, `bob's mention on node ${n + 2}`);
      assert.deepEqual(mention, { topic, seq: named, author: brief(alice), snippet: `hi @${bob.user.username}` });
    }
    const here = await send(ca, "@here standup");
    assert.deepEqual([...(await seen.find((m) => m.seq === here)).mentions].sort(), [bob.user.id, dave.user.id].sort());
    await bob2.mention.find((m) => m.seq === here);
    await dave3.mention.find((m) => m.seq === here);
    // Carol, online elsewhere but not in the room, was not named: a later mention of hers is her first.
    const carols = await send(ca, `@${carol.user.username} later`);
    const [first] = await carol3.mention.count(1);
    assert.equal(first.seq, carols);

    const listed = (await node(2).expect(200, "GET", "/api/rooms", { token: bob.token })).rooms.find((r) => r.name === room);
    assert.equal(listed.unread_mentions, 2);
    assert.equal((await push(cb, "read", { seq: here })).status, "ok");
    await bob3.unread.find((u) => u.topic === topic && u.unread_mentions === 0, undefined, "unread_mentions 0 on node 3");
    assert.equal(
      (await node(0).expect(200, "GET", "/api/rooms", { token: bob.token })).rooms.find((r) => r.name === room).unread_mentions,
      0,
    );
  });

  test("room_added and unread on node 2 for a member added on node 1 to a private room posted to on node 3", async () => {
    const owner = await node(0).register(unique("owner"));
    const member = await node(0).register(unique("member"));
    const p = await personal(1, member);
    const name = unique("priv");
    await node(0).createRoom(owner.token, name, true);
    await node(2).postMessage(owner.token, name, "before you came");
    await node(0).addMember(owner.token, name, member.user.username);
    const [added] = await p.room_added.count(1);
    assert.equal(added.room.name, name);
    assert.equal(added.room.topic, `room:${name}`);
    assert.equal(added.room.private, true);
    assert.equal(added.room.last_seq, 1);
    assert.equal(added.room.unread, 1);
    const listed = (await node(2).expect(200, "GET", "/api/rooms", { token: member.token })).rooms.find((r) => r.name === name);
    assert.deepEqual(added.room, listed, "room_added's room matches GET /api/rooms on another node");

    await node(2).postMessage(owner.token, name, "welcome");
    const [unread] = await p.unread.count(1);
    assert.deepEqual(unread, { topic: `room:${name}`, last_seq: 2, unread: 2 });
    assert.equal(p.room_added.items.length, 1, "added once");
  });
});
