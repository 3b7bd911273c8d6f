// The one error type the client rejects with.

/**
 * Why a request failed, with the contract's `code` (docs/protocol.md §2.4:
 * `forbidden`, `not_found`, `rate_limited`, …) so callers branch on the code,
 * not on the text. The client adds its own codes: `timeout` (no answer in
 * time), `closed` (the client closed for good: a refusal or `close()`),
 * `connection_lost` (a command was sent but the connection dropped before
 * its answer: commands are not idempotent, so they are not re-sent),
 * `frame_too_large` (over the server's announced frame limit),
 * `unsubscribed` (a `subscribe()` overtaken by `unsubscribe()`) and
 * `http_error` (a REST answer without an error body).
 */
export class ConfabError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{ frame?: any, status?: number, retryAfterMs?: number, closeCode?: number }} [details]
   */
  constructor(code, message, details = {}) {
    super(message);
    this.name = "ConfabError";
    /** the contract's error code, or one of the client's own */
    this.code = code;
    /** the `error` frame that answered, for socket requests */
    this.frame = details.frame;
    /** the HTTP status, for REST calls */
    this.status = details.status;
    /** how long to wait before retrying (`rate_limited`) */
    this.retryAfterMs = details.retryAfterMs;
    /** the close code, for `closed` */
    this.closeCode = details.closeCode;
  }
}
