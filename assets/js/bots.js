// bots.js — bot accounts for admins, in the shared dialog: the list of
// bots, creating one (its API key and signing secret are shown once, with
// copy buttons), its message rate limit (its own, or the default of
// people), rotating a key, deleting a bot and the delivery log of its
// outgoing webhook (kept by the server, newest first). Also the "bot"
// badge shown next to a bot's name.

import * as api from "./api.js";
import { h, clear } from "./dom.js";
import { open, field, close } from "./dialogs.js";

/** The badge next to a bot's name. */
export function botBadge() {
  return h("span", { class: "bot-badge", title: "Bot account" }, "bot");
}

const path = (name, rest = "") => `/api/bots/${encodeURIComponent(name)}${rest}`;

function copyButton(text, label) {
  const btn = h("button", { type: "button", class: "btn btn-ghost btn-sm" }, `Copy ${label}`);
  btn.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = "Copied";
    } catch {
      btn.textContent = "Select and copy";
    }
  });
  return btn;
}

function secrets(title, { key, signing_secret: secret }) {
  return h(
    "div",
    { class: "bot-secrets", role: "status" },
    h("p", {}, h("strong", {}, title), " Copy them now: they are not shown again."),
    h("p", { class: "bot-secret-label" }, "API key"),
    h("code", { class: "bot-secret", "data-secret": "key" }, key),
    copyButton(key, "key"),
    h("p", { class: "bot-secret-label" }, "Webhook signing secret"),
    h("code", { class: "bot-secret", "data-secret": "signing" }, secret),
    copyButton(secret, "secret"),
  );
}

async function deliveries(name, into) {
  clear(into);
  try {
    const { deliveries: list } = await api.get(path(name, "/deliveries"));
    if (!list.length) {
      into.append(h("p", { class: "sb-empty" }, "No deliveries yet."));
      return;
    }
    into.append(
      h(
        "table",
        { class: "bot-log" },
        h("caption", { class: "sr-only" }, `Deliveries of ${name}`),
        h("thead", {}, h("tr", {}, ...["Event", "Attempt", "Time", "Status", "Latency", "Outcome", "Error"].map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          ...list.map((d) =>
            h("tr", {}, h("td", {}, String(d.event_id)), h("td", {}, String(d.attempt)), h("td", {}, d.at), h("td", {}, d.status == null ? "—" : String(d.status)), h("td", {}, `${d.latency_ms} ms`), h("td", {}, d.outcome), h("td", {}, d.error || "")),
          ),
        ),
      ),
    );
  } catch (e) {
    into.append(h("p", { class: "form-notice", role: "alert" }, e.message));
  }
}

const rateText = (limit) => `${limit.refill_per_sec} a second, bursts of ${limit.burst}`;

/** What a bot's rate limit row says: its own limit, or the default. */
function limitText(bot, defaults) {
  return bot.rate_limit ? `Rate limit: ${rateText(bot.rate_limit)}` : `Rate limit: default (${rateText(defaults)})`;
}

/** The form that changes a bot's rate limit, shown in `into`. */
function limitForm(bot, defaults, into, shown) {
  clear(into);
  const current = bot.rate_limit || defaults;
  const number = (value) => h("input", { type: "number", min: "1", step: "1", inputmode: "numeric", required: true, value: String(value) });
  const rate = field(`bot-rate-${bot.id}`, "Messages a second", number(current.refill_per_sec));
  const burst = field(`bot-burst-${bot.id}`, "Burst", number(current.burst));
  const notice = h("p", { class: "form-notice", role: "alert", hidden: true });
  const save = async (limit) => {
    notice.hidden = true;
    try {
      const { bot: changed } = await api.patch(path(bot.username), { rate_limit: limit });
      bot.rate_limit = changed.rate_limit;
      shown.textContent = limitText(bot, defaults);
      clear(into);
    } catch (e) {
      notice.textContent = (e.fields.rate_limit || [e.message]).join(", ");
      notice.hidden = false;
    }
  };
  const form = h(
    "form",
    { class: "bot-limit-form", "aria-label": `Rate limit of @${bot.username}`, novalidate: true },
    notice,
    rate.el,
    burst.el,
    h(
      "div",
      { class: "dialog-actions" },
      h("button", { type: "submit", class: "btn btn-primary btn-sm" }, "Save limit"),
      h("button", { type: "button", class: "btn btn-ghost btn-sm", onclick: () => save(null) }, "Use default"),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const limit = { refill_per_sec: Number(rate.input.value), burst: Number(burst.input.value) };
    const whole = (n) => Number.isInteger(n) && n >= 1;
    rate.setError(whole(limit.refill_per_sec) ? "" : "Give a whole number of at least 1.");
    burst.setError(whole(limit.burst) ? "" : "Give a whole number of at least 1.");
    if (whole(limit.refill_per_sec) && whole(limit.burst)) save(limit);
  });
  into.append(form);
  rate.input.focus();
}

/** Opens the bots dialog. */
export async function manageBots(shown = null) {
  const list = h("ul", { class: "bot-list", "aria-label": "Bots" });
  const output = h("div", { class: "bot-output" });
  const username = field("bot-username", "Username", h("input", { type: "text", autocomplete: "off", spellcheck: "false", required: true }));
  const url = field("bot-webhook", "Webhook URL (optional)", h("input", { type: "url", autocomplete: "off", spellcheck: "false", placeholder: "http://…" }));
  const all = h("input", { type: "checkbox", id: "bot-all" });
  const notice = h("p", { class: "form-notice", role: "alert", hidden: true });
  const form = h(
    "form",
    { class: "dialog-body", novalidate: true },
    notice,
    username.el,
    url.el,
    h("div", { class: "field field-check" }, all, h("label", { for: "bot-all" }, "Send every message of its rooms")),
    h("div", { class: "dialog-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Create bot")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    username.setError("");
    url.setError("");
    notice.hidden = true;
    try {
      const made = await api.post("/api/bots", {
        username: username.input.value.trim(),
        webhook_url: url.input.value.trim() || null,
        all_messages: all.checked,
      });
      await manageBots(secrets(`Bot @${made.bot.username} created.`, made));
    } catch (e) {
      if (e.fields.username) username.setError(e.fields.username.join(", "));
      if (e.fields.webhook_url) url.setError(e.fields.webhook_url.join(", "));
      if (!e.fields.username && !e.fields.webhook_url) {
        notice.textContent = e.message;
        notice.hidden = false;
      }
    }
  });
  open("Bots", h("div", {}, shown || "", form, h("h3", {}, "Existing bots"), list, output), { wide: true });
  try {
    const { bots, default_rate_limit: defaults } = await api.get("/api/bots");
    if (!bots.length) list.append(h("li", { class: "sb-empty" }, "No bots yet."));
    for (const bot of bots) {
      const log = h("div", { class: "bot-log-wrap" });
      const limitWrap = h("div", { class: "bot-limit-wrap" });
      const limitShown = h("span", { class: "bot-limit" }, limitText(bot, defaults));
      list.append(
        h(
          "li",
          { class: "bot-row" },
          h("span", { class: "bot-name" }, bot.display_name, " ", botBadge(), " ", h("span", { class: "msg-username" }, `@${bot.username}`)),
          h("span", { class: "bot-url" }, bot.webhook_url || "no webhook"),
          limitShown,
          h("span", { class: "bot-actions" },
            h("button", { type: "button", class: "btn btn-ghost btn-sm", onclick: () => limitForm(bot, defaults, limitWrap, limitShown) }, "Rate limit"),
            h("button", { type: "button", class: "btn btn-ghost btn-sm", onclick: () => deliveries(bot.username, log) }, "Deliveries"),
            h("button", { type: "button", class: "btn btn-ghost btn-sm", onclick: async () => {
              const rotated = await api.post(path(bot.username, "/key"), {});
              await manageBots(secrets(`New key for @${bot.username}; the old one no longer works.`, rotated));
            } }, "Rotate key"),
            h("button", { type: "button", class: "btn btn-danger btn-sm", onclick: async () => {
              await api.del(path(bot.username));
              await manageBots();
            } }, "Delete"),
          ),
          limitWrap,
          log,
        ),
      );
    }
  } catch (e) {
    list.append(h("li", { class: "form-notice", role: "alert" }, e.message));
  }
}

export { close };
