// Ignores (api.md §2 `/api/me/ignores`): messages and typing from ignored
// users are not delivered to the ignorer — on sockets already open when the
// ignore is set, and on sockets opened later — while everyone else still
// gets them; removing the ignore restores delivery at once.
//
// "Not delivered" is checked with barriers, not waits: per topic, broadcasts
// reach a socket in order, so once a later message from a third user has
// arrived, anything from the ignored user before it would have too.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { collect, join, push, suiteServer, unique } from "../harness.mjs";

describe("ignores", () => {
  const server = suiteServer({ name: "ignores" });

  /** A socket of `who` joined to `topic`, collecting new_msg, typing and msg_updated. */
  async function listener(who, topic) {
    const socket = await server.connect(who.token);
    const { channel } = await join(socket, topic);
    return {
      socket,
      channel,
      msgs: collect(channel, "new_msg"),
      typing: collect(channel, "typing"),
      updates: collect(channel, "msg_updated"),
    };
  }

  const bodies = (collector) => collector.items.map((m) => m.body);
  const fromUser = (collector, user) => collector.items.filter((m) => (m.user?.id ?? m.user) === user.user.id);

  test("PUT, GET and DELETE /api/me/ignores; errors", async () => {
    const me = await server.register();
    const other = await server.register();
    const third = await server.register();

    assert.deepEqual(await server.expect(200, "GET", "/api/me/ignores", { token: me.token }), { ignores: [] });
    const put = await server.request("PUT", `/api/me/ignores/${other.user.username}`, { token: me.token });
    assert.equal(put.status, 204, JSON.stringify(put.body));
    await server.expect(204, "PUT", `/api/me/ignores/${other.user.username}`, { token: me.token }); // idempotent
    await server.expect(204, "PUT", `/api/me/ignores/${third.user.username}`, { token: me.token });

    const { ignores } = await server.expect(200, "GET", "/api/me/ignores", { token: me.token });
    assert.deepEqual(ignores.map((u) => u.username).sort(), [other.user.username, third.user.username].sort());
    const listed = ignores.find((u) => u.id === other.user.id);
    assert.equal(listed.username, other.user.username);
    assert.equal(listed.display_name, other.user.display_name);
    assert.equal("password_hash" in listed, false);

    // Per user: the ignored side's list is unaffected.
    assert.deepEqual(await server.expect(200, "GET", "/api/me/ignores", { token: other.token }), { ignores: [] });

    await server.expect(204, "DELETE", `/api/me/ignores/${third.user.username}`, { token: me.token });
    assert.deepEqual(
      (await server.expect(200, "GET", "/api/me/ignores", { token: me.token })).ignores.map((u) => u.username),
      [other.user.username],
    );

    assert.equal((await server.request("PUT", `/api/me/ignores/${unique("nobody")}`, { token: me.token })).status, 404);
    assert.equal((await server.request("PUT", `/api/me/ignores/${me.user.username}`, { token: me.token })).status, 422);
    assert.equal((await server.request("PUT", `/api/me/ignores/${other.user.username}`)).status, 401);
    assert.equal((await server.request("GET", "/api/me/ignores")).status, 401);
  });

  test("an ignored user's messages and typing reach neither an already-open nor a new socket of the ignorer; others get them; DELETE restores delivery", async () => {
    const topic = "room:lobby";
    const a = await server.register(unique("a"));
    const b = await server.register(unique("b"));
    const c = await server.register(unique("c"));
    const d = await server.register(unique("d"));

    const aSock = await server.connect(a.token);
    const { channel: ca } = await join(aSock, topic);
    const b1 = await listener(b, topic); // open before the ignore
    const cl = await listener(c, topic);
    const dSock = await server.connect(d.token);
    const { channel: cd } = await join(dSock, topic);

    await server.expect(204, "PUT", `/api/me/ignores/${a.user.username}`, { token: b.token });
    const b2 = await listener(b, topic); // opened after the ignore

    // A speaks over the socket and over REST, and types.
    assert.equal((await push(ca, "new_msg", { body: "a: socket" })).status, "ok");
    await server.postMessage(a.token, "lobby", "a: rest");
    ca.push("typing", {});
    // C is the witness that all three were broadcast.
    await cl.msgs.until((items) => bodies(cl.msgs).includes("a: socket") && bodies(cl.msgs).includes("a: rest"), 5000, "a's messages at c");
    await cl.typing.until((items) => items.some((t) => t.user.id === a.user.id), 5000, "a's typing at c");
    assert.deepEqual(Object.keys(cl.typing.items[0].user).sort(), ["display_name", "id", "username"]);

    // Barrier: a later message from D reaches both of B's sockets.
    assert.equal((await push(cd, "new_msg", { body: "d: after" })).status, "ok");
    for (const [label, l] of [["b's open socket", b1], ["b's new socket", b2]]) {
      await l.msgs.until((items) => items.some((m) => m.body === "d: after"), 5000, `d's message at ${label}`);
      assert.deepEqual(fromUser(l.msgs, a), [], `${label}: no message from the ignored user`);
      assert.deepEqual(
        l.typing.items.filter((t) => t.user.id === a.user.id),
        [],
        `${label}: no typing from the ignored user`,
      );
    }

    // Unignore: the same open sockets get A's next message and typing.
    await server.expect(204, "DELETE", `/api/me/ignores/${a.user.username}`, { token: b.token });
    assert.deepEqual((await server.expect(200, "GET", "/api/me/ignores", { token: b.token })).ignores, []);
    assert.equal((await push(ca, "new_msg", { body: "a: again" })).status, "ok");
    for (const l of [b1, b2]) await l.msgs.until((items) => items.some((m) => m.body === "a: again"), 5000, "a's message after unignore");
    // Typing is throttled per channel: a fresh channel of A types again.
    const aSock2 = await server.connect(a.token);
    const { channel: ca2 } = await join(aSock2, topic);
    ca2.push("typing", {});
    for (const l of [b1, b2]) await l.typing.until((items) => items.some((t) => t.user.id === a.user.id), 5000, "a's typing after unignore");
  });

  test("ignoring is one-way and per ignorer: the ignored user still gets the ignorer's messages", async () => {
    const room = (await server.createRoom((await server.register()).token)).name;
    const topic = `room:${room}`;
    const a = await server.register();
    const b = await server.register();
    await server.expect(204, "PUT", `/api/me/ignores/${a.user.username}`, { token: b.token });
    const al = await listener(a, topic);
    const bl = await listener(b, topic);
    await server.postMessage(b.token, room, "b speaks");
    await server.postMessage(a.token, room, "a speaks");
    await server.postMessage(b.token, room, "b again");
    await al.msgs.until((items) => items.length === 3, 5000, "all three at a");
    assert.deepEqual(bodies(al.msgs), ["b speaks", "a speaks", "b again"]);
    await bl.msgs.until((items) => items.some((m) => m.body === "b again"), 5000, "b's own messages at b");
    assert.deepEqual(bodies(bl.msgs), ["b speaks", "b again"]);
  });

  test("in a direct conversation too, the ignored side's messages are not delivered", async () => {
    const a = await server.register();
    const b = await server.register();
    const res = await server.request("POST", "/api/conversations", { token: a.token, body: { username: b.user.username } });
    const topic = res.body.conversation.topic;
    const id = res.body.conversation.id;
    await server.expect(204, "PUT", `/api/me/ignores/${a.user.username}`, { token: b.token });
    const al = await listener(a, topic);
    const bl = await listener(b, topic);
    await server.expect(201, "POST", `/api/conversations/${id}/messages`, { token: a.token, body: { body: "psst" } });
    // Barrier: B's own later message (broadcasts reach the sender's sockets too).
    await server.expect(201, "POST", `/api/conversations/${id}/messages`, { token: b.token, body: { body: "b here" } });
    await bl.msgs.until((items) => items.some((m) => m.body === "b here"), 5000, "b's own message");
    assert.deepEqual(bodies(bl.msgs), ["b here"]);
    await al.msgs.until((items) => items.length === 2, 5000, "both at a");
  });

  test("an ignored user's edits are not delivered to the ignorer either (msg_updated carries the message body)", async () => {
    const room = (await server.createRoom((await server.register()).token)).name;
    const topic = `room:${room}`;
    const a = await server.register();
    const b = await server.register();
    const c = await server.register();
    const aSock = await server.connect(a.token);
    const { channel: ca } = await join(aSock, topic);
    const posted = await push(ca, "new_msg", { body: "original" });
    assert.equal(posted.status, "ok");
    await server.expect(204, "PUT", `/api/me/ignores/${a.user.username}`, { token: b.token });
    const bl = await listener(b, topic);
    const cl = await listener(c, topic);

    const edited = await push(ca, "edit_msg", { seq: posted.response.seq, body: "edited secret" });
    assert.equal(edited.status, "ok", JSON.stringify(edited.response));
    await cl.updates.until((items) => items.some((m) => m.body === "edited secret"), 5000, "the edit at c");
    // Barrier: C's later message reaches B.
    await server.postMessage(c.token, room, "c after the edit");
    await bl.msgs.until((items) => items.some((m) => m.body === "c after the edit"), 5000, "c's message at b");
    assert.deepEqual(
      bl.updates.items.map((m) => m.body),
      [],
      "b got the ignored user's edited message body",
    );
  });
});
