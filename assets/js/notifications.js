// notifications.js — browser notifications (the Notification API) for a
// mention or a direct message that arrives while the tab is hidden.
// Permission is asked only when the user presses "Enable notifications" in
// the sidebar, never on load; the button shows while the browser can still
// ask. Messages from ignored users never get here (the server does not
// deliver them). Clicking a notification focuses the tab and opens the
// message: /r/NAME/SEQ for a room, /dm/ID/SEQ for a conversation.

import { byId, show } from "./dom.js";

/** The address of one message. */
export function messageHref({ kind, name, seq }) {
  const base = kind === "room" ? "/r" : "/dm";
  return `${base}/${encodeURIComponent(name)}/${seq}`;
}

const supported = () => typeof window.Notification === "function";

export function mountNotifications({ go }) {
  const button = byId("enable-notifications");

  function refresh() {
    show(button, supported() && window.Notification.permission === "default");
  }

  button.addEventListener("click", async () => {
    if (!supported()) return;
    try {
      await window.Notification.requestPermission();
    } catch {
      // Older browsers take a callback; the permission is read below either way.
    }
    refresh();
  });
  refresh();

  /** Shows `alert` (from chat.js) as a notification when the tab is hidden and it is allowed. */
  function notify(alert) {
    if (!supported() || window.Notification.permission !== "granted") return;
    if (document.visibilityState !== "hidden") return;
    const href = messageHref(alert);
    let note;
    try {
      note = new window.Notification(alert.title, { body: alert.body, tag: `${alert.topic} ${alert.seq}` });
    } catch {
      return; // e.g. a platform that only allows notifications from a service worker
    }
    note.onclick = (event) => {
      if (event && event.preventDefault) event.preventDefault();
      window.focus();
      go(href);
      note.close();
    };
  }

  return { notify, refresh };
}
