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
    constructor(code: string, message: string, details?: {
        frame?: any;
        status?: number;
        retryAfterMs?: number;
        closeCode?: number;
    });
    /** the contract's error code, or one of the client's own */
    code: string;
    /** the `error` frame that answered, for socket requests */
    frame: any;
    /** the HTTP status, for REST calls */
    status: number | undefined;
    /** how long to wait before retrying (`rate_limited`) */
    retryAfterMs: number | undefined;
    /** the close code, for `closed` */
    closeCode: number | undefined;
}
