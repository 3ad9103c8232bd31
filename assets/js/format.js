// format.js — turning data into safe display pieces: message text with
// clickable http(s) links and highlighted @mentions (built as DOM nodes,
// never HTML), times, day labels, "online since", character counts and
// avatar colours.

/** Characters as the server counts them (Unicode scalar values). */
export function charCount(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"»”’]+$/;

/** `@name` where the character before is not part of a name or address. */
const MENTION_RE = /(?<![A-Za-z0-9_.@-])@([A-Za-z0-9_.-]+)/g;

/**
 * Appends `text` to `fragment`, each `@name` for which `mentionClass(name)`
 * (lowercase name, tried also without trailing punctuation) gives a class
 * wrapped in a <span> of that class.
 */
function appendText(fragment, text, mentionClass) {
  if (!mentionClass || !text.includes("@")) {
    fragment.append(document.createTextNode(text));
    return;
  }
  let last = 0;
  for (const match of text.matchAll(MENTION_RE)) {
    let name = match[1];
    let cls = mentionClass(name.toLowerCase());
    if (!cls) {
      name = name.replace(/[._-]+$/, "");
      cls = name ? mentionClass(name.toLowerCase()) : null;
    }
    if (!cls) continue;
    if (match.index > last) fragment.append(document.createTextNode(text.slice(last, match.index)));
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = `@${name}`;
    fragment.append(span);
    last = match.index + 1 + name.length;
  }
  if (last < text.length) fragment.append(document.createTextNode(text.slice(last)));
}

/**
 * A fragment holding `text` as text nodes, with http(s) URLs as links that
 * open in a new tab without access to this page (noopener noreferrer), and
 * mentions highlighted as `mentionClass` says (see appendText).
 */
export function linkify(text, mentionClass = null) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    let url = match[0];
    // Trailing punctuation belongs to the sentence; keep a ")" that closes a "(" in the URL.
    const trail = url.match(TRAILING);
    if (trail) {
      let cut = trail[0];
      if (cut.startsWith(")") && count(url, "(") > count(url.slice(0, -cut.length), ")")) cut = cut.slice(1);
      if (cut) url = url.slice(0, -cut.length);
    }
    const href = safeHref(url);
    if (!href) continue;
    const start = match.index;
    if (start > last) appendText(fragment, text.slice(last, start), mentionClass);
    const a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = url;
    fragment.append(a);
    last = start + url.length;
  }
  if (last < text.length) appendText(fragment, text.slice(last), mentionClass);
  return fragment;
}

function count(text, ch) {
  return text.split(ch).length - 1;
}

/** The URL if it parses and is http or https, else null. */
export function safeHref(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });
const dayYearFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
const shortDayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric" });

export const time = (date) => timeFmt.format(date);
export const fullTime = (date) => fullFmt.format(date);

/** A key identifying the local calendar day of a date. */
export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

/** "Today", "Yesterday", "Monday, March 3" (with the year if not this year). */
export function dayLabel(date, now = new Date()) {
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const that = new Date(date.getFullYear(), date.getMonth(), date.getDate());
  const days = Math.round((today - that) / 86400000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return date.getFullYear() === now.getFullYear() ? dayFmt.format(date) : dayYearFmt.format(date);
}

/** "since 9:41" today, else "since Mon, Mar 3". */
export function since(ms, now = new Date()) {
  const date = new Date(ms);
  return dayKey(date) === dayKey(now) ? `since ${time(date)}` : `since ${shortDayFmt.format(date)}`;
}

/** One of 8 avatar colour classes, stable per user id. */
export function avatarClass(id) {
  return `av-c${Math.abs(Number(id) || 0) % 8}`;
}

/** The first letter of a name, for avatars. */
export function initial(name) {
  const first = [...String(name || "?").trim()][0] || "?";
  return first.toUpperCase();
}

/** Display name of a message author or user object. */
export function nameOf(user) {
  return (user && (user.display_name || user.username)) || "unknown";
}

/** Human text for a server reason code. */
export function reasonText(reason, limit) {
  switch (reason) {
    case "body_too_long":
      return limit ? `too long (at most ${limit} characters)` : "too long for this server";
    case "empty_body":
      return "the message is empty";
    case "rate_limited":
      return "too many messages at once, try again in a moment";
    case "unauthorized":
      return "you can no longer post here";
    case "not_found":
      return "that message no longer exists";
    case "offline":
      return "you are offline";
    case "timeout":
      return "the server did not answer in time";
    default:
      return String(reason || "something went wrong").replace(/_/g, " ");
  }
}
