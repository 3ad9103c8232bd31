// Direct conversations: A starts one with B from the user list; it appears
// for B with a rising unread count; opening it clears the count (also on
// the server).

import { test } from "node:test";
import assert from "node:assert/strict";
import * as H from "./helpers.mjs";

const s = H.suite();

test("a direct conversation appears for the other person with unread counts that opening clears", async () => {
  const a = await H.signedInPage(s, { displayName: "Alice" });
  const alice = a.user;
  const b = await H.signedInPage(s, { displayName: "Bob" });
  const bob = b.user;

  // A opens the user list and picks B.
  await a.getByRole("button", { name: "Start a direct conversation" }).click();
  const dialog = a.getByRole("dialog", { name: "Start a direct conversation" });
  await dialog.waitFor();
  await dialog.getByLabel("Find someone").fill(bob.username.slice(0, 4));
  await dialog.locator(`button[data-username="${bob.username}"]`).waitFor();
  await H.screenshot(a, "10-dm-user-list");
  await dialog.locator(`button[data-username="${bob.username}"]`).click();
  await a.locator("#topic-title", { hasText: "Bob" }).waitFor({ timeout: H.UI_DEADLINE });
  assert.match(new URL(a.url()).pathname, /^\/dm\/\d+$/);

  // B sees the conversation appear in the sidebar.
  const bDm = b.locator("#dm-list a", { hasText: "Alice" });
  await bDm.waitFor({ timeout: H.UI_DEADLINE });

  // A writes; B's unread badge rises.
  await H.send(a, "Psst, Bob.");
  await bDm.locator(".badge[data-unread='1']").waitFor({ timeout: H.UI_DEADLINE });
  await H.send(a, "Got a minute?");
  await bDm.locator(".badge[data-unread='2']").waitFor({ timeout: H.UI_DEADLINE });
  await H.messageRow(a, "Got a minute?").waitFor();
  await H.screenshot(b, "11-dm-unread-badge");

  // Opening it clears the badge and shows the messages.
  await bDm.click();
  await H.messageRow(b, "Got a minute?").waitFor({ timeout: H.UI_DEADLINE });
  await bDm.locator(".badge").waitFor({ state: "detached", timeout: H.UI_DEADLINE });
  await b.locator("#topic-title", { hasText: "Alice" }).waitFor();
  // The read position reached the server too.
  const token = await b.evaluate(() => JSON.parse(localStorage.getItem("confab:session")).token);
  await H.eventually(
    async () => {
      const { conversations } = await s.server.expect(200, "GET", "/api/conversations", { token });
      return conversations.length === 1 && conversations[0].unread === 0;
    },
    { what: "B's unread count on the server to drop to 0" },
  );
  await H.send(b, "Sure, what's up?");
  await H.messageRow(a, "Sure, what's up?").waitFor({ timeout: H.UI_DEADLINE });
  await H.screenshot(b, "12-dm-open");

  // Clicking someone in the online list opens the same conversation.
  await a.goto("/r/lobby");
  await a.locator("#online-list").getByRole("button", { name: /Bob/ }).click();
  await H.messageRow(a, "Sure, what's up?").waitFor({ timeout: H.UI_DEADLINE });
  assert.equal(await a.locator("#dm-list li").count(), 1);

  H.assertClean(a, "alice");
  H.assertClean(b, "bob");
  void alice;
});

test("creating a private room marks it with a lock and lets its owner add people", async () => {
  const a = await H.signedInPage(s, { displayName: "Olive Owner" });
  const b = await H.signedInPage(s, { displayName: "Ben" });
  const bob = b.user;

  await a.getByRole("button", { name: "Create a room" }).click();
  const dialog = a.getByRole("dialog", { name: "Create a room" });
  await dialog.getByLabel("Name").fill("Secret Plans");
  assert.equal(await dialog.getByLabel("Name").inputValue(), "secret-plans");
  await dialog.getByLabel(/Private/).check();
  await H.screenshot(a, "13-create-room");
  await dialog.getByRole("button", { name: "Create room" }).click();
  await a.locator("#topic-title", { hasText: "secret-plans" }).waitFor({ timeout: H.UI_DEADLINE });
  await a.locator("#room-list a", { hasText: "secret-plans" }).locator(".icon-lock").waitFor();
  // B cannot see it yet.
  assert.equal(await b.locator("#room-list a", { hasText: "secret-plans" }).count(), 0);

  await H.send(a, "Only for invited people.");
  await a.getByRole("button", { name: "Add people" }).click();
  const pick = a.getByRole("dialog", { name: /Add people/ });
  await pick.locator(`button[data-username="${bob.username}"]`).click();
  // B gets the room (room_added), with the unread message counted.
  const room = b.locator("#room-list a", { hasText: "secret-plans" });
  await room.waitFor({ timeout: H.UI_DEADLINE });
  await room.locator(".badge[data-unread='1']").waitFor({ timeout: H.UI_DEADLINE });
  await room.click();
  await H.messageRow(b, "Only for invited people.").waitFor({ timeout: H.UI_DEADLINE });
  await H.screenshot(b, "14-private-room");

  // A taken name is reported next to the field.
  await a.getByRole("button", { name: "Create a room" }).click();
  const again = a.getByRole("dialog", { name: "Create a room" });
  await again.getByLabel("Name").fill("lobby");
  await again.getByRole("button", { name: "Create room" }).click();
  await again.locator("#room-name-error").waitFor({ timeout: H.UI_DEADLINE });
  await a.keyboard.press("Escape");
  H.assertClean(a, "owner");
  H.assertClean(b, "member");
});
