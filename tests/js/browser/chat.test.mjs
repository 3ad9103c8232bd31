// Two people chat in lobby through the UI: both register through the
// sign-in screen, see each other online, exchange messages, and a reload
// keeps the history.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as H from "./helpers.mjs";

const s = H.suite();

test("two users see each other online in lobby, exchange messages, and a reload keeps history", async () => {
  const a = await H.openPage(s.browser, s.server);
  await a.getByRole("tab", { name: "Sign in" }).waitFor();
  await H.screenshot(a, "01-sign-in");
  const alice = await H.registerViaUi(a, { displayName: "Alice Adams" });

  const b = await H.signedInPage(s, { displayName: "Bob Brown", colorScheme: "dark" });
  const bob = b.user;

  // Both land in lobby and see each other in its online list.
  for (const page of [a, b]) {
    await page.locator("#topic-title", { hasText: "lobby" }).waitFor();
    await page.locator("#online-list").getByText(alice.displayName).waitFor({ timeout: H.UI_DEADLINE });
    await page.locator("#online-list").getByText(bob.displayName).waitFor({ timeout: H.UI_DEADLINE });
  }
  assert.match(await a.locator("#online-heading").textContent(), /Online in #lobby — 2/);

  // A's message reaches B; B's reply reaches A.
  await H.send(a, "Hi Bob, welcome to confab!");
  await H.messageRow(b, "Hi Bob, welcome to confab!").waitFor({ timeout: H.UI_DEADLINE });
  await H.send(b, "Thanks Alice.\nGlad to be here.");
  await H.messageRow(a, "Glad to be here.").waitFor({ timeout: H.UI_DEADLINE });
  // Shift+Enter kept the line break inside one message.
  assert.equal(await H.messageRow(a, "Glad to be here.").locator(".msg-body").innerText(), "Thanks Alice.\nGlad to be here.");
  // Author and time are shown.
  const row = H.messageRow(b, "Hi Bob, welcome to confab!");
  assert.equal(await row.locator(".msg-author").textContent(), "Alice Adams");
  assert.match(await row.locator("time").first().getAttribute("datetime"), /^\d{4}-\d\d-\d\dT/);
  // The day separator is there.
  await a.locator(".day-sep", { hasText: "Today" }).waitFor();
  await H.screenshot(a, "02-lobby-alice-light");
  await H.screenshot(b, "03-lobby-bob-dark");

  // A reload keeps the session and the history, in order, each message once.
  await a.reload();
  await H.messageRow(a, "Hi Bob, welcome to confab!").waitFor({ timeout: H.UI_DEADLINE });
  await H.messageRow(a, "Glad to be here.").waitFor({ timeout: H.UI_DEADLINE });
  assert.deepEqual(await H.renderedSeqs(a), [1, 2]);
  await a.locator("#online-list").getByText(bob.displayName).waitFor({ timeout: H.UI_DEADLINE });

  // B sees several tabs of A as one person.
  const a2 = await a.context().newPage();
  await a2.goto("/");
  await a2.locator("#online-list").getByText(bob.displayName).waitFor({ timeout: H.UI_DEADLINE });
  await H.eventually(async () => (await b.locator("#online-list li").count()) === 2, { what: "two people online for B" });
  assert.equal(await b.locator("#online-list").getByText(alice.displayName).count(), 1);
  await a2.close();

  H.assertClean(a, "alice");
  H.assertClean(b, "bob");
});

test("errors from the server are shown next to the field", async () => {
  const page = await H.openPage(s.browser, s.server);
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Username").fill("x");
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Create account" }).click();
  // The client catches the short password itself.
  await page.locator("#f-password-error", { hasText: "at least 8" }).waitFor();
  await page.getByLabel("Password").fill("long enough password");
  await page.getByRole("button", { name: "Create account" }).click();
  // The server refuses the username: shown under the username field.
  await page.locator("#f-username-error", { hasText: "3 to 32" }).waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await page.getByLabel("Username").getAttribute("aria-invalid"), "true");
  await H.screenshot(page, "04-register-error");

  // Wrong password on sign-in.
  await page.getByRole("tab", { name: "Sign in" }).click();
  await page.getByLabel("Username").fill("nobody-here");
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#f-password-error", { hasText: "don't match" }).waitFor({ timeout: H.UI_DEADLINE });
  H.assertClean(page);
});
