// Changes made on one node that act on sockets of other nodes (api.md §2
// tokens, §3, §6): a password change or a logout closes the affected
// sockets wherever they are (and only those), removal from a private room
// ejects the member's channels on every node, and an ignore set on one
// node filters what the ignorer's sockets on another node receive.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DEADLINE_MS, collect, join, joinChannel, ping, push, unique, withDeadline } from "../harness.mjs";
import { channelClosed, joinWatched } from "../presence-helpers.mjs";
import { suiteCluster } from "../cluster.mjs";

const PASSWORD = "correct horse battery";

describe("cluster: sessions and membership", () => {
  const cluster = suiteCluster({ name: "sessions" });
  const node = (i) => cluster.nodes[i];

  /** A raw V2 socket of `token` on node `i`, joined to `topic`. */
  async function rawOn(i, token, topic) {
    const raw = node(i).raw({ token, vsn: "2.0.0" });
    await withDeadline(raw.opened, DEADLINE_MS, `a socket on node ${i + 1} to open`, node(i));
    const { joinRef, reply } = await raw.join(topic);
    assert.equal(reply[4].status, "ok", JSON.stringify(reply));
    raw.joinRefs = { [topic]: joinRef };
    return raw;
  }

  /** A close frame from the server for forced disconnects: never 1000, never a dropped connection. */
  function assertForcedClose({ code }, what) {
    assert.notEqual(code, 1000, `${what}: not 1000 (clients would not reconnect)`);
    assert.ok(code !== 1005 && code !== 1006, `${what}: a close frame with a code, got ${code}`);
  }

  async function login(who) {
    const body = await node(0).expect(200, "POST", "/api/login", { body: { username: who.user.username, password: PASSWORD } });
    return body.token;
  }

  test("a password change on node 1 closes the user's sockets on nodes 2 and 3 at once; presence leaves; the old token is refused on every node", async () => {
    const carol = await node(0).register(unique("carol"));
    const dave = await node(0).register(unique("dave"));
    const room = (await node(0).createRoom(dave.token)).name;
    const topic = `room:${room}`;
    const C = String(carol.user.id);
    const { channel: daves, watch } = await joinWatched(await node(0).connect(dave.token), topic);
    const on2 = await rawOn(1, carol.token, topic);
    const on3 = await rawOn(2, carol.token, topic);
    await watch.until((v) => v[C]?.length === 2, DEADLINE_MS, "carol's two sockets present");

    const changed = await node(0).request("PATCH", "/api/me", {
      token: carol.token,
      body: { password: { current: PASSWORD, new: "a brand new password" } },
    });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    const fresh = changed.body.token;
    assert.equal(typeof fresh, "string");

    const [closed2, closed3] = await Promise.all([
      withDeadline(on2.closed, DEADLINE_MS, "carol's socket on node 2 to close", node(1)),
      withDeadline(on3.closed, DEADLINE_MS, "carol's socket on node 3 to close", node(2)),
    ]);
    assertForcedClose(closed2, "node 2");
    assertForcedClose(closed3, "node 3");
    assert.equal(closed2.code, closed3.code, "the same close code on both nodes");
    await watch.until((v) => !(C in v), DEADLINE_MS, "carol's presence to leave");

    for (let i = 0; i < 3; i++) {
      assert.equal(await node(i).refusedStatus({ token: carol.token, vsn: "2.0.0" }), 403, `the old token on node ${i + 1}`);
    }
    // The fresh token works on another node; dave was never disturbed.
    const again = await node(2).connect(fresh);
    const { channel } = await join(again, topic);
    assert.equal((await push(channel, "new_msg", { body: "back" })).status, "ok");
    assert.equal((await push(daves, "new_msg", { body: "dave" })).status, "ok");
    assert.equal(daves.state, "joined");
  });

  test("a logout on node 1 closes only the socket opened with that token (node 2), not the user's other session (node 3)", async () => {
    const erin = await node(0).register(unique("erin"));
    const owner = await node(0).register(unique("owner"));
    // A private room of the owner's with erin, to follow the other session (below).
    const privateRoom = (await node(0).createRoom(owner.token, unique("priv"), true)).name;
    await node(0).addMember(owner.token, privateRoom, erin.user.username);
    const first = await login(erin);
    const second = await login(erin);
    const on2 = await rawOn(1, first, "room:lobby");
    const on3 = await rawOn(2, second, "room:lobby");
    const { joinRef } = await on3.join(`room:${privateRoom}`);

    await node(0).expect(204, "POST", "/api/logout", { token: first });
    assertForcedClose(await withDeadline(on2.closed, DEADLINE_MS, "the logged-out socket on node 2 to close", node(1)), "node 2");
    for (let i = 0; i < 3; i++) {
      assert.equal(await node(i).refusedStatus({ token: first, vsn: "2.0.0" }), 403, `the logged-out token on node ${i + 1}`);
    }

    // Barrier for node 3: a later change from node 1 (erin's removal from
    // the private room) reaches her socket there after the logout's re-check.
    await node(0).removeMember(owner.token, privateRoom, erin.user.username);
    await on3.frames.find(
      (f) => Array.isArray(f) && f[2] === `room:${privateRoom}` && f[3] === "phx_close" && f[0] === joinRef,
      DEADLINE_MS,
      "the phx_close of the private room on node 3",
    );
    const beat = await on3.heartbeat();
    assert.equal(beat[4].status, "ok", "the other session's socket is still open");
    const ref = on3.nextRef();
    on3.send([on3.joinRefs["room:lobby"], ref, "room:lobby", "new_msg", { body: "still here" }]);
    const reply = await on3.reply(ref);
    assert.equal(reply[4].status, "ok", JSON.stringify(reply));
  });

  test("removal from a private room on node 1 ejects the member's channels on nodes 2 and 3 (phx_close, not an error); the owner's stays; rejoins are refused", async () => {
    const owner = await node(0).register(unique("owner"));
    const bob = await node(0).register(unique("bob"));
    const room = (await node(0).createRoom(owner.token, unique("priv"), true)).name;
    const topic = `room:${room}`;
    await node(0).addMember(owner.token, room, bob.user.username);

    const b2 = await node(1).connect(bob.token);
    const b3 = await node(2).connect(bob.token);
    const { channel: on2 } = await join(b2, topic);
    const { channel: on3 } = await join(b3, topic);
    const { channel: personal } = await join(b3, `user:${bob.user.id}`);
    const removed = collect(personal, "room_removed");
    const errors = [];
    for (const c of [on2, on3]) c.onError((e) => errors.push(e));
    const closes = [channelClosed(on2), channelClosed(on3)];
    const { channel: owners } = await join(await node(2).connect(owner.token), topic);
    const ownersMessages = collect(owners, "new_msg");

    await node(0).removeMember(owner.token, room, bob.user.username);
    await Promise.all(closes);
    assert.equal(on2.state, "closed");
    assert.equal(on3.state, "closed");
    assert.deepEqual(errors, [], "removal is a close, not an error");
    assert.deepEqual((await removed.count(1))[0], { room: { name: room, topic } });

    await node(0).postMessage(owner.token, room, "members only");
    await ownersMessages.count(1);
    assert.equal(owners.state, "joined", "the owner's channel on node 3 stays joined");
    for (const socket of [b2, b3]) {
      await assert.rejects(joinChannel(socket, topic), (err) => {
        assert.deepEqual(err.response, { reason: "unauthorized" });
        return true;
      });
    }
    const history = await node(1).request("GET", `/api/rooms/${room}/messages`, { token: bob.token });
    assert.equal(history.status, 403);
  });

  test("an ignore set on node 1 reaches the ignorer's open socket on node 2: messages and typing from node 3 are filtered; removing it on node 3 restores them", async (t) => {
    const a = await node(0).register(unique("a"));
    const b = await node(0).register(unique("b"));
    const d = await node(0).register(unique("d"));
    const room = (await node(0).createRoom(a.token)).name;
    const topic = `room:${room}`;
    const bSocket = await node(1).connect(b.token);
    const { channel: cb } = await join(bSocket, topic);
    const got = collect(cb, "new_msg");
    const typing = collect(cb, "typing");
    // d, on the same node as b, ignores no one: once a broadcast reached
    // d's socket, node 2 has handed it to b's socket too, and b's next
    // heartbeat reply comes after it.
    const { channel: cd } = await join(await node(1).connect(d.token), topic);
    const dGot = collect(cd, "new_msg");
    const dTyping = collect(cd, "typing");
    const { channel: ca } = await join(await node(2).connect(a.token), topic);

    /** a posts `body` on node 3; resolves with whether b's socket on node 2 got it. */
    async function reachedB(body) {
      assert.equal((await push(ca, "new_msg", { body })).status, "ok");
      await dGot.find((m) => m.body === body, DEADLINE_MS, body);
      await ping(bSocket);
      return got.items.some((m) => m.body === body);
    }

    assert.equal(await reachedB("before"), true, "delivered before the ignore");
    await node(0).expect(204, "PUT", `/api/me/ignores/${a.user.username}`, { token: b.token });
    // The ignore travels on the bus beside the room's broadcasts from node
    // 3, with no order between them: it takes effect within a few rounds.
    let round = 0;
    while (await reachedB(`a${++round}`)) assert.ok(round < 50, "the ignore never took effect on node 2");
    t.diagnostic(`the ignore took effect on node 2 by round ${round}`);

    const filteredFrom = got.items.length;
    ca.push("typing", {});
    await dTyping.count(1);
    assert.equal(await reachedB("ignored"), false);
    assert.deepEqual(got.items.slice(filteredFrom), [], "nothing of the ignored user's after the filter took effect");
    assert.deepEqual(typing.items, [], "no typing from the ignored user");

    await node(2).expect(204, "DELETE", `/api/me/ignores/${a.user.username}`, { token: b.token });
    round = 0;
    while (!(await reachedB(`back${++round}`))) assert.ok(round < 50, "the removal never took effect on node 2");
  });
});
