// Phone width and keyboard use: at 375 px the sidebar hides behind a
// toggle, nothing overflows sideways, and the whole flow works from the
// keyboard; the colour scheme follows the system preference.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as H from "./helpers.mjs";

const s = H.suite();

const PHONE = { width: 375, height: 740 };

test("at phone width the sidebar collapses behind a toggle", async () => {
  const page = await H.openPage(s.browser, s.server, { viewport: PHONE });
  await H.screenshot(page, "50-phone-sign-in");
  await H.registerViaUi(page, { displayName: "Pat Phone" });
  await H.send(page, "Typing on a small screen: https://example.com/a/rather/long/link/that/must/wrap/somewhere/nicely");
  await H.messageRow(page, "Typing on a small screen").waitFor({ timeout: H.UI_DEADLINE });

  const sidebar = page.locator("#sidebar");
  const toggle = page.getByRole("button", { name: "Show rooms and people" });
  assert.equal(await sidebar.isVisible(), false, "the sidebar starts hidden");
  assert.equal(await toggle.getAttribute("aria-expanded"), "false");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling (overflow ${overflow}px)`);
  await H.screenshot(page, "51-phone-chat");

  await toggle.click();
  await sidebar.waitFor({ state: "visible" });
  assert.equal(await toggle.getAttribute("aria-expanded"), "true");
  await page.locator("#room-list a", { hasText: "lobby" }).waitFor();
  await H.screenshot(page, "52-phone-sidebar-open");

  // Escape closes it and gives focus back to the toggle.
  await page.keyboard.press("Escape");
  await sidebar.waitFor({ state: "hidden" });
  assert.equal(await toggle.evaluate((el) => el === document.activeElement), true);

  // Picking a room closes it as well.
  await toggle.click();
  await page.locator("#room-list a", { hasText: "lobby" }).click();
  await sidebar.waitFor({ state: "hidden" });
  H.assertClean(page);
});

test("dark scheme at phone width", async () => {
  const page = await H.signedInPage(s, { displayName: "Dana Dark", viewport: PHONE, colorScheme: "dark" });
  await H.send(page, "Night mode looks right.");
  await H.messageRow(page, "Night mode looks right.").waitFor({ timeout: H.UI_DEADLINE });
  const bg = await page.evaluate(() => getComputedStyle(document.querySelector(".main")).backgroundColor);
  assert.equal(bg, "rgb(22, 25, 31)", "the dark palette is used");
  await H.screenshot(page, "53-phone-dark");
  await page.getByRole("button", { name: "Show rooms and people" }).click();
  await page.locator("#sidebar").waitFor({ state: "visible" });
  await H.screenshot(page, "54-phone-dark-sidebar");
  H.assertClean(page);
});

test("keyboard only: sign in, switch rooms, send", async () => {
  const first = await H.signedInPage(s, { displayName: "Kim Keys" });
  const user = first.user;
  await first.getByRole("button", { name: "Create a room" }).click();
  const dialog = first.getByRole("dialog", { name: "Create a room" });
  await dialog.getByLabel("Name").fill("keyboard");
  await dialog.getByLabel("Name").press("Enter");
  await first.locator("#topic-title", { hasText: "keyboard" }).waitFor({ timeout: H.UI_DEADLINE });
  await first.context().close();

  const page = await H.openPage(s.browser, s.server);
  // The username field has focus; Tab moves through the form.
  await H.eventually(() => page.evaluate(() => document.activeElement && document.activeElement.id === "f-username"), { what: "focus in the username field" });
  await page.keyboard.type(user.username);
  await page.keyboard.press("Tab");
  await page.keyboard.type(user.password);
  await page.keyboard.press("Enter");
  await H.chatReady(page);
  await H.eventually(() => page.evaluate(() => document.activeElement && document.activeElement.id === "composer-input"), { what: "focus in the composer after sign-in" });

  // Alt+Down goes to the next topic; the composer follows.
  const before = await page.locator("#topic-title").textContent();
  await page.keyboard.press("Alt+ArrowDown");
  await H.eventually(async () => (await page.locator("#topic-title").textContent()) !== before, { what: "another topic" });
  await page.keyboard.type("sent without a mouse");
  await page.keyboard.press("Enter");
  await H.messageRow(page, "sent without a mouse").waitFor({ timeout: H.UI_DEADLINE });

  // The skip link is the first stop on the page and leads to the composer.
  const firstStop = await page.evaluate(() => {
    const all = [...document.querySelectorAll("a[href], button, input, textarea, [tabindex]")];
    return all.find((el) => el.tabIndex >= 0 && !el.disabled && (el.offsetParent !== null || el.classList.contains("skip-link"))).textContent;
  });
  assert.equal(firstStop, "Skip to the message box");
  await page.locator(".skip-link").focus();
  assert.ok((await page.locator(".skip-link").boundingBox()).y >= 0, "the skip link shows when focused");
  await page.keyboard.press("Enter");
  await H.eventually(() => page.evaluate(() => document.activeElement && document.activeElement.id === "composer-input"), { what: "focus in the composer after the skip link" });
  H.assertClean(page);
});
