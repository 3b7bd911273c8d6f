// Tokens: a string or a function that gives one, and when it runs out.

/**
 * What the client takes as its credential: a JWT, or a function (sync or
 * async) that returns one. A function is called for every connection attempt
 * and again before the token expires, so tokens can be short-lived.
 * @typedef {string | (() => string | null | undefined | Promise<string | null | undefined>) | null | undefined} TokenInput
 */

/**
 * The `exp` claim of a JWT in milliseconds since the epoch, read without
 * verifying the signature (the client only needs to know when to refresh;
 * the server is the one that verifies). `null` when there is none or the
 * token cannot be read.
 * @param {string | null | undefined} token
 * @returns {number | null}
 */
export function jwtExpiry(token) {
  if (typeof token !== "string") return null;
  const payload = token.split(".")[1];
  if (!payload) return null;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

/**
 * When to refresh a token that expires at `expiresAt`: after three quarters
 * of its remaining life, and at least `marginMs` before it runs out (the
 * server closes an expired connection with 4003).
 * @param {number} expiresAt ms since the epoch
 * @param {number} marginMs
 * @param {number} [now]
 * @returns {number} ms from now (0: at once)
 */
export function refreshDelay(expiresAt, marginMs, now = Date.now()) {
  const left = expiresAt - now;
  return Math.max(0, Math.min(left - marginMs, left * 0.75));
}

/**
 * Holds the current token and gets new ones from a function source, so the
 * client never calls the app's token function more than it must.
 */
export class TokenSource {
  /** @type {TokenInput} */
  #input;
  /** @type {string | null} the token the connection holds */
  #current = null;
  /** @type {string | null} a token fetched for REST calls alone */
  #spare = null;

  /** @param {TokenInput} input */
  constructor(input) {
    this.#input = input;
    if (typeof input === "string") this.#current = input;
  }

  /** Whether new tokens can be had (the source is a function). */
  get renewable() {
    return typeof this.#input === "function";
  }

  /** The token last obtained (or `null`). */
  get current() {
    return this.#current;
  }

  /** When the current token expires (ms since the epoch), if it says. */
  get expiresAt() {
    return jwtExpiry(this.#current);
  }

  /**
   * A token from the source: the function's next answer, or the string.
   * It becomes current only when {@link TokenSource#adopt} says so (after
   * the server accepted it), except on a fresh connection attempt.
   * @returns {Promise<string | null>}
   */
  async fetch() {
    const input = this.#input;
    const token = typeof input === "function" ? await input() : input;
    return token ?? null;
  }

  /**
   * A token to connect with: always a fresh one from a function source.
   * @returns {Promise<string | null>}
   */
  async forConnect() {
    this.#current = await this.fetch();
    return this.#current;
  }

  /**
   * A token for a REST call: the current one, unless it is about to expire
   * and a fresh one can be had.
   * @param {number} marginMs
   * @returns {Promise<string | null>}
   */
  async forRequest(marginMs) {
    if (!this.renewable) return this.#current;
    for (const token of [this.#current, this.#spare]) {
      if (token && (jwtExpiry(token) ?? Infinity) - Date.now() > marginMs) return token;
    }
    // Kept apart: the connection's token changes only when the server took one.
    this.#spare = await this.fetch();
    return this.#spare;
  }

  /** @param {string} token the token the server now holds the connection to */
  adopt(token) {
    this.#current = token;
  }
}
