// recovery.js — "Forgot password?" and the reset page. The forgot form asks
// for a username or e-mail and always answers the same way (the server does
// not say whether the account exists). The reset page is /reset#token=…:
// the token is read from the fragment (never sent in a URL to the server),
// dropped from the address bar at once, and sent with the new password;
// success signs in through `onSignedIn(session)`.
//
// Each panel is filled from its <template> when shown and emptied when
// another is, so its fields are in the page only while it is on screen.

import * as api from "./api.js";
import { byId, show } from "./dom.js";

const PANELS = { forgot: "forgot-panel", reset: "reset-panel" };

export function mountRecovery({ onSignedIn, onBack }) {
  let busy = false;

  /** Shows panel `which` ("main", "forgot" or "reset"), filled afresh. */
  function panel(which) {
    show(byId("signin"), true);
    show(byId("signin-main"), which === "main");
    for (const [name, id] of Object.entries(PANELS)) {
      const el = byId(id);
      el.replaceChildren();
      if (name === which) el.append(byId(`${name}-template`).content.cloneNode(true));
      show(el, name === which);
    }
  }

  function setError(inputId, text) {
    const input = byId(inputId);
    const error = byId(`${inputId}-error`);
    error.textContent = text || "";
    show(error, Boolean(text));
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function setNotice(id, text) {
    const el = byId(id);
    el.textContent = text || "";
    show(el, Boolean(text));
  }

  async function run(button, work) {
    if (busy) return;
    busy = true;
    button.disabled = true;
    button.classList.add("is-busy");
    try {
      await work();
    } finally {
      busy = false;
      button.disabled = false;
      button.classList.remove("is-busy");
    }
  }

  function back() {
    if (location.pathname === "/reset") history.replaceState(null, "", "/");
    onBack();
  }

  function failure(error) {
    if (error.status === 429) {
      const wait = error.retryAfter ? ` Try again in ${Math.ceil(error.retryAfter / 60)} min.` : "";
      return `Too many requests.${wait}`;
    }
    if (error.status === 0) return "The server cannot be reached. Check your connection and try again.";
    return error.message || "Something went wrong. Please try again.";
  }

  function showForgot() {
    panel("forgot");
    const name = byId("f-forgot-name");
    byId("forgot-back").addEventListener("click", back);
    name.addEventListener("input", () => setError("f-forgot-name", null));
    byId("forgot-form").addEventListener("submit", (event) => {
      event.preventDefault();
      setNotice("forgot-notice", "");
      setNotice("forgot-sent", "");
      const value = name.value.trim();
      if (!value) {
        setError("f-forgot-name", "Enter your username or e-mail address.");
        name.focus();
        return;
      }
      run(byId("forgot-submit"), async () => {
        try {
          await api.forgotPassword({ username_or_email: value });
          setNotice("forgot-sent", "If the account exists, a mail is on its way. Follow its link to choose a new password.");
        } catch (error) {
          setNotice("forgot-notice", failure(error));
        }
      });
    });
    name.focus();
  }

  function showReset(token) {
    history.replaceState(null, "", "/reset");
    panel("reset");
    const password = byId("f-new-password");
    const again = byId("f-new-password-again");
    byId("reset-back").addEventListener("click", back);
    password.addEventListener("input", () => setError("f-new-password", null));
    again.addEventListener("input", () => setError("f-new-password-again", null));
    byId("reset-form").addEventListener("submit", (event) => {
      event.preventDefault();
      setNotice("reset-notice", "");
      setError("f-new-password", null);
      setError("f-new-password-again", null);
      if ([...password.value].length < 8) {
        setError("f-new-password", "Use at least 8 characters.");
        password.focus();
        return;
      }
      if (password.value !== again.value) {
        setError("f-new-password-again", "The two passwords differ.");
        again.focus();
        return;
      }
      run(byId("reset-submit"), async () => {
        try {
          const body = await api.resetPassword({ token, password: password.value });
          history.replaceState(null, "", "/");
          panel("main");
          onSignedIn(body);
        } catch (error) {
          const reasons = error.fields && error.fields.password;
          if (reasons) {
            setError("f-new-password", `Password ${[].concat(reasons).join("; ")}.`);
            password.focus();
          } else if (error.code === "expired_token") {
            setNotice("reset-notice", "This link has expired. Go back to sign in and use “Forgot password?” for a new one.");
          } else if (error.code === "invalid_token") {
            setNotice("reset-notice", "This link is not valid any more (it may have been used already).");
          } else {
            setNotice("reset-notice", failure(error));
          }
        }
      });
    });
    password.focus();
  }

  byId("forgot-open").addEventListener("click", showForgot);

  return {
    /** The token of a /reset#token=… address, or null. */
    tokenFromLocation() {
      if (location.pathname !== "/reset") return null;
      return new URLSearchParams(location.hash.slice(1)).get("token") || null;
    },
    showReset,
    showForgot,
  };
}
