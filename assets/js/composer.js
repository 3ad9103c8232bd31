// composer.js — the message box: Enter sends, Shift+Enter adds a line,
// Up in an empty box edits one's last message. It grows with its content,
// counts characters near the limit and refuses to send past it (the send
// button is disabled and the counter says by how much). Drafts are kept
// per topic in localStorage, so switching rooms or reloading keeps them.
// Typing notifies the others (throttled in chat.js). Until a topic is open
// (the room list is still loading after sign-in) the box is disabled: there
// is nowhere to send to yet, and opening the topic puts its draft in the box.
// Typing `@` suggests people to mention (mention-picker.js).

import { byId, icon } from "./dom.js";
import { charCount } from "./format.js";
import { mountMentionPicker } from "./mention-picker.js";

const SHOW_COUNT_FROM = 0.8; // show the counter from 80 % of the limit

export function mountComposer({ chat, limit, onSent, editLast, announce }) {
  const form = byId("composer");
  const input = byId("composer-input");
  const label = byId("composer-label");
  const counter = byId("composer-count");
  const send = byId("composer-send");
  send.append(icon("send"));
  let topic = null;
  let wasOver = false;
  let saveTimer = null;

  const draftKey = (t) => `confab:draft:${chat.me.id}:${t.topic}`;

  function autosize() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, Math.round(window.innerHeight * 0.4))}px`;
  }

  function update() {
    const n = charCount(input.value);
    const over = n > limit;
    const empty = input.value.trim().length === 0;
    send.disabled = !topic || empty || over;
    form.classList.toggle("is-over", over);
    if (over) {
      counter.textContent = `${n - limit} over limit`;
      counter.title = `The message is ${n - limit} characters over the ${limit}-character limit.`;
    } else if (n >= limit * SHOW_COUNT_FROM) {
      counter.textContent = `${limit - n} left`;
      counter.title = `${limit - n} of ${limit} characters left.`;
    } else {
      counter.textContent = "";
    }
    counter.hidden = counter.textContent === "";
    if (over) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    if (over && !wasOver) announce(`The message is longer than ${limit} characters; shorten it to send.`);
    wasOver = over;
  }

  function saveDraft() {
    if (!topic) return;
    const key = draftKey(topic);
    clearTimeout(saveTimer);
    const value = input.value;
    saveTimer = setTimeout(() => {
      try {
        if (value) localStorage.setItem(key, value);
        else localStorage.removeItem(key);
      } catch {
        // Storage unavailable: drafts live only in the box.
      }
    }, 250);
  }

  function submit() {
    if (!topic) return;
    const body = input.value.replace(/^\s*\n/, "").replace(/\s+$/, "");
    if (!body.trim()) return;
    if (charCount(body) > limit) {
      update();
      return;
    }
    chat.send(topic, body);
    input.value = "";
    clearTimeout(saveTimer);
    try {
      localStorage.removeItem(draftKey(topic));
    } catch {
      // ignore
    }
    autosize();
    update();
    onSent();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
    input.focus();
  });

  const picker = mountMentionPicker({
    input,
    chat,
    topic: () => topic,
    picked: () => {
      autosize();
      update();
      saveDraft();
    },
  });

  input.addEventListener("keydown", (event) => {
    if (picker.handleKey(event)) return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submit();
    } else if (event.key === "ArrowUp" && input.value === "" && !event.shiftKey && !event.altKey) {
      if (editLast()) event.preventDefault();
    }
  });

  input.addEventListener("input", () => {
    autosize();
    update();
    saveDraft();
    picker.update();
    if (topic && input.value.trim()) chat.typing(topic);
  });

  window.addEventListener("resize", autosize);
  input.disabled = true;
  update();

  return {
    setTopic(t) {
      if (topic) {
        // Keep what was typed in the previous topic.
        clearTimeout(saveTimer);
        try {
          if (input.value) localStorage.setItem(draftKey(topic), input.value);
          else localStorage.removeItem(draftKey(topic));
        } catch {
          // ignore
        }
      }
      topic = t;
      picker.close();
      input.disabled = !t;
      if (!t) {
        // What was typed is saved above as the previous topic's draft.
        input.value = "";
        autosize();
        update();
        return;
      }
      const name = t.kind === "room" ? `#${t.name}` : t.label;
      label.textContent = `Message ${name}`;
      input.placeholder = `Message ${name}`;
      let draft = "";
      try {
        draft = localStorage.getItem(draftKey(t)) || "";
      } catch {
        draft = "";
      }
      input.value = draft;
      autosize();
      update();
    },
    focus() {
      // On phones, do not pop the keyboard up unasked.
      if (window.matchMedia("(pointer: coarse)").matches) return;
      input.focus();
    },
    /** The user directory changed (new names to suggest). */
    usersChanged() {
      picker.refresh();
    },
    /** Puts text back into the box (a failed message being edited). */
    restore(text) {
      input.value = input.value ? `${text}\n${input.value}` : text;
      autosize();
      update();
      saveDraft();
      input.focus();
    },
  };
}
