// Helpers for the presence, conversation, personal-topic and ignore tests.
//
// Two ways to follow a topic's presence:
// - `watchPresence(channel)`: the official phoenix `Presence` class on a
//   phoenix channel, with a Collector of onSync snapshots to await.
// - `TrackedRaw`: a raw `ws` client (harness RawClient) that applies every
//   `presence_state`/`presence_diff` frame exactly as phoenix.js does
//   (buffering diffs until the state of the current join, via the class's
//   own static `syncState`/`syncDiff`) and logs every frame for order checks.
//
// Everything is event driven: waits resolve on a sync/frame and use
// deadlines only as failure limits.

import { Presence } from "phoenix";
import { Collector, DEADLINE_MS, joinChannel, withDeadline } from "./harness.mjs";

/** `{key: metas}` of a phoenix Presence state (plain object, keys in list order). */
export function viewOf(state) {
  const out = {};
  Presence.list(state, (key, presence) => {
    out[key] = presence.metas;
  });
  return out;
}

/** `{key: metaCount}` with keys sorted, for deepEqual comparisons. */
export function countsOf(view) {
  const out = {};
  for (const key of Object.keys(view).sort()) out[key] = view[key].length;
  return out;
}

/** The sorted list of every phx_ref in a view. */
export function refsOf(view) {
  return Object.values(view)
    .flatMap((metas) => metas.map((m) => m.phx_ref))
    .sort();
}

/** Sorts the keys of a `{key: count}` object (so deepEqual ignores insertion order). */
export function sortedCounts(counts) {
  const out = {};
  for (const key of Object.keys(counts).sort()) if (counts[key] > 0) out[key] = counts[key];
  return out;
}

/**
 * A phoenix Presence on `channel` (create it before the join is sent, i.e.
 * right after `socket.channel(...)`). `until(pred)` resolves with the view
 * once `pred(view)` holds after some onSync (or already holds).
 */
export function watchPresence(channel) {
  const presence = new Presence(channel);
  const syncs = new Collector(`${channel.topic} presence syncs`);
  const view = () => viewOf(presence.state);
  presence.onSync(() => syncs.add(view()));
  return {
    presence,
    syncs,
    view,
    async until(pred, ms = DEADLINE_MS, what = "a presence condition") {
      try {
        await syncs.until(() => pred(view()), ms, what);
      } catch (e) {
        e.message += `\ncurrent presence: ${JSON.stringify(countsOf(view()))}`;
        throw e;
      }
      return view();
    },
  };
}

/** Joins `topic` with a Presence watcher attached before the join is sent. */
export async function joinWatched(socket, topic, params = {}, opts = {}) {
  const joining = joinChannel(socket, topic, params, opts);
  const watch = watchPresence(joining.channel);
  const response = await joining;
  return { channel: joining.channel, response, watch };
}

/** Resolves once `channel` receives phx_close (or rejects after the deadline). */
export function channelClosed(channel, ms = DEADLINE_MS) {
  return withDeadline(
    new Promise((resolve) => channel.onClose(() => resolve())),
    ms,
    `${channel.topic} to close`,
  );
}

/**
 * A raw V2 client that models presence per topic like phoenix.js and logs
 * every frame. `raw` is a harness RawClient (already created; frames are
 * observed from the moment this wraps it).
 */
export class TrackedRaw {
  constructor(raw, label = "raw") {
    this.raw = raw;
    this.label = label;
    /** Every frame, in arrival order: `{i, frame}`. */
    this.log = [];
    /** topic -> {joinRef (channel's current), presenceRef (of the state applied), state, pending} */
    this.topics = new Map();
    /** One item per applied state/diff: `{topic}`. */
    this.updates = new Collector(`${label} presence updates`);
    /** Protocol violations seen while applying frames. */
    this.problems = [];
    raw.ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      let frame;
      try {
        frame = JSON.parse(data.toString());
      } catch {
        return;
      }
      this.onFrame(frame);
    });
  }

  get opened() {
    return this.raw.opened;
  }

  onFrame(frame) {
    const i = this.log.length;
    this.log.push({ i, frame });
    if (!Array.isArray(frame)) return;
    const [joinRef, , topic, event, payload] = frame;
    const model = this.topics.get(topic);
    if (event === "phx_close") {
      if (model && joinRef === model.joinRef) this.topics.delete(topic);
      return;
    }
    if (event === "presence_state") {
      if (!model) {
        this.problems.push(`#${i}: presence_state for ${topic} with no channel joined`);
        return;
      }
      // phoenix.js: the state is taken for the channel's current join ref.
      model.presenceRef = model.joinRef;
      model.state = Presence.syncState(model.state, payload);
      for (const diff of model.pending) model.state = Presence.syncDiff(model.state, diff);
      model.pending = [];
      this.updates.add({ topic, i, kind: "state" });
      return;
    }
    if (event === "presence_diff") {
      if (!model) {
        this.problems.push(`#${i}: presence_diff for ${topic} with no channel joined`);
        return;
      }
      if (model.presenceRef !== model.joinRef) {
        model.pending.push(payload);
      } else {
        model.state = Presence.syncDiff(model.state, payload);
        this.updates.add({ topic, i, kind: "diff" });
      }
    }
  }

  /**
   * Joins (or, when already joined, joins again: the server replaces the
   * channel) and resolves with `{joinRef, reply}`. Like a phoenix channel
   * that rejoins, the presence state is kept and re-synced by the new
   * state; after a leave the next join starts from an empty state.
   */
  async join(topic, payload = {}, ms = DEADLINE_MS) {
    const ref = this.raw.nextRef();
    let model = this.topics.get(topic);
    if (!model) {
      model = { joinRef: null, presenceRef: null, state: Object.create(null), pending: [] };
      this.topics.set(topic, model);
    }
    model.joinRef = ref;
    this.raw.send([ref, ref, topic, "phx_join", payload]);
    const reply = await this.raw.reply(ref, ms);
    if (reply[4]?.status !== "ok") {
      if (this.topics.get(topic) === model && model.joinRef === ref) this.topics.delete(topic);
      const err = new Error(`${this.label}: join ${topic} refused: ${JSON.stringify(reply)}`);
      err.reply = reply;
      throw err;
    }
    return { joinRef: ref, reply };
  }

  /** Leaves `topic` and resolves with the reply. */
  async leave(topic, ms = DEADLINE_MS) {
    const model = this.topics.get(topic);
    const ref = this.raw.nextRef();
    this.raw.send([model ? model.joinRef : null, ref, topic, "phx_leave", {}]);
    const reply = await this.raw.reply(ref, ms);
    this.topics.delete(topic);
    return reply;
  }

  /** The current modelled presence of `topic` as `{key: metas}` (null when not joined). */
  view(topic) {
    const model = this.topics.get(topic);
    return model ? viewOf(model.state) : null;
  }

  /** Resolves with the view once `pred(view)` holds for `topic`. */
  async until(topic, pred, ms = DEADLINE_MS, what = "a presence condition") {
    const check = () => {
      const view = this.view(topic);
      return view !== null && pred(view);
    };
    try {
      await this.updates.until(check, ms, `${what} (${this.label} ${topic})`);
    } catch (e) {
      e.message += `\ncurrent presence: ${JSON.stringify(this.view(topic) && countsOf(this.view(topic)))}`;
      throw e;
    }
    return this.view(topic);
  }

  /** Frames of `topic` (log entries) in arrival order. */
  framesOf(topic) {
    return this.log.filter((e) => Array.isArray(e.frame) && e.frame[2] === topic);
  }
}

/** A small seeded PRNG (mulberry32), so a failing churn run can be replayed with the same seed. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Opens a raw V2 client for `token` and wraps it; resolves once open. */
export async function openTracked(server, token, label) {
  const raw = server.raw({ token, vsn: "2.0.0" });
  const tracked = new TrackedRaw(raw, label);
  await withDeadline(raw.opened, DEADLINE_MS, `${label} to open`, server);
  return tracked;
}
