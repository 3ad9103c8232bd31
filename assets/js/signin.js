// signin.js — the sign-in / create-account screen. Validation errors from
// the server (422 `errors: {field: [...]}`) are shown next to their field
// (aria-invalid + aria-describedby); other failures in a notice above the
// form. Resolves through `onSignedIn(session)` after a successful reply.

import * as api from "./api.js";
import { byId, show } from "./dom.js";

const FIELDS = ["username", "display_name", "password"];

export function mountSignin({ onSignedIn }) {
  const root = byId("signin");
  const form = byId("signin-form");
  const panel = byId("signin-panel");
  const tabLogin = byId("tab-login");
  const tabRegister = byId("tab-register");
  const submit = byId("signin-submit");
  const notice = byId("signin-notice");
  const inputs = {
    username: byId("f-username"),
    display_name: byId("f-display-name"),
    password: byId("f-password"),
  };
  let mode = "login";
  let busy = false;

  function setMode(next, focus = true) {
    mode = next;
    const register = mode === "register";
    tabLogin.setAttribute("aria-selected", String(!register));
    tabRegister.setAttribute("aria-selected", String(register));
    tabLogin.tabIndex = register ? -1 : 0;
    tabRegister.tabIndex = register ? 0 : -1;
    panel.setAttribute("aria-labelledby", register ? "tab-register" : "tab-login");
    show(byId("field-display-name"), register);
    show(byId("f-username-hint"), register);
    show(byId("f-password-hint"), register);
    show(byId("forgot-row"), !register);
    inputs.password.autocomplete = register ? "new-password" : "current-password";
    submit.textContent = register ? "Create account" : "Sign in";
    clearErrors();
    if (focus) inputs.username.focus();
  }

  function clearErrors() {
    show(notice, false);
    for (const field of FIELDS) setError(field, null);
  }

  function setError(field, text) {
    const input = inputs[field];
    const error = byId(`f-${field.replace("_", "-")}-error`);
    error.textContent = text || "";
    show(error, Boolean(text));
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function setNotice(text) {
    notice.textContent = text;
    show(notice, Boolean(text));
  }

  tabLogin.addEventListener("click", () => setMode("login"));
  tabRegister.addEventListener("click", () => setMode("register"));
  for (const tab of [tabLogin, tabRegister]) {
    tab.addEventListener("keydown", (event) => {
      if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
        event.preventDefault();
        const next = mode === "login" ? "register" : "login";
        setMode(next, false);
        (next === "login" ? tabLogin : tabRegister).focus();
      }
    });
  }
  for (const field of FIELDS) inputs[field].addEventListener("input", () => setError(field, null));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    clearErrors();
    const username = inputs.username.value.trim().toLowerCase();
    const password = inputs.password.value;
    const displayName = inputs.display_name.value.trim();
    let invalid = false;
    if (!username) {
      setError("username", "Enter your username.");
      invalid = true;
    }
    if (!password) {
      setError("password", "Enter your password.");
      invalid = true;
    } else if (mode === "register" && [...password].length < 8) {
      setError("password", "Use at least 8 characters.");
      invalid = true;
    }
    if (invalid) {
      focusFirstInvalid();
      return;
    }
    busy = true;
    submit.disabled = true;
    submit.classList.add("is-busy");
    try {
      const body =
        mode === "register"
          ? await api.register({ username, password, ...(displayName ? { display_name: displayName } : {}) })
          : await api.login({ username, password });
      inputs.password.value = "";
      onSignedIn(body);
    } catch (error) {
      showFailure(error);
    } finally {
      busy = false;
      submit.disabled = false;
      submit.classList.remove("is-busy");
    }
  });

  function showFailure(error) {
    const fields = error.fields || {};
    let placed = false;
    for (const [field, reasons] of Object.entries(fields)) {
      if (inputs[field]) {
        setError(field, sentence(field, reasons));
        placed = true;
      }
    }
    if (error.code === "invalid_credentials" || (mode === "login" && error.status === 401)) {
      setError("password", "That username and password don't match.");
      placed = true;
    } else if (error.status === 429) {
      const wait = error.retryAfter ? ` Try again in ${Math.ceil(error.retryAfter / 60)} min.` : "";
      setNotice(`Too many failed attempts.${wait}`);
    } else if (error.status === 403) {
      setNotice(error.message || "This is not allowed.");
    } else if (error.status === 0) {
      setNotice("The server cannot be reached. Check your connection and try again.");
    } else if (!placed) {
      setNotice(error.message || "Something went wrong. Please try again.");
    }
    if (placed) focusFirstInvalid();
  }

  function focusFirstInvalid() {
    const bad = FIELDS.map((f) => inputs[f]).find((i) => i.getAttribute("aria-invalid") === "true");
    if (bad) bad.focus();
  }

  return {
    show(message) {
      show(root, true);
      for (const id of ["forgot-panel", "reset-panel"]) {
        byId(id).replaceChildren();
        show(byId(id), false);
      }
      show(byId("signin-main"), true);
      // Someone coming back signs in; the register tab is one click away.
      setMode("login", false);
      if (message) setNotice(message);
      inputs.username.focus();
    },
    hide() {
      show(root, false);
    },
  };
}

function sentence(field, reasons) {
  const text = (Array.isArray(reasons) ? reasons : [String(reasons)]).join("; ");
  const label = { username: "Username", password: "Password", display_name: "Display name" }[field] || field;
  // The server says e.g. "is taken" or "must be 3 to 32 characters".
  return /^[a-z]/.test(text) ? `${label} ${text}.`.replace(/\.\.$/, ".") : text;
}
