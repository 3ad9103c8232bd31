// Accessibility checked with axe-core in Chromium: the sign-in screen (both
// tabs, "forgot password" and the reset page), the chat with messages from two people in the light and the dark
// theme, the dialogs, and the phone layout with the room list open. No
// violation of impact serious or critical may remain.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import * as H from "./helpers.mjs";

const AXE = createRequire(import.meta.url).resolve("axe-core");
const s = H.suite();

/**
 * Runs axe on `page`; fails listing every serious or critical violation.
 * Resolves with the ids of the violations of lesser impact.
 */
async function assertAccessible(page, what) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.addScriptTag({ path: AXE });
  // Let transitions (dialogs fading in, the sidebar sliding) finish so colours are final.
  await page.evaluate(() => Promise.all(document.getAnimations().map((a) => a.finished.catch(() => {}))));
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary.replace(/\s+/g, " ")}`),
    }));
  });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const text = bad
    .map((v) => `${v.impact} ${v.id} (${v.help}) on ${v.nodes.length}:\n    ${v.nodes.slice(0, 5).join("\n    ")}`)
    .join("\n  ");
  assert.equal(bad.length, 0, `${what}: ${bad.length} serious or critical axe violations:\n  ${text}`);
  return violations.map((v) => v.id);
}

for (const colorScheme of ["light", "dark"]) {
  test(`the sign-in screen has no serious violations (${colorScheme})`, async () => {
    const page = await H.openPage(s.browser, s.server, { colorScheme, bypassCSP: true });
    await page.getByRole("tab", { name: "Sign in" }).waitFor();
    assert.deepEqual(await assertAccessible(page, "sign in"), [], "not even a minor violation");
    await page.getByRole("tab", { name: "Create account" }).click();
    await page.getByLabel("Display name").waitFor();
    assert.deepEqual(await assertAccessible(page, "create account"), [], "not even a minor violation");
    assert.equal(await page.getByRole("tabpanel", { name: "Create account" }).locator("form").count(), 1, "the panel is named by its tab");
    // Errors shown after a refused submit.
    await page.getByRole("button", { name: "Create account" }).click();
    await page.locator(".field-error:not([hidden])").first().waitFor();
    await assertAccessible(page, "create account with errors");
    // Forgot password, and the reset page (any token shows the form).
    await page.getByRole("tab", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Forgot password?" }).click();
    await page.getByLabel("Username or e-mail").waitFor();
    assert.deepEqual(await assertAccessible(page, "forgot password"), [], "not even a minor violation");
    await page.goto("/reset#token=unused");
    await page.getByLabel("New password", { exact: true }).waitFor();
    assert.deepEqual(await assertAccessible(page, "reset password"), [], "not even a minor violation");
    H.assertClean(page);
  });

  test(`the chat with two people and its dialogs have no serious violations (${colorScheme})`, async () => {
    const a = await H.signedInPage(s, { displayName: `Ada ${colorScheme}`, colorScheme, bypassCSP: true });
    const b = await H.signedInPage(s, { displayName: `Ben ${colorScheme}`, colorScheme });
    await H.send(a, `hello from Ada, ${colorScheme}`);
    await H.send(b, `and hello from Ben, ${colorScheme}`);
    await H.send(b, `a second line from Ben, ${colorScheme}`);
    await H.messageRow(a, `a second line from Ben, ${colorScheme}`).waitFor({ timeout: H.UI_DEADLINE });
    await a.locator("#online-list").getByText(`Ben ${colorScheme}`).waitFor({ timeout: H.UI_DEADLINE });
    await assertAccessible(a, "chat");

    // The actions on one's own message, as a mouse user sees them.
    const own = H.messageRow(a, `hello from Ada, ${colorScheme}`);
    await own.hover();
    await assertAccessible(a, "chat with a message's actions shown");

    // The reaction picker, and the chips (one's own pressed, another's not).
    const bens = H.messageRow(a, `and hello from Ben, ${colorScheme}`);
    await bens.hover();
    await bens.getByRole("button", { name: /Add a reaction/ }).click();
    const picker = a.getByRole("menu", { name: "Pick a reaction" });
    await picker.waitFor();
    await assertAccessible(a, "the reaction picker");
    await picker.getByRole("menuitem", { name: "party popper" }).click();
    await bens.locator(".reaction-chip[aria-pressed='true']").waitFor({ timeout: H.UI_DEADLINE });
    const onB = H.messageRow(b, `and hello from Ben, ${colorScheme}`).locator(".reaction-chip[aria-pressed='false']");
    await onB.waitFor({ timeout: H.UI_DEADLINE });
    await a.mouse.move(0, 0);
    await assertAccessible(a, "a message with one's own reaction");
    await own.hover();

    await own.getByRole("button", { name: /Delete message/ }).click();
    const confirm = a.getByRole("dialog", { name: "Delete message" });
    await confirm.waitFor();
    await assertAccessible(a, "the delete confirmation");
    await confirm.getByRole("button", { name: "Cancel" }).click();
    await confirm.waitFor({ state: "hidden" });

    await a.getByRole("button", { name: "Create a room" }).click();
    const create = a.getByRole("dialog", { name: /room/i });
    await create.waitFor();
    await assertAccessible(a, "the create-a-room dialog");
    await a.keyboard.press("Escape");
    await create.waitFor({ state: "hidden" });

    await a.getByRole("button", { name: "Start a direct conversation" }).click();
    const dm = a.getByRole("dialog", { name: "Start a direct conversation" });
    await dm.waitFor();
    await dm.getByLabel("Find someone").fill(b.user.username.slice(0, 4));
    await dm.locator(`button[data-username="${b.user.username}"]`).waitFor();
    await assertAccessible(a, "the direct-conversation dialog");
    await dm.locator(`button[data-username="${b.user.username}"]`).click();
    await a.locator("#topic-title", { hasText: `Ben ${colorScheme}` }).waitFor({ timeout: H.UI_DEADLINE });
    await assertAccessible(a, "a direct conversation");
    H.assertClean(a);
    H.assertClean(b);
  });
}

test("the phone layout with the room list open has no serious violations", async () => {
  const page = await H.signedInPage(s, { viewport: { width: 390, height: 844 }, bypassCSP: true });
  await assertAccessible(page, "phone chat");
  await page.getByRole("button", { name: "Show rooms and people" }).click();
  await page.locator("#sidebar-close").waitFor();
  await assertAccessible(page, "phone room list");
  H.assertClean(page);
});
