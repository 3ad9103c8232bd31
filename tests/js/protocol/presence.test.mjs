// Presence (api.md §3, phoenix-protocol.md §5): key = user id, one meta per
// socket {phx_ref, online_at, username, display_name}; several tabs are one
// key with several metas; closed, dropped, idle and ejected sockets leave;
// `presence_state` follows every join reply (with the channel's join_ref)
// before any diff reaches the client; under churn every view converges to
// the truth with no ghosts.
//
// Barrier used throughout instead of settling delays: the server publishes
// presence in one diff per topic per flush, and a flush takes every change
// pending at that moment. So once a socket has seen a marker join that was
// made after everything else was acknowledged, it has seen every earlier
// change too.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DEADLINE_MS, join, joinChannel, suiteServer, unique, withDeadline } from "../harness.mjs";
import {
  TrackedRaw,
  channelClosed,
  countsOf,
  joinWatched,
  openTracked,
  refsOf,
  rng,
  sortedCounts,
  watchPresence,
} from "../presence-helpers.mjs";

/** Where the refs that differ between `have` and `want` came from in `client`'s frames of `topic`. */
function explain(client, topic, have, want) {
  const extra = have.filter((r) => !want.includes(r));
  const missing = want.filter((r) => !have.includes(r));
  const lines = [`extra refs ${JSON.stringify(extra)}, missing refs ${JSON.stringify(missing)}; frames of ${topic}:`];
  for (const { i, frame } of client.framesOf(topic)) {
    const text = JSON.stringify(frame);
    const kind = frame[3];
    const mentioned = [...extra, ...missing].filter((r) => text.includes(`"${r}"`));
    if (kind === "phx_reply" || kind === "phx_close" || kind === "presence_state" || mentioned.length) {
      const short =
        kind === "presence_state"
          ? `["${frame[0]}",null,"${topic}","presence_state",{…with ${JSON.stringify(mentioned)}…}]`
          : text.slice(0, 300);
      lines.push(`  #${i} ${short}`);
    }
  }
  return lines.slice(0, 80).join("\n");
}

/** The client-side state of a tracked raw socket, for failure messages. */
function socketState(client, topic) {
  const sock = client.raw.ws._socket;
  const model = client.topics.get(topic);
  const last = client.log.slice(-6).map((e) => JSON.stringify(e.frame).slice(0, 200));
  return (
    `socket: paused=${sock.isPaused()} readyState=${client.raw.ws.readyState} ` +
    `joinRef=${model?.joinRef} presenceRef=${model?.presenceRef} queued=${model?.pending.length}\n` +
    `last frames:\n${last.join("\n")}`
  );
}

function assertMeta(meta, user, what) {
  assert.deepEqual(
    Object.keys(meta).sort(),
    ["display_name", "online_at", "phx_ref", "username"],
    `${what}: meta keys ${JSON.stringify(meta)}`,
  );
  assert.equal(typeof meta.phx_ref, "string", what);
  assert.ok(meta.phx_ref.length > 0, what);
  assert.ok(Number.isInteger(meta.online_at), `${what}: online_at is an integer: ${meta.online_at}`);
  assert.ok(
    Math.abs(meta.online_at - Date.now()) < 60_000,
    `${what}: online_at is ms since the epoch, now-ish: ${meta.online_at} vs ${Date.now()}`,
  );
  assert.equal(meta.username, user.username, what);
  assert.equal(meta.display_name, user.display_name, what);
}

describe("presence: tabs, closed and dropped sockets", () => {
  const TIMEOUT_S = 2;
  let alice;
  let bob;
  const server = suiteServer(
    { name: "presence-idle", env: { CONFAB_HEARTBEAT_TIMEOUT_SECS: String(TIMEOUT_S) } },
    2,
    (...users) => ([alice, bob] = users),
  );
  // Phoenix sockets must heartbeat well within the short server timeout.
  const fast = { heartbeatIntervalMs: 400 };

  test("two sockets of one user: one key, two metas; a closed socket's meta leaves; a silent socket leaves within the heartbeat timeout", async () => {
    const topic = "room:lobby";
    const A = String(alice.user.id);
    const B = String(bob.user.id);

    const b = await server.connect(bob.token, fast);
    const { watch } = await joinWatched(b, topic);

    const a1 = await server.connect(alice.token, fast);
    await join(a1, topic);
    // Alice's second socket is raw, kept alive by heartbeats until it "freezes".
    const a2 = await openTracked(server, alice.token, "alice#2");
    let lastFrameAt = Date.now();
    const beat = setInterval(() => {
      lastFrameAt = Date.now();
      a2.raw.send([null, a2.raw.nextRef(), "phoenix", "heartbeat", {}]);
    }, 300);
    try {
      lastFrameAt = Date.now();
      await a2.join(topic);

      const both = await watch.until((v) => v[A]?.length === 2 && v[B]?.length === 1, 5000, "alice x2 and bob x1");
      for (const meta of both[A]) assertMeta(meta, alice.user, "alice's meta");
      assertMeta(both[B][0], bob.user, "bob's meta");
      const aliceRefs = both[A].map((m) => m.phx_ref);
      assert.notEqual(aliceRefs[0], aliceRefs[1], "each socket has its own phx_ref");
      assert.ok(!aliceRefs.includes(both[B][0].phx_ref));
      assert.deepEqual(Object.keys(both).filter((k) => k === A).length, 1, "alice is one key");

      // Alice's own sockets see the same two metas under one key.
      const own = await a2.until(topic, (v) => v[A]?.length === 2, 5000, "alice#2 sees both of alice's metas");
      assert.deepEqual(own[A].map((m) => m.phx_ref).sort(), [...aliceRefs].sort());

      // Closing one tab: a diff leaves only that socket's meta.
      a1.disconnect();
      const one = await watch.until((v) => v[A]?.length === 1 && v[B]?.length === 1, 5000, "alice x1");
      assert.ok(aliceRefs.includes(one[A][0].phx_ref), "the remaining meta is one of alice's two");
      const a2Ref = one[A][0].phx_ref;

      // The last socket goes silent without a close frame: the process
      // freezes (no heartbeats, reads paused).
      clearInterval(beat);
      const silentSince = lastFrameAt;
      a2.raw.ws._socket.pause();
      const gone = await watch.until((v) => !(A in v), TIMEOUT_S * 2000 + 500, "alice to leave after the heartbeat timeout");
      const tookMs = Date.now() - silentSince;
      assert.ok(
        tookMs >= TIMEOUT_S * 1000 - 300,
        `the silent socket left after ${tookMs} ms, before the ${TIMEOUT_S} s timeout (it was not idle)`,
      );
      assert.equal(gone[B]?.length, 1, "bob stays");
      assert.ok(!refsOf(gone).includes(a2Ref));
    } finally {
      clearInterval(beat);
    }
  });

  test("a socket whose TCP connection is cut without a close frame leaves presence", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const A = String(alice.user.id);
    const b = await server.connect(bob.token, fast);
    const { watch } = await joinWatched(b, topic);
    const a = await openTracked(server, alice.token, "alice");
    await a.join(topic);
    await watch.until((v) => v[A]?.length === 1, 5000, "alice present");
    a.raw.ws._socket.destroy();
    await watch.until((v) => !(A in v), TIMEOUT_S * 2000, "alice to leave after her TCP connection was cut");
  });
});

describe("presence", () => {
  let owner;
  const server = suiteServer({ name: "presence", env: { CONFAB_MAX_SOCKETS_PER_USER: "20" } }, 1, (...users) => ([owner] = users));

  /** A fresh user whose phoenix socket joins `topic`; resolves once its own diff came back to it. */
  async function marker(topic) {
    const user = await server.register(unique("mk"));
    const socket = await server.connect(user.token);
    const joining = joinChannel(socket, topic);
    const diffs = [];
    joining.channel.on("presence_diff", (d) => diffs.push(d));
    const watch = watchPresence(joining.channel);
    await joining;
    const key = String(user.user.id);
    // The flush that carries the marker's own join carries every change
    // acknowledged before it.
    await watch.syncs.until(() => diffs.some((d) => key in d.joins), 5000, "the marker's own join diff");
    return { user, key, socket, channel: joining.channel, watch };
  }

  test("presence_state follows every join reply (same join_ref) before any diff; diffs are broadcasts; views stay exact across rejoins", async () => {
    const room = (await server.createRoom(owner.token)).name;
    const topic = `room:${room}`;

    // Background churn so diffs keep flowing during the subject's joins.
    const bgUsers = [await server.register(), await server.register(), await server.register()];
    const bg = [];
    for (const [n, u] of bgUsers.entries()) {
      for (let k = 0; k < 2; k++) bg.push({ user: u, client: await openTracked(server, u.token, `bg${n}.${k}`), joined: false });
    }
    let churning = true;
    const churn = Promise.all(
      bg.map(async (s) => {
        while (churning) {
          if (s.joined) await s.client.leave(topic);
          else await s.client.join(topic);
          s.joined = !s.joined;
        }
      }),
    );

    const subjectUser = await server.register();
    const S = String(subjectUser.user.id);
    const subjects = [];
    const joinsOf = new Map(); // TrackedRaw -> [joinRef]
    let subject = null;
    const ops = ["join", "dup", "dup", "leave", "join", "dup", "reconnect", "join", "leave", "join", "dup", "leave", "join"];
    try {
      for (const op of ops) {
        if (op === "reconnect") {
          subject.raw.ws.close();
          await withDeadline(subject.raw.closed, 5000, "the subject socket to close", server);
          subject = null;
          continue;
        }
        if (!subject) {
          subject = await openTracked(server, subjectUser.token, `subject${subjects.length}`);
          subjects.push(subject);
          joinsOf.set(subject, []);
        }
        if (op === "leave") {
          await subject.leave(topic);
          continue;
        }
        const { joinRef } = await subject.join(topic);
        joinsOf.get(subject).push(joinRef);
        // Wait for this join's state and at least one later diff, so diffs
        // and states of successive joins interleave with the churn.
        const start = subject.log.length;
        await subject.updates.until(
          (items) => items.some((u) => u.topic === topic && u.kind === "diff" && u.i >= start),
          5000,
          `a diff after join ${joinRef}`,
        );
      }
    } finally {
      churning = false;
      await churn;
    }

    // Order checks on every frame each subject client received.
    let checkedJoins = 0;
    for (const s of subjects) {
      assert.deepEqual(s.problems, [], `${s.label}: presence frames outside a joined channel`);
      const frames = s.framesOf(topic);
      for (const joinRef of joinsOf.get(s)) {
        const replyAt = frames.findIndex((e) => e.frame[3] === "phx_reply" && e.frame[1] === joinRef);
        assert.ok(replyAt >= 0, `${s.label}: reply to join ${joinRef}`);
        const states = frames.filter((e) => e.frame[3] === "presence_state" && e.frame[0] === joinRef);
        assert.equal(states.length, 1, `${s.label}: exactly one presence_state for join ${joinRef}`);
        const stateAt = frames.indexOf(states[0]);
        assert.ok(stateAt > replyAt, `${s.label}: the state of join ${joinRef} comes after its reply`);
        const between = frames.slice(replyAt + 1, stateAt).filter((e) => e.frame[3] === "presence_diff");
        assert.deepEqual(between, [], `${s.label}: no diff between the reply to join ${joinRef} and its state`);
        assert.equal(states[0].frame[1], null, "presence_state is a push (ref null)");
        assert.equal(typeof states[0].frame[4], "object");
        checkedJoins += 1;
      }
      for (const e of frames.filter((e) => e.frame[3] === "presence_diff")) {
        const [jr, ref, , , payload] = e.frame;
        assert.equal(jr, null, `diffs are broadcasts (join_ref null): ${JSON.stringify(e.frame)}`);
        assert.equal(ref, null);
        assert.deepEqual(Object.keys(payload).sort(), ["joins", "leaves"], JSON.stringify(payload));
        // A diff carrying a join_ref would have to come after that join's state.
        if (jr !== null) {
          const stateAt = frames.findIndex((f) => f.frame[3] === "presence_state" && f.frame[0] === jr);
          assert.ok(stateAt >= 0 && stateAt < frames.indexOf(e), "a diff with a join_ref after its state");
        }
      }
    }
    assert.equal(checkedJoins, ops.filter((o) => o === "join" || o === "dup").length);

    // The last subject is joined: its modelled view converges to the truth.
    const expected = {};
    for (const s of bg) if (s.joined) expected[String(s.user.user.id)] = (expected[String(s.user.user.id)] || 0) + 1;
    expected[S] = 1;
    const m = await marker(topic);
    expected[m.key] = 1;
    const view = await subject.until(topic, (v) => m.key in v, 5000, "the marker in the subject's view");
    assert.deepEqual(countsOf(view), sortedCounts(expected), "the subject's view after rejoins");
    assert.deepEqual(countsOf(m.watch.view()), sortedCounts(expected), "a fresh joiner's view");
    assert.deepEqual(refsOf(view), refsOf(m.watch.view()));
  });

  test("joining again while diffs are in flight (as phoenix.js does after a join timeout) ends with the exact list: no ghost of a meta that left meanwhile", async () => {
    // phoenix.js queues every diff until the state of the channel's CURRENT
    // join ref arrives, then applies the queue after it (phoenix-protocol.md
    // §5.3). Diffs sent before a rejoin but read after it are therefore
    // applied after the new state; the list is only right if every later
    // diff reaches the socket too — including those flushed while the
    // server handles the rejoin.
    const ROUNDS = 12;
    const room = (await server.createRoom(owner.token)).name;
    const topic = `room:${room}`;
    const watcher = await openTracked(server, (await server.register()).token, "watcher");
    await watcher.join(topic);
    const partner = await server.register();
    const P = String(partner.user.id);
    const partners = [];
    for (let k = 0; k < 3; k++) partners.push(await openTracked(server, partner.token, `partner${k}`));
    const markerUser = await server.register();
    const M = String(markerUser.user.id);
    const mark = await openTracked(server, markerUser.token, "marker");
    await mark.join(topic);
    const subjects = [];
    for (let u = 0; u < 4; u++) {
      const user = await server.register();
      for (let k = 0; k < 10; k++) {
        const z = await openTracked(server, user.token, `z${u}.${k}`);
        await z.join(topic);
        subjects.push(z);
      }
    }

    for (let round = 1; round <= ROUNDS; round++) {
      // The subjects stop reading (a busy client), so the partner's join diff
      // waits unread in their sockets.
      for (const z of subjects) z.raw.ws._socket.pause();
      await Promise.all(partners.map((p) => p.join(topic)));
      await watcher.until(topic, (v) => v[P]?.length === partners.length, 5000, "the partner's joins");
      await Promise.all(partners.map((p) => p.leave(topic)));
      // Subjects join again, a few at a time until the flush carrying the
      // partner's leaves went out, then read on: the unread join diff is
      // queued behind the new join and applied after its state.
      for (let i = 0; i < subjects.length && P in watcher.view(topic); i += 4) {
        const wave = subjects.slice(i, i + 4);
        const rejoins = wave.map((z) => z.join(topic));
        for (const z of wave) z.raw.ws._socket.resume();
        await Promise.all(rejoins);
      }
      for (const z of subjects) z.raw.ws._socket.resume();

      // Barrier: a fresh meta of the marker, seen by everyone.
      const oldRef = watcher.view(topic)[M]?.[0]?.phx_ref;
      await mark.leave(topic);
      await mark.join(topic);
      const fresh = await watcher.until(
        topic,
        (v) => v[M]?.length === 1 && v[M][0].phx_ref !== oldRef && !(P in v),
        5000,
        "the marker's new meta",
      );
      const ref = fresh[M][0].phx_ref;
      const ghosts = [];
      for (const z of subjects) {
        const v = await z
          .until(topic, (v) => v[M]?.some((m) => m.phx_ref === ref), 5000, "the marker's new meta")
          .catch((e) => {
            e.message += `\n${socketState(z, topic)}`;
            throw e;
          });
        if (P in v) {
          const refs = v[P].map((m) => m.phx_ref);
          ghosts.push(`${z.label}: ${refs.join(",")}\n${explain(z, topic, refs, [])}`);
        }
        assert.deepEqual(z.problems, []);
      }
      assert.deepEqual(
        ghosts,
        [],
        `round ${round}: ${ghosts.length} of ${subjects.length} rejoined sockets still list the partner, who left before they rejoined ` +
          "(the join diff was read after the rejoin, the leave diff never came)",
      );
    }
  });

  test("phoenix Presence: after each reconnect the state of the new join arrives and the list is exact (own key once)", async () => {
    const room = (await server.createRoom(owner.token)).name;
    const topic = `room:${room}`;
    const user = await server.register();
    const K = String(user.user.id);
    const other = await server.register();
    const o = await server.connect(other.token);
    await join(o, topic);

    const socket = await server.connect(user.token);
    const { channel, watch } = await joinWatched(socket, topic);
    let previousRef = channel.joinRef();
    await watch.until((v) => v[K]?.length === 1, 5000, "own meta");
    for (let round = 0; round < 4; round++) {
      // An abnormal close: the client reconnects and rejoins with a new join_ref.
      socket.conn.close(4000, "test reconnect");
      await watch.syncs.until(
        () => channel.joinRef() !== previousRef && watch.presence.joinRef === channel.joinRef(),
        5000,
        `the state of rejoin ${round + 1}`,
      );
      previousRef = channel.joinRef();
      const m = await marker(topic);
      const v = await watch.until((v) => m.key in v, 5000, "the marker");
      assert.deepEqual(
        countsOf(v),
        sortedCounts({ [K]: 1, [String(other.user.id)]: 1, [m.key]: 1 }),
        `round ${round + 1}: own key once with one meta, the old socket's meta gone`,
      );
      m.socket.disconnect();
    }
  });

  test("churn: 200 sockets of 20 users join, rejoin, leave and close across 5 topics; every view converges; no ghosts", async () => {
    const USERS = 20;
    const PER_USER = 10;
    const TOPICS = 5;
    const ACTIONS = 1000;
    const WORKERS = 25;
    const seed = Number(process.env.CONFAB_CHURN_SEED || Date.now() % 1_000_000);
    const random = rng(seed);
    const note = `(seed ${seed}; replay with CONFAB_CHURN_SEED=${seed})`;

    const topics = [];
    for (let i = 0; i < TOPICS; i++) topics.push(`room:${(await server.createRoom(owner.token, unique("churn"))).name}`);
    const users = await Promise.all(Array.from({ length: USERS }, () => server.register()));

    // A long-lived observer joined to every topic from the start.
    const observerUser = await server.register(unique("obs"));
    const OBS = String(observerUser.user.id);
    const observerSocket = await server.connect(observerUser.token);
    const observers = {};
    for (const topic of topics) observers[topic] = (await joinWatched(observerSocket, topic)).watch;

    const slots = [];
    for (const u of users) for (let k = 0; k < PER_USER; k++) slots.push({ user: u, key: String(u.user.id), n: slots.length });
    await Promise.all(
      slots.map(async (s) => {
        s.client = await openTracked(server, s.user.token, `s${s.n}`);
        s.joined = new Set();
      }),
    );

    let remaining = ACTIONS;
    const tally = { join: 0, leave: 0, dup: 0, close: 0 };
    const act = async (s) => {
      const topic = topics[Math.floor(random() * TOPICS)];
      const r = random();
      if (r < 0.03) {
        s.client.raw.ws.close();
        await withDeadline(s.client.raw.closed, 5000, `s${s.n} to close`, server);
        server.raws.delete(s.client.raw);
        s.client = await openTracked(server, s.user.token, `s${s.n}'`);
        s.joined = new Set();
        tally.close += 1;
      } else if (s.joined.has(topic)) {
        if (r < 0.2) {
          await s.client.join(topic);
          tally.dup += 1;
        } else {
          await s.client.leave(topic);
          s.joined.delete(topic);
          tally.leave += 1;
        }
      } else {
        await s.client.join(topic);
        s.joined.add(topic);
        tally.join += 1;
      }
    };
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        const mine = slots.filter((s) => s.n % WORKERS === w);
        while (remaining > 0) {
          remaining -= 1;
          await act(mine[Math.floor(random() * mine.length)]);
        }
      }),
    );

    const truth = (extra) => {
      const out = {};
      for (const topic of topics) {
        const counts = { [OBS]: 1, ...extra };
        for (const s of slots) if (s.joined.has(topic)) counts[s.key] = (counts[s.key] || 0) + 1;
        out[topic] = sortedCounts(counts);
      }
      return out;
    };

    const check = async (label) => {
      for (const topic of topics) {
        const m = await marker(topic);
        const expected = truth({ [m.key]: 1 })[topic];
        const fresh = m.watch.view();
        assert.deepEqual(countsOf(fresh), expected, `${label}: a fresh joiner of ${topic} ${note}`);
        const refs = refsOf(fresh);
        assert.equal(new Set(refs).size, refs.length, "phx_refs are unique");
        const long = await observers[topic].until((v) => m.key in v, 5000, `${label}: the marker on the observer`);
        assert.deepEqual(countsOf(long), expected, `${label}: the long-lived observer of ${topic} ${note}`);
        assert.deepEqual(refsOf(long), refs, `${label}: the observer holds exactly the fresh joiner's metas`);
        for (const s of slots.filter((s) => s.joined.has(topic))) {
          const v = await s.client.until(topic, (v) => m.key in v, 5000, `${label}: the marker on s${s.n}`);
          assert.deepEqual(
            countsOf(v),
            expected,
            `${label}: churn socket s${s.n}'s view of ${topic} ${note}\n${explain(s.client, topic, refsOf(v), refs)}`,
          );
          assert.deepEqual(refsOf(v), refs, `${label}: s${s.n} holds exactly the fresh joiner's metas ${note}`);
        }
        m.socket.disconnect();
      }
      for (const s of slots) assert.deepEqual(s.client.problems, [], `s${s.n} ${note}`);
    };

    assert.ok(tally.join > 300 && tally.leave > 200 && tally.dup > 20, `a real mix: ${JSON.stringify(tally)}`);
    await check("after the churn");

    // Everyone leaves (half by leaving, half by closing the socket).
    await Promise.all(
      slots.map(async (s) => {
        if (s.n % 2 === 0) {
          for (const topic of [...s.joined]) await s.client.leave(topic);
        } else {
          s.client.raw.ws.close();
          await withDeadline(s.client.raw.closed, 5000, `s${s.n} to close`, server);
        }
        s.joined = new Set();
      }),
    );
    for (const topic of topics) {
      const m = await marker(topic);
      const expected = sortedCounts({ [OBS]: 1, [m.key]: 1 });
      assert.deepEqual(countsOf(m.watch.view()), expected, `no ghost on ${topic} for a fresh joiner ${note}`);
      const long = await observers[topic].until((v) => m.key in v, 5000, "the final marker on the observer");
      assert.deepEqual(countsOf(long), expected, `no ghost on ${topic} for the long-lived observer ${note}`);
      m.socket.disconnect();
    }
  });

  test("a member removed from a private room is ejected and leaves presence there (and only there)", async () => {
    const room = (await server.createRoom(owner.token, unique("priv"), true)).name;
    const topic = `room:${room}`;
    const member = await server.register();
    await server.addMember(owner.token, room, member.user.username);
    const M = String(member.user.id);
    const O = String(owner.user.id);

    const ownerSocket = await server.connect(owner.token);
    const { watch } = await joinWatched(ownerSocket, topic);
    const { watch: lobbyWatch } = await joinWatched(ownerSocket, "room:lobby");

    const m1 = await server.connect(member.token);
    const m2 = await server.connect(member.token);
    const { channel: c1 } = await join(m1, topic);
    const { channel: c2 } = await join(m2, topic);
    await join(m1, "room:lobby");
    await watch.until((v) => v[M]?.length === 2 && v[O]?.length === 1, 5000, "the member's two sockets");
    await lobbyWatch.until((v) => v[M]?.length === 1, 5000, "the member in the lobby");

    const closed = Promise.all([channelClosed(c1), channelClosed(c2)]);
    await server.removeMember(owner.token, room, member.user.username);
    await closed;
    const v = await watch.until((v) => !(M in v), 5000, "the removed member to leave presence");
    assert.deepEqual(countsOf(v), { [O]: 1 });

    // The lobby is unaffected: the barrier is a marker's join there.
    const m = await marker("room:lobby");
    const lobby = await lobbyWatch.until((v) => m.key in v, 5000, "the lobby marker");
    assert.equal(lobby[M]?.length, 1, "the member stays present in the lobby");

    // And joining again is refused.
    await assert.rejects(join(m1, topic), (e) => e.response?.reason === "unauthorized");
  });
});

describe("presence: a room past presence_state_limit", () => {
  let users;
  const server = suiteServer({ name: "presence-limit", env: { CONFAB_PRESENCE_STATE_LIMIT: "2" } }, 5, (...accounts) => {
    users = accounts;
  });

  test("a joiner's presence_state lists only the most recent users, and diffs stay complete", async () => {
    const topic = "room:lobby";
    const key = (i) => String(users[i].user.id);
    const watches = [];
    // Users 0, 1, 2 join one after another. User 0 joined an empty room,
    // so it learns of each later user from a diff: once it has seen user i,
    // that join has been flushed (and the server's cached state renewed).
    for (let i = 0; i < 3; i++) {
      const socket = await server.connect(users[i].token);
      const { watch } = await joinWatched(socket, topic);
      watches.push(watch);
      await watches[0].until((v) => key(i) in v, DEADLINE_MS, `user 0 to see user ${i}`);
    }

    // User 3 joins a room of four: its state holds two users, itself and
    // user 2, the most recent joiners; the oldest two are left out.
    const late = await server.connect(users[3].token);
    const { watch: lateWatch } = await joinWatched(late, topic);
    const first = await lateWatch.syncs.count(1);
    assert.deepEqual(Object.keys(first[0]).sort(), [key(2), key(3)].sort(), "the first sync is the limited state");

    // Diffs are not limited: user 0, who joined an empty room, sees all four.
    await watches[0].until((v) => [0, 1, 2, 3].every((i) => key(i) in v), DEADLINE_MS, "user 0 to see everyone");

    // The late joiner learns of a new user through a diff, and never of
    // the users its state left out.
    const next = await server.connect(users[4].token);
    await join(next, topic);
    const view = await lateWatch.until((v) => key(4) in v, DEADLINE_MS, "user 3 to see user 4");
    assert.deepEqual(Object.keys(view).sort(), [key(2), key(3), key(4)].sort());
  });
});

describe("presence: one user's tabs count against presence_state_limit", () => {
  let many, late;
  const server = suiteServer(
    { name: "presence-limit-tabs", env: { CONFAB_PRESENCE_STATE_LIMIT: "2" } },
    2,
    (...users) => ([many, late] = users),
  );

  test("a joiner's state lists the newest tabs only; a later tab still arrives by diff", async () => {
    const topic = "room:lobby";
    const key = String(many.user.id);
    // One user opens three tabs, one after another; the first tab sees each
    // later one arrive, so every join has been flushed before the next.
    const { watch: first } = await joinWatched(await server.connect(many.token), topic);
    await first.until((v) => v[key]?.length === 1, DEADLINE_MS, "the first tab to see itself");
    for (let tabs = 2; tabs <= 3; tabs++) {
      await join(await server.connect(many.token), topic);
      await first.until((v) => v[key]?.length === tabs, DEADLINE_MS, `the first tab to see ${tabs} tabs`);
    }
    const joinedOrder = first.view()[key].map((m) => m.phx_ref);

    // Another user joins: its state holds two presences, itself and the
    // newest tab, so the older tabs are left out.
    const { watch } = await joinWatched(await server.connect(late.token), topic);
    const [state] = await watch.syncs.count(1);
    assert.deepEqual(countsOf(state), sortedCounts({ [key]: 1, [String(late.user.id)]: 1 }));
    assert.deepEqual(state[key].map((m) => m.phx_ref), joinedOrder.slice(-1), "the newest tab is the one listed");

    // A fourth tab arrives through a diff.
    await join(await server.connect(many.token), topic);
    const view = await watch.until((v) => v[key]?.length === 2, DEADLINE_MS, "the late joiner to see the fourth tab");
    assert.equal(view[key][0].phx_ref, joinedOrder.at(-1));
  });
});

