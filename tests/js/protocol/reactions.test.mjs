// Reactions (api.md §5): the `react` push toggles the caller's emoji on a
// message and broadcasts `reaction` {seq, emoji, user_id, on} after the
// commit; every message view carries `reactions: {emoji: [user ids]}`
// (history, join replies, recovery); limits; private rooms; rate limit.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { collect, join, joinChannel, ping, push, suiteServer } from "../harness.mjs";

describe("reactions", () => {
  let alice;
  let bob;
  let carol;
  const server = suiteServer({ name: "reactions" }, 3, (...users) => ([alice, bob, carol] = users));

  /** A fresh room with `count` messages by alice; its topic. */
  async function roomWith(count, isPrivate = false) {
    const room = (await server.createRoom(alice.token, undefined, isPrivate)).name;
    for (let i = 1; i <= count; i++) await server.postMessage(alice.token, room, `m${i}`);
    return { room, topic: `room:${room}` };
  }

  async function joinedAs(topic, ...users) {
    const out = [];
    for (const user of users) out.push(await join(await server.connect(user.token), topic));
    return out;
  }

  const bySeq = (messages, seq) => messages.find((m) => m.seq === seq);

  test("two and three users: toggles on and off, broadcast to everyone joined, ok {on}", async () => {
    const { topic } = await roomWith(2);
    const [{ channel: ca }, { channel: cb }, { channel: cc }] = await joinedAs(topic, alice, bob, carol);
    const seen = [ca, cb, cc].map((c) => collect(c, "reaction"));

    assert.deepEqual(await push(cb, "react", { seq: 1, emoji: "👍" }), { status: "ok", response: { on: true } });
    assert.deepEqual(await push(cc, "react", { seq: 1, emoji: "👍" }), { status: "ok", response: { on: true } });
    assert.deepEqual(await push(cc, "react", { seq: 2, emoji: "🇫🇷" }), { status: "ok", response: { on: true } });
    assert.deepEqual(await push(cb, "react", { seq: 1, emoji: "👍" }), { status: "ok", response: { on: false } });

    const expected = [
      { seq: 1, emoji: "👍", user_id: bob.user.id, on: true },
      { seq: 1, emoji: "👍", user_id: carol.user.id, on: true },
      { seq: 2, emoji: "🇫🇷", user_id: carol.user.id, on: true },
      { seq: 1, emoji: "👍", user_id: bob.user.id, on: false },
    ];
    for (const collector of seen) assert.deepEqual(await collector.count(4), expected);

    // History over the socket and REST shows the state.
    const { response } = await push(ca, "history", {});
    assert.deepEqual(bySeq(response.messages, 1).reactions, { "👍": [carol.user.id] });
    assert.deepEqual(bySeq(response.messages, 2).reactions, { "🇫🇷": [carol.user.id] });
    const rest = await server.messages(bob.token, topic.slice(5));
    assert.deepEqual(bySeq(rest.messages, 1).reactions, { "👍": [carol.user.id] });

    // Removing the last one leaves no reactions at all.
    assert.equal((await push(cc, "react", { seq: 1, emoji: "👍" })).response.on, false);
    const after = await server.messages(bob.token, topic.slice(5));
    const m1 = bySeq(after.messages, 1);
    assert.ok(!("reactions" in m1) || Object.keys(m1.reactions).length === 0, JSON.stringify(m1));
  });

  test("several users on one emoji, in the order they reacted; join replies and around pages carry them", async () => {
    const { room, topic } = await roomWith(3);
    const [{ channel: ca }, { channel: cb }, { channel: cc }] = await joinedAs(topic, alice, bob, carol);
    await push(cc, "react", { seq: 2, emoji: "🎉" });
    await push(ca, "react", { seq: 2, emoji: "🎉" });
    await push(cb, "react", { seq: 2, emoji: "👍🏽" });
    await push(cb, "react", { seq: 3, emoji: "👩‍👩‍👧‍👦" });

    const want2 = { "🎉": [carol.user.id, alice.user.id], "👍🏽": [bob.user.id] };
    const { response: joinReply } = await join(await server.connect(bob.token), topic);
    assert.deepEqual(bySeq(joinReply.messages, 2).reactions, want2);
    assert.deepEqual(bySeq(joinReply.messages, 3).reactions, { "👩‍👩‍👧‍👦": [bob.user.id] });
    assert.ok(!("reactions" in bySeq(joinReply.messages, 1)), "no reactions: omitted");

    const around = await server.expect(200, "GET", `/api/rooms/${room}/messages?around=2&limit=1`, { token: carol.token });
    assert.deepEqual(around.messages.map((m) => m.seq), [2]);
    assert.deepEqual(around.messages[0].reactions, want2);
  });

  test("recovery: a rejoin with last_seq recovers later messages with their reactions", async () => {
    const { room, topic } = await roomWith(2);
    const [{ channel: cb, response }] = await joinedAs(topic, bob);
    await push(cb, "react", { seq: 2, emoji: "✅" });
    await server.postMessage(alice.token, room, "m3");
    await push(cb, "react", { seq: 3, emoji: "❤️" });

    const { response: rejoin } = await join(await server.connect(carol.token), topic, {
      last_seq: 1,
      epoch: response.epoch,
    });
    assert.equal(rejoin.recovered, true);
    assert.deepEqual(rejoin.messages.map((m) => m.seq), [2, 3]);
    assert.deepEqual(rejoin.messages[0].reactions, { "✅": [bob.user.id] });
    assert.deepEqual(rejoin.messages[1].reactions, { "❤️": [bob.user.id] });
  });

  test("new_msg carries no reactions; an edit keeps them; a deleted message loses them and refuses more", async () => {
    const { topic } = await roomWith(0);
    const [{ channel: ca }, { channel: cb }] = await joinedAs(topic, alice, bob);
    const onNew = collect(cb, "new_msg");
    const onUpdated = collect(cb, "msg_updated");
    await push(ca, "new_msg", { body: "hello" });
    const [fresh] = await onNew.count(1);
    assert.ok(!("reactions" in fresh) || Object.keys(fresh.reactions).length === 0);

    await push(cb, "react", { seq: 1, emoji: "👀" });
    assert.equal((await push(ca, "edit_msg", { seq: 1, body: "hello again" })).status, "ok");
    const [updated] = await onUpdated.count(1);
    assert.deepEqual(updated.reactions, { "👀": [bob.user.id] });

    assert.equal((await push(ca, "delete_msg", { seq: 1 })).status, "ok");
    assert.deepEqual(await push(cb, "react", { seq: 1, emoji: "👀" }), {
      status: "error",
      response: { reason: "not_found" },
    });
    assert.deepEqual(await push(cb, "react", { seq: 99, emoji: "👀" }), {
      status: "error",
      response: { reason: "not_found" },
    });
    const { response } = await push(cb, "history", {});
    const deleted = bySeq(response.messages, 1);
    assert.equal(deleted.deleted, true);
    assert.ok(!("reactions" in deleted), JSON.stringify(deleted));
  });

  test("invalid emoji: two graphemes, 33 bytes, empty, not a string; a bad seq", async () => {
    const { topic } = await roomWith(1);
    const [{ channel: cb }] = await joinedAs(topic, bob);
    const onReaction = collect(cb, "reaction");
    const thirtyThree = `a${"\u0301".repeat(16)}`; // one grapheme cluster, 33 bytes
    assert.equal(Buffer.byteLength(thirtyThree), 33);
    const thirtyOne = `a${"\u0301".repeat(15)}`; // one grapheme cluster, 31 bytes
    for (const emoji of ["👍👍", "ab", thirtyThree, "", 5, null, ["👍"], { e: "👍" }]) {
      assert.deepEqual(await push(cb, "react", { seq: 1, emoji }), {
        status: "error",
        response: { reason: "invalid_emoji" },
      }, `emoji ${JSON.stringify(emoji)}`);
    }
    assert.deepEqual(await push(cb, "react", { seq: 1 }), { status: "error", response: { reason: "invalid_emoji" } });
    assert.equal((await push(cb, "react", { seq: "1", emoji: "👍" })).response.reason, "invalid_payload");
    // A long but valid cluster is accepted.
    assert.equal((await push(cb, "react", { seq: 1, emoji: thirtyOne })).status, "ok");
    const items = await onReaction.count(1);
    assert.equal(items.length, 1, "refused reactions are not broadcast");
  });

  test("20 distinct emoji per message: the 21st is refused, adding to an existing one and removing are allowed", async () => {
    const { topic } = await roomWith(1);
    const [{ channel: ca }, { channel: cb }] = await joinedAs(topic, alice, bob);
    const emoji = Array.from({ length: 21 }, (_, i) => String.fromCodePoint(0x1f600 + i));
    for (const e of emoji.slice(0, 20)) {
      assert.equal((await push(cb, "react", { seq: 1, emoji: e })).status, "ok", e);
    }
    assert.deepEqual(await push(ca, "react", { seq: 1, emoji: emoji[20] }), {
      status: "error",
      response: { reason: "too_many_reactions" },
    });
    assert.deepEqual(await push(ca, "react", { seq: 1, emoji: emoji[0] }), { status: "ok", response: { on: true } });
    assert.deepEqual(await push(cb, "react", { seq: 1, emoji: emoji[5] }), { status: "ok", response: { on: false } });
    // With one removed there is room again.
    assert.deepEqual(await push(ca, "react", { seq: 1, emoji: emoji[20] }), { status: "ok", response: { on: true } });
    const { response } = await push(ca, "history", {});
    assert.equal(Object.keys(response.messages[0].reactions).length, 20);
  });

  test("ignores: a reaction of an ignored user still counts on a message one can see (live and in history)", async () => {
    const { room, topic } = await roomWith(1);
    await server.expect(204, "PUT", `/api/me/ignores/${carol.user.username}`, { token: bob.token });
    try {
      const [{ channel: cb }, { channel: cc }] = await joinedAs(topic, bob, carol);
      const onB = collect(cb, "reaction");
      const onBNew = collect(cb, "new_msg");
      assert.equal((await push(cc, "react", { seq: 1, emoji: "🙈" })).status, "ok");
      assert.deepEqual((await onB.count(1))[0], { seq: 1, emoji: "🙈", user_id: carol.user.id, on: true });
      const { messages } = await server.messages(bob.token, room);
      assert.deepEqual(messages[0].reactions, { "🙈": [carol.user.id] });
      // Carol's messages themselves stay hidden from bob.
      await push(cc, "new_msg", { body: "hidden" });
      await push(cb, "react", { seq: 1, emoji: "👍" });
      assert.equal(onBNew.items.length, 0);
    } finally {
      await server.expect(204, "DELETE", `/api/me/ignores/${carol.user.username}`, { token: bob.token });
    }
  });

  test("private room: a non-member cannot join or react and sees nothing; a conversation outsider neither", async () => {
    const { room, topic } = await roomWith(1, true);
    await server.addMember(alice.token, room, bob.user.username);
    const [{ channel: cb }] = await joinedAs(topic, bob);

    // carol is not a member: the join is refused, so she has no channel to react on.
    const carolSocket = await server.connect(carol.token);
    await assert.rejects(joinChannel(carolSocket, topic), (e) => e.response?.reason === "unauthorized");
    const carolLobby = collect((await join(carolSocket, "room:lobby")).channel, "reaction");

    // A raw react on the unjoined topic is answered "unmatched topic" and stores nothing.
    const raw = server.raw({ token: carol.token, vsn: "2.0.0" });
    await raw.opened;
    raw.send([null, "9", topic, "react", { seq: 1, emoji: "👎" }]);
    const reply = await raw.reply("9");
    assert.equal(reply[3], "phx_reply");
    assert.equal(reply[4].status, "error");

    assert.equal((await push(cb, "react", { seq: 1, emoji: "🔒" })).status, "ok");
    const refused = await server.request("GET", `/api/rooms/${room}/messages`, { token: carol.token });
    assert.equal(refused.status, 403);
    assert.ok(!JSON.stringify(refused.body).includes("🔒"));
    const history = await server.messages(alice.token, room);
    assert.deepEqual(history.messages[0].reactions, { "🔒": [bob.user.id] });
    // The broadcast is queued to subscribers before the ok reply; a heartbeat
    // answered after it shows that carol's sockets got nothing of it.
    await push(cb, "react", { seq: 1, emoji: "🔒" });
    await raw.heartbeat();
    await ping(carolSocket);
    assert.equal(carolLobby.items.length, 0, JSON.stringify(carolLobby.items));
    assert.ok(!raw.frames.items.some((f) => Array.isArray(f) && f[3] === "reaction"), JSON.stringify(raw.frames.items));

    // A conversation: only the two participants.
    const conv = await server.expect(201, "POST", "/api/conversations", { token: alice.token, body: { username: bob.user.username } });
    const dm = `dm:${conv.conversation.id}`;
    const [{ channel: da }, { channel: db }] = await joinedAs(dm, alice, bob);
    const onDb = collect(db, "reaction");
    await push(da, "new_msg", { body: "psst" });
    assert.deepEqual(await push(da, "react", { seq: 1, emoji: "🤫" }), { status: "ok", response: { on: true } });
    assert.deepEqual((await onDb.count(1))[0], { seq: 1, emoji: "🤫", user_id: alice.user.id, on: true });
    await assert.rejects(joinChannel(await server.connect(carol.token), dm));
  });
});

describe("reactions rate limit", () => {
  let alice;
  const server = suiteServer(
    { name: "reactions-rate", env: { CONFAB_PUSH_BURST: "5", CONFAB_PUSH_REFILL_PER_SEC: "1" } },
    1,
    (...users) => ([alice] = users),
  );

  test("react pushes share the push bucket: a burst is partly rate_limited, and refused ones store nothing", async () => {
    const room = (await server.createRoom(alice.token)).name;
    await server.postMessage(alice.token, room, "target");
    const { channel } = await join(await server.connect(alice.token), `room:${room}`);
    const emoji = Array.from({ length: 10 }, (_, i) => String.fromCodePoint(0x1f600 + i));
    const results = await Promise.all(emoji.map((e) => push(channel, "react", { seq: 1, emoji: e })));
    const limited = results.filter((r) => r.status === "error" && r.response.reason === "rate_limited");
    const ok = results.filter((r) => r.status === "ok");
    assert.ok(limited.length >= 1, JSON.stringify(results));
    assert.equal(ok.length + limited.length, 10, JSON.stringify(results));
    const { messages } = await server.messages(alice.token, room);
    assert.equal(Object.keys(messages[0].reactions).length, ok.length);
  });
});
