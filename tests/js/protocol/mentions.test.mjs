// Mentions (api.md §5): `@username` and `@here` resolved when a message is
// stored, `mentions: [user_id]` in every place a message appears, the
// `mention` event on `user:<id>`, and `unread_mentions` in the rooms and
// conversations lists, cleared by `read`.
//
// "Nothing arrives" is checked with barriers, not waits: broadcasts on one
// topic reach a socket in order, so once a later `mention` on the same
// personal topic has arrived, an earlier one would have too.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { collect, join, push, suiteServer, unique } from "../harness.mjs";

describe("mentions", () => {
  const server = suiteServer({ name: "mentions" });

  /** A socket of `who` joined to `user:<id>`, collecting `mention` and `unread`. */
  async function personal(who) {
    const socket = await server.connect(who.token);
    const { channel } = await join(socket, `user:${who.user.id}`);
    return { socket, mentions: collect(channel, "mention"), unread: collect(channel, "unread") };
  }

  /** `who`'s channel on `topic` (a fresh socket). */
  async function channelOf(who, topic, params = {}) {
    const socket = await server.connect(who.token);
    return join(socket, topic, params);
  }

  async function send(channel, body) {
    const reply = await push(channel, "new_msg", { body });
    assert.equal(reply.status, "ok", JSON.stringify(reply.response));
    return reply.response.seq;
  }

  /** A barrier: `from` mentions `who` in `topic`; resolves once it has reached `watch`. */
  async function barrier(channel, from, who, watch) {
    const marker = unique("barrier");
    await send(channel, `@${who.user.username} ${marker}`);
    await watch.mentions.find((m) => m.snippet.includes(marker), undefined, `the barrier mention ${marker}`);
    return marker;
  }

  const roomsOf = async (who) => (await server.expect(200, "GET", "/api/rooms", { token: who.token })).rooms;
  const conversationsOf = async (who) =>
    (await server.expect(200, "GET", "/api/conversations", { token: who.token })).conversations;

  test("@bob: a mention on every one of bob's sockets, `mentions` in the broadcast, history, join reply and recovery; unknown names and the author are not notified", async () => {
    const alice = await server.register(unique("alice"));
    const bob = await server.register(unique("bob"));
    const carol = await server.register(unique("carol"));
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const bob1 = await personal(bob);
    const bob2 = await personal(bob);
    const carolWatch = await personal(carol);
    const aliceWatch = await personal(alice);
    const { channel: ca } = await channelOf(alice, topic);
    const { channel: cc } = await channelOf(carol, topic);
    const seen = collect(cc, "new_msg");

    const body = `hi @${bob.user.username.toUpperCase()}, @${unique("nobody")} and @${alice.user.username}: see ada@example.com`;
    const seq = await send(ca, body);

    for (const [i, watch] of [bob1, bob2].entries()) {
      const mention = await watch.mentions.find((m) => m.seq === seq, undefined, `bob's mention on socket ${i + 1}`);
      assert.deepEqual(Object.keys(mention).sort(), ["author", "seq", "snippet", "topic"]);
      assert.equal(mention.topic, topic);
      assert.deepEqual(mention.author, {
        id: alice.user.id,
        username: alice.user.username,
        display_name: alice.user.display_name,
      });
      assert.equal(mention.snippet, body);
    }

    const broadcast = await seen.find((m) => m.seq === seq);
    // Unknown names are dropped; the author named themself and stays listed, unnotified.
    assert.deepEqual([...broadcast.mentions].sort(), [alice.user.id, bob.user.id].sort());

    const history = await server.expect(200, "GET", `/api/rooms/${room}/messages`, { token: carol.token });
    assert.deepEqual(history.messages.find((m) => m.seq === seq).mentions, broadcast.mentions);
    const plain = await send(ca, "no one named here");
    const fresh = await channelOf(carol, topic);
    const joined = fresh.response.messages;
    assert.deepEqual(joined.find((m) => m.seq === seq).mentions, broadcast.mentions);
    assert.deepEqual(joined.find((m) => m.seq === plain).mentions, []);
    const recovered = await channelOf(bob, topic, { last_seq: seq - 1 });
    assert.equal(recovered.response.recovered, true);
    assert.deepEqual(recovered.response.messages[0].mentions, broadcast.mentions);

    // Carol and alice got nothing: a later mention of each arrives first.
    await barrier(ca, alice, carol, carolWatch);
    assert.equal(carolWatch.mentions.items.length, 1, JSON.stringify(carolWatch.mentions.items));
    await barrier(cc, carol, alice, aliceWatch);
    assert.equal(aliceWatch.mentions.items.length, 1, JSON.stringify(aliceWatch.mentions.items));
  });

  test("@here mentions only the users online in the topic, not the author", async () => {
    const alice = await server.register(unique("alice"));
    const bob = await server.register(unique("bob"));
    const carol = await server.register(unique("carol"));
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const bobWatch = await personal(bob);
    const carolWatch = await personal(carol); // online, but not in this room
    const { channel: ca } = await channelOf(alice, topic);
    await channelOf(bob, topic);
    const seen = collect(ca, "new_msg");

    const seq = await send(ca, "@here standup");
    const mention = await bobWatch.mentions.find((m) => m.seq === seq, undefined, "bob's @here mention");
    assert.equal(mention.topic, topic);
    assert.deepEqual((await seen.find((m) => m.seq === seq)).mentions, [bob.user.id]);

    await barrier(ca, alice, carol, carolWatch);
    assert.equal(carolWatch.mentions.items.length, 1, "carol was not online in the room");
  });

  test("a private room: a non-member named is not mentioned and learns nothing; a member is", async () => {
    const alice = await server.register(unique("alice"));
    const bob = await server.register(unique("bob"));
    const eve = await server.register(unique("eve"));
    const room = (await server.createRoom(alice.token, unique("secret"), true)).name;
    await server.addMember(alice.token, room, bob.user.username);
    const topic = `room:${room}`;
    const bobWatch = await personal(bob);
    const eveWatch = await personal(eve);
    const { channel: ca } = await channelOf(alice, topic);
    const seen = collect(ca, "new_msg");

    const seq = await send(ca, `@${eve.user.username} @${bob.user.username} the plan`);
    await bobWatch.mentions.find((m) => m.seq === seq);
    assert.deepEqual((await seen.find((m) => m.seq === seq)).mentions, [bob.user.id]);

    const lobby = (await channelOf(alice, "room:lobby")).channel;
    await barrier(lobby, alice, eve, eveWatch);
    assert.equal(eveWatch.mentions.items.length, 1, JSON.stringify(eveWatch.mentions.items));
    assert.equal((await roomsOf(eve)).some((r) => r.name === room), false);
  });

  test("an ignored author's mention is neither sent nor counted; others' still are", async () => {
    const alice = await server.register(unique("alice"));
    const bob = await server.register(unique("bob"));
    const carol = await server.register(unique("carol"));
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    await server.expect(204, "PUT", `/api/me/ignores/${alice.user.username}`, { token: bob.token });
    const bobWatch = await personal(bob);
    const { channel: ca } = await channelOf(alice, topic);
    const { channel: cc } = await channelOf(carol, topic);

    await send(ca, `@${bob.user.username} from alice`);
    const marker = await barrier(cc, carol, bob, bobWatch);
    assert.equal(bobWatch.mentions.items.length, 1, JSON.stringify(bobWatch.mentions.items));
    assert.equal(bobWatch.mentions.items[0].author.id, carol.user.id);
    assert.ok(bobWatch.mentions.items[0].snippet.includes(marker));
    const listed = (await roomsOf(bob)).find((r) => r.name === room);
    assert.equal(listed.unread_mentions, 1, "only carol's mention counts");
  });

  test("unread_mentions in GET /api/rooms and /api/conversations; `read` up to a mention's seq clears it", async () => {
    const alice = await server.register(unique("alice"));
    const bob = await server.register(unique("bob"));
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const bobWatch = await personal(bob);
    const { channel: ca } = await channelOf(alice, topic);

    const first = await send(ca, `@${bob.user.username} one`);
    await send(ca, "between");
    const second = await send(ca, `two @${bob.user.username}`);
    await bobWatch.mentions.find((m) => m.seq === second);
    let listed = (await roomsOf(bob)).find((r) => r.name === room);
    assert.equal(listed.unread, 3);
    assert.equal(listed.unread_mentions, 2);
    assert.equal((await roomsOf(alice)).find((r) => r.name === room).unread_mentions, 0);

    const { channel: cb } = await channelOf(bob, topic);
    assert.equal((await push(cb, "read", { seq: first })).status, "ok");
    const afterFirst = await bobWatch.unread.find((u) => u.topic === topic && u.unread_mentions === 1);
    assert.equal(afterFirst.unread, 2);
    listed = (await roomsOf(bob)).find((r) => r.name === room);
    assert.equal(listed.unread_mentions, 1);
    assert.equal((await push(cb, "read", { seq: second })).status, "ok");
    await bobWatch.unread.find((u) => u.topic === topic && u.unread_mentions === 0);
    assert.equal((await roomsOf(bob)).find((r) => r.name === room).unread_mentions, 0);

    // A conversation, posted over REST.
    const opened = await server.expect(201, "POST", "/api/conversations", {
      token: alice.token,
      body: { username: bob.user.username },
    });
    const id = opened.conversation.id;
    const posted = await server.expect(201, "POST", `/api/conversations/${id}/messages`, {
      token: alice.token,
      body: { body: `@${bob.user.username} ping` },
    });
    assert.deepEqual(posted.message.mentions, [bob.user.id]);
    const dm = await bobWatch.mentions.find((m) => m.topic === `dm:${id}`);
    assert.equal(dm.seq, posted.message.seq);
    assert.equal((await conversationsOf(bob)).find((c) => c.id === id).unread_mentions, 1);
    assert.equal((await conversationsOf(alice)).find((c) => c.id === id).unread_mentions, 0);
    const { channel: cd } = await channelOf(bob, `dm:${id}`);
    assert.equal((await push(cd, "read", { seq: posted.message.seq })).status, "ok");
    assert.equal((await conversationsOf(bob)).find((c) => c.id === id).unread_mentions, 0);

    // Posting in a topic reads it, mentions included.
    await send(ca, `@${bob.user.username} three`);
    await bobWatch.mentions.find((m) => m.snippet.endsWith("three"));
    assert.equal((await roomsOf(bob)).find((r) => r.name === room).unread_mentions, 1);
    await send(cb, "seen it");
    assert.equal((await roomsOf(bob)).find((r) => r.name === room).unread_mentions, 0);
  });

  test("an edit resolves mentions again (only the newly named are notified); a delete drops them", async () => {
    const alice = await server.register(unique("alice"));
    const bob = await server.register(unique("bob"));
    const carol = await server.register(unique("carol"));
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const bobWatch = await personal(bob);
    const carolWatch = await personal(carol);
    const { channel: ca } = await channelOf(alice, topic);
    const updates = collect(ca, "msg_updated");
    const unreadMentions = async (who) => (await roomsOf(who)).find((r) => r.name === room).unread_mentions;

    const seq = await send(ca, "hello");
    let reply = await push(ca, "edit_msg", { seq, body: `hello @${bob.user.username}` });
    assert.equal(reply.status, "ok", JSON.stringify(reply.response));
    await bobWatch.mentions.find((m) => m.seq === seq);
    assert.deepEqual((await updates.find((m) => m.body.includes(bob.user.username))).mentions, [bob.user.id]);
    assert.equal(await unreadMentions(bob), 1);

    reply = await push(ca, "edit_msg", { seq, body: `hello @${bob.user.username} and @${carol.user.username}` });
    assert.equal(reply.status, "ok");
    await carolWatch.mentions.find((m) => m.seq === seq);
    reply = await push(ca, "edit_msg", { seq, body: `hello @${carol.user.username}` });
    assert.equal(reply.status, "ok");
    await updates.until((items) => items.length === 3);
    assert.equal(await unreadMentions(bob), 0, "no longer mentioned");
    assert.equal(await unreadMentions(carol), 1);
    // Bob was notified once: a later mention is his second.
    await barrier(ca, alice, bob, bobWatch);
    assert.equal(bobWatch.mentions.items.length, 2, JSON.stringify(bobWatch.mentions.items));

    assert.equal((await push(ca, "delete_msg", { seq })).status, "ok");
    assert.equal(await unreadMentions(carol), 0, "a deleted mention is not unread");
    const history = await server.expect(200, "GET", `/api/rooms/${room}/messages`, { token: alice.token });
    assert.deepEqual(history.messages.find((m) => m.seq === seq).mentions, []);
  });
});
