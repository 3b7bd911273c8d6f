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
export function jwtExpiry(token: string | null | undefined): number | null;
/**
 * When to refresh a token that expires at `expiresAt`: after three quarters
 * of its remaining life, and at least `marginMs` before it runs out (the
 * server closes an expired connection with 4003).
 * @param {number} expiresAt ms since the epoch
 * @param {number} marginMs
 * @param {number} [now]
 * @returns {number} ms from now (0: at once)
 */
export function refreshDelay(expiresAt: number, marginMs: number, now?: number): number;
/**
 * Holds the current token and gets new ones from a function source, so the
 * client never calls the app's token function more than it must.
 */
export class TokenSource {
    /** @param {TokenInput} input */
    constructor(input: TokenInput);
    /** Whether new tokens can be had (the source is a function). */
    get renewable(): boolean;
    /** The token last obtained (or `null`). */
    get current(): string | null;
    /** When the current token expires (ms since the epoch), if it says. */
    get expiresAt(): number | null;
    /**
     * A token from the source: the function's next answer, or the string.
     * It becomes current only when {@link TokenSource#adopt} says so (after
     * the server accepted it), except on a fresh connection attempt.
     * @returns {Promise<string | null>}
     */
    fetch(): Promise<string | null>;
    /**
     * A token to connect with: always a fresh one from a function source.
     * @returns {Promise<string | null>}
     */
    forConnect(): Promise<string | null>;
    /**
     * A token for a REST call: the current one, unless it is about to expire
     * and a fresh one can be had.
     * @param {number} marginMs
     * @returns {Promise<string | null>}
     */
    forRequest(marginMs: number): Promise<string | null>;
    /** @param {string} token the token the server now holds the connection to */
    adopt(token: string): void;
    #private;
}
/**
 * What the client takes as its credential: a JWT, or a function (sync or
 * async) that returns one. A function is called for every connection attempt
 * and again before the token expires, so tokens can be short-lived.
 */
export type TokenInput = string | (() => string | null | undefined | Promise<string | null | undefined>) | null | undefined;
