// Bots in the web UI: an admin creates a bot in the Bots dialog and sees
// its API key once (it works against the API, and is not shown again);
// the bot's messages carry a badge. The admin gives a bot its own rate
// limit (it holds for the bot's key, and stays after reopening) and puts
// it back to the default, and reads the delivery log of its webhook (a
// real receiver on loopback that fails once, then accepts).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import * as H from "./helpers.mjs";
import { Collector, unique } from "../harness.mjs";

const s = H.suite(null);

test("an admin creates a bot in the UI, sees its key once, and its messages carry a badge", async () => {
  const server = await s.startServer();
  const admin = await H.signedInPage(s, { server });
  const bots = admin.getByRole("button", { name: "Bots" });
  await bots.waitFor({ timeout: H.UI_DEADLINE });
  await bots.click();
  const dialog = admin.getByRole("dialog", { name: "Bots" });
  await dialog.waitFor();
  await dialog.getByLabel("Username").fill("helper");
  await dialog.getByRole("button", { name: "Create bot" }).click();
  const key = dialog.locator('[data-secret="key"]');
  await key.waitFor({ timeout: H.UI_DEADLINE });
  const text = (await key.textContent()).trim();
  assert.match(text, /^cfb_/);
  await dialog.getByRole("button", { name: "Copy key" }).waitFor();
  await dialog.locator(".bot-row", { hasText: "@helper" }).waitFor();
  await H.screenshot(admin, "60-bot-created");

  // The key works, and the bot's message shows the badge.
  const res = await fetch(`${server.url}/api/rooms/lobby/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${text}`, "content-type": "application/json" },
    body: JSON.stringify({ body: "hello from the bot" }),
  });
  assert.equal(res.status, 201);

  // Shown once: reopening the dialog lists the bot without its key.
  await dialog.getByRole("button", { name: "Close" }).click();
  await bots.click();
  await dialog.locator(".bot-row", { hasText: "@helper" }).waitFor();
  assert.equal(await dialog.locator('[data-secret="key"]').count(), 0);
  assert.equal((await dialog.textContent()).includes(text), false);
  await dialog.getByRole("button", { name: "Close" }).click();

  const row = H.messageRow(admin, "hello from the bot");
  await row.waitFor({ timeout: H.UI_DEADLINE });
  await row.locator(".bot-badge").waitFor();
  H.assertClean(admin);
});

/** An HTTP receiver on loopback: answers 500 to the first request, then 200. */
async function receiver() {
  const hits = new Collector("webhook requests");
  const http = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      hits.add(JSON.parse(body));
      res.writeHead(hits.items.length === 1 ? 500 : 200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${http.address().port}/hook`, hits, close: () => http.close() };
}

test("an admin sets a bot's rate limit and reads its delivery log", async () => {
  const hook = await receiver();
  const server = await s.startServer({
    env: {
      CONFAB_WEBHOOK_ALLOWED_HOSTS: "127.0.0.1",
      CONFAB_WEBHOOK_RETRY_BASE_MS: "50",
      CONFAB_PUSH_BURST: "6",
      CONFAB_PUSH_REFILL_PER_SEC: "1",
    },
  });
  try {
    const admin = await H.signedInPage(s, { server });
    const bots = admin.getByRole("button", { name: "Bots" });
    await bots.waitFor({ timeout: H.UI_DEADLINE });
    await bots.click();
    const dialog = admin.getByRole("dialog", { name: "Bots" });
    await dialog.getByLabel("Username").fill("hooked");
    await dialog.getByLabel("Webhook URL (optional)").fill(hook.url);
    await dialog.getByRole("button", { name: "Create bot" }).click();
    const keyEl = dialog.locator('[data-secret="key"]');
    await keyEl.waitFor({ timeout: H.UI_DEADLINE });
    const key = (await keyEl.textContent()).trim();

    const row = dialog.locator(".bot-row", { hasText: "@hooked" });
    const limit = row.locator(".bot-limit");
    await H.eventually(async () => (await limit.textContent()) === "Rate limit: default (1 a second, bursts of 6)", { what: "the default limit shown" });

    // Its own limit: 1 a second in bursts of 2.
    await row.getByRole("button", { name: "Rate limit" }).click();
    const form = row.getByRole("form", { name: "Rate limit of @hooked" });
    await form.getByLabel("Messages a second").fill("1");
    await form.getByLabel("Burst").fill("0");
    await form.getByRole("button", { name: "Save limit" }).click();
    const burstInput = form.getByLabel("Burst");
    await H.eventually(async () => (await burstInput.getAttribute("aria-invalid")) === "true", { what: "the burst marked invalid" });
    await form.getByText("Give a whole number of at least 1.").waitFor();
    await H.screenshot(admin, "61-bot-limit-refused");
    await form.getByLabel("Burst").fill("2");
    await form.getByRole("button", { name: "Save limit" }).click();
    await H.eventually(async () => (await limit.textContent()) === "Rate limit: 1 a second, bursts of 2", { what: "the new limit shown" });
    assert.equal(await form.count(), 0, "the form closes once saved");

    // It holds for the bot's key at once: two posts, then 429.
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${server.url}/api/rooms/lobby/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ body: `limited ${i}` }),
      });
      statuses.push(res.status);
    }
    assert.deepEqual(statuses.slice(0, 2), [201, 201], String(statuses));
    assert.ok(statuses.includes(429), String(statuses));

    // Kept: reopening the dialog shows it.
    await dialog.getByRole("button", { name: "Close" }).click();
    await bots.click();
    await H.eventually(async () => (await limit.textContent()) === "Rate limit: 1 a second, bursts of 2", { what: "the limit after reopening" });

    // A mention reaches the webhook: refused once, then delivered.
    const other = await server.register(unique("poster"));
    await server.postMessage(other.token, "lobby", "@hooked ping");
    await hook.hits.count(2, H.UI_DEADLINE);
    const log = row.locator("table.bot-log");
    // The second answer reaches the receiver just before the server logs
    // it: show the log again until both attempts are in it.
    await H.eventually(
      async () => {
        await row.getByRole("button", { name: "Deliveries" }).click();
        return (await log.locator("tbody tr").count()) === 2;
      },
      { what: "two attempts in the log", interval: 200 },
    );
    const cells = (i) => log.locator("tbody tr").nth(i).locator("td").allTextContents();
    const [eventId, attempt, , status, latency, outcome, error] = await cells(0);
    assert.equal(eventId, String(hook.hits.items[1].id));
    assert.deepEqual([attempt, status, outcome, error], ["2", "200", "delivered", ""]);
    assert.match(latency, /^\d+ ms$/);
    const older = await cells(1);
    assert.deepEqual([older[1], older[3], older[5], older[6]], ["1", "500", "retrying", "answered 500"]);
    await H.screenshot(admin, "62-bot-limit-and-log");

    // Back to the default.
    await row.getByRole("button", { name: "Rate limit" }).click();
    await form.getByRole("button", { name: "Use default" }).click();
    await H.eventually(async () => (await limit.textContent()) === "Rate limit: default (1 a second, bursts of 6)", { what: "the default limit again" });
    H.assertClean(admin);
  } finally {
    hook.close();
  }
});
