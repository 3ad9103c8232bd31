// Direct conversations (api.md §2 `/api/conversations`, §3 `dm:<id>`) and
// the personal topic `user:<id>` (conversation_created, unread, room_added,
// room_removed).

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { collect, join, push, suiteServer, unique } from "../harness.mjs";
import { joinWatched } from "../presence-helpers.mjs";

function assertUser(user, expected, what) {
  assert.equal(user.id, expected.id, what);
  assert.equal(user.username, expected.username, what);
  assert.equal(user.display_name, expected.display_name, what);
  for (const secret of ["password", "password_hash", "token_version"]) {
    assert.equal(secret in user, false, `${what}: no ${secret}`);
  }
}

function assertConversation(conversation, { id, with: other, last_seq, unread, unread_mentions = 0 }, what) {
  assert.deepEqual(Object.keys(conversation).sort(), ["id", "last_seq", "topic", "unread", "unread_mentions", "with"], what);
  assert.equal(conversation.unread_mentions, unread_mentions, `${what}: unread_mentions`);
  if (id !== undefined) assert.equal(conversation.id, id, what);
  assert.equal(typeof conversation.id, "number", what);
  assert.equal(conversation.topic, `dm:${conversation.id}`, what);
  assertUser(conversation.with, other, `${what}: with`);
  assert.equal(conversation.last_seq, last_seq, `${what}: last_seq`);
  assert.equal(conversation.unread, unread, `${what}: unread`);
}

describe("conversations", () => {
  let alice;
  let bob;
  let carol;
  const server = suiteServer({ name: "conversations" }, 3, (...users) => ([alice, bob, carol] = users));

  async function open(from, to) {
    return server.request("POST", "/api/conversations", { token: from.token, body: { username: to.user.username } });
  }

  async function list(who) {
    return (await server.expect(200, "GET", "/api/conversations", { token: who.token })).conversations;
  }

  test("POST opens a conversation once per pair (201, then 200 with the same id from either side); both list it with `with` = the other", async () => {
    const first = await open(alice, bob);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const conversation = first.body.conversation;
    assertConversation(conversation, { with: bob.user, last_seq: 0, unread: 0 }, "created");

    const again = await open(alice, bob);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assertConversation(again.body.conversation, { id: conversation.id, with: bob.user, last_seq: 0, unread: 0 }, "again");

    const reverse = await open(bob, alice);
    assert.equal(reverse.status, 200, "the pair already has a conversation");
    assertConversation(reverse.body.conversation, { id: conversation.id, with: alice.user, last_seq: 0, unread: 0 }, "reverse");

    const ofBob = (await list(bob)).filter((c) => c.id === conversation.id);
    assert.equal(ofBob.length, 1, "listed once for bob");
    assertConversation(ofBob[0], { id: conversation.id, with: alice.user, last_seq: 0, unread: 0 }, "bob's list");
    const ofAlice = (await list(alice)).filter((c) => c.id === conversation.id);
    assert.equal(ofAlice.length, 1, "listed once for alice");
    assertConversation(ofAlice[0], { id: conversation.id, with: bob.user, last_seq: 0, unread: 0 }, "alice's list");
    assert.equal(
      (await list(carol)).some((c) => c.id === conversation.id),
      false,
      "not listed for a third user",
    );

    // Another pair is another conversation.
    const other = await open(alice, carol);
    assert.equal(other.status, 201);
    assert.notEqual(other.body.conversation.id, conversation.id);
  });

  test("POST with yourself, an unknown user or no username: 422; without a token: 401", async () => {
    const self = await open(alice, alice);
    assert.equal(self.status, 422, JSON.stringify(self.body));
    assert.equal(typeof self.body.error, "string");
    assert.ok(Array.isArray(self.body.errors?.username), JSON.stringify(self.body));

    const unknown = await server.request("POST", "/api/conversations", {
      token: alice.token,
      body: { username: unique("nobody") },
    });
    assert.equal(unknown.status, 422, JSON.stringify(unknown.body));
    assert.ok(Array.isArray(unknown.body.errors?.username), JSON.stringify(unknown.body));

    const missing = await server.request("POST", "/api/conversations", { token: alice.token, body: {} });
    assert.equal(missing.status, 422, JSON.stringify(missing.body));

    const anonymous = await server.request("POST", "/api/conversations", { body: { username: bob.user.username } });
    assert.equal(anonymous.status, 401);
    assert.equal((await server.request("GET", "/api/conversations")).status, 401);
  });

  test("dm:<id>: both participants join and get socket and REST messages; a third user is refused everywhere; history", async () => {
    const u1 = await server.register();
    const u2 = await server.register();
    const { id } = (await open(u1, u2)).body.conversation;
    const topic = `dm:${id}`;

    const s1 = await server.connect(u1.token);
    const s1b = await server.connect(u1.token);
    const s2 = await server.connect(u2.token);
    const { channel: c1, response } = await join(s1, topic);
    assert.equal(response.last_seq, 0);
    assert.deepEqual(response.messages, []);
    assert.equal(typeof response.epoch, "string");
    const { channel: c1b } = await join(s1b, topic);
    const { channel: c2 } = await join(s2, topic);
    const on1b = collect(c1b, "new_msg");
    const on2 = collect(c2, "new_msg");

    // A third user: refused on the socket, 403 over REST.
    const s3 = await server.connect(carol.token);
    await assert.rejects(join(s3, topic), (e) => e.response?.reason === "unauthorized");
    const h3 = await server.request("GET", `/api/conversations/${id}/messages`, { token: carol.token });
    assert.equal(h3.status, 403, JSON.stringify(h3.body));
    const p3 = await server.request("POST", `/api/conversations/${id}/messages`, {
      token: carol.token,
      body: { body: "intruder" },
    });
    assert.equal(p3.status, 403, JSON.stringify(p3.body));

    const viaSocket = await push(c1, "new_msg", { body: "hello over the socket" });
    assert.equal(viaSocket.status, "ok", JSON.stringify(viaSocket.response));
    assert.equal(viaSocket.response.seq, 1);
    const viaRest = await server.request("POST", `/api/conversations/${id}/messages`, {
      token: u2.token,
      body: { body: "hello over REST" },
    });
    assert.equal(viaRest.status, 201, JSON.stringify(viaRest.body));
    assert.equal(viaRest.body.message.seq, 2);
    assert.equal(viaRest.body.message.topic, topic);

    for (const [who, got] of [["u2", on2], ["u1's other socket", on1b]]) {
      const items = await got.count(2);
      assert.deepEqual(
        items.map((m) => [m.seq, m.body, m.user.id, m.topic]),
        [
          [1, "hello over the socket", u1.user.id, topic],
          [2, "hello over REST", u2.user.id, topic],
        ],
        who,
      );
    }

    const history = await server.expect(200, "GET", `/api/conversations/${id}/messages`, { token: u2.token });
    assert.deepEqual(
      history.messages.map((m) => [m.seq, m.body]),
      [
        [1, "hello over the socket"],
        [2, "hello over REST"],
      ],
    );
    assert.equal(history.has_more, false);
    const page = await server.expect(200, "GET", `/api/conversations/${id}/messages?after=1&limit=1`, { token: u1.token });
    assert.deepEqual(
      page.messages.map((m) => m.seq),
      [2],
    );
    const pushed = await push(c2, "history", { before_seq: 2 });
    assert.equal(pushed.status, "ok");
    assert.deepEqual(
      pushed.response.messages.map((m) => m.seq),
      [1],
    );

    // Both participants are present on the conversation topic.
    const { watch } = await joinWatched(await server.connect(u2.token), topic);
    await watch.until(
      (v) => v[String(u1.user.id)]?.length === 2 && v[String(u2.user.id)]?.length === 2,
      5000,
      "both participants present",
    );
  });

  test("dm:<id>: client_id makes socket and REST posts idempotent; a rejoin with last_seq recovers exactly what it missed", async () => {
    const u1 = await server.register();
    const u2 = await server.register();
    const { id } = (await open(u2, u1)).body.conversation;
    const topic = `dm:${id}`;
    const s1 = await server.connect(u1.token);
    const s2 = await server.connect(u2.token);
    const { channel: c1 } = await join(s1, topic);
    const first = await join(s2, topic);
    const on2 = collect(first.channel, "new_msg");

    const cid = unique("cid-");
    const a = await push(c1, "new_msg", { body: "once", client_id: cid });
    const b = await push(c1, "new_msg", { body: "once", client_id: cid });
    assert.equal(a.status, "ok");
    assert.deepEqual(b.response, a.response, "the same client_id returns the original message");
    const rest = await server.request("POST", `/api/conversations/${id}/messages`, {
      token: u1.token,
      body: { body: "once", client_id: cid },
    });
    assert.equal(rest.status, 200, JSON.stringify(rest.body));
    assert.equal(rest.body.message.id, a.response.id);
    const next = await push(c1, "new_msg", { body: "second" });
    assert.equal(next.response.seq, 2, "the duplicates consumed no seq");
    const seen = await on2.until((items) => items.some((m) => m.seq === 2), 5000, "seq 2");
    assert.deepEqual(
      seen.map((m) => m.seq),
      [1, 2],
      "one broadcast per message",
    );
    assert.equal(seen[0].client_id, cid);

    // u2 goes away; u1 writes three more; u2 rejoins from seq 2.
    first.channel.leave();
    for (const body of ["three", "four", "five"]) assert.equal((await push(c1, "new_msg", { body })).status, "ok");
    const again = await join(s2, topic, { last_seq: 2, epoch: first.response.epoch });
    assert.equal(again.response.recovered, true);
    assert.equal(again.response.truncated, false);
    assert.equal(again.response.epoch, first.response.epoch);
    assert.equal(again.response.last_seq, 5);
    assert.deepEqual(
      again.response.messages.map((m) => [m.seq, m.body]),
      [
        [3, "three"],
        [4, "four"],
        [5, "five"],
      ],
    );
    const live = collect(again.channel, "new_msg");
    await push(c1, "new_msg", { body: "six" });
    const after6 = await live.count(1);
    assert.deepEqual(
      after6.map((m) => m.seq),
      [6],
      "live messages continue after the recovered ones, none twice",
    );
  });

  test("unknown conversations: join not_found, REST 404", async () => {
    const s = await server.connect(alice.token);
    await assert.rejects(join(s, "dm:987654321"), (e) => e.response?.reason === "not_found");
    const res = await server.request("GET", "/api/conversations/987654321/messages", { token: alice.token });
    assert.equal(res.status, 404, JSON.stringify(res.body));
    const bad = await server.request("GET", "/api/conversations/abc/messages", { token: alice.token });
    assert.equal(bad.status, 404, JSON.stringify(bad.body));
  });
});

describe("personal topic user:<id>", () => {
  const server = suiteServer({ name: "user-topic" });

  /** A user with a socket joined to their own user:<id>, collecting its events. */
  async function personal() {
    const account = await server.register();
    const socket = await server.connect(account.token);
    const { channel, response } = await join(socket, `user:${account.user.id}`);
    assert.deepEqual(response, {});
    const events = {};
    for (const e of ["conversation_created", "unread", "room_added", "room_removed"]) events[e] = collect(channel, e);
    return { ...account, socket, channel, events };
  }

  test("only its owner may join user:<id>", async () => {
    const a = await server.register();
    const b = await server.register();
    const s = await server.connect(a.token);
    await assert.rejects(join(s, `user:${b.user.id}`), (e) => e.response?.reason === "unauthorized");
    await join(s, `user:${a.user.id}`);
  });

  test("conversation_created reaches both sides; unread counts follow posts and reads; GET /api/conversations agrees", async () => {
    const a = await personal();
    const b = await personal();
    const res = await server.request("POST", "/api/conversations", { token: a.token, body: { username: b.user.username } });
    assert.equal(res.status, 201);
    const { id } = res.body.conversation;
    const topic = `dm:${id}`;

    const [toB] = await b.events.conversation_created.count(1);
    assertConversation(toB.conversation, { id, with: a.user, last_seq: 0, unread: 0 }, "bob's conversation_created");
    const [toA] = await a.events.conversation_created.count(1);
    assertConversation(toA.conversation, { id, with: b.user, last_seq: 0, unread: 0 }, "alice's conversation_created");

    // Opening it again creates nothing: no second event (barrier: a new conversation's event).
    await server.request("POST", "/api/conversations", { token: b.token, body: { username: a.user.username } });
    const c = await server.register();
    await server.request("POST", "/api/conversations", { token: c.token, body: { username: b.user.username } });
    const created = await b.events.conversation_created.count(2);
    assert.equal(created.length, 2);
    assert.equal(created[1].conversation.with.id, c.user.id, "only the new conversation was announced");

    // Alice posts twice (socket, then REST): bob's unread goes 1, 2.
    const { channel: ca } = await join(a.socket, topic);
    assert.equal((await push(ca, "new_msg", { body: "one" })).status, "ok");
    await server.expect(201, "POST", `/api/conversations/${id}/messages`, { token: a.token, body: { body: "two" } });
    const unread = await b.events.unread.count(2);
    assert.deepEqual(unread, [
      { topic, last_seq: 1, unread: 1 },
      { topic, last_seq: 2, unread: 2 },
    ]);
    const bList = (await server.expect(200, "GET", "/api/conversations", { token: b.token })).conversations;
    assertConversation(
      bList.find((x) => x.id === id),
      { id, with: a.user, last_seq: 2, unread: 2 },
      "bob's list after two posts",
    );
    const aList = (await server.expect(200, "GET", "/api/conversations", { token: a.token })).conversations;
    assertConversation(aList.find((x) => x.id === id), { id, with: b.user, last_seq: 2, unread: 0 }, "posting reads");

    // Bob reads up to 2: his personal topic says 0.
    const { channel: cb } = await join(b.socket, topic);
    const read = await push(cb, "read", { seq: 2 });
    assert.deepEqual(read, { status: "ok", response: { seq: 2 } });
    const afterRead = await b.events.unread.count(3);
    assert.deepEqual(afterRead[2], { topic, last_seq: 2, unread: 0, unread_mentions: 0 });
    assertConversation(
      (await server.expect(200, "GET", "/api/conversations", { token: b.token })).conversations.find((x) => x.id === id),
      { id, with: a.user, last_seq: 2, unread: 0 },
      "bob's list after reading",
    );

    // A third message; reading backwards does not move the position, past the end clamps.
    assert.equal((await push(ca, "new_msg", { body: "three" })).status, "ok");
    assert.deepEqual((await b.events.unread.count(4))[3], { topic, last_seq: 3, unread: 1 });
    assert.deepEqual(await push(cb, "read", { seq: 1 }), { status: "ok", response: { seq: 2 } });
    assert.deepEqual((await b.events.unread.count(5))[4], { topic, last_seq: 3, unread: 1, unread_mentions: 0 });
    assert.deepEqual(await push(cb, "read", { seq: 99 }), { status: "ok", response: { seq: 3 } });
    assert.deepEqual((await b.events.unread.count(6))[5], { topic, last_seq: 3, unread: 0, unread_mentions: 0 });

    // Bob answers: alice (read position 3 from her own posts) has 1 unread,
    // and her personal topic got nothing for her own posts before that.
    assert.equal((await push(cb, "new_msg", { body: "four" })).status, "ok");
    const aUnread = await a.events.unread.count(1);
    assert.deepEqual(aUnread, [{ topic, last_seq: 4, unread: 1 }]);
    assertConversation(
      (await server.expect(200, "GET", "/api/conversations", { token: b.token })).conversations.find((x) => x.id === id),
      { id, with: a.user, last_seq: 4, unread: 0 },
      "bob's own post is read",
    );
    assertConversation(
      (await server.expect(200, "GET", "/api/conversations", { token: a.token })).conversations.find((x) => x.id === id),
      { id, with: b.user, last_seq: 4, unread: 1 },
      "alice's list",
    );
  });

  test("room_added and room_removed when the owner adds and removes a member of a private room; unread for its messages", async () => {
    const owner = await personal();
    const member = await personal();
    const name = unique("priv");
    const room = await server.createRoom(owner.token, name, true);
    await server.postMessage(owner.token, name, "before you came");

    await server.addMember(owner.token, name, member.user.username);
    const [added] = await member.events.room_added.count(1);
    assert.equal(added.room.name, name);
    assert.equal(added.room.topic, `room:${name}`);
    assert.equal(added.room.private, true);
    assert.equal(added.room.last_seq, 1);
    assert.equal(added.room.unread, 1, "nothing of it read yet");

    // Adding again is a no-op: no second event (barrier: the unread of a later post).
    await server.addMember(owner.token, name, member.user.username);
    await server.postMessage(owner.token, name, "welcome");
    const [unread] = await member.events.unread.count(1);
    assert.equal(unread.topic, `room:${name}`);
    assert.equal(unread.last_seq, 2);
    assert.equal(typeof unread.unread, "number");
    assert.equal(member.events.room_added.items.length, 1, "added once");

    await server.removeMember(owner.token, name, member.user.username);
    const [removed] = await member.events.room_removed.count(1);
    assert.deepEqual(removed, { room: { name, topic: `room:${name}` } });
    assert.equal(owner.events.room_added.items.length + owner.events.room_removed.items.length, 0);
  });

  test("room_added carries the same `room` object GET /api/rooms shows the new member (owner included)", async () => {
    const owner = await personal();
    const member = await personal();
    const name = unique("priv");
    const room = await server.createRoom(owner.token, name, true);
    await server.addMember(owner.token, name, member.user.username);
    const [added] = await member.events.room_added.count(1);
    const listed = (await server.expect(200, "GET", "/api/rooms", { token: member.token })).rooms.find((r) => r.name === name);
    assert.ok(listed, "the member now sees the private room");
    assert.equal(listed.owner, room.owner);
    assert.deepEqual(added.room, listed, "room_added's room matches GET /api/rooms");
  });
});
