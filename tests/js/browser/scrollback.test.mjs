// Scroll-back through a long history with real wheel input: every turn of
// the wheel moves the view back by about the distance turned, the message
// the reader was looking at stays where it was when a page of older
// messages is put above it, one page loads per approach to the top, and a
// burst of fast turns never leaves the view stuck at the top with older
// messages not loaded. "Load older messages" loads a page each time it is
// pressed.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as H from "./helpers.mjs";

const s = H.suite();

const MESSAGES = 500;
/** What one turn of the wheel scrolls, in CSS pixels. */
const TURN = 700;
/** One page of history (chat.js PAGE). */
const PAGE = 50;
/** Rounding and the height of the loading line. */
const SLOP = 40;

/** The topmost message row on screen: its seq and its top relative to the scroller's top. */
function topmost(page) {
  return page.evaluate(() => {
    const scroller = document.getElementById("scroller");
    const top = scroller.getBoundingClientRect().top;
    for (const row of document.querySelectorAll("#message-list li.msg[data-seq]")) {
      const rect = row.getBoundingClientRect();
      if (rect.bottom > top + 1) return { seq: Number(row.dataset.seq), offset: rect.top - top, scrollTop: scroller.scrollTop };
    }
    return null;
  });
}

/** The top of the row of `seq` relative to the scroller's top. */
function offsetOf(page, seq) {
  return page.evaluate((seq) => {
    const row = document.getElementById(`msg-${seq}`);
    return row ? row.getBoundingClientRect().top - document.getElementById("scroller").getBoundingClientRect().top : null;
  }, seq);
}

/**
 * Resolves once the pane is at rest: nothing loading and scroll position
 * and height unchanged for ten animation frames (a smooth wheel scroll
 * takes several).
 */
function settled(page) {
  return page.evaluate(
    () =>
      new Promise((resolve) => {
        const scroller = document.getElementById("scroller");
        const loading = document.getElementById("history-loading");
        let last = "";
        let same = 0;
        const tick = () => {
          const state = `${scroller.scrollTop}|${scroller.scrollHeight}|${loading.hidden}`;
          same = state === last && loading.hidden ? same + 1 : 0;
          last = state;
          if (same >= 10) resolve();
          else requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
      }),
  );
}

/** Opens `room` for a new user, at the newest message. */
async function openRoom(room) {
  const page = await H.signedInPage(s);
  await page.goto(`/r/${room.name}`);
  await page.locator("#message-list li.msg").last().waitFor({ timeout: H.UI_DEADLINE });
  await H.eventually(async () => (await H.renderedSeqs(page)).at(-1) === MESSAGES, { what: "the newest message" });
  await settled(page);
  const box = await page.locator("#scroller").boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  return page;
}

function allSeqs() {
  return Array.from({ length: MESSAGES }, (_, i) => i + 1);
}

/**
 * Turns the wheel up `turns` times a step (without waiting in between)
 * until the first message is at the top, and after each step, once the
 * pane is at rest, calls `check` with `{before, after, moved, lowest,
 * where}`: the topmost message before and after, how far the old topmost
 * moved down, the lowest seq loaded, and a description for messages.
 * Resolves with the topmost seq before each step.
 */
async function scrollBack(page, turns, check) {
  const trace = [];
  for (let step = 1; step <= 200; step++) {
    const before = await topmost(page);
    trace.push(before.seq);
    if (before.scrollTop === 0 && (await H.renderedSeqs(page))[0] === 1) return trace;
    for (let i = 0; i < turns; i++) await page.mouse.wheel(0, -TURN);
    await settled(page);
    const after = await topmost(page);
    const moved = (await offsetOf(page, before.seq)) - before.offset;
    const lowest = (await H.renderedSeqs(page))[0];
    const where = `step ${step}: topmost ${before.seq} → ${after.seq}, the old topmost moved ${moved} px, scrollTop ${after.scrollTop}, lowest loaded ${lowest}; topmost so far ${trace.join(" ")}`;
    check({ before, after, moved, lowest, where });
  }
  return trace;
}

test("each wheel turn moves back about one turn's height, keeping the place, until the first message", async (t) => {
  const { room } = await H.seedRoom(s.server, MESSAGES);
  const page = await openRoom(room);
  const trace = await scrollBack(page, 1, ({ before, after, moved, where }) => {
    assert.ok(moved >= -1 && moved <= TURN + SLOP, `a turn moves the view by at most ${TURN} px — ${where}`);
    assert.ok(moved > 0, `the view does not stall — ${where}`);
    assert.ok(after.seq <= before.seq && before.seq - after.seq <= PAGE, `never more than a page back — ${where}`);
  });
  t.diagnostic(`topmost message before each turn: ${trace.join(" ")}`);
  assert.deepEqual(await H.renderedSeqs(page), allSeqs(), `history loaded to the first message; topmost seen: ${trace.join(" ")}`);
  assert.equal(await page.locator("#history-start").isVisible(), true);
  // 500 messages of one line at about 24-48 px: far more turns than pages.
  assert.ok(trace.length > MESSAGES / PAGE, `more turns than pages: ${trace.join(" ")}`);
  H.assertClean(page);
});

test("bursts of fast wheel turns never leave the view stuck at the top with older messages not loaded", async (t) => {
  const { room } = await H.seedRoom(s.server, MESSAGES);
  const page = await openRoom(room);
  const trace = await scrollBack(page, 6, ({ before, after, moved, lowest, where }) => {
    assert.ok(!(after.scrollTop < 10 && lowest > 1), `stuck at the top with older messages not loaded — ${where}`);
    assert.ok(moved > 0, `the burst moved the view — ${where}`);
    assert.ok(moved <= 6 * TURN + SLOP, `a burst moves the view by at most what was turned — ${where}`);
  });
  t.diagnostic(`topmost message before each burst of six turns: ${trace.join(" ")}`);
  assert.deepEqual(await H.renderedSeqs(page), allSeqs(), `history loaded to the first message; topmost seen: ${trace.join(" ")}`);
  H.assertClean(page);
});

test("Load older messages loads one page per press and keeps the view and the focus", async () => {
  const { room } = await H.seedRoom(s.server, MESSAGES);
  const page = await openRoom(room);
  const button = page.getByRole("button", { name: "Load older messages" });
  await button.waitFor({ state: "attached" });
  // Keyboard focus without scrolling the page to the top (which loads by itself).
  await button.evaluate((el) => el.focus({ preventScroll: true }));
  for (let press = 1; press <= 3; press++) {
    const lowest = (await H.renderedSeqs(page))[0];
    const before = await topmost(page);
    await page.keyboard.press("Enter");
    await H.eventually(async () => (await H.renderedSeqs(page))[0] === lowest - PAGE, { what: `page ${press} to load (lowest was ${lowest})` });
    await settled(page);
    assert.equal((await topmost(page)).seq, before.seq, `press ${press}: the view stays on the same message`);
    assert.equal(await button.evaluate((el) => el === document.activeElement), true, `press ${press}: the focus stays on the button`);
  }
  H.assertClean(page);
});
