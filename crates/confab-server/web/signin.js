// The sign-in screen: pick a name (when the server's dev sign-in is on) or
// paste a token. Resolves with the session; the token is kept in this
// tab's sessionStorage only.

import { byId } from "./dom.js";
import { claims, devLogin, devLoginAvailable } from "./session.js";

/**
 * Shows the sign-in screen until the user signs in.
 * @param {string} [problem] why they are asked (e.g. the token expired)
 * @returns {Promise<import("./session.js").Session>}
 */
export async function signIn(problem) {
  const screen = byId("signin");
  const devForm = byId("dev-form");
  const tokenForm = byId("token-form");
  const error = byId("signin-error");
  const name = /** @type {HTMLInputElement} */ (byId("dev-name"));
  const token = /** @type {HTMLTextAreaElement} */ (byId("token-input"));
  byId("chat").hidden = true;
  screen.hidden = false;
  error.textContent = problem ?? "";
  document.title = "Sign in · confab";

  const dev = await devLoginAvailable();
  devForm.hidden = !dev;
  byId("token-title").textContent = dev ? "Or paste a token" : "Paste a token";
  (dev ? name : token).focus();

  return new Promise((resolve) => {
    /** @param {import("./session.js").Session} session */
    const done = (session) => {
      devForm.onsubmit = tokenForm.onsubmit = null;
      screen.hidden = true;
      token.value = "";
      resolve(session);
    };
    devForm.onsubmit = async (e) => {
      e.preventDefault();
      const value = name.value.trim();
      if (!value) {
        error.textContent = "Type a name first.";
        return name.focus();
      }
      try {
        done(await devLogin(value));
      } catch (err) {
        error.textContent = `Not signed in: ${/** @type {any} */ (err)?.message ?? err}`;
        name.focus();
      }
    };
    tokenForm.onsubmit = (e) => {
      e.preventDefault();
      const value = token.value.trim();
      const c = value ? claims(value) : null;
      if (!c || typeof c.sub !== "string") {
        error.textContent = "That is not a token: a JWT has three parts separated by dots.";
        return token.focus();
      }
      if (typeof c.exp === "number" && c.exp * 1000 < Date.now()) {
        error.textContent = "That token has expired: get a fresh one.";
        return token.focus();
      }
      done({ token: value });
    };
  });
}
