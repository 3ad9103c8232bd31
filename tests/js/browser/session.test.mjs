// Tokens: the UI refreshes its token before it expires and reconnects with
// the current one (the socket params are re-read on every connect); a
// refused token (revoked, expired) sends the user back to sign-in.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as H from "./helpers.mjs";

const s = H.suite(null);

const storedToken = (page) => page.evaluate(() => JSON.parse(localStorage.getItem("confab:session") || "null")?.token ?? null);

test("a revoked token sends the user back to sign-in", async () => {
  const server = await s.startServer();
  const page = await H.signedInPage(s, { server, displayName: "Rev Oked" });
  const user = page.user;
  await page.locator("#online-list").getByText("Rev Oked").waitFor({ timeout: H.UI_DEADLINE });
  const token = await storedToken(page);

  // Log this token out behind the UI's back: the server closes the socket (1008).
  await server.expect(204, "POST", "/api/logout", { token });
  await page.locator("#signin").waitFor({ state: "visible", timeout: H.UI_DEADLINE });
  await page.locator("#signin-notice", { hasText: "Please sign in again" }).waitFor();
  assert.equal(await storedToken(page), null, "the refused token is forgotten");
  await H.screenshot(page, "60-session-ended");

  // Signing in again works and lands back in the chat.
  await H.signInViaUi(page, user);
  await page.locator("#topic-title", { hasText: "lobby" }).waitFor();
  H.assertClean(page);
});

test("the token is refreshed before it expires and reconnects use the fresh one", async () => {
  const server = await s.startServer({ env: { CONFAB_TOKEN_TTL_SECS: "6" } });
  const page = await H.signedInPage(s, { server, displayName: "Fresh" });
  const first = await storedToken(page);
  const exp = JSON.parse(Buffer.from(first.split(".")[1], "base64url")).exp * 1000;

  // Refreshed (at about half of a short lifetime), well before expiry.
  const second = await H.eventually(async () => {
    const now = await storedToken(page);
    return now && now !== first ? now : null;
  }, { timeout: 8000, what: "a refreshed token" });
  assert.ok(Date.now() < exp, "refreshed before the first token expired");

  // Once the first token has expired, a reconnect must use a current token.
  await H.eventually(() => Date.now() > exp + 200, { timeout: 8000, what: "the first token's expiry" });
  await server.kill();
  await page.locator("#banner", { hasText: "Reconnecting" }).waitFor({ timeout: H.UI_DEADLINE });
  await server.start();
  await page.locator("#banner").waitFor({ state: "hidden", timeout: 20000 });
  await H.send(page, "still signed in");
  await H.messageRow(page, "still signed in").waitFor({ timeout: H.UI_DEADLINE });
  assert.notEqual(await storedToken(page), null);
  assert.notEqual(second, first);
  assert.equal(await page.locator("#signin").isVisible(), false);
  H.assertClean(page);
});
