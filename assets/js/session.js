// session.js — the signed-in session: the JWT and the user, kept in
// localStorage ("confab:session"), and the refresh schedule. A token is
// refreshed through POST /api/token/refresh when three quarters of its
// lifetime have passed (or less than a day is left), so the socket's params
// function always finds a current one. Other tabs see changes through the
// `storage` event.

const KEY = "confab:session";
const listeners = new Set();
let refreshTimer = null;
let refreshing = null;

/** `{token, user, expiresAt}` or null. */
export function current() {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const session = JSON.parse(raw);
    if (!session || typeof session.token !== "string" || !session.user) return null;
    return session;
  } catch {
    return null;
  }
}

/** The current token or null. */
export function token() {
  const session = current();
  return session ? session.token : null;
}

/** Stores a session after sign-in (`{user, token, expires_at}`) and schedules its refresh. */
export function save({ user, token: jwt, expires_at: expiresAt }) {
  const previous = current();
  const session = {
    token: jwt,
    user: user || (previous && previous.user),
    expiresAt: expiresAt || null,
  };
  localStorage.setItem(KEY, JSON.stringify(session));
  schedule();
  return session;
}

/** Replaces the stored user (after GET /api/me). */
export function setUser(user) {
  const session = current();
  if (!session) return;
  session.user = user;
  localStorage.setItem(KEY, JSON.stringify(session));
}

/** Forgets the session (sign-out or a refused token) and tells listeners. */
export function end(reason = "signed_out") {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  localStorage.removeItem(KEY);
  for (const listener of listeners) listener(reason);
}

/** `listener(reason)` runs when the session ends, here or in another tab. */
export function onEnd(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

window.addEventListener("storage", (event) => {
  if (event.key === KEY && !event.newValue) for (const listener of listeners) listener("signed_out_elsewhere");
});

/** Issued-at and expiry (ms) of a JWT, read from its payload; nulls if unreadable. */
export function tokenTimes(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
    return { iat: claims.iat ? claims.iat * 1000 : null, exp: claims.exp ? claims.exp * 1000 : null };
  } catch {
    return { iat: null, exp: null };
  }
}

/** When the current token should be refreshed (ms since epoch), or null. */
export function refreshDueAt(session = current()) {
  if (!session) return null;
  let { iat, exp } = tokenTimes(session.token);
  if (!exp && session.expiresAt) exp = Date.parse(session.expiresAt);
  if (!exp) return null;
  const lifetime = iat ? exp - iat : 14 * 86400000;
  const byFraction = (iat || exp - lifetime) + lifetime * 0.75;
  const byMargin = exp - 86400000;
  return Math.min(byFraction, Math.max(byMargin, (iat || 0) + lifetime / 2));
}

/**
 * Refreshes the token now. `post(path)` is the API call (injected to avoid a
 * cycle). Concurrent callers share one request.
 */
export function refresh(post) {
  if (!refreshing) {
    refreshing = post("/api/token/refresh")
      .then((body) => {
        save(body);
        return body.token;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

let poster = null;

/** Installs the refresh timer; `post` is api.post. */
export function startRefreshing(post) {
  poster = post;
  schedule();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") schedule();
  });
}

function schedule() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  if (!poster) return;
  const due = refreshDueAt();
  if (due === null) return;
  // setTimeout overflows past 2^31-1 ms; re-check at least daily.
  const wait = Math.min(Math.max(due - Date.now(), 0), 86400000);
  refreshTimer = setTimeout(() => {
    if (Date.now() < due) {
      schedule();
      return;
    }
    refresh(poster).catch(() => {
      // Network trouble: try again in a minute (a 401 ends the session in api.js).
      refreshTimer = setTimeout(schedule, 60000);
    });
  }, wait);
}
