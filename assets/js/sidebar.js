// sidebar.js — the left column: rooms (private ones marked with a lock,
// unread badges and unread-mention badges "@N"), direct conversations (with the other person's presence),
// who is online in the current topic ("online since"; a person with several
// tabs is listed once), and the signed-in user with sign-out. On narrow
// screens it slides in over the page behind a toggle button.

import { h, byId, clear, icon, show } from "./dom.js";
import { avatarClass, initial, since, fullTime } from "./format.js";
import { manageBots, botBadge } from "./bots.js";

export function mountSidebar({ chat, hrefOf, navigate, openDmWith, onNewRoom, onNewDm, onSignOut }) {
  const sidebar = byId("sidebar");
  const toggle = byId("sidebar-toggle");
  const scrim = byId("scrim");
  const roomList = byId("room-list");
  const dmList = byId("dm-list");
  const onlineList = byId("online-list");
  const narrow = window.matchMedia("(max-width: 760px)");

  byId("new-room").append(icon("plus"));
  byId("new-dm").append(icon("plus"));
  byId("sign-out").append(icon("logout"));
  byId("sidebar-close").append(icon("close"));
  toggle.append(icon("menu"));

  byId("new-room").addEventListener("click", onNewRoom);
  byId("new-dm").addEventListener("click", onNewDm);
  byId("sign-out").addEventListener("click", onSignOut);
  byId("manage-bots").addEventListener("click", () => manageBots());

  // ---- collapsing on phones
  function setOpen(open) {
    const isOpen = open && narrow.matches;
    sidebar.classList.toggle("is-open", isOpen);
    toggle.setAttribute("aria-expanded", String(isOpen));
    show(scrim, isOpen);
    // Closed off-canvas: keep it out of the tab order and the accessibility tree.
    if (narrow.matches) sidebar.inert = !isOpen;
    else sidebar.inert = false;
    if (isOpen) {
      const current = sidebar.querySelector("[aria-current='page']") || sidebar.querySelector("a, button");
      if (current) current.focus();
    }
  }
  toggle.addEventListener("click", () => setOpen(!sidebar.classList.contains("is-open")));
  byId("sidebar-close").addEventListener("click", () => {
    setOpen(false);
    toggle.focus();
  });
  scrim.addEventListener("click", () => setOpen(false));
  sidebar.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && sidebar.classList.contains("is-open")) {
      setOpen(false);
      toggle.focus();
    }
  });
  narrow.addEventListener("change", () => setOpen(false));
  setOpen(false);

  function link(t) {
    const active = chat.active === t;
    const unread = chat.unread(t);
    const mentions = chat.unreadMentions(t);
    const label = t.kind === "room" ? t.name : t.label;
    const a = h(
      "a",
      {
        href: hrefOf(t),
        class: `sb-item${active ? " is-active" : ""}${unread ? " has-unread" : ""}`,
        "aria-current": active ? "page" : null,
        dataset: { topic: t.topic },
      },
      t.kind === "room"
        ? h("span", { class: "sb-icon" }, icon(t.private ? "lock" : "hash"), t.private ? h("span", { class: "sr-only" }, "private room ") : null)
        : h(
            "span",
            { class: `avatar avatar-xs ${avatarClass(t.peer && t.peer.id)}`, "aria-hidden": "true" },
            initial(t.label),
            peerOnline(t) ? h("span", { class: "avatar-dot" }) : null,
          ),
      h("span", { class: "sb-label" }, label),
      t.kind === "dm" && peerOnline(t) ? h("span", { class: "sr-only" }, ", online") : null,
      mentions
        ? h(
            "span",
            { class: "badge badge-mention", dataset: { mentions: String(mentions) }, title: `${mentions} unread mention${mentions === 1 ? "" : "s"}` },
            `@${mentions > 99 ? "99+" : mentions}`,
            h("span", { class: "sr-only" }, ` mention${mentions === 1 ? "" : "s"}`),
          )
        : null,
      unread ? h("span", { class: "badge", dataset: { unread: String(unread) } }, String(unread > 99 ? "99+" : unread), h("span", { class: "sr-only" }, " unread")) : null,
    );
    a.addEventListener("click", (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      navigate(t);
      setOpen(false);
    });
    return h("li", {}, a);
  }

  function peerOnline(t) {
    return Boolean(t.peer && t.presence && t.presence.state[String(t.peer.id)]);
  }

  function render() {
    const hadFocus = sidebar.contains(document.activeElement) ? document.activeElement.dataset.topic : null;
    clear(roomList);
    for (const t of chat.rooms()) roomList.append(link(t));
    clear(dmList);
    const dms = chat.conversations();
    for (const t of dms) dmList.append(link(t));
    show(byId("dm-empty"), dms.length === 0 && chat.listsLoaded);
    if (hadFocus) {
      const again = sidebar.querySelector(`[data-topic="${CSS.escape(hadFocus)}"]`);
      if (again) again.focus();
    }
    const me = chat.me;
    const meAvatar = byId("me-avatar");
    meAvatar.className = `avatar avatar-sm ${avatarClass(me.id)}`;
    meAvatar.textContent = initial(me.display_name || me.username);
    byId("me-name").textContent = me.display_name || me.username;
    byId("me-username").textContent = `@${me.username}`;
    show(byId("manage-bots"), Boolean(me.admin));
  }

  function renderOnline() {
    const t = chat.active;
    const heading = byId("online-heading");
    clear(onlineList);
    if (!t) {
      heading.textContent = "Online";
      return;
    }
    const people = chat.online(t);
    const where = t.kind === "room" ? `Online in #${t.name}` : "Online here";
    heading.textContent = t.joinState === "joined" || people.length ? `${where} — ${people.length}` : where;
    heading.title = heading.textContent;
    for (const person of people) {
      const isMe = person.id === chat.me.id;
      const body = [
        h("span", { class: `avatar avatar-xs ${avatarClass(person.id)}`, "aria-hidden": "true" }, initial(person.display_name), h("span", { class: "avatar-dot" })),
        h("span", { class: "online-names" }, h("span", { class: "online-name" }, person.display_name, person.bot ? botBadge() : null, isMe ? h("span", { class: "online-you" }, " (you)") : null), h("span", { class: "online-since", title: `online ${fullTime(new Date(person.since))}` }, since(person.since))),
      ];
      const item = isMe
        ? h("div", { class: "online-item", dataset: { userId: String(person.id) } }, body)
        : h(
            "button",
            {
              type: "button",
              class: "online-item",
              dataset: { userId: String(person.id) },
              title: `Message ${person.display_name}`,
              onclick: () => {
                setOpen(false);
                openDmWith(person);
              },
            },
            body,
            h("span", { class: "sr-only" }, ` — send a direct message`),
          );
      onlineList.append(h("li", {}, item));
    }
    if (people.length === 0) onlineList.append(h("li", { class: "sb-empty" }, t.joinState === "joined" ? "Nobody yet." : "…"));
    // DM rows show the peer's presence dot.
    render();
  }

  return { render, renderOnline, close: () => setOpen(false) };
}
