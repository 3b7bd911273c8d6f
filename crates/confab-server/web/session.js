// Who is signed in: the token and how to get another. It lives in this
// tab's sessionStorage (gone when the tab closes), never in a URL; the page
// hands it to confab-js, which sends it as the socket's first `auth` frame.

import { jwtExpiry } from "./confab/confab.js";

const KEY = "confab.session";

/** The server's base URL (with a path prefix, if confab sits under one). */
export const BASE = new URL(".", location.href).href;

/**
 * A signed-in session: a token, and for the dev sign-in the name and id to
 * ask for a new one with when it runs out.
 * @typedef {{ token: string, dev?: { name: string, user_id: string } }} Session
 */

/** @returns {Session | null} the session of this tab, if any */
export function load() {
  try {
    const value = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
    return value && typeof value.token === "string" ? value : null;
  } catch {
    return null;
  }
}

/** @param {Session} session */
export function save(session) {
  try {
    sessionStorage.setItem(KEY, JSON.stringify(session));
  } catch {
    // Storage refused (private mode, quota): the token stays in memory only.
  }
}

export function forget() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing stored
  }
}

/**
 * Whether this server offers the dev sign-in (`auth.dev_login`): its route
 * exists only then.
 * @returns {Promise<boolean>}
 */
export async function devLoginAvailable() {
  try {
    const response = await fetch(new URL("api/v1/dev/login", BASE), { headers: { accept: "application/json" } });
    if (!response.ok) return false;
    const body = await response.json();
    return body?.dev_login === true;
  } catch {
    return false;
  }
}

/**
 * Signs in with the dev sign-in: a token for `name` (and `userId`, if
 * given; else the server derives it from the name).
 * @param {string} name
 * @param {string} [userId]
 * @returns {Promise<Session>}
 */
export async function devLogin(name, userId) {
  const body = userId ? { name, user_id: userId } : { name };
  const response = await fetch(new URL("api/v1/dev/login", BASE), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(answer?.error?.message ?? `the dev sign-in answered ${response.status}`);
  }
  return { token: answer.token, dev: { name, user_id: answer.user_id } };
}

/**
 * The `token` option for confab-js: the stored token, renewed through the
 * dev sign-in when it is about to run out (a pasted token cannot be
 * renewed: when it expires the server closes and the page asks again).
 * @param {Session} session
 */
export function tokenSource(session) {
  let current = session;
  return async () => {
    const exp = jwtExpiry(current.token);
    if (current.dev && exp !== null && exp - Date.now() < 5 * 60_000) {
      current = await devLogin(current.dev.name, current.dev.user_id);
      save(current);
    }
    return current.token;
  };
}

/**
 * The claims of a token, read without checking it (the server does that),
 * for showing who one is about to sign in as.
 * @param {string} token
 * @returns {Record<string, any> | null}
 */
export function claims(token) {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
