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
import assert from "node:assert/strict";
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
 * Starts a browser and a server (`serverOptions` as for `Server`; null for
 * none) before the file's tests and stops them after. Returns the suite:
 * `server` and `browser` are set once the tests run; `startServer(options)`
 * starts another server that is stopped with the suite.
 */
export function suite(serverOptions = {}) {
  const s = {
    server: null,
    browser: null,
    servers: [],
    async startServer(options = {}) {
      const server = new Server(options);
      s.servers.push(server);
      return server.start();
    },
  };
  before(async () => {
    s.browser = await launch();
    if (serverOptions) s.server = await s.startServer(serverOptions);
  });
  after(async () => {
    await s.browser?.close();
    for (const server of s.servers) await server.cleanup();
  });
  return s;
}

/**
 * A new user registered through the sign-in screen in a fresh browser
 * context on the suite's server, or on `options.server` (other `options`
 * as for `openPage` and `registerViaUi`).
 * Resolves with the page once a topic is open; `page.user` is the account
 * (`{username, password, displayName}`).
 */
export async function signedInPage({ server, browser }, { server: on = server, viewport, colorScheme, path: at, bypassCSP, prepare, ...account } = {}) {
  const page = await openPage(browser, on, { viewport, colorScheme, path: at, bypassCSP, prepare });
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
 * its own scripts (the server's policy allows only its own). `prepare`
 * (async, given the context) runs before the page opens: permissions,
 * init scripts.
 */
export async function openPage(browser, server, { viewport, colorScheme, path: at, bypassCSP = false, prepare } = {}) {
  viewport ??= { width: 1280, height: 800 };
  colorScheme ??= "light";
  at ??= "/";
  const context = await browser.newContext({ viewport, colorScheme, baseURL: server.url, bypassCSP });
  if (prepare) await prepare(context);
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

/** Fails unless `seqs` (rendered, in DOM order) are every seq from 1 to n exactly once, in order. */
export function assertGapless(seqs, n, label) {
  assert.deepEqual(seqs, Array.from({ length: n }, (_, i) => i + 1), `${label}: seqs in the DOM`);
}

/** The outbox items `page` keeps in localStorage (messages not yet acknowledged). */
export function outboxOf(page) {
  return page.evaluate(() =>
    Object.entries(localStorage)
      .filter(([k]) => k.startsWith("confab:outbox:"))
      .map(([, v]) => JSON.parse(v))
      .flat(),
  );
}

/**
 * Sends `body` while the server is down; resolves with its row once it
 * shows as waiting for the connection and is kept in the outbox.
 */
export async function sendWhileDown(page, body) {
  await send(page, body);
  const pending = page.locator("#message-list li.is-pending", { hasText: body });
  await pending.waitFor({ timeout: UI_DEADLINE });
  await pending.getByText("Waiting for connection…").waitFor();
  const stored = await outboxOf(page);
  assert.equal(stored.length, 1, "the pending message is kept in localStorage");
  assert.equal(stored[0].body, body);
  return pending;
}

/**
 * After a crash and restart: lobby holds `total` messages with `body` once,
 * and `page` shows seqs 1..total with that message once, nothing pending and
 * an empty outbox. `token` reads lobby through the REST API of `server`.
 */
export async function assertDeliveredOnce(page, server, token, { body, total, label }) {
  const { messages } = await server.messages(token, "lobby", "limit=200");
  assert.equal(messages.length, total, "the server stored each message once");
  assert.equal(messages.filter((m) => m.body === body).length, 1);
  await eventually(async () => (await renderedSeqs(page)).length === total, { what: `${total} rendered messages` });
  assertGapless(await renderedSeqs(page), total, label);
  assert.equal(await messageRow(page, body).count(), 1);
  assert.equal(await page.locator("#message-list li.is-pending").count(), 0);
  assert.deepEqual(await outboxOf(page), [], "the outbox is empty once delivered");
}

/** Fails if the page logged errors or opened a JS dialog. */
export function assertClean(page, label = "page") {
  const issues = [...page.problems, ...page.dialogs.map((d) => `dialog: ${d}`)];
  if (issues.length) throw new Error(`${label} had problems:\n${issues.join("\n")}`);
}

/**
 * A tiny SMTP server on a loopback port (enough of RFC 5321 for a client
 * without TLS), recording every message. `url` is the server's `smtp_url`;
 * `waitFor(n)` resolves with the messages once `n` have arrived;
 * `close()` stops it. Each message is `{from, to, data, body, link}` with
 * `body` decoded from quoted-printable when sent so.
 */
export async function smtpSink() {
  const { createServer } = await import("node:net");
  const mails = [];
  const waiters = [];
  const server = createServer((socket) => {
    socket.setEncoding("utf8");
    let buffer = "";
    let inData = false;
    let data = "";
    let from = "";
    let to = [];
    const reply = (line) => socket.write(`${line}\r\n`);
    reply("220 sink ESMTP ready");
    socket.on("data", (chunk) => {
      buffer += chunk;
      let at;
      while ((at = buffer.indexOf("\r\n")) >= 0) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        if (inData) {
          if (line === ".") {
            inData = false;
            mails.push(parseMail(from, to, data));
            to = [];
            data = "";
            reply("250 OK queued");
            for (const w of waiters.splice(0)) w();
          } else {
            data += `${line.startsWith(".") ? line.slice(1) : line}\r\n`;
          }
          continue;
        }
        const upper = line.toUpperCase();
        if (upper.startsWith("EHLO")) socket.write("250-sink\r\n250 8BITMIME\r\n");
        else if (upper.startsWith("MAIL FROM:")) {
          from = addressOf(line.slice(10));
          reply("250 OK");
        } else if (upper.startsWith("RCPT TO:")) {
          to.push(addressOf(line.slice(8)));
          reply("250 OK");
        } else if (upper === "DATA") {
          inData = true;
          reply("354 end with <CRLF>.<CRLF>");
        } else if (upper.startsWith("QUIT")) {
          reply("221 bye");
          socket.end();
        } else if (/^(HELO|NOOP|RSET)/.test(upper)) reply("250 OK");
        else reply("502 command not implemented");
      }
    });
    socket.on("error", () => {});
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = server.address().port;
  return {
    port,
    url: `smtp+plain://127.0.0.1:${port}`,
    mails,
    async waitFor(count, timeout = UI_DEADLINE) {
      const until = Date.now() + timeout;
      while (mails.length < count) {
        const left = until - Date.now();
        if (left <= 0) throw new Error(`expected ${count} mails within ${timeout} ms, got ${mails.length}`);
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return mails.slice();
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

function addressOf(text) {
  const m = text.match(/<([^>]*)>/);
  return m ? m[1] : text.trim().split(/\s+/)[0];
}

function parseMail(from, to, data) {
  const split = data.indexOf("\r\n\r\n");
  const head = split >= 0 ? data.slice(0, split) : data;
  let body = split >= 0 ? data.slice(split + 4) : "";
  if (/^content-transfer-encoding:\s*quoted-printable/im.test(head)) {
    body = Buffer.from(
      body.replace(/=\r\n/g, "").replace(/=([0-9A-F]{2})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16))),
      "latin1",
    ).toString("utf8");
  }
  const link = (body.match(/https?:\/\/\S+/) || [null])[0];
  return { from, to, data, head, body, link };
}
