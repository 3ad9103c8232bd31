// app.js — the entry point: picks the sign-in screen or the chat, wires the
// modules together, routes (/r/<room>, /dm/<id>, and /r/<room>/<seq>,
// /dm/<id>/<seq> for one message; history API), and owns the
// page-level bits: the connection banner (with a quiet "(long-polling)"
// hint when the socket fell back to LongPoll), toasts, the screen-reader
// announcer, the title with the unread count, and keyboard shortcuts
// (Alt+↑/↓ previous/next topic, Escape closes the sidebar on phones), and
// browser notifications of mentions and direct messages (notifications.js).

import * as api from "./api.js";
import * as session from "./session.js";
import * as dialogs from "./dialogs.js";
import { Chat } from "./chat.js";
import { h, byId, show, clear, icon } from "./dom.js";
import { mountSignin } from "./signin.js";
import { mountRecovery } from "./recovery.js";
import { mountSidebar } from "./sidebar.js";
import { mountPane } from "./pane.js";
import { mountComposer } from "./composer.js";
import { mountNotifications } from "./notifications.js";
import { mountSearch } from "./search.js";

/** Longest message body. The server's limit is configurable but not exposed; 4000 is its default. */
const BODY_LIMIT = 4000;
const LAST_TOPIC_KEY = "confab:last-topic";

let chat = null;
let ui = null;
let bannerTimer = null;

const signin = mountSignin({
  onSignedIn(body) {
    session.save(body);
    signin.hide();
    startChat(body.user);
  },
});

const recovery = mountRecovery({
  onSignedIn(body) {
    session.save(body);
    signin.hide();
    startChat(body.user);
  },
  onBack() {
    signin.show();
  },
});

session.startRefreshing(api.post);
session.onEnd((reason) => {
  stopChat();
  const text =
    reason === "expired"
      ? "Your session has ended. Please sign in again."
      : reason === "signed_out_elsewhere"
        ? "You signed out in another tab."
        : "";
  signin.show(text);
});
dialogs.install();

// Signed in from another tab: follow it.
window.addEventListener("storage", (event) => {
  if (event.key !== "confab:session" || !event.newValue || chat) return;
  const now = session.current();
  if (now) {
    signin.hide();
    startChat(now.user);
  }
});

hideBoot();
const existing = session.current();
const resetToken = recovery.tokenFromLocation();
if (resetToken) recovery.showReset(resetToken);
else if (existing) startChat(existing.user);
else signin.show();

function hideBoot() {
  const boot = document.getElementById("boot");
  if (boot) boot.remove();
}

// ------------------------------------------------------------ the chat

function hrefOf(t) {
  return t.kind === "room" ? `/r/${encodeURIComponent(t.name)}` : `/dm/${encodeURIComponent(t.name)}`;
}

/** The link to message `seq` of `t`. */
function linkOf(t, seq) {
  return `${hrefOf(t)}/${seq}`;
}

function topicFromPath(path = location.pathname) {
  return routeOf(path).topic;
}

/** `{topic, seq}` named by a path (`seq` null when it names no message). */
function routeOf(path = location.pathname) {
  const m = path.match(/^\/(r|dm)\/([^/]+)(?:\/([1-9][0-9]{0,15}))?\/?$/);
  if (!m) return { topic: null, seq: null };
  let key;
  try {
    key = decodeURIComponent(m[2]);
  } catch {
    return { topic: null, seq: null };
  }
  return { topic: m[1] === "r" ? `room:${key}` : `dm:${key}`, seq: m[3] ? Number(m[3]) : null };
}

function startChat(user) {
  if (chat) stopChat();
  show(byId("app"), true);
  chat = new Chat(user);
  const c = chat;

  if (!ui) ui = mountUi();
  ui.attach(c);

  c.addEventListener("status", () => renderBanner(c));
  c.addEventListener("topics", (e) => {
    ui.sidebar.render();
    updateTitle();
    if (e.detail.loaded && !c.active) openInitial();
  });
  c.addEventListener("messages", (e) => {
    if (c.active && e.detail.topic === c.active.topic) ui.pane.render(e.detail);
  });
  c.addEventListener("presence", (e) => {
    if (c.active && e.detail.topic === c.active.topic) ui.sidebar.renderOnline();
    else ui.sidebar.render();
  });
  c.addEventListener("typing", (e) => {
    if (c.active && e.detail.topic === c.active.topic) ui.pane.renderTyping();
  });
  c.addEventListener("announce", (e) => announce(e.detail.text));
  c.addEventListener("alert", (e) => ui.notifications.notify(e.detail));
  c.addEventListener("users", () => {
    if (c.active) ui.pane.render({});
    ui.composer.usersChanged();
  });
  c.addEventListener("notice", (e) => toast(e.detail.text));
  c.addEventListener("removed", (e) => {
    if (e.detail.why === "removed" || e.detail.why === "unauthorized") {
      toast(e.detail.kind === "room" ? `You no longer have access to #${e.detail.label}.` : `The conversation with ${e.detail.label} is gone.`);
    }
    if (c.active && c.active.topic === e.detail.topic) {
      c.active = null;
      const fallback = c.topics.get("room:lobby") || c.rooms()[0] || c.conversations()[0];
      if (fallback) navigate(fallback, { replace: true });
      else ui.pane.setTopic(null);
    }
  });

  ui.sidebar.render();
  c.start();
  renderBanner(c);
  // Refresh the stored user (display name, admin) in the background.
  api
    .me()
    .then(({ user: fresh }) => {
      if (chat !== c || !fresh) return;
      session.setUser(fresh);
      Object.assign(c.me, fresh);
      ui.sidebar.render();
    })
    .catch(() => {});
}

function stopChat() {
  if (!chat) return;
  chat.stop();
  chat = null;
  dialogs.close();
  show(byId("app"), false);
  show(byId("banner"), false);
  clearTimeout(bannerTimer);
  if (ui) ui.detach();
  document.title = "confab";
}

/** Opens the topic named by the URL, else the last one used, else lobby (or the first room). */
function openInitial(replace = true) {
  if (!chat) return;
  const wanted = topicFromPath();
  let t = wanted && chat.topics.get(wanted);
  if (wanted && !t && chat.listsLoaded) toast("That room or conversation does not exist, or you cannot see it.");
  if (!t) {
    const last = localStorage.getItem(LAST_TOPIC_KEY);
    t = (last && chat.topics.get(last)) || chat.topics.get("room:lobby") || chat.rooms()[0] || null;
  }
  const seq = t && t.topic === wanted ? routeOf().seq : null;
  if (t) navigate(t, { replace, seq });
}

function navigate(t, { replace = false, focus = true, seq = null } = {}) {
  if (!chat || !t) return;
  const href = seq ? linkOf(t, seq) : hrefOf(t);
  if (location.pathname !== href) {
    if (replace) history.replaceState(null, "", href);
    else history.pushState(null, "", href);
  } else if (replace) {
    history.replaceState(null, "", href);
  }
  open(t, focus, seq);
}

function open(t, focus = true, seq = null) {
  const c = chat;
  ui.pane.setTopic(t, { seq });
  c.activate(t);
  ui.composer.setTopic(t);
  localStorage.setItem(LAST_TOPIC_KEY, t.topic);
  renderTopbar(t);
  ui.sidebar.render();
  ui.sidebar.renderOnline();
  updateTitle();
  if (focus) ui.composer.focus();
}

window.addEventListener("popstate", () => {
  if (!chat) return;
  const { topic: wanted, seq } = routeOf();
  const t = wanted && chat.topics.get(wanted);
  if (t) open(t, true, seq);
});

// Links to a message inside the page (/r/NAME/SEQ, /dm/ID/SEQ) open in place.
document.addEventListener("click", (event) => {
  if (!chat || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = event.target instanceof Element ? event.target.closest("a[href]") : null;
  if (!a || a.target || a.origin !== location.origin) return;
  const { topic: wanted, seq } = routeOf(a.pathname);
  const t = wanted && seq && chat.topics.get(wanted);
  if (!t) return;
  event.preventDefault();
  navigate(t, { seq });
});

function renderTopbar(t) {
  const title = byId("topic-title");
  clear(title);
  if (t.kind === "room") {
    title.append(icon(t.private ? "lock" : "hash"), h("span", { class: "sr-only" }, t.private ? "Private room " : "Room "), h("span", {}, t.name));
  } else {
    title.append(h("span", {}, t.label));
  }
  byId("topic-desc").textContent = t.description || (t.kind === "room" ? (t.private ? "Private room" : "") : "");
  const me = chat.me;
  const canInvite = t.kind === "room" && t.private && (t.owner === me.username || me.admin);
  show(byId("invite"), canInvite);
}

function updateTitle() {
  if (!chat) return;
  let total = 0;
  for (const t of chat.topics.values()) total += chat.unread(t);
  const t = chat.active;
  const name = t ? (t.kind === "room" ? `#${t.name}` : t.label) : "";
  document.title = `${total ? `(${total}) ` : ""}${name ? `${name} · ` : ""}confab`;
  const badge = byId("topbar-unread");
  badge.textContent = total ? String(total) : "";
  badge.setAttribute("aria-label", `${total} unread elsewhere`);
  show(badge, total > 0);
}

// ------------------------------------------------------------ page bits

function renderBanner(c) {
  const banner = byId("banner");
  const text = byId("banner-text");
  const retry = byId("banner-retry");
  clearTimeout(bannerTimer);
  if (c !== chat) return;
  if (c.status === "online") {
    if (!banner.hidden && banner.dataset.state === "offline") {
      // Say that we are back, briefly.
      banner.dataset.state = "back";
      text.textContent = "Connected.";
      transportHint(c, text);
      show(retry, false);
      bannerTimer = setTimeout(() => show(banner, false), 1500);
    } else {
      show(banner, false);
    }
    document.body.classList.remove("is-offline");
    return;
  }
  const offline = c.status === "offline";
  if (!offline && !c.everOpened) {
    // Connecting for the first time: only mention it if it takes a while.
    bannerTimer = setTimeout(() => {
      if (c !== chat || c.status === "online") return;
      banner.dataset.state = "connecting";
      text.textContent = "Connecting…";
      transportHint(c, text);
      show(retry, true);
      show(banner, true);
    }, 1000);
    return;
  }
  banner.dataset.state = "offline";
  text.textContent = "Reconnecting… Messages you send will be delivered when the connection is back.";
  transportHint(c, text);
  show(retry, true);
  show(banner, true);
  document.body.classList.add("is-offline");
  // Pending rows say "Waiting for connection…" now.
  if (c.active) ui.pane.render({});
}

/** Appends the quiet "(long-polling)" hint to the banner text when WebSockets are not in use. */
function transportHint(c, text) {
  if (c.longPolling) text.append(" ", h("span", { class: "banner-hint" }, "(long-polling)"));
}

byId("banner-retry").addEventListener("click", () => chat && chat.reconnectNow());

// The skip link focuses the composer (without touching the URL, which routes).
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  const box = byId("composer-input");
  if (box.offsetParent !== null) box.focus();
});

export function toast(text) {
  const box = byId("toasts");
  const item = h("div", { class: "toast", role: "status" }, h("span", {}, text), h("button", { type: "button", class: "icon-btn toast-x", "aria-label": "Dismiss" }, icon("close")));
  item.querySelector("button").addEventListener("click", () => item.remove());
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

/** Says `text` to screen readers (polite). */
export function announce(text) {
  const box = byId("announcer");
  const line = h("p", {}, text);
  box.append(line);
  while (box.childElementCount > 5) box.firstElementChild.remove();
  setTimeout(() => line.remove(), 15000);
}

// ----------------------------------------------------------------- ui

function mountUi() {
  let c = null;
  mountSearch();
  const sidebar = mountSidebar({
    chat: proxyChat(),
    hrefOf,
    navigate: (t) => navigate(t),
    openDmWith: (person) => openDm(person.username),
    onNewRoom: async () => {
      const room = await dialogs.createRoom();
      if (room && c) {
        const t = c.upsertRoom(room, { join: true });
        navigate(t);
      }
    },
    onNewDm: async () => {
      if (!c) return;
      const online = new Set(c.active ? c.online(c.active).map((p) => p.id) : []);
      await dialogs.pickUser({
        title: "Start a direct conversation",
        hint: "Pick someone to talk to privately.",
        exclude: [c.me.id],
        online,
        onPick: (user) => openDm(user.username),
      });
    },
    onSignOut: async () => {
      const pending = c ? c.outbox.items.length : 0;
      if (pending) {
        const yes = await dialogs.confirm({
          title: "Sign out",
          text: `${pending} message${pending === 1 ? " has" : "s have"} not been sent yet. They will be sent the next time you sign in here.`,
          yes: "Sign out",
          danger: false,
        });
        if (!yes) return;
      }
      try {
        await api.logout();
      } catch {
        // Signing out locally is what matters.
      }
      session.end("signed_out");
    },
  });

  async function openDm(username) {
    if (!c) return null;
    try {
      const { conversation } = await api.openConversation(username);
      const t = c.upsertConversation(conversation, { join: true });
      navigate(t);
      return t;
    } catch (error) {
      toast(`Could not open the conversation: ${error.message}`);
      throw error;
    }
  }

  const pane = mountPane({
    chat: proxyChat(),
    limit: BODY_LIMIT,
    focusComposer: () => composer.focus(),
    toast,
    restoreToComposer: (text) => composer.restore(text),
    linkOf,
  });

  const composer = mountComposer({
    chat: proxyChat(),
    limit: BODY_LIMIT,
    onSent: () => pane.scrollToBottom(),
    editLast: () => pane.editLast(),
    announce,
  });

  // A notification's link: the router follows the new address.
  const notifications = mountNotifications({
    go: (href) => {
      history.pushState(null, "", href);
      window.dispatchEvent(new PopStateEvent("popstate"));
    },
  });

  byId("invite").addEventListener("click", async () => {
    const t = c && c.active;
    if (!t || t.kind !== "room") return;
    await dialogs.pickUser({
      title: `Add people to #${t.name}`,
      hint: "They will see the room and its history.",
      exclude: [c.me.id],
      onPick: async (user) => {
        await api.addMember(t.name, user.username);
        toast(`${user.display_name || user.username} was added to #${t.name}.`);
        return user;
      },
    });
  });

  document.addEventListener("keydown", (event) => {
    if (!c || !c.active) return;
    if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      const order = [...c.rooms(), ...c.conversations()];
      const i = order.indexOf(c.active);
      const next = order[(i + (event.key === "ArrowUp" ? -1 : 1) + order.length) % order.length];
      if (next && next !== c.active) {
        event.preventDefault();
        navigate(next);
      }
    }
  });

  // The modules keep a reference to "the chat"; this indirection follows sign-out/sign-in.
  function proxyChat() {
    return new Proxy(
      {},
      {
        get(_, prop) {
          if (!c) return undefined;
          const value = c[prop];
          return typeof value === "function" ? value.bind(c) : value;
        },
      },
    );
  }

  return {
    sidebar,
    pane,
    composer,
    notifications,
    attach(next) {
      c = next;
    },
    detach() {
      c = null;
      pane.setTopic(null);
      composer.setTopic(null);
    },
  };
}
