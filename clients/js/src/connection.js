// One logical connection over many sockets: connect, reconnect with
// backoff, requests matched to answers by req_id, token refresh, liveness.

import { ConfabError } from "./errors.js";
import { backoffDelay, shouldReconnect } from "./policy.js";
import { TokenSource, jwtExpiry, refreshDelay } from "./token.js";

/** @typedef {"idle" | "connecting" | "open" | "reconnecting" | "closed"} ConnectionState */

/**
 * @typedef {object} ConnectionOptions
 * @property {string} wsUrl the socket's full URL
 * @property {import("./token.js").TokenInput} [token]
 * @property {"protocol" | "header" | "auth" | "query"} tokenPlacement
 * @property {any} WebSocket
 * @property {boolean | import("./policy.js").BackoffOptions} reconnect
 * @property {number} requestTimeoutMs
 * @property {number} connectTimeoutMs
 * @property {number} pingIntervalMs
 * @property {number} refreshMarginMs
 */

/**
 * What the connection tells its owner.
 * @typedef {object} ConnectionHooks
 * @property {(hello: any) => void} established a `connection_established`
 *   (after the pending requests were re-sent)
 * @property {(frame: any) => void} push a frame that answers no request
 * @property {(event: { type: string, [key: string]: any }) => void} emit
 *   an event for the app (`state`, `frame`, `token_refreshed`, `error`)
 * @property {() => void} dropped the socket is gone (a reconnect may follow)
 * @property {(error: Error) => void} finished closed for good
 */

/**
 * @typedef {object} Pending a request waiting for its answer
 * @property {number} id its `req_id`
 * @property {Record<string, any>} frame
 * @property {(frame: any) => void} resolve
 * @property {(error: Error) => void} reject
 * @property {boolean} retry re-send after a reconnect (false: reject it)
 * @property {boolean} internal the client's own: dropped silently on a
 *   reconnect (which redoes its work), and resolved with `error` frames
 * @property {boolean} sent
 * @property {any} timer
 */

/** The error requests reject with once the client is closed. */
const closedError = () => new ConfabError("closed", "the client is closed");

/**
 * The socket's life cycle, apart from what the frames mean: why a blip
 * costs the app nothing is here (requests wait and are re-sent, the token
 * is renewed, a silent socket is replaced), and what the frames mean is
 * the client's ({@link import("./confab.js").ConfabClient}).
 */
export class Connection {
  #o;
  #hooks;
  /** The token source, shared with REST calls. */
  tokens;
  /** @type {Map<number, Pending>} */
  #pending = new Map();
  #nextId = 1;
  /** @type {ConnectionState} */
  state = "idle";
  /** @type {any} the last `connection_established` */
  hello = null;
  /** @type {any} */
  #socket = null;
  #attempt = 0;
  #renewedAfterExpiry = false;
  #closing = false;
  #lastFrameAt = 0;
  /** @type {Record<string, any>} */
  #timers = {};

  /**
   * @param {ConnectionOptions} options
   * @param {ConnectionHooks} hooks
   */
  constructor(options, hooks) {
    this.#o = options;
    this.#hooks = hooks;
    this.tokens = new TokenSource(options.token);
  }

  /** Opens the first socket (later ones open by themselves). */
  start() {
    if (this.state === "idle") this.#open();
  }

  /** Closes for good: no reconnect; requests reject with `closed`. */
  close() {
    if (this.state === "closed") return;
    this.#closing = true;
    const socket = this.#detach();
    try {
      socket?.close(1000);
    } catch {
      // already closing
    }
    this.#finish(1000, "closed by the client");
  }

  /** Skips the wait of a pending reconnect. */
  reconnectNow() {
    if (this.state !== "reconnecting") return;
    clearTimeout(this.#timers.reconnect);
    this.#open();
  }

  async #open() {
    this.#setState("connecting", { attempt: this.#attempt });
    let token;
    try {
      token = await this.tokens.forConnect();
    } catch (error) {
      this.#hooks.emit({ type: "error", error: asError(error, "the token function failed") });
      return this.#closed(1006, "no token: the token function failed");
    }
    if (this.#closing) return;
    const placement = this.#o.tokenPlacement;
    let url = this.#o.wsUrl;
    /** @type {any[]} */
    let args = [];
    if (token && placement === "protocol") args = [["confab.v1", `bearer.${token}`]];
    if (token && placement === "header") args = [{ headers: { authorization: `Bearer ${token}` } }];
    if (token && placement === "query") url += `?token=${encodeURIComponent(token)}`;
    let socket;
    try {
      socket = new this.#o.WebSocket(url, ...args);
    } catch (error) {
      this.#hooks.emit({ type: "error", error: asError(error, "could not open the socket") });
      return this.#closed(1006, "could not open the socket");
    }
    this.#socket = socket;
    this.#lastFrameAt = Date.now();
    socket.onopen = () => {
      if (token && placement === "auth") this.write({ type: "auth", token });
    };
    socket.onmessage = (/** @type {MessageEvent} */ event) => this.#onMessage(event.data);
    socket.onclose = (/** @type {CloseEvent} */ event) => {
      if (this.#socket === socket) this.#closed(event.code, event.reason);
    };
    // A failed handshake fires `error`; Node.js 20's WebSocket then never
    // fires `close` (it stays CONNECTING), so a socket that is not open
    // after an error is given up here.
    socket.onerror = () => {
      setTimeout(() => {
        if (this.#socket === socket && socket.readyState !== 1) this.#abandon("could not connect");
      }, 0);
    };
    // Neither established nor refused in time (a server that accepts and
    // says nothing): try again.
    this.#timers.connect = setTimeout(() => {
      if (this.#socket === socket && this.state === "connecting") this.#abandon("no answer to the handshake");
    }, this.#o.connectTimeoutMs);
  }

  /** Stops listening to the current socket and returns it. */
  #detach() {
    const socket = this.#socket;
    this.#socket = null;
    if (socket) socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    return socket;
  }

  /**
   * The socket went silent: treat it as dead now rather than wait for TCP.
   * @param {string} reason
   */
  #abandon(reason) {
    const socket = this.#detach();
    try {
      socket?.close(4000, reason);
    } catch {
      // never opened
    }
    this.#closed(4000, reason);
  }

  /**
   * The socket is gone: reconnect after a delay, or close for good after a
   * refusal (policy.js).
   * @param {number} code
   * @param {string} reason
   */
  #closed(code, reason) {
    this.#detach();
    const wasOpen = this.state === "open";
    clearTimeout(this.#timers.connect);
    clearTimeout(this.#timers.refresh);
    clearInterval(this.#timers.ping);
    for (const p of [...this.#pending.values()]) {
      if (p.internal) this.#drop(p);
      else if (p.sent && !p.retry) {
        this.#settle(p, new ConfabError("connection_lost", "the connection dropped before the answer; a command is not re-sent"));
      } else p.sent = false;
    }
    this.#hooks.dropped();
    if (this.#closing) return;
    const canRenewToken = this.tokens.renewable && !this.#renewedAfterExpiry;
    if (!this.#o.reconnect || !shouldReconnect(code, { wasOpen, canRenewToken })) {
      return this.#finish(code, reason);
    }
    if (code === 4003) this.#renewedAfterExpiry = true;
    const backoff = typeof this.#o.reconnect === "object" ? this.#o.reconnect : {};
    const delay = backoffDelay(this.#attempt++, backoff);
    this.#setState("reconnecting", { delay, attempt: this.#attempt, code, reason });
    this.#timers.reconnect = setTimeout(() => this.#open(), delay);
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #finish(code, reason) {
    this.#closing = true;
    clearTimeout(this.#timers.reconnect);
    clearTimeout(this.#timers.connect);
    clearTimeout(this.#timers.refresh);
    clearInterval(this.#timers.ping);
    const error = new ConfabError("closed", `connection closed: ${code} ${reason}`.trim(), { closeCode: code });
    for (const p of [...this.#pending.values()]) {
      if (p.internal) this.#drop(p);
      else this.#settle(p, error);
    }
    this.#setState("closed", { code, reason });
    this.#hooks.finished(error);
  }

  /**
   * @param {ConnectionState} state
   * @param {Record<string, any>} [details]
   */
  #setState(state, details = {}) {
    this.state = state;
    this.#hooks.emit({ type: "state", state, ...details });
  }

  /** @param {any} data */
  #onMessage(data) {
    if (typeof data !== "string") return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object" || typeof frame.type !== "string") return;
    this.#lastFrameAt = Date.now();
    this.#hooks.emit({ type: "frame", frame });
    const pending = frame.req_id === undefined ? undefined : this.#pending.get(frame.req_id);
    if (pending) return this.#answer(pending, frame);
    if (frame.type === "connection_established") return this.#established(frame);
    this.#hooks.push(frame);
  }

  /** @param {any} hello */
  #established(hello) {
    clearTimeout(this.#timers.connect);
    this.hello = hello;
    this.#attempt = 0;
    this.#renewedAfterExpiry = false;
    this.#setState("open", { user_id: hello.user_id, connection_id: hello.connection_id });
    this.#hooks.established(hello);
    for (const p of this.#pending.values()) if (!p.sent) this.#transmit(p);
    this.#scheduleRefresh();
    const every = this.#o.pingIntervalMs;
    if (every > 0) {
      this.#timers.ping = setInterval(() => {
        if (Date.now() - this.#lastFrameAt >= 2 * every) this.#abandon("no answer to ping");
        else this.write({ type: "ping" });
      }, every);
    }
  }

  // ---- requests ---------------------------------------------------------

  /**
   * Sends a frame now if the socket is open (else drops it: for frames that
   * only matter live, like `typing`).
   * @param {Record<string, any>} frame
   */
  write(frame) {
    if (this.#socket?.readyState === 1) this.#socket.send(JSON.stringify(frame));
  }

  /** @param {Pending} p */
  #transmit(p) {
    p.sent = true;
    this.write(p.frame);
  }

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
  request(frame, { timeoutMs = this.#o.requestTimeoutMs, retry = true, internal = false } = {}) {
    if (this.state === "closed") return Promise.reject(closedError());
    const id = this.#nextId++;
    const full = { ...frame, req_id: id };
    const limit = this.hello?.limits?.max_frame_bytes;
    if (limit && new TextEncoder().encode(JSON.stringify(full)).length > limit) {
      return Promise.reject(new ConfabError("frame_too_large", `the frame is over the server's ${limit} bytes`));
    }
    return new Promise((resolve, reject) => {
      /** @type {Pending} */
      const p = { id, frame: full, resolve, reject, retry, internal, sent: false, timer: null };
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => this.#settle(p, new ConfabError("timeout", `no answer to ${frame.type} in ${timeoutMs} ms`)), timeoutMs);
      }
      this.#pending.set(id, p);
      if (this.state === "open") this.#transmit(p);
    });
  }

  /**
   * Ends a pending request: rejects with an error, else resolves.
   * @param {Pending} p
   * @param {any} outcome
   */
  #settle(p, outcome) {
    this.#drop(p);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
  }

  /** @param {Pending} p forgotten without an answer */
  #drop(p) {
    this.#pending.delete(p.id);
    clearTimeout(p.timer);
  }

  /**
   * A direct answer to a pending request.
   * @param {Pending} p
   * @param {any} frame
   */
  #answer(p, frame) {
    if (frame.type !== "error" || p.internal) return this.#settle(p, frame);
    if (frame.code === "rate_limited") {
      p.sent = false;
      setTimeout(() => {
        if (this.#pending.get(p.id) === p && !p.sent && this.state === "open") this.#transmit(p);
      }, frame.retry_after_ms ?? 1000);
      return;
    }
    this.#settle(p, new ConfabError(frame.code, frame.message, { frame, retryAfterMs: frame.retry_after_ms }));
  }

  // ---- token refresh ----------------------------------------------------

  #scheduleRefresh() {
    clearTimeout(this.#timers.refresh);
    const exp = this.tokens.expiresAt;
    if (!this.tokens.renewable || exp === null) return;
    const delay = refreshDelay(exp, this.#o.refreshMarginMs);
    this.#timers.refresh = setTimeout(() => this.#refresh(), Math.min(delay, 2 ** 31 - 1));
  }

  /** Sends `refresh_token` with a later token (docs/protocol.md §1.7). */
  async #refresh() {
    const current = this.tokens.expiresAt ?? 0;
    const again = () => {
      const left = current - Date.now();
      if (left > 200) this.#timers.refresh = setTimeout(() => this.#refresh(), Math.min(5000, left / 4));
    };
    try {
      const token = await this.tokens.fetch();
      const exp = jwtExpiry(token);
      if (!token || exp === null || exp <= current) return again(); // not later (yet): ask again soon
      if (this.state !== "open") return;
      await this.request({ type: "refresh_token", token }, { retry: false });
      this.tokens.adopt(token);
      this.#hooks.emit({ type: "token_refreshed", expires_at: exp });
      this.#scheduleRefresh();
    } catch (error) {
      if (error instanceof ConfabError && (error.code === "connection_lost" || error.code === "closed")) return;
      this.#hooks.emit({ type: "error", error: asError(error, "token refresh failed") });
      again();
    }
  }
}

/**
 * @param {unknown} error
 * @param {string} fallback
 * @returns {Error}
 */
export function asError(error, fallback) {
  return error instanceof Error ? error : new Error(`${fallback}: ${String(error)}`);
}
