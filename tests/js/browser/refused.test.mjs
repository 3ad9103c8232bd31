// A message the server refuses is shown as failed, never lost: on a server
// of its own with a lower body limit than the UI knows about.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as H from "./helpers.mjs";

const s = H.suite(null);

test("a body the server refuses (a lower configured limit) shows as failed with Retry, Edit and Discard", async () => {
  const strict = await s.startServer({ env: { CONFAB_MAX_BODY_CHARS: "20" } });
  try {
    const a = await H.signedInPage(s, { server: strict });
    const long = "this is longer than twenty characters";
    await H.send(a, long);
    const failed = a.locator("#message-list li.is-failed", { hasText: long });
    await failed.waitFor({ timeout: H.UI_DEADLINE });
    await failed.getByText("Not sent: too long").waitFor();
    await H.screenshot(a, "46-failed-too-long");
    // Edit puts the text back into the composer and drops the failed row.
    await failed.getByRole("button", { name: "Edit" }).click();
    await failed.waitFor({ state: "detached" });
    assert.equal(await a.locator("#composer-input").inputValue(), long);
    await a.locator("#composer-input").fill("short enough");
    await a.locator("#composer-input").press("Enter");
    await H.messageRow(a, "short enough").waitFor({ timeout: H.UI_DEADLINE });
    // Discard forgets it, also across reloads.
    await H.send(a, long);
    await failed.waitFor({ timeout: H.UI_DEADLINE });
    await failed.getByRole("button", { name: "Discard" }).click();
    await failed.waitFor({ state: "detached" });
    await a.reload();
    await H.messageRow(a, "short enough").waitFor({ timeout: H.UI_DEADLINE });
    assert.equal(await a.locator("#message-list li.is-pending").count(), 0);
    H.assertClean(a);
  } finally {
    await strict.cleanup();
  }
});
