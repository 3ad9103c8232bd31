// search.js — the search box in the sidebar and its results panel. Results
// come from GET /api/search; each links to /r/NAME/SEQ or /dm/ID/SEQ. The
// server's snippet escapes everything but <mark> and </mark>: it is split
// on those two tags and rebuilt from text nodes and <mark> elements, so no
// markup from a message is ever parsed.

import * as api from "./api.js";
import { h, byId, clear, show } from "./dom.js";

const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'" };

/** The snippet as nodes: text pieces and <mark> elements. */
export function snippetNodes(snippet) {
  const nodes = [];
  const unescape = (text) => text.replace(/&(amp|lt|gt|quot|#39);/g, (m) => ENTITIES[m]);
  const parts = String(snippet).split(/(<mark>|<\/mark>)/);
  let marked = false;
  for (const part of parts) {
    if (part === "<mark>") marked = true;
    else if (part === "</mark>") marked = false;
    else if (part) nodes.push(marked ? h("mark", {}, unescape(part)) : unescape(part));
  }
  return nodes;
}

/** The UI address of a message. */
export function messageHref(message) {
  const [kind, key] = String(message.topic).split(/:(.*)/s);
  const prefix = kind === "room" ? "/r/" : "/dm/";
  return `${prefix}${encodeURIComponent(key || "")}/${message.seq}`;
}

function topicLabel(topic) {
  const [kind, key] = String(topic).split(/:(.*)/s);
  return kind === "room" ? `#${key}` : "Direct message";
}

export function mountSearch() {
  const form = byId("search-form");
  const input = byId("search-input");
  const panel = byId("search-panel");
  const list = byId("search-results");
  const status = byId("search-status");
  const more = byId("search-more");
  const close = byId("search-close");
  let query = "";
  let next = null;
  let generation = 0;

  function render(results, append) {
    if (!append) clear(list);
    for (const { message, snippet } of results) {
      const when = message.inserted_at ? new Date(message.inserted_at) : null;
      const time = when ? when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "";
      list.append(
        h("li", { class: "search-result" },
          h("a", { href: messageHref(message), class: "search-link" },
            h("span", { class: "search-meta" },
              h("span", { class: "search-topic" }, topicLabel(message.topic)),
              " · ",
              h("span", { class: "search-author" }, message.user?.display_name || message.user?.username || ""),
              time ? [" · ", h("time", { datetime: message.inserted_at }, time)] : null),
            h("span", { class: "search-snippet" }, snippetNodes(snippet)))));
    }
  }

  async function run(append) {
    const mine = ++generation;
    const params = new URLSearchParams({ q: query });
    if (append && next) params.set("before", next);
    status.textContent = "Searching…";
    show(panel, true);
    try {
      const page = await api.get(`/api/search?${params}`);
      if (mine !== generation) return;
      render(page.results || [], append);
      next = page.next || null;
      show(more, Boolean(next));
      const count = list.children.length;
      status.textContent = count ? `${count}${next ? "+" : ""} result${count === 1 ? "" : "s"}` : "No messages found.";
    } catch (e) {
      if (mine !== generation) return;
      const reason = e.fields && e.fields.q ? e.fields.q[0] : e.message;
      if (!append) clear(list);
      show(more, false);
      status.textContent = `Search failed: ${reason}`;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    query = input.value.trim();
    if (!query) return;
    next = null;
    run(false);
  });
  more.addEventListener("click", () => run(true));
  close.addEventListener("click", () => {
    generation++;
    show(panel, false);
    clear(list);
    input.value = "";
    input.focus();
  });
}
