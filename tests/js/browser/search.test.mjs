// Search: typing a query in the sidebar's search box lists matching
// messages with the hits highlighted (the message's own markup shown as
// text, never parsed), and each result links to /r/NAME/SEQ.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as H from "./helpers.mjs";

const s = H.suite();

test("a search lists highlighted results that link to the message", async () => {
  const word = `zq${Date.now().toString(36)}`;
  const { room } = await H.seedRoom(s.server, 3, {
    concurrency: 1,
    bodyOf: (i) => (i === 2 ? `<b>${word}</b> & more` : `filler ${i}`),
  });
  const page = await H.signedInPage(s);
  const input = page.getByRole("searchbox", { name: "Search messages" });
  const results = page.locator("#search-results li");
  // The index makes a message searchable within about a second.
  await H.eventually(
    async () => {
      await input.fill(word);
      await input.press("Enter");
      await page.locator("#search-status", { hasText: /result|No messages|failed/ }).waitFor({ timeout: H.UI_DEADLINE });
      return (await results.count()) === 1;
    },
    { what: "one search result" },
  );
  const link = results.first().locator("a");
  assert.equal(await link.getAttribute("href"), `/r/${room.name}/2`);
  assert.equal(await link.locator("mark").count(), 1);
  assert.equal(await link.locator("mark").textContent(), word);
  assert.equal(await link.locator(".search-snippet").textContent(), `<b>${word}</b> & more`);
  assert.equal(await link.locator(".search-snippet b").count(), 0, "message markup was parsed");
  assert.match(await link.locator(".search-meta").textContent(), new RegExp(`#${room.name}`));
  await H.screenshot(page, "60-search-results");

  // A syntax error is explained, not thrown.
  await input.fill('"unbalanced');
  await input.press("Enter");
  await page.locator("#search-status", { hasText: "unbalanced quote" }).waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await results.count(), 0);
  H.assertClean(page);
});
