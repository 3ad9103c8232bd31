// chat.js — the live state of a signed-in user and the one socket behind it.
//
// Owns: the topic list (rooms and direct conversations, from REST and from
// the personal `user:<id>` topic), one channel per topic (all joined, so
// every room's unread count is live), each topic's message cache, presence
// and typing, the outbox of unacknowledged messages, and read positions.
//
// Recovery: every (re)join sends `{last_seq, epoch}` of the highest seq held
// without a gap, so the server fills exactly what was missed; messages are
// keyed by seq (never shown twice), and a message carrying the client_id of
// an outbox item resolves that item. An epoch change or a server behind our
// cache drops the cache. Unread = last seq known − read position.
//
// Transport: a WebSocket, or LongPoll where WebSockets cannot open (the
// socket falls back by itself after LONGPOLL_FALLBACK_MS, see phoenix.js);
// nothing above the socket depends on which one.
//
// Mentions: each topic's unread mention count comes from the lists and
// the `unread` events (which carry `unread_mentions` after a read); a
// `mention` event adds one. Every user's name is known from /api/users
// (for highlighting `@name` and the composer's `@` suggestions).
//
// Reactions: `reaction` broadcasts update the message held by seq; `react`
// toggles one's own. A link to one message loads the page around it
// (`around=`) when it is older than what is held, then pages forward so
// the range stays gap-free.
//
// Emits (EventTarget): "status" (connection), "topics" (list/unread),
// "messages" {topic}, "presence" {topic}, "typing" {topic},
// "removed" {topic}, "announce" {text}, "notice" {text}, "alert" {topic,
// seq, title, body} (a mention or a direct message from someone else, for
// browser notifications), "users" (the user directory changed).

import { Socket, Presence } from "./phoenix.js";
import * as api from "./api.js";
import * as session from "./session.js";
import { Outbox } from "./outbox.js";

/** Topics joined at once (the server allows 100 per socket). */
const MAX_JOINED = 90;
const TYPING_SEND_MS = 2500;
const TYPING_SHOW_MS = 5000;
const PAGE = 50;
/** How long a new WebSocket gets to open and answer a ping before the socket falls back to LongPoll. */
const LONGPOLL_FALLBACK_MS = 2500;

export class Chat extends EventTarget {
  constructor(me) {
    super();
    this.me = me;
    this.topics = new Map();
    this.active = null;
    this.status = "connecting";
    this.everOpened = false;
    this.listsLoaded = false;
    this.lastAuthCheck = 0;
    this.typingSentAt = new Map();
    this.touchClock = 0;
    /** id → {id, username, display_name} of every user, from /api/users. */
    this.users = new Map();
    this.usersLoadedAt = 0;
    /** "topic seq" of alerts already raised (a DM that also mentions us alerts once). */
    this.alerted = new Set();
    /** user id → {id, username, display_name}, from authors, presence and
     * /api/users: the same map as `users`, shared by reactions and mentions. */
    this.people = this.users;
    this.people.set(me.id, me);
    this.peopleLoading = null;
    this.outbox = new Outbox(me.id, {
      channel: (topic) => {
        const t = this.topics.get(topic);
        return t && t.channel && t.channel.isJoined() ? t.channel : null;
      },
      acked: (item, ack) => this.acked(item, ack),
      changed: (topic) => this.emit("messages", { topic }),
    });
    this.socket = new Socket("/socket", {
      params: () => ({ token: session.token() }),
      longPollFallbackMs: LONGPOLL_FALLBACK_MS,
    });
    this.socket.onOpen(() => this.onOpen());
    this.socket.onClose((event) => this.onDown(event));
    this.socket.onError(() => this.onDown(null));
  }

  emit(type, detail = {}) {
    if (this.stopped) return;
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ------------------------------------------------------------ lifecycle

  start() {
    this.connectingTimer = setTimeout(() => this.emit("status"), 1000);
    this.personal = this.socket.channel(`user:${this.me.id}`, {});
    this.personal.on("room_added", ({ room }) => this.upsertRoom(room, { join: true }));
    this.personal.on("room_removed", ({ room }) => this.removeTopic(room.topic || `room:${room.name}`, "removed"));
    this.personal.on("conversation_created", ({ conversation }) => this.upsertConversation(conversation, { join: true }));
    this.personal.on("unread", (u) => this.onUnread(u));
    this.personal.on("mention", (m) => this.onMention(m));
    this.personal.join();
    this.socket.connect();
    this.loadUsers();
    this.onlineListener = () => this.socket.isConnected() || this.reconnectNow();
    window.addEventListener("online", this.onlineListener);
    this.visibleListener = () => {
      if (document.visibilityState === "visible" && this.active) this.markRead(this.active);
    };
    document.addEventListener("visibilitychange", this.visibleListener);
    return this.refreshLists();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.connectingTimer);
    clearTimeout(this.usersTimer);
    window.removeEventListener("online", this.onlineListener);
    document.removeEventListener("visibilitychange", this.visibleListener);
    this.socket.disconnect();
    for (const t of this.topics.values()) for (const entry of t.typing.values()) clearTimeout(entry.timer);
  }

  /** Whether the connection is (or will be) long-polling instead of a WebSocket. */
  get longPolling() {
    return this.socket.isLongPoll();
  }

  /** Tries to connect at once instead of waiting for the backoff. */
  reconnectNow() {
    this.socket.reconnectNow();
  }

  onOpen() {
    clearTimeout(this.connectingTimer);
    const reconnected = this.everOpened;
    this.everOpened = true;
    this.status = "online";
    this.emit("status");
    // Personal events may have been missed while away.
    if (reconnected) this.refreshLists();
  }

  onDown(event) {
    if (this.status !== "offline" || !this.everOpened) {
      this.status = this.everOpened ? "offline" : "connecting";
      this.emit("status");
    }
    // A refused upgrade or a credentials close: is the token still good?
    if (!event || event.code === 1008) this.checkAuth();
  }

  checkAuth() {
    const now = Date.now();
    if (now - this.lastAuthCheck < 15000) return;
    this.lastAuthCheck = now;
    // api.js ends the session on a 401; network errors mean the server is away.
    api.me().catch(() => {});
  }

  // ----------------------------------------------------------- topic list

  async refreshLists() {
    let rooms;
    let conversations;
    // Topics added by a personal event while the lists are in flight are newer than them: keep those.
    const mark = this.touchClock;
    try {
      [{ rooms }, { conversations }] = await Promise.all([api.rooms(), api.conversations()]);
    } catch (error) {
      if (error.status === 401) return;
      // Offline: retried on the next open.
      if (!this.listsLoaded) setTimeout(() => this.listsLoaded || this.refreshLists(), 3000);
      return;
    }
    const seen = new Set();
    for (const room of rooms) seen.add(this.upsertRoom(room).topic);
    for (const conversation of conversations) seen.add(this.upsertConversation(conversation).topic);
    for (const [topic, t] of [...this.topics]) if (!seen.has(topic) && t.touched <= mark) this.removeTopic(topic, "gone");
    this.listsLoaded = true;
    this.joinAll();
    this.emit("topics", { loaded: true });
  }

  /**
   * Reads the user directory (when a name is missing, or `@` is typed): at
   * most once every 3 s; a request within that time is served at its end.
   */
  async loadUsers() {
    if (this.stopped) return;
    if (this.usersTimer || this.usersLoading) {
      this.usersWanted = true;
      return;
    }
    const wait = this.usersLoadedAt + 3000 - Date.now();
    if (wait > 0) {
      this.usersTimer = setTimeout(() => {
        this.usersTimer = null;
        this.loadUsers();
      }, wait);
      return;
    }
    this.usersLoadedAt = Date.now();
    this.usersLoading = true;
    this.usersWanted = false;
    try {
      const { users } = await api.users();
      for (const u of users) this.users.set(u.id, { id: u.id, username: u.username, display_name: u.display_name || u.username });
      this.emit("users");
    } catch {
      // Retried on the next request.
    } finally {
      this.usersLoading = false;
      if (this.usersWanted) this.loadUsers();
    }
  }

  /** The username of user `id`, if known (asks the server when it is not). */
  usernameOf(id) {
    const u = this.users.get(id);
    if (!u) this.loadUsers();
    return u ? u.username : null;
  }

  /** People who may be mentioned in `t`, without oneself: everyone for a public room, else those seen there. */
  mentionable(t) {
    if (!t) return [];
    const seen = new Map();
    if (t.kind === "room" && !t.private) for (const u of this.users.values()) seen.set(u.id, u);
    if (t.peer && t.peer.id) seen.set(t.peer.id, t.peer);
    for (const p of this.online(t)) if (!seen.has(p.id)) seen.set(p.id, p);
    for (const m of t.msgs.values()) if (m.user && !seen.has(m.user.id)) seen.set(m.user.id, m.user);
    return [...seen.values()].map((p) => this.users.get(p.id) || p).filter((p) => p.id !== this.me.id && p.username);
  }

  topicFromServer(info, last, unread, unreadMentions) {
    let t = this.topics.get(info.topic);
    if (!t) {
      t = {
        ...info,
        msgs: new Map(),
        lo: 0,
        hi: 0,
        epoch: null,
        lastSeq: 0,
        readPos: 0,
        readSent: 0,
        channel: null,
        presence: null,
        joinState: "idle",
        loaded: false,
        loadingOlder: false,
        typing: new Map(),
        usedAt: 0,
        unreadMentions: 0,
      };
      this.topics.set(t.topic, t);
    } else {
      Object.assign(t, info);
    }
    this.touchClock += 1;
    t.touched = this.touchClock;
    if (typeof unreadMentions === "number") t.unreadMentions = unreadMentions;
    if (typeof last === "number") {
      t.lastSeq = Math.max(t.lastSeq, last);
      if (typeof unread === "number") {
        t.readPos = Math.max(t.readPos, last - unread);
        t.readSent = Math.max(t.readSent, last - unread);
      }
    }
    return t;
  }

  upsertRoom(room, { join = false } = {}) {
    const t = this.topicFromServer(
      {
        topic: room.topic || `room:${room.name}`,
        kind: "room",
        name: room.name,
        label: room.name,
        private: Boolean(room.private),
        description: room.description || "",
        owner: room.owner || null,
      },
      room.last_seq,
      room.unread,
      room.unread_mentions,
    );
    if (join) {
      this.join(t);
      this.emit("topics");
    }
    return t;
  }

  upsertConversation(conversation, { join = false } = {}) {
    const peer = conversation.with || {};
    const t = this.topicFromServer(
      {
        topic: conversation.topic || `dm:${conversation.id}`,
        kind: "dm",
        name: String(conversation.id),
        label: peer.display_name || peer.username || "someone",
        peer,
        private: true,
        description: peer.username ? `@${peer.username}` : "",
      },
      conversation.last_seq,
      conversation.unread,
      conversation.unread_mentions,
    );
    if (join) {
      this.join(t);
      this.emit("topics");
    }
    return t;
  }

  removeTopic(topic, why) {
    const t = this.topics.get(topic);
    if (!t) return;
    this.topics.delete(topic);
    if (t.channel) {
      t.leaving = true;
      t.channel.leave();
      t.channel = null;
    }
    this.outbox.dropTopic(topic);
    this.emit("topics");
    this.emit("removed", { topic, why, label: t.label, kind: t.kind });
  }

  /** Rooms sorted by name, then conversations by label. */
  rooms() {
    return [...this.topics.values()].filter((t) => t.kind === "room").sort((a, b) => a.name.localeCompare(b.name));
  }

  conversations() {
    return [...this.topics.values()]
      .filter((t) => t.kind === "dm")
      .sort((a, b) => a.label.localeCompare(b.label, undefined, { sensitivity: "base" }));
  }

  unread(t) {
    if (t === this.active && document.visibilityState === "visible") return 0;
    return Math.max(0, t.lastSeq - t.readPos);
  }

  /** Unread mentions of us in `t`. */
  unreadMentions(t) {
    if (t === this.active && document.visibilityState === "visible") return 0;
    return t.unreadMentions || 0;
  }

  // -------------------------------------------------------------- channels

  joinAll() {
    const wanted = [...this.topics.values()].sort((a, b) => (b === this.active) - (a === this.active));
    for (const t of wanted) {
      if (this.joinedCount() >= MAX_JOINED) break;
      this.join(t);
    }
  }

  joinedCount() {
    let n = 0;
    for (const t of this.topics.values()) if (t.channel) n += 1;
    return n;
  }

  /** Joins a topic's channel (leaving the least recently used one when at the cap). */
  join(t) {
    if (t.channel) return;
    if (this.joinedCount() >= MAX_JOINED) {
      const victim = [...this.topics.values()]
        .filter((x) => x.channel && x !== this.active)
        .sort((a, b) => a.usedAt - b.usedAt)[0];
      if (victim) {
        victim.leaving = true;
        victim.channel.leave();
        victim.channel = null;
        victim.presence = null;
        victim.joinState = "idle";
      }
    }
    t.leaving = false;
    const channel = this.socket.channel(t.topic, () => (t.hi > 0 ? { last_seq: t.hi, epoch: t.epoch } : {}));
    t.channel = channel;
    t.joinState = "joining";
    t.presence = new Presence(channel);
    t.presence.onSync(() => this.emit("presence", { topic: t.topic }));
    channel.on("new_msg", (m) => this.onNewMsg(t, m));
    channel.on("msg_updated", (m) => {
      if (t.msgs.has(m.seq)) this.insert(t, [m]);
      this.emit("messages", { topic: t.topic });
    });
    channel.on("msg_deleted", ({ seq }) => {
      const m = t.msgs.get(seq);
      if (m) t.msgs.set(seq, { ...m, body: "", deleted: true });
      this.emit("messages", { topic: t.topic });
    });
    channel.on("typing", ({ user }) => this.onTyping(t, user));
    channel.on("reaction", (r) => this.onReaction(t, r));
    channel.onError(() => {
      t.joinState = "errored";
      this.emit("messages", { topic: t.topic });
    });
    channel.onClose(() => {
      if (t.channel !== channel) return;
      t.channel = null;
      t.joinState = "idle";
      // Closed by the server (membership removed): the topic is gone for us.
      if (!t.leaving) this.removeTopic(t.topic, "removed");
    });
    channel
      .join()
      .receive("ok", (reply) => this.onJoined(t, channel, reply))
      .receive("error", (reply) => this.onJoinRefused(t, channel, reply && reply.reason));
  }

  onJoined(t, channel, reply) {
    if (t.channel !== channel) return;
    const rejoin = t.loaded;
    const held = t.hi;
    if (held > 0 && (!reply.recovered || (reply.last_seq || 0) < held)) {
      // Our cache belongs to another history (restored store): start over.
      t.msgs = new Map();
      t.lo = 0;
      t.hi = 0;
    }
    t.epoch = reply.epoch || null;
    t.lastSeq = Math.max(t.lastSeq, reply.last_seq || 0);
    t.joinState = "joined";
    t.loaded = true;
    this.insert(t, reply.messages || []);
    if (reply.truncated) this.fillForward(t);
    if (rejoin) {
      // Edits and deletions of older messages are not replayed: refresh the recent page.
      if (t === this.active) this.refreshRecent(t);
      else t.stale = true;
    }
    this.outbox.flush(t.topic);
    if (t === this.active) this.markRead(t);
    this.emit("messages", { topic: t.topic });
    this.emit("topics");
  }

  onJoinRefused(t, channel, reason) {
    if (t.channel !== channel) return;
    if (reason === "not_found" || reason === "unauthorized") {
      // Not a transient failure: stop retrying and drop the topic.
      this.removeTopic(t.topic, reason);
      return;
    }
    t.joinState = "errored";
    this.emit("notice", { text: `Could not open ${t.kind === "room" ? "#" + t.label : t.label}: ${reason || "error"}` });
  }

  /** Pushes on a joined channel; resolves with the ok response. */
  request(t, event, payload) {
    return new Promise((resolve, reject) => {
      if (!t.channel || !t.channel.isJoined()) {
        reject(new Error("offline"));
        return;
      }
      t.channel
        .push(event, payload)
        .receive("ok", resolve)
        .receive("error", (r) => reject(new Error((r && r.reason) || "error")))
        .receive("timeout", () => reject(new Error("timeout")));
    });
  }

  // -------------------------------------------------------------- messages

  /** Adds or replaces messages by seq and keeps lo/hi (the gap-free range) current. */
  insert(t, messages) {
    let beyond = false;
    for (const m of messages) {
      if (!m || typeof m.seq !== "number") continue;
      if (m.topic && m.topic !== t.topic) continue;
      t.msgs.set(m.seq, m);
      if (m.user && m.user.username && !this.users.has(m.user.id)) this.users.set(m.user.id, m.user);
      t.lastSeq = Math.max(t.lastSeq, m.seq);
      t.lo = t.lo ? Math.min(t.lo, m.seq) : m.seq;
      if (m.user && m.user.id === this.me.id) {
        t.readPos = Math.max(t.readPos, m.seq);
        t.readSent = Math.max(t.readSent, m.seq);
        if (m.client_id) this.outbox.resolve(m.client_id);
      }
    }
    if (t.lo) {
      let hi = Math.max(t.hi, t.lo - 1);
      while (t.msgs.has(hi + 1)) hi += 1;
      t.hi = hi;
    }
    for (const seq of t.msgs.keys()) if (seq > t.hi) beyond = true;
    if (beyond) this.fillForward(t);
  }

  onNewMsg(t, m) {
    const known = t.msgs.has(m.seq);
    this.insert(t, [m]);
    if (m.user) this.clearTyping(t, m.user.id);
    if (!known && m.user && m.user.id !== this.me.id) {
      if (t === this.active && document.visibilityState === "visible") {
        this.emit("announce", { text: `${m.user.display_name || m.user.username}: ${m.body}` });
      }
      if (t.kind === "dm") this.alert(t, m.seq, m.user, m.body);
    }
    if ((m.mentions || []).some((id) => !this.users.has(id))) this.loadUsers();
    this.emit("messages", { topic: t.topic, appended: true });
    this.emit("topics");
  }

  /** The ok reply of our own message: make sure it shows even if its broadcast was lost. */
  acked(item, ack) {
    const t = this.topics.get(item.topic);
    if (!t || t.msgs.has(ack.seq)) return;
    this.insert(t, [
      {
        id: ack.id,
        topic: t.topic,
        seq: ack.seq,
        user: { id: this.me.id, username: this.me.username, display_name: this.me.display_name },
        body: item.body,
        client_id: item.client_id,
        inserted_at: ack.inserted_at,
      },
    ]);
    this.emit("messages", { topic: t.topic, appended: true });
  }

  /** Pages forward from the gap-free high-water mark until nothing is missing. */
  async fillForward(t) {
    if (t.filling) return;
    t.filling = true;
    try {
      for (let guard = 0; guard < 50; guard++) {
        const from = t.hi;
        const { messages, has_more: more } = await this.request(t, "history", { after_seq: from, limit: 200 });
        this.insert(t, messages);
        this.emit("messages", { topic: t.topic });
        const missing = [...t.msgs.keys()].some((s) => s > t.hi);
        if (!more && !missing) break;
        if (t.hi === from) break;
      }
    } catch {
      // Retried on the next join.
    } finally {
      t.filling = false;
    }
  }

  /** Re-reads the newest page (picks up edits and deletions made while away). */
  async refreshRecent(t) {
    t.stale = false;
    try {
      const { messages } = await this.request(t, "history", { limit: PAGE });
      for (const m of messages) if (t.msgs.has(m.seq)) t.msgs.set(m.seq, m);
      this.insert(t, messages.filter((m) => m.seq >= t.lo));
      this.emit("messages", { topic: t.topic });
    } catch {
      t.stale = true;
    }
  }

  /** Loads the page before the oldest message held; resolves with how many came. */
  async loadOlder(t) {
    if (t.loadingOlder || !this.hasOlder(t)) return 0;
    t.loadingOlder = true;
    this.emit("messages", { topic: t.topic });
    try {
      const { messages } = await this.request(t, "history", { before_seq: t.lo, limit: PAGE });
      this.insert(t, messages);
      return messages.length;
    } finally {
      t.loadingOlder = false;
      this.emit("messages", { topic: t.topic, prepended: true });
    }
  }

  hasOlder(t) {
    return t.lo > 1;
  }

  /** Applies a `reaction` broadcast to the message held (a new object, so its row re-renders). */
  onReaction(t, { seq, emoji, user_id: userId, on }) {
    const m = t.msgs.get(seq);
    if (!m || typeof emoji !== "string") return;
    const reactions = { ...(m.reactions || {}) };
    const users = (reactions[emoji] || []).filter((id) => id !== userId);
    if (on) users.push(userId);
    if (users.length) reactions[emoji] = users;
    else delete reactions[emoji];
    t.msgs.set(seq, { ...m, reactions });
    if (!this.people.has(userId)) this.loadPeople();
    this.emit("messages", { topic: t.topic });
  }

  /** Toggles one's own `emoji` on message `seq`; the broadcast updates the view. */
  async react(t, seq, emoji) {
    return this.request(t, "react", { seq, emoji });
  }

  /** The display name of a user id (a placeholder until the user list arrives). */
  nameOf(id) {
    const user = this.people.get(id);
    if (user) return user.display_name || user.username;
    this.loadPeople();
    return "someone";
  }

  /** Fetches the user list once (names of people who reacted but never wrote here). */
  loadPeople() {
    if (this.peopleLoading) return this.peopleLoading;
    this.peopleLoading = api
      .users()
      .then(({ users }) => {
        for (const user of users || []) if (!this.people.has(user.id)) this.people.set(user.id, user);
        if (this.active) this.emit("messages", { topic: this.active.topic });
      })
      .catch(() => {
        this.peopleLoading = null;
      });
    return this.peopleLoading;
  }

  /**
   * Makes sure message `seq` is held: when it is older than the held range,
   * loads the page around it, then pages forward to close the gap.
   * Resolves with whether the message is held.
   */
  async loadAround(t, seq) {
    if (t.msgs.has(seq)) return true;
    if (t.lo && seq >= t.lo && seq <= t.hi) return false; // inside the held range: no such message
    const base = t.kind === "room" ? `/api/rooms/${encodeURIComponent(t.name)}` : `/api/conversations/${encodeURIComponent(t.name)}`;
    const { messages } = await api.get(`${base}/messages?around=${seq}&limit=${PAGE}`);
    if (!messages || !messages.length) return false;
    // The page may leave a gap below what is held: recompute the gap-free
    // range from the oldest message, and let fillForward close the gap.
    t.hi = 0;
    t.lo = 0;
    this.insert(t, messages);
    this.emit("messages", { topic: t.topic });
    return t.msgs.has(seq);
  }

  /** Messages of a topic in seq order. */
  messages(t) {
    return [...t.msgs.values()].sort((a, b) => a.seq - b.seq);
  }

  send(t, body) {
    t.usedAt = Date.now();
    this.typingSentAt.delete(t.topic);
    return this.outbox.add(t.topic, body);
  }

  async edit(t, seq, body) {
    const { message } = await this.request(t, "edit_msg", { seq, body });
    if (message) this.insert(t, [message]);
    this.emit("messages", { topic: t.topic });
  }

  async remove(t, seq) {
    await this.request(t, "delete_msg", { seq });
    const m = t.msgs.get(seq);
    if (m) t.msgs.set(seq, { ...m, body: "", deleted: true });
    this.emit("messages", { topic: t.topic });
  }

  /** Tells the server everything held in the active topic was read. */
  markRead(t) {
    if (!t || t !== this.active || document.visibilityState !== "visible") return;
    const seq = t.hi;
    if (seq > t.readPos) {
      t.readPos = seq;
      this.emit("topics");
    }
    if (seq > t.readSent && t.channel && t.channel.isJoined()) {
      t.readSent = seq;
      // Mentions up to here are read; the server's `unread` confirms the count.
      if (seq >= t.lastSeq) t.unreadMentions = 0;
      t.channel.push("read", { seq });
    }
  }

  onUnread({ topic, last_seq: last, unread, unread_mentions: mentions }) {
    const t = this.topics.get(topic);
    if (!t || typeof last !== "number") return;
    t.lastSeq = Math.max(t.lastSeq, last);
    if (typeof unread === "number") {
      t.readPos = Math.max(t.readPos, last - unread);
      t.readSent = Math.max(t.readSent, last - unread);
    }
    if (typeof mentions === "number") t.unreadMentions = mentions;
    this.emit("topics");
  }

  /** `mention {topic, seq, author, snippet}` on our personal topic. */
  onMention({ topic, seq, author, snippet }) {
    const t = this.topics.get(topic);
    if (!t || typeof seq !== "number") return;
    if (seq > t.readSent) t.unreadMentions = (t.unreadMentions || 0) + 1;
    this.alert(t, seq, author, snippet);
    this.emit("topics");
  }

  /** Raises "alert" once per message (a mention, or a direct message to us). */
  alert(t, seq, author, body) {
    const key = `${t.topic} ${seq}`;
    if (this.alerted.has(key)) return;
    this.alerted.add(key);
    if (this.alerted.size > 500) this.alerted.delete(this.alerted.values().next().value);
    const who = (author && (author.display_name || author.username)) || "Someone";
    const title = t.kind === "room" ? `${who} in #${t.name}` : who;
    this.emit("alert", { topic: t.topic, kind: t.kind, name: t.name, seq, title, body: body || "" });
  }

  // ------------------------------------------------------- active, typing

  /** Makes `t` the topic on screen. */
  activate(t) {
    this.active = t;
    if (!t) return;
    t.usedAt = Date.now();
    if (!t.channel) this.join(t);
    if (t.stale && t.channel && t.channel.isJoined()) this.refreshRecent(t);
    this.markRead(t);
    this.emit("topics");
  }

  /** Tells others we are typing (throttled; only on a live channel). */
  typing(t) {
    if (!t || !t.channel || !t.channel.canPush()) return;
    const now = Date.now();
    if (now - (this.typingSentAt.get(t.topic) || 0) < TYPING_SEND_MS) return;
    this.typingSentAt.set(t.topic, now);
    t.channel.push("typing", {});
  }

  onTyping(t, user) {
    if (!user || user.id === this.me.id) return;
    const entry = t.typing.get(user.id);
    if (entry) clearTimeout(entry.timer);
    t.typing.set(user.id, { user, timer: setTimeout(() => this.clearTyping(t, user.id), TYPING_SHOW_MS) });
    this.emit("typing", { topic: t.topic });
  }

  clearTyping(t, userId) {
    const entry = t.typing.get(userId);
    if (!entry) return;
    clearTimeout(entry.timer);
    t.typing.delete(userId);
    this.emit("typing", { topic: t.topic });
  }

  /** Who is online in a topic: one entry per user, with the earliest online_at of their sockets. */
  online(t) {
    if (!t || !t.presence) return [];
    return t.presence
      .list((id, { metas }) => ({
        id: Number(id),
        username: metas[0].username,
        display_name: metas[0].display_name || metas[0].username,
        bot: Boolean(metas[0].bot),
        since: Math.min(...metas.map((m) => m.online_at || Date.now())),
        sockets: metas.length,
      }))
      .sort((a, b) => a.display_name.localeCompare(b.display_name, undefined, { sensitivity: "base" }));
  }
}
