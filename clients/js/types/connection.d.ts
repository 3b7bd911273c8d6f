/**
 * @param {unknown} error
 * @param {string} fallback
 * @returns {Error}
 */
export function asError(error: unknown, fallback: string): Error;
/**
 * The socket's life cycle, apart from what the frames mean: why a blip
 * costs the app nothing is here (requests wait and are re-sent, the token
 * is renewed, a silent socket is replaced), and what the frames mean is
 * the client's ({@link import("./confab.js").ConfabClient}).
 */
export class Connection {
    /**
     * @param {ConnectionOptions} options
     * @param {ConnectionHooks} hooks
     */
    constructor(options: ConnectionOptions, hooks: ConnectionHooks);
    /** The token source, shared with REST calls. */
    tokens: TokenSource;
    /** @type {ConnectionState} */
    state: ConnectionState;
    /** @type {any} the last `connection_established` */
    hello: any;
    /** Opens the first socket (later ones open by themselves). */
    start(): void;
    /** Closes for good: no reconnect; requests reject with `closed`. */
    close(): void;
    /** Skips the wait of a pending reconnect. */
    reconnectNow(): void;
    /**
     * Sends a frame now if the socket is open (else drops it: for frames that
     * only matter live, like `typing`).
     * @param {Record<string, any>} frame
     */
    write(frame: Record<string, any>): void;
    /**
     * Sends a frame with a fresh `req_id` and resolves with its direct answer
     * (docs/protocol.md §2.7); `error` answers reject with a
     * {@link ConfabError}, except `rate_limited`, which is re-sent after the
     * delay it names (nothing was done). Waits while the connection is down
     * and is re-sent after a reconnect, unless `retry` is false.
     * @param {Record<string, any>} frame
     * @param {{ timeoutMs?: number, retry?: boolean, internal?: boolean }} [options]
     * @returns {Promise<any>}
     */
    request(frame: Record<string, any>, { timeoutMs, retry, internal }?: {
        timeoutMs?: number;
        retry?: boolean;
        internal?: boolean;
    }): Promise<any>;
    #private;
}
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";
export type ConnectionOptions = {
    /**
     * the socket's full URL
     */
    wsUrl: string;
    token?: import("./token.js").TokenInput;
    tokenPlacement: "protocol" | "header" | "auth" | "query";
    WebSocket: any;
    reconnect: boolean | import("./policy.js").BackoffOptions;
    requestTimeoutMs: number;
    connectTimeoutMs: number;
    pingIntervalMs: number;
    refreshMarginMs: number;
};
/**
 * What the connection tells its owner.
 */
export type ConnectionHooks = {
    /**
     * a `connection_established`
     * (after the pending requests were re-sent)
     */
    established: (hello: any) => void;
    /**
     * a frame that answers no request
     */
    push: (frame: any) => void;
    /**
     *   an event for the app (`state`, `frame`, `token_refreshed`, `error`)
     */
    emit: (event: {
        type: string;
        [key: string]: any;
    }) => void;
    /**
     * the socket is gone (a reconnect may follow)
     */
    dropped: () => void;
    /**
     * closed for good
     */
    finished: (error: Error) => void;
};
/**
 * a request waiting for its answer
 */
export type Pending = {
    /**
     * its `req_id`
     */
    id: number;
    frame: Record<string, any>;
    resolve: (frame: any) => void;
    reject: (error: Error) => void;
    /**
     * re-send after a reconnect (false: reject it)
     */
    retry: boolean;
    /**
     * the client's own: dropped silently on a
     * reconnect (which redoes its work), and resolved with `error` frames
     */
    internal: boolean;
    sent: boolean;
    timer: any;
};
import { TokenSource } from "./token.js";
