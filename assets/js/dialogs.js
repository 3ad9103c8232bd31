// dialogs.js — the modal dialogs, all in the one <dialog id="dialog">
// (showModal makes the rest of the page inert and Escape closes it; focus
// returns to the control that opened it): create a room, start a direct
// conversation (the user list), add people to a private room, and confirm.

import * as api from "./api.js";
import { h, byId, clear, icon } from "./dom.js";
import { avatarClass, initial, nameOf } from "./format.js";

const dialog = () => byId("dialog");
let opener = null;

export function open(title, body, { wide = false } = {}) {
  const d = dialog();
  if (d.open) d.close();
  opener = document.activeElement;
  clear(d);
  d.className = `dialog${wide ? " dialog-wide" : ""}`;
  const closeBtn = h("button", { type: "button", class: "icon-btn dialog-x", "aria-label": "Close", onclick: () => close() }, icon("close"));
  d.append(h("div", { class: "dialog-head" }, h("h2", { id: "dialog-title" }, title), closeBtn), body);
  d.showModal();
  const first = d.querySelector("[autofocus]") || d.querySelector("input, textarea, select, button:not(.dialog-x)");
  if (first) first.focus();
  return d;
}

export function close() {
  const d = dialog();
  if (d.open) d.close();
}

function restoreFocus() {
  if (opener && document.contains(opener) && typeof opener.focus === "function") opener.focus();
  opener = null;
}

export function install() {
  const d = dialog();
  d.addEventListener("close", restoreFocus);
  // A click on the backdrop (the dialog element itself, outside its box) closes it.
  d.addEventListener("mousedown", (event) => {
    if (event.target !== d) return;
    const r = d.getBoundingClientRect();
    const inside = event.clientX >= r.left && event.clientX <= r.right && event.clientY >= r.top && event.clientY <= r.bottom;
    if (!inside) close();
  });
}

export function field(id, label, input, hint) {
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  input.id = id;
  input.setAttribute("aria-describedby", [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(" "));
  return {
    el: h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("p", { class: "field-hint", id: `${id}-hint` }, hint) : null, error),
    input,
    setError(text) {
      error.textContent = text || "";
      error.hidden = !text;
      if (text) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    },
  };
}

function notice() {
  return h("p", { class: "form-notice", role: "alert", hidden: true });
}

function setNotice(el, text) {
  el.textContent = text || "";
  el.hidden = !text;
}

/** Create a room; resolves with the room or null. */
export function createRoom() {
  return new Promise((resolve) => {
    const name = field(
      "room-name",
      "Name",
      h("input", { type: "text", autocomplete: "off", spellcheck: "false", maxlength: "64", required: true, autofocus: true }),
      "Lowercase letters, digits, “-” and “_”; up to 64 characters.",
    );
    const description = field("room-description", "Description (optional)", h("input", { type: "text", autocomplete: "off", maxlength: "200" }));
    const priv = h("input", { type: "checkbox", id: "room-private" });
    const formNotice = notice();
    const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Create room");
    name.input.addEventListener("input", () => {
      const cleaned = name.input.value.toLowerCase().replace(/\s+/g, "-");
      if (cleaned !== name.input.value) name.input.value = cleaned;
      name.setError(null);
    });
    let result = null;
    const form = h(
      "form",
      { class: "dialog-body", novalidate: true },
      formNotice,
      name.el,
      description.el,
      h(
        "div",
        { class: "field field-check" },
        priv,
        h("label", { for: "room-private" }, icon("lock"), " Private — only people you add can see it"),
      ),
      h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "btn btn-ghost", onclick: () => close() }, "Cancel"), submit),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = name.input.value.trim();
      if (!/^[a-z0-9_-]{1,64}$/.test(value)) {
        name.setError(value ? "Use only a–z, 0–9, “-” and “_”." : "Give the room a name.");
        name.input.focus();
        return;
      }
      submit.disabled = true;
      try {
        const { room } = await api.createRoom({ name: value, private: priv.checked, description: description.input.value.trim() });
        result = room;
        close();
      } catch (error) {
        if (error.fields && error.fields.name) {
          name.setError(`The name ${error.fields.name.join("; ")}.`);
          name.input.focus();
        } else if (error.fields && error.fields.description) {
          description.setError(`The description ${error.fields.description.join("; ")}.`);
        } else {
          setNotice(formNotice, error.message);
        }
      } finally {
        submit.disabled = false;
      }
    });
    const d = open("Create a room", form);
    d.addEventListener("close", () => resolve(result), { once: true });
  });
}

/**
 * Pick a user from the user list. `title`, `action` (button verb) and
 * `exclude` (ids) shape it; `onPick(user)` may throw an ApiError to show.
 * Resolves with the value onPick returned, or null.
 */
export function pickUser({ title, hint, exclude = [], online = new Set(), onPick }) {
  return new Promise((resolve) => {
    const filter = h("input", {
      type: "search",
      id: "user-filter",
      placeholder: "Find someone by name",
      autocomplete: "off",
      spellcheck: "false",
      "aria-controls": "user-results",
      autofocus: true,
    });
    const list = h("ul", { id: "user-results", class: "user-results", "aria-label": "People" });
    const status = h("p", { class: "user-results-status", "aria-live": "polite" }, "Loading people…");
    const formNotice = notice();
    let users = [];
    let result = null;

    function render() {
      clear(list);
      const q = filter.value.trim().toLowerCase();
      const shown = users.filter(
        (u) => !exclude.includes(u.id) && (!q || u.username.includes(q) || nameOf(u).toLowerCase().includes(q)),
      );
      for (const user of shown) {
        const button = h(
          "button",
          { type: "button", class: "user-pick", dataset: { username: user.username } },
          h("span", { class: `avatar avatar-sm ${avatarClass(user.id)}`, "aria-hidden": "true" }, initial(nameOf(user))),
          h("span", { class: "user-pick-names" }, h("span", { class: "user-pick-name" }, nameOf(user)), h("span", { class: "user-pick-username" }, `@${user.username}`)),
          online.has(user.id) ? h("span", { class: "presence-dot", title: "online" }, h("span", { class: "sr-only" }, "online")) : null,
        );
        button.addEventListener("click", async () => {
          button.disabled = true;
          try {
            result = await onPick(user);
            close();
          } catch (error) {
            setNotice(formNotice, error.message);
            button.disabled = false;
          }
        });
        list.append(h("li", {}, button));
      }
      status.textContent = shown.length ? `${shown.length} ${shown.length === 1 ? "person" : "people"}` : q ? "Nobody matches." : "Nobody else is here yet.";
    }

    filter.addEventListener("input", render);
    filter.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" || event.key === "Enter") {
        const first = list.querySelector("button");
        if (first) {
          event.preventDefault();
          if (event.key === "Enter") first.click();
          else first.focus();
        }
      }
    });
    list.addEventListener("keydown", (event) => {
      const buttons = [...list.querySelectorAll("button")];
      const i = buttons.indexOf(document.activeElement);
      if (i < 0) return;
      if (event.key === "ArrowDown" && i < buttons.length - 1) {
        event.preventDefault();
        buttons[i + 1].focus();
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        (i === 0 ? filter : buttons[i - 1]).focus();
      }
    });

    const body = h(
      "div",
      { class: "dialog-body" },
      hint ? h("p", { class: "dialog-hint" }, hint) : null,
      formNotice,
      h("label", { for: "user-filter", class: "sr-only" }, "Find someone"),
      filter,
      status,
      list,
    );
    const d = open(title, body);
    d.addEventListener("close", () => resolve(result), { once: true });
    api
      .users()
      .then(({ users: all }) => {
        users = all.filter((u) => !u.disabled).sort((a, b) => nameOf(a).localeCompare(nameOf(b), undefined, { sensitivity: "base" }));
        render();
      })
      .catch((error) => {
        status.textContent = "";
        setNotice(formNotice, error.message);
      });
  });
}

/** A yes/no question; resolves true when confirmed. */
export function confirm({ title, text, yes = "Delete", danger = true }) {
  return new Promise((resolve) => {
    let answer = false;
    const yesBtn = h("button", { type: "button", class: `btn ${danger ? "btn-danger" : "btn-primary"}`, onclick: () => { answer = true; close(); } }, yes);
    const body = h(
      "div",
      { class: "dialog-body" },
      h("p", {}, text),
      h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "btn btn-ghost", onclick: () => close() }, "Cancel"), yesBtn),
    );
    const d = open(title, body);
    yesBtn.focus();
    d.addEventListener("close", () => resolve(answer), { once: true });
  });
}
