// "Forgot password?" end to end in the browser, with a real SMTP sink: the
// sign-in screen asks for a username or e-mail, the server mails a one-time
// link, the link opens the reset page, a new password signs the user in,
// and the link does not work a second time.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { unique } from "../harness.mjs";
import * as H from "./helpers.mjs";

const PUBLIC_URL = "https://chat.example.test";
const s = H.suite(null);
const sink = await H.smtpSink();
after(() => sink.close());

test("forgot password: mail, link, new password, signed in", async () => {
  const server = await s.startServer({
    env: {
      CONFAB_SMTP_URL: sink.url,
      CONFAB_MAIL_FROM: "Confab <chat@example.test>",
      CONFAB_PUBLIC_URL: PUBLIC_URL,
    },
  });
  const username = unique("fp");
  const email = `${username}@example.test`;
  await server.expect(201, "POST", "/api/register", { body: { username, password: H.PASSWORD, email } });

  const page = await H.openPage(s.browser, server);
  await page.getByRole("button", { name: "Forgot password?" }).click();
  await page.getByLabel("Username or e-mail").fill(email);
  await page.getByRole("button", { name: "Send me a link" }).click();
  await page.getByRole("status").filter({ hasText: "If the account exists, a mail is on its way" }).waitFor({ timeout: H.UI_DEADLINE });
  await H.screenshot(page, "70-forgot-sent");

  const [mail] = await sink.waitFor(1);
  assert.deepEqual(mail.to, [email]);
  assert.ok(mail.link && mail.link.startsWith(`${PUBLIC_URL}/reset#token=`), `a reset link: ${mail.link}`);
  const hash = new URL(mail.link).hash;

  await page.goto(`/reset${hash}`);
  await page.getByRole("heading", { name: "Choose a new password" }).waitFor();
  assert.equal(await page.evaluate(() => location.hash), "", "the token leaves the address bar");
  await page.getByLabel("New password", { exact: true }).fill("a fresh password");
  await page.getByLabel("New password, again", { exact: true }).fill("a different one");
  await page.getByRole("button", { name: "Set password and sign in" }).click();
  await page.getByText("The two passwords differ.").waitFor();
  await page.getByLabel("New password, again", { exact: true }).fill("a fresh password");
  await H.screenshot(page, "71-reset-form");
  await page.getByRole("button", { name: "Set password and sign in" }).click();
  await H.chatReady(page);
  assert.equal(await page.evaluate(() => location.pathname.startsWith("/reset")), false);

  await server.expect(200, "POST", "/api/login", { body: { username, password: "a fresh password" } });
  await server.expect(401, "POST", "/api/login", { body: { username, password: H.PASSWORD } });

  // The same link a second time: refused with a clear message.
  const again = await H.openPage(s.browser, server, { path: `/reset${hash}` });
  await again.getByLabel("New password", { exact: true }).fill("yet another password");
  await again.getByLabel("New password, again", { exact: true }).fill("yet another password");
  await again.getByRole("button", { name: "Set password and sign in" }).click();
  await again.getByRole("alert").filter({ hasText: "not valid any more" }).waitFor();
  await again.getByRole("button", { name: "Back to sign in" }).click();
  await again.getByRole("tab", { name: "Sign in" }).waitFor();
  H.assertClean(page);
});
