// Safe rendering: message bodies and names are text, never HTML; only
// http(s) links become clickable, and they open without access to the page.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as H from "./helpers.mjs";

const s = H.suite();

const XSS = "<img src=x onerror=alert(1)>";

test("markup in a message is shown literally and never runs", async () => {
  const a = await H.signedInPage(s, { displayName: "<b>Mallory</b>" });
  const b = await H.signedInPage(s, { displayName: "Victim" });

  await H.send(a, XSS);
  for (const page of [a, b]) {
    const row = H.messageRow(page, XSS);
    await row.waitFor({ timeout: H.UI_DEADLINE });
    assert.equal(await row.locator(".msg-body").innerText(), XSS);
    assert.equal(await row.locator(".msg-body img").count(), 0);
    assert.equal(await page.locator("#message-list img").count(), 0);
    // The display name is text too.
    assert.equal(await row.locator(".msg-author").innerText(), "<b>Mallory</b>");
    assert.equal(await row.locator(".msg-author b").count(), 0);
  }
  await b.locator("#online-list").getByText("<b>Mallory</b>").waitFor({ timeout: H.UI_DEADLINE });

  // Links: http(s) only, new tab, no opener/referrer; other schemes stay text.
  await H.send(a, "see https://example.com/a_(b) and javascript:alert(2) or <script>alert(3)</script>.");
  const row = H.messageRow(b, "see https://example.com");
  await row.waitFor({ timeout: H.UI_DEADLINE });
  const links = await row.locator(".msg-body a").evaluateAll((as) => as.map((x) => ({ href: x.getAttribute("href"), text: x.textContent, target: x.target, rel: x.rel })));
  assert.deepEqual(links, [{ href: "https://example.com/a_(b)", text: "https://example.com/a_(b)", target: "_blank", rel: "noopener noreferrer" }]);
  assert.equal(await b.locator("#message-list script").count(), 0);
  await H.screenshot(b, "30-markup-as-text");

  // An edit with markup is text as well (the edited body is rendered the same way).
  const token = await a.evaluate(() => JSON.parse(localStorage.getItem("confab:session")).token);
  await s.server.postMessage(token, "lobby", '"><svg onload=alert(4)>');
  await H.messageRow(b, '"><svg onload=alert(4)>').waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await b.locator("#message-list svg:not(.icon)").count(), 0);

  assert.deepEqual(a.dialogs, [], "no dialog fired for the sender");
  assert.deepEqual(b.dialogs, [], "no dialog fired for the receiver");
  H.assertClean(a, "sender");
  H.assertClean(b, "receiver");
});
