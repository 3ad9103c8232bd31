// Presence with clients on different nodes (api.md §3, §6): every node
// shows the same list; a user's sockets on two nodes are one key with two
// metas; a joiner's presence_state (after its join reply) carries the
// metas of other nodes, later changes come as presence_diff broadcasts;
// closed sockets leave everywhere; a node that stops or dies takes its
// presences with it, and they come back when its clients reconnect.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Collector, join, unique } from "../harness.mjs";
import { countsOf, joinWatched, openTracked, refsOf } from "../presence-helpers.mjs";
import { suiteCluster } from "../cluster.mjs";

function assertMeta(meta, user, what) {
  assert.deepEqual(
    Object.keys(meta).sort(),
    ["display_name", "online_at", "phx_ref", "username"],
    `${what}: meta keys ${JSON.stringify(meta)}`,
  );
  assert.equal(typeof meta.phx_ref, "string", what);
  assert.ok(meta.phx_ref.length > 0, what);
  assert.ok(Number.isInteger(meta.online_at), `${what}: online_at ${meta.online_at}`);
  assert.ok(Math.abs(meta.online_at - Date.now()) < 60_000, `${what}: online_at is now-ish: ${meta.online_at}`);
  assert.equal(meta.username, user.username, what);
  assert.equal(meta.display_name, user.display_name, what);
}

describe("cluster: presence", () => {
  let alice;
  let bob;
  let carol;
  const cluster = suiteCluster({ name: "presence" }, 3, (...users) => ([alice, bob, carol] = users));
  const node = (i) => cluster.nodes[i];

  /** A watcher (phoenix Presence) of `who` on `topic` on every node. */
  async function watchersOn(topic, who) {
    const watchers = [];
    for (let i = 0; i < 3; i++) watchers.push((await joinWatched(await node(i).connect(who.token), topic)).watch);
    return watchers;
  }

  /** Resolves once `pred` holds on the view of every watcher; returns the views. */
  function everywhere(watchers, pred, what) {
    return Promise.all(watchers.map((w, i) => w.until(pred, 5000, `${what} on node ${i + 1}`)));
  }

  test("a user's sockets on two nodes: one key with two metas on every node; a joiner's presence_state carries them; closes leave everywhere", async () => {
    const room = (await node(0).createRoom(bob.token)).name;
    const topic = `room:${room}`;
    const A = String(alice.user.id);
    const B = String(bob.user.id);
    const watchers = await watchersOn(topic, bob);

    const a1 = await node(0).connect(alice.token);
    await join(a1, topic);
    const a2 = await node(1).connect(alice.token);
    await join(a2, topic);

    const views = await everywhere(watchers, (v) => v[A]?.length === 2 && v[B]?.length === 3, "alice x2, bob x3");
    for (const [i, view] of views.entries()) {
      for (const meta of view[A]) assertMeta(meta, alice.user, `node ${i + 1}: alice's meta`);
      for (const meta of view[B]) assertMeta(meta, bob.user, `node ${i + 1}: bob's meta`);
      assert.deepEqual(Object.keys(view).sort(), [A, B].sort(), `node ${i + 1}: the keys`);
    }
    const aliceRefs = views[0][A].map((m) => m.phx_ref).sort();
    assert.notEqual(aliceRefs[0], aliceRefs[1], "each socket has its own phx_ref");
    for (const [i, view] of views.entries()) {
      assert.deepEqual(refsOf(view), refsOf(views[0]), `node ${i + 1} lists the same metas as node 1`);
      assert.deepEqual(
        view[A].map((m) => m.online_at).sort(),
        views[0][A].map((m) => m.online_at).sort(),
        `node ${i + 1}: the metas are copied unchanged`,
      );
    }

    // A raw client joining on node 3: the reply, then presence_state (with
    // the join's ref) holding the metas of nodes 1 and 2, then diffs only.
    const raw = await openTracked(node(2), carol.token, "carol@3");
    const { joinRef } = await raw.join(topic);
    const C = String(carol.user.id);
    const initial = await raw.until(topic, (v) => v[A]?.length === 2 && v[C]?.length === 1, 5000, "the state");
    const frames = raw.framesOf(topic);
    const replyAt = frames.findIndex((e) => e.frame[3] === "phx_reply" && e.frame[1] === joinRef);
    const stateAt = frames.findIndex((e) => e.frame[3] === "presence_state");
    assert.ok(replyAt >= 0 && stateAt > replyAt, "presence_state after the join reply");
    assert.equal(frames[stateAt].frame[0], joinRef, "presence_state carries the join's ref");
    const state = frames[stateAt].frame[4];
    assert.deepEqual(state[A].metas.map((m) => m.phx_ref).sort(), aliceRefs, "alice's metas from nodes 1 and 2 in the state");
    assert.equal(state[B].metas.length, 3, "bob's metas from all three nodes in the state");
    assert.deepEqual(refsOf(initial).filter((r) => !refsOf(views[0]).includes(r)).length, 1, "plus carol's own");

    // Alice closes her socket on node 1: only that meta leaves, everywhere.
    a1.disconnect();
    const afterOne = await everywhere(watchers, (v) => v[A]?.length === 1, "alice x1");
    const left = aliceRefs.filter((r) => r !== afterOne[0][A][0].phx_ref);
    assert.equal(left.length, 1, "one of alice's two metas left");
    for (const [i, view] of afterOne.entries()) {
      assert.equal(view[A][0].phx_ref, afterOne[0][A][0].phx_ref, `node ${i + 1} kept the same meta`);
    }
    // The raw client got it as a diff broadcast that leaves that meta.
    await raw.until(topic, (v) => v[A]?.length === 1, 5000, "alice x1 on the raw client");
    const diffs = raw.framesOf(topic).filter((e) => e.frame[3] === "presence_diff");
    const leaving = diffs.find((e) => (e.frame[4].leaves[A]?.metas ?? []).some((m) => m.phx_ref === left[0]));
    assert.ok(leaving, `a presence_diff leaving ${left[0]}: ${JSON.stringify(diffs.map((e) => e.frame))}`);
    assert.equal(leaving.frame[0], null, "diffs are broadcasts (join_ref null)");
    assert.ok(diffs.every((e) => raw.log.indexOf(e) > raw.log.indexOf(frames[stateAt])), "no diff before the state");

    // Her last socket (node 2) closes: the key leaves every node.
    a2.disconnect();
    await everywhere(watchers, (v) => !(A in v) && v[B]?.length === 3 && v[C]?.length === 1, "alice gone");
  });

  test("users joining and leaving on different nodes at once: every node ends with the same exact list", async () => {
    const room = (await node(0).createRoom(bob.token)).name;
    const topic = `room:${room}`;
    const watchers = await watchersOn(topic, bob);
    const users = [];
    for (let u = 0; u < 4; u++) users.push(await node(u % 3).register(unique("p")));
    // Two sockets per user on two different nodes, all joining at once.
    const sockets = await Promise.all(
      users.flatMap((u, n) => [0, 1].map((k) => node((n + k) % 3).connect(u.token))),
    );
    await Promise.all(sockets.map((s) => join(s, topic)));
    // Then half leave at once (the second socket of every user, and both of user 0).
    const leaving = sockets.filter((_, n) => n % 2 === 1 || n < 2);
    for (const s of leaving) s.disconnect();
    const expected = { [String(bob.user.id)]: 3 };
    for (const [n, u] of users.entries()) if (n > 0) expected[String(u.user.id)] = 1;
    const sorted = Object.fromEntries(Object.entries(expected).sort(([a], [b]) => a.localeCompare(b)));
    const views = await everywhere(
      watchers,
      (v) => JSON.stringify(countsOf(v)) === JSON.stringify(sorted),
      `the list ${JSON.stringify(sorted)}`,
    );
    for (const view of views) assert.deepEqual(refsOf(view), refsOf(views[0]), "the same metas on every node");
  });

  test("a node that stops takes its presences away from the others; they come back when its clients reconnect to it", async (t) => {
    const room = (await node(0).createRoom(bob.token)).name;
    const topic = `room:${room}`;
    const A = String(alice.user.id);
    const C = String(carol.user.id);
    const { watch: on1 } = await joinWatched(await node(0).connect(bob.token), topic);
    const { watch: on2 } = await joinWatched(await node(1).connect(bob.token), topic);
    // Alice on node 3 (her phoenix socket reconnects and rejoins by itself), carol on node 2.
    const aliceSocket = await node(2).connect(alice.token);
    const opens = new Collector("alice's reconnects");
    aliceSocket.onOpen(() => opens.add(Date.now()));
    await join(aliceSocket, topic);
    await join(await node(1).connect(carol.token), topic);
    await Promise.all([on1, on2].map((w) => w.until((v) => v[A]?.length === 1 && v[C]?.length === 1, 5000, "alice and carol")));

    // SIGTERM: node 3 closes its sockets and says goodbye.
    let stoppedAt = Date.now();
    await node(2).stop();
    await Promise.all([on1, on2].map((w) => w.until((v) => !(A in v) && v[C]?.length === 1, 5000, "alice gone after the stop")));
    t.diagnostic(`after SIGTERM alice left within ${Date.now() - stoppedAt} ms`);
    await cluster.restart(2);
    await opens.count(1, 10000);
    await Promise.all([on1, on2].map((w) => w.until((v) => v[A]?.length === 1, 5000, "alice back after the restart")));

    // SIGKILL: no goodbye; the others notice the silence (5 missed heartbeats).
    stoppedAt = Date.now();
    await node(2).kill();
    await Promise.all([on1, on2].map((w) => w.until((v) => !(A in v) && v[C]?.length === 1, 4000, "alice gone after the kill (5 missed heartbeats: 1 s)")));
    const took = Date.now() - stoppedAt;
    t.diagnostic(`after SIGKILL alice left within ${took} ms`);
    await cluster.restart(2);
    await opens.count(2, 10000);
    const back = await Promise.all([on1, on2].map((w) => w.until((v) => v[A]?.length === 1, 5000, "alice back after the kill")));
    assert.deepEqual(refsOf(back[0]), refsOf(back[1]));
  });
});
