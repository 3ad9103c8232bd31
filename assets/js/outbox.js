// outbox.js — messages the user sent that the server has not acknowledged
// yet. Each has a client_id (a UUID) and is kept in localStorage
// ("confab:outbox:<user id>") until its ok reply or its own broadcast comes
// back, so neither a dropped connection nor a page reload loses it. Sending
// is idempotent on the server per client_id, so resending after a reconnect
// (or from a second tab) stores it once.
//
// An item is pushed once per channel join instance: when the channel
// (re)joins, every item not yet sent on that join goes out again, in order.
// A push that times out on a live channel is resent; `rate_limited` is
// retried shortly; any other error marks the item failed (shown with Retry,
// Edit and Discard).

const RETRYABLE = new Set(["rate_limited", "timeout"]);
const PUSH_TIMEOUT = 15000;

export class Outbox {
  /**
   * `userId` names the storage key; `hooks.channel(topic)` gives a joined
   * channel or null; `hooks.acked(item, ack)` and `hooks.changed(topic)`
   * report progress.
   */
  constructor(userId, hooks) {
    this.key = `confab:outbox:${userId}`;
    this.hooks = hooks;
    this.items = readStored(this.key).map((item) => ({ ...item, state: item.failed ? "failed" : "queued" }));
    this.sentOn = new Map(); // client_id → join ref it was last pushed on
    this.retryTimers = new Map();
  }

  /** Items of `topic` in the order they were written. */
  list(topic) {
    return this.items.filter((item) => item.topic === topic);
  }

  has(clientId) {
    return this.items.some((item) => item.client_id === clientId);
  }

  /** Queues a new message and tries to send it; returns the item. */
  add(topic, body) {
    const item = {
      client_id: newClientId(),
      topic,
      body,
      created_at: new Date().toISOString(),
      state: "queued",
    };
    this.items.push(item);
    this.persist((stored) => [...stored.filter((s) => s.client_id !== item.client_id), strip(item)]);
    this.hooks.changed(topic);
    this.flush(topic);
    return item;
  }

  /** The message with `clientId` is stored (ack or broadcast seen): forget it. */
  resolve(clientId) {
    const item = this.items.find((i) => i.client_id === clientId);
    if (!item) return null;
    this.items = this.items.filter((i) => i !== item);
    this.sentOn.delete(clientId);
    clearTimeout(this.retryTimers.get(clientId));
    this.retryTimers.delete(clientId);
    this.persist((stored) => stored.filter((s) => s.client_id !== clientId));
    this.hooks.changed(item.topic);
    return item;
  }

  /** Drops a failed (or any) item without sending it. */
  discard(clientId) {
    return this.resolve(clientId);
  }

  /** Sends a failed item again. */
  retry(clientId) {
    const item = this.items.find((i) => i.client_id === clientId);
    if (!item) return;
    item.state = "queued";
    delete item.failed;
    delete item.error;
    this.sentOn.delete(clientId);
    this.persist((stored) => stored.map((s) => (s.client_id === clientId ? strip(item) : s)));
    this.hooks.changed(item.topic);
    this.flush(item.topic);
  }

  /** Drops every item of a topic the user can no longer post to. */
  dropTopic(topic) {
    for (const item of this.list(topic)) this.resolve(item.client_id);
  }

  /** Pushes every queued item of `topic` not yet sent on the channel's current join. */
  flush(topic) {
    const channel = this.hooks.channel(topic);
    if (!channel) return;
    const joinRef = channel.joinRef();
    for (const item of this.list(topic)) {
      if (item.state === "failed") continue;
      if (this.sentOn.get(item.client_id) === joinRef) continue;
      this.push(channel, item, joinRef);
    }
  }

  push(channel, item, joinRef) {
    this.sentOn.set(item.client_id, joinRef);
    item.state = "sending";
    this.hooks.changed(item.topic);
    channel
      .push("new_msg", { body: item.body, client_id: item.client_id }, PUSH_TIMEOUT)
      .receive("ok", (ack) => {
        if (!this.has(item.client_id)) return;
        this.hooks.acked(item, ack);
        this.resolve(item.client_id);
      })
      .receive("error", (reply) => this.failed(item, joinRef, (reply && reply.reason) || "error"))
      .receive("timeout", () => this.failed(item, joinRef, "timeout"));
  }

  failed(item, joinRef, reason) {
    if (!this.has(item.client_id)) return;
    if (RETRYABLE.has(reason)) {
      // Let the next flush (rejoin, or the retry timer on a live channel) send it again.
      // A push of an older join instance that timed out changes nothing: the rejoin resent it.
      if (this.sentOn.get(item.client_id) !== joinRef) return;
      this.sentOn.delete(item.client_id);
      item.state = "queued";
      this.hooks.changed(item.topic);
      clearTimeout(this.retryTimers.get(item.client_id));
      this.retryTimers.set(
        item.client_id,
        setTimeout(() => this.flush(item.topic), reason === "rate_limited" ? 1500 : 0),
      );
      return;
    }
    item.state = "failed";
    item.failed = true;
    item.error = reason;
    this.persist((stored) => stored.map((s) => (s.client_id === item.client_id ? strip(item) : s)));
    this.hooks.changed(item.topic);
  }

  /** Read-modify-write of the stored list, so several tabs do not overwrite each other. */
  persist(update) {
    try {
      localStorage.setItem(this.key, JSON.stringify(update(readStored(this.key))));
    } catch {
      // Storage full or disabled: the items still live in memory.
    }
  }
}

function strip(item) {
  const { client_id: clientId, topic, body, created_at: createdAt, failed, error } = item;
  return { client_id: clientId, topic, body, created_at: createdAt, failed, error };
}

function readStored(key) {
  try {
    const list = JSON.parse(localStorage.getItem(key) || "[]");
    return Array.isArray(list)
      ? list.filter((i) => i && typeof i.client_id === "string" && typeof i.body === "string" && typeof i.topic === "string")
      : [];
  } catch {
    return [];
  }
}

/** A random UUID (crypto.randomUUID needs a secure context; this does not). */
export function newClientId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function" && globalThis.isSecureContext) {
    return crypto.randomUUID();
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
