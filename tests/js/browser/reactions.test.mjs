// Reactions and links to a message in the web UI: a reaction made in one
// browser shows as a chip in the other (count, who in the title, one's own
// pressed) and a click toggles it; the picker works by mouse and keyboard
// (Escape closes it); "copy link" gives /r/NAME/SEQ; such a link opened in
// a fresh page scrolls to that message and highlights it, even when it is
// far older than the first page, and live updates and scroll-back keep
// working from there.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as H from "./helpers.mjs";

const s = H.suite();

/** Asserts `seqs` are consecutive (no gap, no duplicate). */
function assertConsecutive(seqs, label) {
  const want = Array.from({ length: seqs.length }, (_, i) => seqs[0] + i);
  assert.deepEqual(seqs, want, `${label}: seqs in the DOM`);
}

test("a reaction in one browser shows as a chip in the other; clicking a chip toggles it", async () => {
  const a = await H.signedInPage(s, { displayName: "Rea Actor" });
  const b = await H.signedInPage(s, { displayName: "Bea Watcher" });
  await H.send(b, "react to this please");
  const onA = H.messageRow(a, "react to this please");
  await onA.waitFor({ timeout: H.UI_DEADLINE });

  // The picker, by keyboard: arrows move, Escape closes and gives the focus back.
  await onA.hover();
  const trigger = onA.getByRole("button", { name: /Add a reaction/ });
  await trigger.click();
  const picker = a.getByRole("menu", { name: "Pick a reaction" });
  await picker.waitFor();
  assert.equal(await trigger.getAttribute("aria-expanded"), "true");
  assert.equal(await picker.getByRole("menuitem", { name: "thumbs up" }).evaluate((el) => el === document.activeElement), true);
  await a.keyboard.press("ArrowRight");
  assert.equal(await picker.getByRole("menuitem", { name: "thumbs down" }).evaluate((el) => el === document.activeElement), true);
  await a.keyboard.press("Escape");
  await picker.waitFor({ state: "detached" });
  assert.equal(await trigger.evaluate((el) => el === document.activeElement), true, "focus back on the trigger");

  // Pick one with the mouse.
  await trigger.click();
  await picker.getByRole("menuitem", { name: "rocket" }).click();
  await picker.waitFor({ state: "detached" });
  const mine = onA.locator(".reaction-chip", { hasText: "🚀" });
  await mine.waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await mine.getAttribute("aria-pressed"), "true");
  assert.match(await mine.getAttribute("title"), /you reacted with 🚀/);

  const onB = H.messageRow(b, "react to this please");
  const theirs = onB.locator(".reaction-chip", { hasText: "🚀" });
  await theirs.waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await theirs.getAttribute("aria-pressed"), "false");
  assert.equal((await theirs.locator(".reaction-count").textContent()).trim(), "1");
  await H.eventually(async () => /Rea Actor reacted with 🚀/.test(await theirs.getAttribute("title")), { what: "the name in the title" });
  await H.screenshot(b, "70-reaction-chip");

  // B joins in by clicking the chip: 2 on both sides, pressed for both.
  await theirs.click();
  for (const chip of [mine, theirs]) {
    await H.eventually(async () => (await chip.locator(".reaction-count").textContent()).trim() === "2", { what: "count 2" });
  }
  await H.eventually(async () => (await theirs.getAttribute("aria-pressed")) === "true", { what: "B's chip pressed" });
  assert.match(await mine.getAttribute("title"), /you, Bea Watcher reacted with 🚀/);

  // Both take it back: the chip goes away everywhere.
  await mine.click();
  await H.eventually(async () => (await theirs.locator(".reaction-count").textContent()).trim() === "1", { what: "count 1" });
  await theirs.click();
  await onA.locator(".reaction-chip").waitFor({ state: "detached", timeout: H.UI_DEADLINE });
  await onB.locator(".reaction-chip").waitFor({ state: "detached", timeout: H.UI_DEADLINE });

  // Reactions survive a reload (they come with the history).
  await onB.hover();
  await onB.getByRole("button", { name: /Add a reaction/ }).click();
  await b.getByRole("menu", { name: "Pick a reaction" }).getByRole("menuitem", { name: "eyes" }).click();
  await onA.locator(".reaction-chip", { hasText: "👀" }).waitFor({ timeout: H.UI_DEADLINE });
  await a.reload();
  await H.chatReady(a);
  const reloaded = H.messageRow(a, "react to this please").locator(".reaction-chip", { hasText: "👀" });
  await reloaded.waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await reloaded.getAttribute("aria-pressed"), "false");
  H.assertClean(a);
  H.assertClean(b);
});

test("copy link gives /r/NAME/SEQ; the link opens the room scrolled to that message, highlighted, far back in history", async () => {
  const { room, owner } = await H.seedRoom(s.server, 300, { concurrency: 1 });
  const target = 37;
  const { messages } = await s.server.expect(200, "GET", `/api/rooms/${room.name}/messages?around=${target}&limit=1`, { token: owner.token });
  const body = messages[0].body;

  const page = await H.signedInPage(s, { path: `/r/${room.name}/${target}` });
  assert.equal(new URL(page.url()).pathname, `/r/${room.name}/${target}`, "the URL keeps the message");
  const row = page.locator(`#message-list li.msg[data-seq="${target}"]`);
  await row.waitFor({ timeout: H.UI_DEADLINE });
  assert.equal((await row.locator(".msg-body").textContent()).trim(), body);
  await H.eventually(() => row.evaluate((el) => el.classList.contains("is-target")), { what: "the row highlighted" });
  // On screen.
  await H.eventually(
    () =>
      row.evaluate((el) => {
        const box = el.getBoundingClientRect();
        const pane = document.getElementById("scroller").getBoundingClientRect();
        return box.top >= pane.top && box.bottom <= pane.bottom;
      }),
    { what: "the linked message in view" },
  );
  await H.screenshot(page, "71-linked-message");

  // The range stays gap-free up to the newest message, so live updates show.
  await H.eventually(async () => {
    const seqs = await H.renderedSeqs(page);
    return seqs.includes(300) && seqs.includes(target);
  }, { what: "the gap closed up to the newest message" });
  const seqs = await H.renderedSeqs(page);
  assertConsecutive(seqs, "from the linked page to the newest");
  await s.server.postMessage(owner.token, room.name, "live after the jump");
  await H.messageRow(page, "live after the jump").waitFor({ timeout: H.UI_DEADLINE });

  // Scroll-back from there reaches the very beginning.
  for (let i = 0; i < 10 && !(await H.renderedSeqs(page)).includes(1); i++) {
    await page.locator("#scroller").evaluate((el) => {
      el.scrollTop = 0;
    });
    await H.eventually(async () => (await H.renderedSeqs(page))[0] < target || (await H.renderedSeqs(page)).includes(1), { what: "older history" });
  }
  await H.eventually(async () => (await H.renderedSeqs(page)).includes(1), { what: "seq 1 after scrolling back" });
  const all = await H.renderedSeqs(page);
  H.assertGapless(all, all.length, "after scroll-back");

  // Copy link on another message gives its URL.
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"]);
  const other = page.locator('#message-list li.msg[data-seq="5"]');
  await other.scrollIntoViewIfNeeded();
  await other.hover();
  await other.getByRole("button", { name: /Copy a link/ }).click();
  await page.getByText("Link copied.").waitFor({ timeout: H.UI_DEADLINE });
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(new URL(copied).pathname, `/r/${room.name}/5`);

  // Following such a link inside the page opens it in place.
  await page.evaluate((href) => {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = "jump";
    document.getElementById("toasts").append(a);
    a.click();
  }, `/r/${room.name}/250`);
  const jumped = page.locator('#message-list li.msg[data-seq="250"].is-target');
  await jumped.waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(new URL(page.url()).pathname, `/r/${room.name}/250`);
  H.assertClean(page);
});

test("a link to a message that does not exist opens the room as usual", async () => {
  const { room } = await H.seedRoom(s.server, 3, { concurrency: 1 });
  const page = await H.signedInPage(s, { path: `/r/${room.name}/99` });
  await H.messageRow(page, "message 3").waitFor({ timeout: H.UI_DEADLINE });
  await page.getByText("That message is not there any more.").waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await page.locator("#message-list li.msg.is-target").count(), 0);
  H.assertClean(page);
});
