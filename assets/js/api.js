// api.js — the REST client: JSON in and out with the bearer token of the
// session. Errors become ApiError {status, code, message, fields}; a 401 on
// an authenticated call ends the session (the app then shows sign-in).

import * as session from "./session.js";

/** An error reply: `{error, message, errors?}` with the HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `request failed (${status})`);
    this.status = status;
    this.code = (body && body.error) || (status === 0 ? "network" : "http_error");
    this.fields = (body && body.errors) || {};
    this.retryAfter = null;
  }
}

/** fetch + JSON; `auth: false` for register/login. Rejects with ApiError. */
export async function request(method, path, { body, auth = true } = {}) {
  const headers = { accept: "application/json" };
  const token = auth ? session.token() : null;
  if (auth && !token) {
    session.end("no_token");
    throw new ApiError(401, { error: "unauthorized", message: "Please sign in." });
  }
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, { error: "network", message: "The server cannot be reached." });
  }
  let parsed = null;
  const text = await res.text().catch(() => "");
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!res.ok) {
    const error = new ApiError(res.status, parsed);
    error.retryAfter = Number(res.headers.get("retry-after")) || null;
    // A refused token: only if it is still the one we sent (another tab may have refreshed it).
    if (res.status === 401 && auth && session.token() === token) session.end("expired");
    throw error;
  }
  return parsed;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, { body });
export const put = (path, body) => request("PUT", path, { body });
export const del = (path) => request("DELETE", path);
export const patch = (path, body) => request("PATCH", path, { body });

export const register = (fields) => request("POST", "/api/register", { body: fields, auth: false });
export const login = (fields) => request("POST", "/api/login", { body: fields, auth: false });
export const forgotPassword = (fields) => request("POST", "/api/password/forgot", { body: fields, auth: false });
export const resetPassword = (fields) => request("POST", "/api/password/reset", { body: fields, auth: false });
export const logout = () => request("POST", "/api/logout");
export const me = () => get("/api/me");
export const users = () => get("/api/users");
export const rooms = () => get("/api/rooms");
export const createRoom = (fields) => post("/api/rooms", fields);
export const addMember = (room, username) => post(`/api/rooms/${encodeURIComponent(room)}/members`, { username });
export const conversations = () => get("/api/conversations");
export const openConversation = (username) => post("/api/conversations", { username });
