// When to reconnect and how long to wait: close codes (docs/protocol.md §2.1)
// and exponential backoff with full jitter.

/**
 * The close codes of the contract (docs/protocol.md §2.1), by number, so
 * that apps can show why a connection ended.
 * @type {Readonly<Record<number, string>>}
 */
export const CLOSE_CODES = Object.freeze({
  1000: "closed normally",
  1002: "protocol error",
  1006: "connection lost",
  1007: "invalid UTF-8",
  1009: "frame too large",
  1011: "server error (retry later)",
  1012: "server restarting",
  4001: "no token",
  4002: "user disabled or unknown",
  4003: "token invalid or expired",
  4004: "not a member of the room",
  4008: "too slow, or heartbeat missed",
  4029: "too many connections",
});

/**
 * Close codes after which reconnecting cannot help: the server refused who
 * the client is (4001 no token, 4002 user disabled or unknown, 4003 bad or
 * expired token, 4004 not a member). Retrying those would only loop. 4003
 * on a connection that had been open is the one exception, taken by
 * {@link shouldReconnect}: the token ran out, and a token function can
 * give a fresh one.
 */
export const REFUSAL_CODES = Object.freeze([4001, 4002, 4003, 4004]);

/**
 * Whether a connection that closed with `code` should be retried.
 * Everything but a refusal is a blip (lost network 1006, restart 1012,
 * slow consumer or missed heartbeat 4008, too many connections 4029,
 * server trouble 1011, …): the log on the server is the truth, and a
 * resume with `since_seq` loses nothing.
 * @param {number} code the close code
 * @param {{ wasOpen: boolean, canRenewToken: boolean }} context whether the
 *   connection had been established, and whether the token source can give
 *   a new token (a function)
 * @returns {boolean}
 */
export function shouldReconnect(code, { wasOpen, canRenewToken }) {
  if (code === 4003) return wasOpen && canRenewToken;
  return !REFUSAL_CODES.includes(code);
}

/**
 * How reconnect delays grow. Defaults: the first retry within 0.5 s, then
 * doubling up to 30 s, with full jitter so that a server restart is not met
 * by every client at the same instant.
 * @typedef {object} BackoffOptions
 * @property {number} [initialMs] ceiling of the first delay (default 500)
 * @property {number} [maxMs] largest ceiling (default 30000)
 * @property {number} [factor] growth per attempt (default 2)
 * @property {boolean} [jitter] full jitter: a uniform delay in [0, ceiling]
 *   (default true); false waits the ceiling itself
 */

/** @type {Required<BackoffOptions>} */
export const DEFAULT_BACKOFF = Object.freeze({ initialMs: 500, maxMs: 30_000, factor: 2, jitter: true });

/**
 * The delay before reconnect attempt number `attempt` (0 for the first).
 * @param {number} attempt
 * @param {BackoffOptions} [options]
 * @param {() => number} [random] a number in [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const { initialMs, maxMs, factor, jitter } = { ...DEFAULT_BACKOFF, ...options };
  const ceiling = Math.min(maxMs, initialMs * factor ** Math.min(attempt, 64));
  return Math.round(jitter ? random() * ceiling : ceiling);
}
