// pane.js — the message pane of the current topic: day separators, author
// and time (consecutive messages of one author within 5 minutes are
// grouped), a "new" divider at the first unread message, pending messages
// from the outbox (Sending… / Waiting for connection… / failed with Retry,
// Edit, Discard), inline edit and delete of one's own messages, scroll-back
// that loads older history on demand, and the typing line.
//
// Each message shows its reactions as chips (emoji, count, who in the
// title, one's own pressed; a click toggles) and offers, in its actions,
// an emoji picker and "copy link" (/r/NAME/SEQ or /dm/ID/SEQ). A topic
// opened on such a link scrolls to that message and highlights it.
//
// Rendering is keyed: each row (day, divider, message by seq, pending by
// client_id) keeps its element while its content is unchanged, so focus and
// scroll position survive updates. The scroll position sticks to the
// bottom when it was there, and otherwise stays on the message the reader
// was looking at: the topmost message row on screen keeps its offset from
// the top of the pane across every render (never a day separator or the
// "new" divider, which move when older history is put above them).
//
// Scroll-back loads one page per approach to the top: coming within
// LOAD_OLDER_PX of the top loads a page, a page in flight blocks another,
// and the next one is armed when the reader leaves that zone, or at once
// when the page lands and the reader is still in it (so the view never
// stays at the top with older history not loaded).

import { h, byId, clear, icon, show } from "./dom.js";
import * as format from "./format.js";
import * as dialogs from "./dialogs.js";
import { botBadge } from "./bots.js";

const GROUP_MS = 5 * 60 * 1000;
const NEAR_BOTTOM_PX = 60;
const LOAD_OLDER_PX = 400;
/** Refusals that sending again cannot fix (the text must change). */
const FINAL_REASONS = new Set(["body_too_long", "empty_body", "invalid_client_id"]);
/** The picker's emoji and their names. */
const PICKER = [
  ["👍", "thumbs up"],
  ["👎", "thumbs down"],
  ["😄", "grinning face"],
  ["🎉", "party popper"],
  ["❤️", "red heart"],
  ["😮", "surprised face"],
  ["😢", "crying face"],
  ["👀", "eyes"],
  ["🚀", "rocket"],
  ["✅", "check mark"],
  ["🙏", "folded hands"],
  ["🔥", "fire"],
];

export function mountPane({ chat, limit, focusComposer, toast, restoreToComposer, linkOf }) {
  const scroller = byId("scroller");
  const list = byId("message-list");
  const loadOlderBtn = byId("load-older");
  const historyStart = byId("history-start");
  const historyLoading = byId("history-loading");
  const empty = byId("pane-empty");
  const jump = byId("jump");
  const typingLine = byId("typing");
  const rows = new Map(); // key → element
  let topic = null;
  let editing = null; // seq being edited
  let editDraft = "";
  let readAtOpen = null; // the read position when the topic was opened, if it had unread messages
  let positioned = false; // scrolled to the first unread message or the bottom once loaded
  let unseenBelow = false;
  let olderArmed = true; // reaching the top zone loads a page
  let target = null; // seq to scroll to once it is loaded (a link to a message)
  let highlighted = null; // seq shown highlighted (the message a link pointed at)
  let picker = null; // {el, trigger} of the open emoji picker

  jump.append(icon("down"), h("span", { id: "jump-text" }, "Jump to latest"));

  loadOlderBtn.addEventListener("click", () => loadOlder(true));
  jump.addEventListener("click", () => {
    scrollToBottom();
    focusComposer();
  });
  scroller.addEventListener("scroll", () => {
    if (!topic) return;
    if (!nearTop()) olderArmed = true;
    else if (olderArmed) loadOlder(false);
    if (atBottom()) {
      unseenBelow = false;
      chat.markRead(topic);
    }
    updateJump();
  }, { passive: true });

  function nearTop() {
    return scroller.scrollTop < LOAD_OLDER_PX;
  }

  function atBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
    unseenBelow = false;
    updateJump();
  }

  function updateJump() {
    const far = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight > scroller.clientHeight;
    const visible = !atBottom() && (unseenBelow || far);
    show(jump, visible);
    byId("jump-text").textContent = unseenBelow ? "New messages" : "Jump to latest";
  }

  /** Loads one page of older history (the button always may; scrolling only when armed). */
  async function loadOlder(byButton) {
    const t = topic;
    if (!t || t.loadingOlder || !chat.hasOlder(t) || t.joinState !== "joined") return;
    olderArmed = false;
    let failed = false;
    try {
      await chat.loadOlder(t);
    } catch (error) {
      failed = true;
      toast(`Could not load older messages: ${format.reasonText(error.message)}`);
    }
    if (t !== topic) return;
    if (byButton) {
      // Keep keyboard users where they were: the button (hidden while loading) gets the focus back
      // if there is more, without scrolling the view away from the message being read.
      if (chat.hasOlder(t)) loadOlderBtn.focus({ preventScroll: true });
      else scroller.focus({ preventScroll: true });
      olderArmed = !nearTop();
      return;
    }
    // Landed with the reader still at the top: the next page is due now (a failure waits for the reader).
    olderArmed = !failed || !nearTop();
    if (!failed && nearTop()) loadOlder(false);
  }

  // ------------------------------------------------------------- rows

  function computeRows(t) {
    const out = [];
    let prev = null;
    let prevDate = null;
    const messages = chat.messages(t);
    const first = messages.find((m) => readAtOpen !== null && m.seq > readAtOpen);
    const newFrom = first && first.seq > messages[0].seq && first.user && first.user.id !== chat.me.id ? first.seq : 0;
    for (const m of messages) {
      const date = new Date(m.inserted_at);
      const day = format.dayKey(date);
      let broken = false;
      if (!prevDate || format.dayKey(prevDate) !== day) {
        const label = format.dayLabel(date);
        out.push({ key: `d:${day}`, version: label, build: () => daySeparator(label, date) });
        broken = true;
      }
      if (newFrom && m.seq === newFrom) {
        out.push({ key: "new", version: "new", build: newDivider });
        broken = true;
      }
      const continued =
        !broken && prev && !prev.deleted && prev.user && m.user && prev.user.id === m.user.id && date - prevDate < GROUP_MS;
      const isEditing = editing === m.seq;
      out.push({
        key: `m:${m.seq}`,
        version: JSON.stringify([
          m.body,
          m.edited_at,
          Boolean(m.deleted),
          Boolean(continued),
          isEditing,
          format.nameOf(m.user),
          m.inserted_at,
          m.reactions || null,
          highlighted === m.seq,
          reactionNames(m),
          (m.mentions || []).map((id) => chat.usernameOf(id)),
        ]),
        build: () => messageRow(t, m, Boolean(continued), isEditing),
      });
      prev = m;
      prevDate = date;
    }
    let prevOwn = prev && prev.user && prev.user.id === chat.me.id && !prev.deleted ? prevDate : null;
    for (const item of chat.outbox.list(t.topic)) {
      const date = new Date(item.created_at);
      if (!prevDate || format.dayKey(prevDate) !== format.dayKey(date)) {
        const label = format.dayLabel(date);
        const day = format.dayKey(date);
        if (!out.some((r) => r.key === `d:${day}`)) out.push({ key: `d:${day}`, version: label, build: () => daySeparator(label, date) });
        prevOwn = null;
      }
      const continued = Boolean(prevOwn && date - prevOwn < GROUP_MS);
      const live = chat.status === "online" && t.joinState === "joined";
      const state = item.state === "failed" ? `failed:${item.error}` : item.state === "sending" && live ? "sending" : live ? "queued" : "offline";
      out.push({
        key: `p:${item.client_id}`,
        version: JSON.stringify([state, continued]),
        build: () => pendingRow(t, item, continued, state),
      });
      prevOwn = date;
      prevDate = date;
    }
    return out;
  }

  function daySeparator(label, date) {
    return h(
      "li",
      { class: "day-sep" },
      h("span", { class: "day-sep-label" }, h("time", { datetime: date.toISOString().slice(0, 10) }, label)),
    );
  }

  function newDivider() {
    return h("li", { class: "new-sep", id: "new-divider" }, h("span", { class: "new-sep-label" }, "New"));
  }

  function timeEl(date, cls) {
    return h("time", { class: cls, datetime: date.toISOString(), title: format.fullTime(date) }, format.time(date));
  }

  function avatar(user) {
    return h("span", { class: `avatar ${format.avatarClass(user && user.id)}`, "aria-hidden": "true" }, format.initial(format.nameOf(user)));
  }

  /** How a name in `m` is highlighted: names it mentions, ours (and @here when it includes us) more strongly. */
  function mentionClassOf(m) {
    const ids = m.mentions || [];
    if (!ids.length) return null;
    const me = chat.me;
    const names = new Map();
    for (const id of ids) {
      const username = id === me.id ? me.username : chat.usernameOf(id);
      if (username) names.set(username.toLowerCase(), id);
    }
    const strong = "mention mention-me";
    return (name) => {
      if (name === "here") return ids.includes(me.id) ? strong : "mention";
      const id = names.get(name);
      if (id === undefined) return null;
      return id === me.id ? strong : "mention";
    };
  }

  function messageRow(t, m, continued, isEditing) {
    const date = new Date(m.inserted_at);
    const own = Boolean(m.user && m.user.id === chat.me.id);
    const canChange = !m.deleted && (own || chat.me.admin);
    const name = format.nameOf(m.user);
    const li = h("li", {
      class: `msg${own ? " is-own" : ""}${continued ? " is-continued" : ""}${m.deleted ? " is-deleted" : ""}${isEditing ? " is-editing" : ""}${highlighted === m.seq ? " is-target" : ""}`,
      id: `msg-${m.seq}`,
      dataset: { seq: String(m.seq), userId: String(m.user ? m.user.id : ""), ...(m.client_id ? { clientId: m.client_id } : {}) },
    });
    li.append(h("div", { class: "msg-gutter" }, continued ? timeEl(date, "msg-time-hover") : avatar(m.user)));
    const main = h("div", { class: "msg-main" });
    if (continued) {
      main.append(h("span", { class: "sr-only" }, `${name}, ${format.time(date)}: `));
    } else {
      main.append(
        h(
          "div",
          { class: "msg-head" },
          h("span", { class: "msg-author" }, name),
          m.user && m.user.bot ? botBadge() : null,
          m.user && m.user.username && m.user.username !== name ? h("span", { class: "msg-username" }, `@${m.user.username}`) : null,
          timeEl(date, "msg-time"),
        ),
      );
    }
    if (m.deleted) {
      main.append(h("div", { class: "msg-body msg-deleted" }, "This message was deleted."));
    } else if (isEditing) {
      main.append(editor(t, m));
    } else {
      const body = h("div", { class: "msg-body" });
      body.append(format.linkify(m.body, mentionClassOf(m)));
      if (m.edited_at) {
        body.append(" ", h("span", { class: "msg-edited", title: `edited ${format.fullTime(new Date(m.edited_at))}` }, "(edited)"));
      }
      main.append(body);
      const chips = reactionChips(t, m);
      if (chips) main.append(chips);
    }
    li.append(main);
    if (!m.deleted && !isEditing) {
      const when = format.time(date);
      li.append(
        h(
          "div",
          { class: "msg-actions" },
          h("button", { type: "button", class: "icon-btn react-btn", "aria-label": `Add a reaction to the message from ${when}`, title: "Add reaction", "aria-haspopup": "menu", "aria-expanded": "false", onclick: (event) => openPicker(t, m, event.currentTarget) }, icon("smile")),
          h("button", { type: "button", class: "icon-btn", "aria-label": `Copy a link to the message from ${when}`, title: "Copy link", onclick: () => copyLink(t, m) }, icon("link")),
          canChange && own
            ? h("button", { type: "button", class: "icon-btn", "aria-label": `Edit message from ${when}`, title: "Edit", onclick: () => startEdit(m.seq) }, icon("edit"))
            : null,
          canChange
            ? h("button", { type: "button", class: "icon-btn", "aria-label": `Delete message from ${when}`, title: "Delete", onclick: () => askDelete(t, m) }, icon("trash"))
            : null,
        ),
      );
    }
    return li;
  }

  // -------------------------------------------------------- reactions

  /** Who reacted, per emoji, as names (part of a row's version: names arrive late). */
  function reactionNames(m) {
    if (!m.reactions) return null;
    return Object.values(m.reactions).map((ids) => ids.map((id) => chat.nameOf(id)).join(","));
  }

  function reactionChips(t, m) {
    const entries = Object.entries(m.reactions || {}).filter(([, ids]) => Array.isArray(ids) && ids.length);
    if (!entries.length) return null;
    const box = h("div", { class: "msg-reactions", role: "group", "aria-label": "Reactions" });
    for (const [emoji, ids] of entries) {
      const mine = ids.includes(chat.me.id);
      const names = ids.map((id) => (id === chat.me.id ? "you" : chat.nameOf(id)));
      const who = `${names.join(", ")} reacted with ${emoji}`;
      box.append(
        h(
          "button",
          {
            type: "button",
            class: `reaction-chip${mine ? " is-mine" : ""}`,
            title: who,
            "aria-pressed": mine ? "true" : "false",
            "aria-label": `${emoji} ${ids.length}: ${who}`,
            dataset: { emoji },
            onclick: () => toggleReaction(t, m.seq, emoji),
          },
          h("span", { class: "reaction-emoji", "aria-hidden": "true" }, emoji),
          h("span", { class: "reaction-count", "aria-hidden": "true" }, String(ids.length)),
        ),
      );
    }
    return box;
  }

  async function toggleReaction(t, seq, emoji) {
    try {
      await chat.react(t, seq, emoji);
    } catch (e) {
      toast(`Reaction not saved: ${format.reasonText(e.message)}.`);
    }
  }

  function closePicker(refocus) {
    if (!picker) return;
    const { el, trigger } = picker;
    picker = null;
    el.remove();
    trigger.setAttribute("aria-expanded", "false");
    document.removeEventListener("pointerdown", outsidePicker, true);
    if (refocus && trigger.isConnected) trigger.focus();
  }

  function outsidePicker(event) {
    if (picker && !picker.el.contains(event.target) && event.target !== picker.trigger) closePicker(false);
  }

  function openPicker(t, m, trigger) {
    const again = picker && picker.trigger === trigger;
    closePicker(false);
    if (again) return;
    const buttons = PICKER.map(([emoji, name]) =>
      h(
        "button",
        {
          type: "button",
          role: "menuitem",
          class: "picker-emoji",
          "aria-label": name,
          title: name,
          dataset: { emoji },
          onclick: () => {
            closePicker(true);
            toggleReaction(t, m.seq, emoji);
          },
        },
        emoji,
      ),
    );
    const el = h("div", { class: "reaction-picker", role: "menu", "aria-label": "Pick a reaction" }, ...buttons);
    el.addEventListener("keydown", (event) => {
      const i = buttons.indexOf(document.activeElement);
      const step = { ArrowRight: 1, ArrowDown: 4, ArrowLeft: -1, ArrowUp: -4 }[event.key];
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        closePicker(true);
      } else if (step) {
        event.preventDefault();
        buttons[(i + step + buttons.length) % buttons.length].focus();
      } else if (event.key === "Tab") {
        closePicker(false);
      }
    });
    trigger.setAttribute("aria-expanded", "true");
    const row = trigger.closest(".msg");
    (row || list).append(el);
    picker = { el, trigger };
    document.addEventListener("pointerdown", outsidePicker, true);
    buttons[0].focus();
  }

  async function copyLink(t, m) {
    const url = new URL(linkOf(t, m.seq), location.href).href;
    try {
      await navigator.clipboard.writeText(url);
      toast("Link copied.");
    } catch {
      toast(`Link: ${url}`);
    }
  }

  /** Scrolls to the message a link pointed at, once it is loaded; true when done. */
  function revealTarget() {
    if (target === null) return false;
    const el = rows.get(`m:${target}`);
    if (!el) return false;
    target = null;
    positioned = true;
    el.scrollIntoView({ block: "center" });
    return true;
  }

  function editor(t, m) {
    const area = h("textarea", { class: "edit-input", rows: "2", "aria-label": "Edit message", maxlength: null });
    area.value = editDraft;
    const error = h("p", { class: "field-error", role: "alert", hidden: true });
    const save = h("button", { type: "submit", class: "btn btn-primary btn-sm" }, "Save");
    const cancel = h("button", { type: "button", class: "btn btn-ghost btn-sm", onclick: () => stopEdit(true) }, "Cancel");
    const form = h("form", { class: "edit-form" }, area, error, h("div", { class: "edit-actions" }, h("span", { class: "edit-hint" }, "Escape to cancel · Enter to save"), cancel, save));
    const autosize = () => {
      area.style.height = "auto";
      area.style.height = `${Math.min(area.scrollHeight + 2, 320)}px`;
    };
    area.addEventListener("input", () => {
      editDraft = area.value;
      autosize();
      const over = format.charCount(area.value) > limit;
      save.disabled = over;
      error.hidden = !over;
      error.textContent = over ? `Too long: at most ${limit} characters.` : "";
    });
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        stopEdit(true);
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = area.value.replace(/\s+$/, "");
      if (!body.trim()) {
        error.textContent = "A message can't be empty. Delete it instead.";
        error.hidden = false;
        return;
      }
      if (body === m.body) {
        stopEdit(true);
        return;
      }
      save.disabled = true;
      try {
        await chat.edit(t, m.seq, body);
        stopEdit(true);
      } catch (e) {
        save.disabled = false;
        error.textContent = `Not saved: ${format.reasonText(e.message)}.`;
        error.hidden = false;
      }
    });
    requestAnimationFrame(() => {
      if (!area.isConnected) return;
      autosize();
      area.focus();
      area.setSelectionRange(area.value.length, area.value.length);
    });
    return form;
  }

  function startEdit(seq) {
    const m = topic && topic.msgs.get(seq);
    if (!m || m.deleted) return;
    editing = seq;
    editDraft = m.body;
    render({});
    const row = rows.get(`m:${seq}`);
    if (row) row.scrollIntoView({ block: "nearest" });
  }

  function stopEdit(refocus) {
    editing = null;
    editDraft = "";
    render({});
    if (refocus) focusComposer();
  }

  async function askDelete(t, m) {
    const yes = await dialogs.confirm({
      title: "Delete message",
      text: "Delete this message for everyone? This can't be undone.",
      yes: "Delete",
    });
    if (!yes) return;
    try {
      await chat.remove(t, m.seq);
      focusComposer();
    } catch (e) {
      toast(`Not deleted: ${format.reasonText(e.message)}.`);
    }
  }

  function pendingRow(t, item, continued, state) {
    const date = new Date(item.created_at);
    const failed = item.state === "failed";
    const li = h("li", {
      class: `msg is-own is-pending${continued ? " is-continued" : ""}${failed ? " is-failed" : ""}`,
      dataset: { clientId: item.client_id, pending: failed ? "failed" : "pending" },
    });
    li.append(h("div", { class: "msg-gutter" }, continued ? null : avatar(chat.me)));
    const main = h("div", { class: "msg-main" });
    if (!continued) {
      main.append(h("div", { class: "msg-head" }, h("span", { class: "msg-author" }, format.nameOf(chat.me)), timeEl(date, "msg-time")));
    }
    const body = h("div", { class: "msg-body" });
    body.append(format.linkify(item.body));
    main.append(body);
    let status;
    if (failed) {
      status = h(
        "div",
        { class: "msg-status is-error" },
        icon("alert"),
        h("span", {}, `Not sent: ${format.reasonText(item.error)}.`),
        FINAL_REASONS.has(item.error) ? null : h("button", { type: "button", class: "link-btn", onclick: () => chat.outbox.retry(item.client_id) }, "Retry"),
        h("button", { type: "button", class: "link-btn", onclick: () => { chat.outbox.discard(item.client_id); restoreToComposer(item.body); } }, "Edit"),
        h("button", { type: "button", class: "link-btn", onclick: () => chat.outbox.discard(item.client_id) }, "Discard"),
      );
    } else {
      status = h(
        "div",
        { class: "msg-status" },
        icon("clock"),
        h("span", {}, state === "offline" ? "Waiting for connection…" : "Sending…"),
      );
    }
    main.append(status);
    li.append(main);
    return li;
  }

  // ----------------------------------------------------------- render

  /** Re-renders the topic's rows; `detail.appended` / `detail.prepended` say what changed. */
  function render(detail = {}) {
    const t = topic;
    if (!t) return;
    const stick = atBottom();
    // By key: a row whose look changes (the first message of a day becomes a continuation) is rebuilt.
    const anchor = stick ? null : anchorRow();
    const anchorKey = anchor ? anchor.__key : null;
    const anchorTop = anchor ? anchor.getBoundingClientRect().top : 0;

    const wanted = computeRows(t);
    const desired = [];
    const keys = new Set();
    for (const row of wanted) {
      let el = rows.get(row.key);
      if (!el || el.__version !== row.version) {
        el = row.build();
        el.__version = row.version;
        el.__key = row.key;
        rows.set(row.key, el);
      }
      keys.add(row.key);
      desired.push(el);
    }
    for (const key of [...rows.keys()]) if (!keys.has(key)) rows.delete(key);
    let cursor = list.firstChild;
    for (const el of desired) {
      if (el === cursor) {
        cursor = cursor.nextSibling;
        continue;
      }
      list.insertBefore(el, cursor);
    }
    while (cursor) {
      const next = cursor.nextSibling;
      list.removeChild(cursor);
      cursor = next;
    }

    // A rebuilt row took the open picker with it.
    if (picker && !picker.el.isConnected) closePicker(false);

    // History edge and loading state.
    const loaded = t.loaded;
    const older = chat.hasOlder(t);
    show(historyLoading, t.loadingOlder || (!loaded && t.msgs.size === 0));
    show(loadOlderBtn, loaded && older && !t.loadingOlder);
    show(historyStart, loaded && !older && t.msgs.size > 0);
    historyStart.textContent = t.kind === "room" ? `This is the very beginning of #${t.name}.` : `This is the beginning of your conversation with ${t.label}.`;
    const isEmpty = loaded && t.msgs.size === 0 && chat.outbox.list(t.topic).length === 0;
    show(empty, isEmpty);
    if (isEmpty) {
      clear(empty);
      empty.append(
        h("div", { class: "pane-empty-icon" }, icon(t.kind === "room" ? "hash" : "chat")),
        h("p", { class: "pane-empty-title" }, t.kind === "room" ? `Welcome to #${t.name}` : `You and ${t.label}`),
        h("p", { class: "pane-empty-text" }, t.kind === "room" ? (t.description || "No messages yet. Say hello!") : "This is the start of your direct conversation."),
      );
    }

    if (target !== null) {
      if (!revealTarget() && loaded && !t.loadingAround) seekTarget(t);
    } else if (!positioned && loaded) {
      positioned = true;
      const divider = rows.get("new");
      if (divider && divider.offsetTop > scroller.clientHeight / 2) {
        scroller.scrollTop = divider.offsetTop - scroller.clientHeight / 3;
      } else {
        scroller.scrollTop = scroller.scrollHeight;
      }
    } else if (stick) {
      scroller.scrollTop = scroller.scrollHeight;
    } else if (anchorKey && rows.get(anchorKey)) {
      scroller.scrollTop += rows.get(anchorKey).getBoundingClientRect().top - anchorTop;
      if (detail.appended) unseenBelow = true;
    }
    updateJump();
    if (atBottom()) chat.markRead(t);
    // Too little to scroll: fetch more so scroll-back has something to do.
    if (loaded && older && !t.loadingOlder && scroller.scrollHeight <= scroller.clientHeight + LOAD_OLDER_PX) {
      loadOlder(false);
    }
  }

  /**
   * The row whose place on screen a render keeps: the topmost message row
   * at least partly visible (separators move when history is put above
   * them), else the first visible row of any kind.
   */
  function anchorRow() {
    const top = scroller.getBoundingClientRect().top;
    let fallback = null;
    for (const el of list.children) {
      if (el.getBoundingClientRect().bottom <= top) continue;
      if (el.classList.contains("msg")) return el;
      fallback ??= el;
    }
    return fallback;
  }

  /** Loads the page around the linked message when it is not held. */
  async function seekTarget(t) {
    const seq = target;
    t.loadingAround = true;
    let found = false;
    try {
      found = await chat.loadAround(t, seq);
    } catch (error) {
      toast(`Could not load that message: ${format.reasonText(error.message)}`);
    } finally {
      t.loadingAround = false;
    }
    if (t !== topic || target !== seq) return;
    if (!found) {
      // No such message (any more): open at the bottom as usual.
      target = null;
      highlighted = null;
      toast("That message is not there any more.");
    }
    render({});
  }

  function renderTyping() {
    if (!topic) return;
    const names = [...topic.typing.values()].map((e) => format.nameOf(e.user));
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    typingLine.textContent = text;
    typingLine.classList.toggle("is-active", Boolean(text));
  }

  return {
    /** Shows `t` (or nothing), scrolled to message `seq` (highlighted), else the first unread message or the bottom. */
    setTopic(t, { seq = null } = {}) {
      closePicker(false);
      topic = t;
      target = seq;
      highlighted = seq;
      editing = null;
      editDraft = "";
      unseenBelow = false;
      clear(list);
      rows.clear();
      if (!t) return;
      readAtOpen = t.lastSeq > t.readPos ? t.readPos : null;
      positioned = false;
      olderArmed = true;
      render({});
      renderTyping();
    },
    render,
    renderTyping,
    scrollToBottom,
    /** Edits the newest message of one's own (Up arrow in an empty composer). */
    editLast() {
      if (!topic) return false;
      const mine = chat.messages(topic).filter((m) => m.user && m.user.id === chat.me.id && !m.deleted);
      const last = mine[mine.length - 1];
      if (!last) return false;
      startEdit(last.seq);
      return true;
    },
  };
}
