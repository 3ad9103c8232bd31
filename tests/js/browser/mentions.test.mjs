// Mentions in the web UI: the composer's `@` suggestions (keyboard and
// ARIA), highlighted mentions (one's own more strongly), the "@N" badge
// that reading clears, and browser notifications while the tab is hidden —
// asked for only with the sidebar's button, for mentions and direct
// messages, never for an ignored user.
//
// The page's Notification is wrapped by an init script that records every
// notification and permission request; the tab is made "hidden" by
// overriding document.visibilityState / document.hidden and firing
// visibilitychange, as a browser does when the tab goes to the background.
// axe checks the highlights, the badge and the open list in both themes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import * as H from "./helpers.mjs";
import { unique } from "../harness.mjs";
import { joinWatched } from "../presence-helpers.mjs";

const s = H.suite();

/** Grants notifications and installs the recording Notification and the visibility switch. */
async function notifiable(context) {
  await context.grantPermissions(["notifications"]);
  await context.addInitScript(() => {
    window.__notes = [];
    window.__asked = 0;
    window.__hidden = false;
    let permission = "default";
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (window.__hidden ? "hidden" : "visible") });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => window.__hidden });
    const Real = window.Notification;
    class Recorded {
      constructor(title, options = {}) {
        this.title = title;
        this.body = options.body;
        this.tag = options.tag;
        this.closed = false;
        window.__notes.push(this);
      }
      close() {
        this.closed = true;
      }
      static get permission() {
        return permission;
      }
      static async requestPermission() {
        window.__asked += 1;
        // The context granted it; ask the real API too so the grant is what answers.
        permission = Real ? await Real.requestPermission() : "granted";
        return permission;
      }
    }
    window.Notification = Recorded;
  });
}

/** Makes `page`'s tab hidden or visible, firing visibilitychange. */
async function setHidden(page, hidden) {
  await page.evaluate((h) => {
    window.__hidden = h;
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

const notes = (page) => page.evaluate(() => window.__notes.map((n) => ({ title: n.title, body: n.body, tag: n.tag })));
const tokenOf = (page) => page.evaluate(() => JSON.parse(localStorage.getItem("confab:session")).token);
const idOf = (page) => page.evaluate(() => JSON.parse(localStorage.getItem("confab:session")).user.id);

test("@ suggests members, the mention is highlighted, the badge shows and clears on reading, and a hidden tab is notified", async () => {
  const a = await H.signedInPage(s, { username: unique("alice"), displayName: "Alice" });
  const b = await H.signedInPage(s, { username: unique("bob"), displayName: "Bob", prepare: notifiable });
  const bob = b.user;

  // The permission is asked for only with the button.
  const enable = b.getByRole("button", { name: "Enable notifications" });
  await enable.waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await b.evaluate(() => window.__asked), 0, "nothing asked on load");
  await enable.click();
  await enable.waitFor({ state: "hidden", timeout: H.UI_DEADLINE });
  assert.equal(await b.evaluate(() => window.__asked), 1);

  // Alice types "@bo…": Bob is suggested; arrows move, Enter picks.
  const box = a.locator("#composer-input");
  await box.fill("");
  await box.pressSequentially(`Hi @${bob.username.slice(0, 4)}`);
  const list = a.getByRole("listbox", { name: "People to mention" });
  const option = list.locator(`[role="option"][data-username="${bob.username}"]`);
  await option.waitFor({ timeout: H.UI_DEADLINE });
  const options = list.getByRole("option");
  const first = await options.first().getAttribute("id");
  assert.equal(await box.getAttribute("aria-activedescendant"), first);
  assert.equal(await options.first().getAttribute("aria-selected"), "true");
  await H.screenshot(a, "70-mention-suggestions");
  const count = await options.count();
  if (count > 1) {
    await box.press("ArrowDown");
    assert.equal(await box.getAttribute("aria-activedescendant"), await options.nth(1).getAttribute("id"));
    await box.press("ArrowUp");
  }
  // Escape closes; typing again reopens; Enter picks the highlighted one (Bob is first: "bob…" < "here").
  await box.press("Escape");
  await list.waitFor({ state: "hidden" });
  assert.equal(await box.inputValue(), `Hi @${bob.username.slice(0, 4)}`, "Escape keeps the text");
  await box.pressSequentially(bob.username.slice(4, 5));
  await option.waitFor();
  assert.equal(await options.first().getAttribute("data-username"), bob.username);
  await box.press("Enter");
  await list.waitFor({ state: "hidden" });
  assert.equal(await box.inputValue(), `Hi @${bob.username} `, "Enter put the name in, and did not send");

  // Bob's tab goes to the background; Alice sends.
  await setHidden(b, true);
  await box.pressSequentially("lunch?");
  await box.press("Enter");
  const body = `Hi @${bob.username} lunch?`;

  // Alice sees the mention highlighted (not as her own).
  const aRow = H.messageRow(a, "lunch?");
  await aRow.locator(".mention", { hasText: `@${bob.username}` }).waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await aRow.locator(".mention-me").count(), 0);

  // Bob: a notification, the badge on lobby, his own mention highlighted strongly.
  const lobby = b.locator("#room-list a", { hasText: "lobby" });
  await lobby.locator(".badge-mention[data-mentions='1']").waitFor({ timeout: H.UI_DEADLINE });
  const seen = await H.eventually(async () => (await notes(b)).find((n) => n.body === body), { what: "bob's notification" });
  assert.equal(seen.title, "Alice in #lobby");
  await H.messageRow(b, "lunch?").locator(".mention.mention-me", { hasText: `@${bob.username}` }).waitFor({ timeout: H.UI_DEADLINE });
  await H.screenshot(b, "71-mention-badge");
  const { messages } = await s.server.messages(await tokenOf(b), "lobby", "limit=5");
  const posted = messages.find((m) => m.body === body);
  assert.deepEqual(posted.mentions, [await idOf(b)]);

  // Clicking the notification focuses the tab and goes to the message's address.
  await b.evaluate(() => window.__notes.at(-1).onclick(new Event("click")));
  await H.eventually(async () => new URL(b.url()).pathname === `/r/lobby/${posted.seq}`, { what: "the message's address" });

  // Back in the tab: lobby is read, the badge goes, and the server agrees.
  await setHidden(b, false);
  await b.locator("#room-list a", { hasText: "lobby" }).locator(".badge-mention").waitFor({ state: "detached", timeout: H.UI_DEADLINE });
  const token = await tokenOf(b);
  await H.eventually(
    async () => {
      const { rooms } = await s.server.expect(200, "GET", "/api/rooms", { token });
      return rooms.find((r) => r.name === "lobby").unread_mentions === 0;
    },
    { what: "bob's unread mentions on the server to drop to 0" },
  );
  H.assertClean(a, "alice");
  H.assertClean(b, "bob");
});

test("a hidden tab is notified of direct messages too, and never of an ignored user", async () => {
  const b = await H.signedInPage(s, { username: unique("bea"), displayName: "Bea", prepare: notifiable });
  await b.getByRole("button", { name: "Enable notifications" }).click();
  const bea = { token: await tokenOf(b), id: await idOf(b), username: b.user.username };
  const carol = await s.server.register(unique("carol"));
  const dave = await s.server.register(unique("dave"));
  await s.server.expect(204, "PUT", `/api/me/ignores/${carol.user.username}`, { token: bea.token });
  await setHidden(b, true);

  // Carol (ignored) mentions Bea in lobby and writes to her directly.
  await s.server.postMessage(carol.token, "lobby", `@${bea.username} from carol`);
  const fromCarol = await s.server.expect(201, "POST", "/api/conversations", { token: carol.token, body: { username: bea.username } });
  await b.locator("#dm-list a").first().waitFor({ timeout: H.UI_DEADLINE });
  await s.server.expect(201, "POST", `/api/conversations/${fromCarol.conversation.id}/messages`, {
    token: carol.token,
    body: { body: `@${bea.username} psst from carol` },
  });

  // Dave writes to her directly once her page has joined the conversation.
  const opened = await s.server.expect(201, "POST", "/api/conversations", { token: dave.token, body: { username: bea.username } });
  const topic = `dm:${opened.conversation.id}`;
  const { watch } = await joinWatched(await s.server.connect(dave.token), topic);
  await watch.until((view) => String(bea.id) in view, H.UI_DEADLINE, "bea's page in the conversation");
  await s.server.expect(201, "POST", `/api/conversations/${opened.conversation.id}/messages`, {
    token: dave.token,
    body: { body: "hello from dave" },
  });
  const note = await H.eventually(async () => (await notes(b)).find((n) => n.body === "hello from dave"), { what: "dave's notification" });
  assert.equal(note.title, dave.user.display_name);
  // Everything carol sent went out before dave's message: none of it notified.
  const all = await notes(b);
  assert.deepEqual(all.filter((n) => /carol/.test(n.body)), [], JSON.stringify(all));
  assert.equal(all.length, 1, JSON.stringify(all));

  await b.evaluate(() => window.__notes.at(-1).onclick(new Event("click")));
  await H.eventually(async () => new URL(b.url()).pathname === `/dm/${opened.conversation.id}/1`, { what: "the conversation message's address" });
  H.assertClean(b, "bea");
});

const AXE = createRequire(import.meta.url).resolve("axe-core");

/** Fails listing every serious or critical axe violation on `page` (as a11y.test.mjs). */
async function assertAccessible(page, what) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.addScriptTag({ path: AXE });
  await page.evaluate(() => Promise.all(document.getAnimations().map((a) => a.finished.catch(() => {}))));
  const bad = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(" ")).slice(0, 5).join(", ")}`);
  });
  assert.deepEqual(bad, [], `${what}: serious or critical axe violations`);
}

for (const colorScheme of ["light", "dark"]) {
  test(`mentions, the badge and the suggestions have no serious violations (${colorScheme})`, async () => {
    const a = await H.signedInPage(s, { username: unique("ann"), displayName: "Ann", colorScheme, bypassCSP: true, prepare: notifiable });
    const other = await s.server.register(unique("otto"));
    await setHidden(a, true);
    await s.server.postMessage(other.token, "lobby", `@${a.user.username} and @${other.user.username}, ${colorScheme}`);
    const row = H.messageRow(a, colorScheme);
    await row.locator(".mention-me").waitFor({ timeout: H.UI_DEADLINE });
    await row.locator(".mention:not(.mention-me)").waitFor({ timeout: H.UI_DEADLINE });
    await a.locator("#room-list .badge-mention").waitFor({ timeout: H.UI_DEADLINE });
    await assertAccessible(a, "highlights and badge");
    await setHidden(a, false);
    const box = a.locator("#composer-input");
    await box.pressSequentially(`@${other.user.username.slice(0, 5)}`);
    await a.getByRole("listbox", { name: "People to mention" }).getByRole("option").first().waitFor({ timeout: H.UI_DEADLINE });
    await assertAccessible(a, "suggestions open");
    H.assertClean(a, "ann");
  });
}
