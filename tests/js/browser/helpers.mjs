// Helpers for the browser tests of confab's web UI: one server and one
// headless Debian Chromium (through playwright-core) per test file, users
// registered through the UI each in their own browser context, history
// seeded through the REST API, pages that fail the test on any console
// error or uncaught exception, and screenshots saved to a temporary folder
// (printed once) for a person to look at.
//
// Synchronisation is Playwright's auto-waiting locators and `waitFor*`
// with deadlines; nothing sleeps.

import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { before, after } from "node:test";
import { chromium } from "playwright-core";
import { Server, unique } from "../harness.mjs";

export const CHROMIUM = process.env.CONFAB_CHROMIUM || "/usr/bin/chromium";
export const PASSWORD = "correct horse battery";
/** Deadline for one UI expectation. */
export const UI_DEADLINE = 20000;

let shotDir = null;

/**
 * The folder screenshots go to, created and printed on first use:
 * $CONFAB_SCREENSHOTS, else <tmpdir>/confab-ui-screens-<pid of the test
 * runner>, so every test file of one `node --test` run shares it.
 */
export function screenshotDir() {
  if (!shotDir) {
    shotDir = process.env.CONFAB_SCREENSHOTS || path.join(tmpdir(), `confab-ui-screens-${process.ppid}`);
    mkdirSync(shotDir, { recursive: true });
    console.log(`screenshots: ${shotDir}`);
  }
  return shotDir;
}

/** Saves a PNG of `page` as `<name>.png`; returns its path. */
export async function screenshot(page, name, opts = {}) {
  const file = path.join(screenshotDir(), `${name}.png`);
  await page.screenshot({ path: file, animations: "disabled", caret: "hide", ...opts });
  return file;
}

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/**
 * Starts a server (`serverOptions` as for `Server`) and a browser before the
 * file's tests and stops both after them. Returns the suite: `server` and
 * `browser` are set once the tests run.
 */
export function suite(serverOptions = {}) {
  const s = { server: null, browser: null };
  before(async () => {
    s.server = await new Server(serverOptions).start();
    s.browser = await launch();
  });
  after(async () => {
    await s.browser?.close();
    await s.server?.cleanup();
  });
  return s;
}

/**
 * A new user registered through the sign-in screen in a fresh browser
 * context on `server` (`options` as for `openPage` and `registerViaUi`).
 * Resolves with the page once a topic is open; `page.user` is the account
 * (`{username, password, displayName}`).
 */
export async function signedInPage({ server, browser }, { viewport, colorScheme, path: at, bypassCSP, ...account } = {}) {
  const page = await openPage(browser, server, { viewport, colorScheme, path: at, bypassCSP });
  page.user = await registerViaUi(page, account);
  return page;
}

/**
 * A new public room holding `count` messages posted through the REST API
 * by a new user, bodies `bodyOf(i)` (the i-th posted, 1-based; with
 * `concurrency` > 1 the order of seqs may differ from i). Resolves with
 * `{room, owner}` (owner: `{token, user}`).
 */
export async function seedRoom(server, count, { bodyOf = (i) => `message ${i}`, concurrency = 16, prefix = "seed" } = {}) {
  const owner = await server.register(unique(prefix));
  const room = await server.createRoom(owner.token, unique(prefix));
  if (count > 0) await server.postMany(owner.token, room.name, count, { concurrency, bodyOf });
  return { room, owner };
}

/**
 * A fresh browser context + page on `server`. Console errors and page
 * errors are collected in `page.problems`; `page.dialogs` collects any
 * alert/confirm/prompt (and dismisses it). `bypassCSP` lets the test add
 * its own scripts (the server's policy allows only its own).
 */
export async function openPage(browser, server, { viewport, colorScheme, path: at, bypassCSP = false } = {}) {
  viewport ??= { width: 1280, height: 800 };
  colorScheme ??= "light";
  at ??= "/";
  const context = await browser.newContext({ viewport, colorScheme, baseURL: server.url, bypassCSP });
  const page = await context.newPage();
  page.problems = [];
  page.dialogs = [];
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const text = msg.text();
    // The browser logs failed socket upgrades and fetches while the server is down; those are expected.
    if (/WebSocket connection to|Failed to load resource|net::ERR_/.test(text)) return;
    page.problems.push(`console: ${text}`);
  });
  page.on("pageerror", (error) => page.problems.push(`pageerror: ${error.message}`));
  page.on("dialog", (dialog) => {
    page.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  await page.goto(at);
  return page;
}

/**
 * Resolves once the chat has a topic open. The composer shows as soon as
 * the chat does, but it takes text only once the room list has loaded and
 * a topic is open (until then it is disabled), so this, not its
 * visibility, is what to wait for before typing a message.
 */
export async function chatReady(page) {
  await page.locator("#composer-input:enabled").waitFor({ state: "visible", timeout: UI_DEADLINE });
}

/** Registers a new account through the sign-in screen; resolves once a topic is open. */
export async function registerViaUi(page, { username = unique("ui"), password = PASSWORD, displayName } = {}) {
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Username").fill(username);
  if (displayName) await page.getByLabel("Display name").fill(displayName);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await chatReady(page);
  return { username, password, displayName: displayName || username };
}

/** Signs in through the sign-in screen; resolves once a topic is open. */
export async function signInViaUi(page, { username, password = PASSWORD }) {
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await chatReady(page);
}

/** Types into the composer (once a topic is open) and presses Enter. */
export async function send(page, text) {
  await chatReady(page);
  const box = page.locator("#composer-input");
  await box.fill(text);
  await box.press("Enter");
}

/** The message row (not pending) whose body is exactly `text`. */
export function messageRow(page, text) {
  return page.locator("#message-list li.msg:not(.is-pending)").filter({ has: page.locator(".msg-body", { hasText: text }) });
}

/** The seqs of the rendered messages, in DOM order. */
export function renderedSeqs(page) {
  return page.$$eval("#message-list li.msg[data-seq]", (rows) => rows.map((r) => Number(r.dataset.seq)));
}

/** Polls `fn` until it returns a truthy value or the deadline passes (then throws with `what`). */
export async function eventually(fn, { timeout = UI_DEADLINE, what = "a condition", interval = 50 } = {}) {
  const until = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeout} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Fails if the page logged errors or opened a JS dialog. */
export function assertClean(page, label = "page") {
  const issues = [...page.problems, ...page.dialogs.map((d) => `dialog: ${d}`)];
  if (issues.length) throw new Error(`${label} had problems:\n${issues.join("\n")}`);
}
