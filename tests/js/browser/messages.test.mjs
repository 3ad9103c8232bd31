// The message pane and the composer: edit and delete of one's own
// messages (also by keyboard), the length limit, the typing indicator, the
// screen-reader announcement of new messages, and scroll-back that loads
// older history on demand without gaps or duplicates.

import { test } from "node:test";
import assert from "node:assert/strict";
import { unique } from "../harness.mjs";
import * as H from "./helpers.mjs";

const s = H.suite();

test("own messages can be edited and deleted; others see the change", async () => {
  const a = await H.signedInPage(s, { displayName: "Edith" });
  const b = await H.signedInPage(s, { displayName: "Watcher" });

  await H.send(a, "first draft");
  await H.messageRow(b, "first draft").waitFor({ timeout: H.UI_DEADLINE });
  // B has no edit control on A's message.
  assert.equal(await H.messageRow(b, "first draft").getByRole("button", { name: /Edit message/ }).count(), 0);

  // Keyboard only: Up in the empty composer edits the last own message.
  await a.locator("#composer-input").focus();
  await a.keyboard.press("ArrowUp");
  const editor = a.getByRole("textbox", { name: "Edit message" });
  await editor.waitFor();
  assert.equal(await editor.evaluate((el) => el === document.activeElement), true, "the editor has focus");
  await editor.fill("final text");
  await H.screenshot(a, "40-editing");
  await editor.press("Enter");
  const edited = H.messageRow(b, "final text");
  await edited.waitFor({ timeout: H.UI_DEADLINE });
  await edited.locator(".msg-edited").waitFor();
  assert.equal(await H.messageRow(b, "first draft").count(), 0);
  // Focus went back to the composer.
  await H.eventually(() => a.evaluate(() => document.activeElement && document.activeElement.id === "composer-input"), { what: "focus back in the composer" });

  // Escape cancels an edit.
  await a.keyboard.press("ArrowUp");
  await editor.waitFor();
  await editor.fill("never saved");
  await editor.press("Escape");
  await editor.waitFor({ state: "detached" });
  await H.messageRow(a, "final text").waitFor();

  // Delete through the message's action button and the confirmation dialog.
  const row = H.messageRow(a, "final text");
  await row.hover();
  await row.getByRole("button", { name: /Delete message/ }).click();
  const confirm = a.getByRole("dialog", { name: "Delete message" });
  await confirm.waitFor();
  await H.screenshot(a, "41-confirm-delete");
  await confirm.getByRole("button", { name: "Delete" }).click();
  await b.locator("#message-list li.msg.is-deleted", { hasText: "This message was deleted." }).waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await b.getByText("final text").count(), 0);
  H.assertClean(a, "editor");
  H.assertClean(b, "watcher");
});

test("the composer refuses bodies over the limit and shows a counter", async () => {
  const a = await H.signedInPage(s);
  const box = a.locator("#composer-input");
  const send = a.getByRole("button", { name: "Send message" });
  assert.equal(await send.isDisabled(), true, "nothing to send yet");

  await box.fill("x".repeat(3990));
  await a.locator("#composer-count", { hasText: "10 left" }).waitFor();
  assert.equal(await send.isDisabled(), false);

  await box.fill("y".repeat(4001));
  await a.locator("#composer-count", { hasText: "1 over limit" }).waitFor();
  assert.equal(await send.isDisabled(), true);
  assert.equal(await box.getAttribute("aria-invalid"), "true");
  const rowsBefore = await a.locator("#message-list li.msg").count();
  await box.press("Enter");
  assert.equal(await a.locator("#message-list li.msg").count(), rowsBefore, "nothing was sent");
  assert.equal(await a.locator("#message-list li.is-pending").count(), 0, "nothing is pending");
  assert.equal(await box.inputValue(), "y".repeat(4001), "the text is kept");
  await H.screenshot(a, "42-over-limit");

  // Characters are counted as the server counts them (emoji = 1).
  await box.fill("😀".repeat(4000));
  await a.locator("#composer-count", { hasText: "0 left" }).waitFor();
  assert.equal(await send.isDisabled(), false);
  await box.press("Enter");
  await H.eventually(async () => (await a.locator("#message-list li.msg:not(.is-pending)").count()) === rowsBefore + 1, { what: "the 4000-emoji message" });
  H.assertClean(a);
});

test("until a room is open the composer is disabled, so nothing typed after sign-in is lost", async () => {
  const a = await H.openPage(s.browser, s.server);
  // Hold the room list back until the test lets it through.
  let requested;
  let release;
  const roomsRequested = new Promise((resolve) => (requested = resolve));
  const released = new Promise((resolve) => (release = resolve));
  await a.route("**/api/rooms", async (route) => {
    requested();
    await released;
    await route.continue();
  });
  await a.getByRole("tab", { name: "Create account" }).click();
  await a.getByLabel("Username").fill(unique("early"));
  await a.getByLabel("Password").fill(H.PASSWORD);
  await a.getByRole("button", { name: "Create account" }).click();
  await roomsRequested;
  const box = a.locator("#composer-input");
  await box.waitFor({ state: "visible", timeout: H.UI_DEADLINE });
  assert.equal(await box.isDisabled(), true, "no topic open yet: the box takes no text");
  assert.equal(await a.getByRole("button", { name: "Send message" }).isDisabled(), true);

  release();
  await H.chatReady(a);
  await a.locator("#topic-title", { hasText: "lobby" }).waitFor();
  assert.equal(await box.inputValue(), "");
  await H.send(a, "typed the moment the room opened");
  await H.messageRow(a, "typed the moment the room opened").waitFor({ timeout: H.UI_DEADLINE });
  await a.unroute("**/api/rooms");
  H.assertClean(a);
});

test("typing shows for the others and new messages are announced", async () => {
  const a = await H.signedInPage(s, { displayName: "Tina Typer" });
  const b = await H.signedInPage(s, { displayName: "Lena Listener" });
  await b.locator("#online-list").getByText("Tina Typer").waitFor({ timeout: H.UI_DEADLINE });

  await a.locator("#composer-input").pressSequentially("hello the", { delay: 20 });
  await b.locator("#typing", { hasText: "Tina Typer is typing…" }).waitFor({ timeout: H.UI_DEADLINE });
  await H.screenshot(b, "43-typing");
  await a.locator("#composer-input").press("Enter");
  await H.messageRow(b, "hello the").waitFor({ timeout: H.UI_DEADLINE });
  // The message clears the indicator and is read out politely.
  await b.locator("#typing", { hasText: "typing" }).waitFor({ state: "detached", timeout: H.UI_DEADLINE }).catch(async () => {
    assert.equal((await b.locator("#typing").textContent()).trim(), "");
  });
  await b.locator("#announcer", { hasText: "Tina Typer: hello the" }).waitFor({ state: "attached", timeout: H.UI_DEADLINE });
  assert.equal(await b.locator("#announcer").getAttribute("aria-live"), "polite");
  H.assertClean(a);
  H.assertClean(b);
});

test("scrolling up loads older history, every message once and in order", async () => {
  const { room } = await H.seedRoom(s.server, 130, { concurrency: 1, bodyOf: (i) => `history message ${i}`, prefix: "history" });

  const a = await H.signedInPage(s);
  await a.goto(`/r/${room.name}`);
  await H.messageRow(a, "history message 130").waitFor({ timeout: H.UI_DEADLINE });
  const first = await H.renderedSeqs(a);
  assert.equal(first[first.length - 1], 130);
  assert.ok(first.length < 130, "not everything is loaded at once");
  await H.screenshot(a, "44-history-bottom");

  // Scroll to the top until the beginning of the room is reached.
  await H.eventually(
    async () => {
      await a.locator("#scroller").evaluate((el) => {
        el.scrollTop = 0;
      });
      return a.locator("#history-start").isVisible();
    },
    { timeout: 20000, what: "the start of the history" },
  );
  const seqs = await H.renderedSeqs(a);
  assert.deepEqual(seqs, Array.from({ length: 130 }, (_, i) => i + 1));
  await a.getByText(`This is the very beginning of #${room.name}.`).waitFor();
  await H.screenshot(a, "45-history-top");
  H.assertClean(a);
});
