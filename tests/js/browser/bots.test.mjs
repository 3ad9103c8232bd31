// Bots in the web UI: an admin creates a bot in the Bots dialog and sees
// its API key once (it works against the API, and is not shown again);
// the bot's messages carry a badge.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as H from "./helpers.mjs";

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
