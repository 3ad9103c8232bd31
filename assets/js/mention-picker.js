// mention-picker.js — the composer's `@` suggestions: typing `@` and the
// start of a name lists the people who may be mentioned in the open topic
// (and `@here`) in a listbox under the caret's line. ↑/↓ move, Enter or Tab
// picks, Escape closes; the box keeps focus and points at the highlighted
// option with aria-activedescendant. A click picks too.

import { h, byId, clear, show } from "./dom.js";

/** Most suggestions listed at once. */
const MAX_ITEMS = 8;
/** `@` and a partial name right before the caret. */
const QUERY_RE = /(?:^|[^A-Za-z0-9_.@-])@([A-Za-z0-9_.-]{0,32})$/;

export function mountMentionPicker({ input, chat, topic, picked }) {
  const list = byId("mention-list");
  let items = [];
  let active = 0;
  let range = null; // {start, end, text} of the "@query" being completed

  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-controls", "mention-list");

  function query() {
    if (input.selectionStart !== input.selectionEnd) return null;
    const caret = input.selectionEnd;
    const m = input.value.slice(0, caret).match(QUERY_RE);
    if (!m) return null;
    return { start: caret - m[1].length - 1, end: caret, text: m[1].toLowerCase() };
  }

  function matches(person, text) {
    if (person.username.toLowerCase().startsWith(text)) return true;
    return String(person.display_name || "")
      .toLowerCase()
      .split(/\s+/)
      .some((word) => word.startsWith(text));
  }

  /** Re-reads the query at the caret and lists what matches (or closes). */
  function update() {
    const t = topic();
    const q = t ? query() : null;
    if (!q) {
      close();
      return;
    }
    if (!range) chat.loadUsers(); // newcomers since the last read
    const people = chat
      .mentionable(t)
      .filter((p) => matches(p, q.text))
      .sort((a, b) => a.username.localeCompare(b.username))
      .slice(0, MAX_ITEMS);
    const here = "here".startsWith(q.text) ? [{ username: "here", display_name: "Everyone online here", here: true }] : [];
    const next = [...people, ...here];
    if (!next.length) {
      close();
      return;
    }
    if (!range || range.text !== q.text) active = 0;
    items = next;
    range = q;
    active = Math.min(active, items.length - 1);
    render();
  }

  function render() {
    clear(list);
    items.forEach((person, i) => {
      const selected = i === active;
      list.append(
        h(
          "li",
          {
            id: `mention-opt-${i}`,
            role: "option",
            class: `mention-opt${selected ? " is-active" : ""}`,
            "aria-selected": selected ? "true" : "false",
            dataset: { username: person.username },
            // Keep the focus in the box.
            onmousedown: (event) => event.preventDefault(),
            onclick: () => pick(i),
          },
          h("span", { class: "mention-opt-name" }, person.display_name || person.username),
          h("span", { class: "mention-opt-user" }, `@${person.username}`),
        ),
      );
    });
    show(list, true);
    input.setAttribute("aria-activedescendant", `mention-opt-${active}`);
    const current = list.children[active];
    if (current && current.scrollIntoView) current.scrollIntoView({ block: "nearest" });
  }

  function close() {
    items = [];
    range = null;
    active = 0;
    clear(list);
    show(list, false);
    input.removeAttribute("aria-activedescendant");
  }

  function pick(i) {
    const person = items[i];
    if (!person || !range) return;
    const text = `@${person.username} `;
    input.value = input.value.slice(0, range.start) + text + input.value.slice(range.end);
    const caret = range.start + text.length;
    input.setSelectionRange(caret, caret);
    close();
    input.focus();
    picked();
  }

  /** Handles a key of the box while the list is open; true when it was the list's. */
  function handleKey(event) {
    if (!items.length || event.isComposing) return false;
    switch (event.key) {
      case "ArrowDown":
        active = (active + 1) % items.length;
        render();
        break;
      case "ArrowUp":
        active = (active - 1 + items.length) % items.length;
        render();
        break;
      case "Enter":
      case "Tab":
        if (event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return false;
        pick(active);
        break;
      case "Escape":
        close();
        event.stopPropagation();
        break;
      default:
        return false;
    }
    event.preventDefault();
    return true;
  }

  input.addEventListener("click", update);
  input.addEventListener("blur", close);
  list.hidden = true;

  return {
    update,
    close,
    handleKey,
    /** The user directory changed: refresh an open list. */
    refresh: () => range && update(),
  };
}
