// confab-js: the client of confab's unified WebSocket protocol (/ws), for
// browsers and Node.js 20+, without dependencies. The contract it speaks:
// docs/protocol.md; how to use it: docs/client.md.

import { Connection } from "./connection.js";
import { Emitter } from "./emitter.js";
import { ConfabError } from "./errors.js";
import { ReplyStreams, TypingBoard, isCommand, uuid } from "./live.js";
import { Rest } from "./rest.js";
import { RoomList } from "./rooms.js";
import { Subscriptions } from "./subscriptions.js";

export { ConfabError } from "./errors.js";
export { CLOSE_CODES, REFUSAL_CODES, DEFAULT_BACKOFF, backoffDelay, shouldReconnect } from "./policy.js";
export { jwtExpiry } from "./token.js";

/**
 * How the client is set up. In a page served by confab only `token` is
 * needed; elsewhere give `url` too.
 * @typedef {object} ClientOptions
 * @property {string} [url] the server: `http(s)://host:port` or `ws(s)://…`,
 *   with a path prefix if confab sits under one (default: the page's origin)
 * @property {import("./token.js").TokenInput} [token] a JWT, or a function
 *   (sync or async) returning one, called for every connection and before expiry
 * @property {"protocol" | "header" | "auth" | "query"} [tokenPlacement] where
 *   the token goes (docs/protocol.md §1.1): the `Sec-WebSocket-Protocol`
 *   (default, works in browsers), an `Authorization` header (Node's own
 *   WebSocket only), a first `auth` frame, or `?token=` (ends up in logs)
 * @property {any} [WebSocket] the WebSocket constructor (default `globalThis.WebSocket`)
 * @property {typeof fetch} [fetch] for uploads and REST (default `globalThis.fetch`)
 * @property {string} [path] the socket's path (default `/ws`)
 * @property {boolean | import("./policy.js").BackoffOptions} [reconnect]
 *   reconnect after a blip, with these delays (default true)
 * @property {number} [sendTimeoutMs] reject a send not acknowledged in this
 *   long (default 0: never; it is re-sent after each reconnect until acknowledged)
 * @property {number} [requestTimeoutMs] the same for other requests (default 30000)
 * @property {number} [connectTimeoutMs] give up an attempt that is not
 *   established in this long, and try again (default 15000)
 * @property {number} [pingIntervalMs] ping this often; a connection silent
 *   for two intervals is dead and replaced (default 20000; 0: never)
 * @property {number} [refreshMarginMs] refresh the token at least this long
 *   before it expires (default 60000; and at the latest three quarters into its life)
 * @property {number} [typingIntervalMs] resend `typing` at most this often
 *   while the user types (default 2500; the server forgets after 6 s)
 * @property {number} [typingTimeoutMs] send `stop_typing` after this long
 *   without a `typing()` call (default 5000)
 */

/**
 * What {@link ConfabClient#send} takes besides the text.
 * @typedef {object} SendOptions
 * @property {string} [clientMsgId] the send's idempotency key (default: a
 *   fresh UUID); give the same one to retry a send yourself
 * @property {"text" | "location" | "image" | "file" | "system"} [messageType]
 * @property {string} [replyTo] the id of the message this one answers
 * @property {Record<string, any>} [metadata]
 * @property {string} [attachmentId] an upload's id (`image` / `file`)
 * @property {{ lat: number, lng: number }} [location] (`location`)
 * @property {number} [timeoutMs] overrides `sendTimeoutMs`
 */

/**
 * One user's connection to confab, carrying every room: it reconnects by
 * itself, resumes each subscribed room with `since_seq` (every message once,
 * in order), re-sends unacknowledged messages with their `client_msg_id`
 * (stored once), refreshes the token before it expires, and keeps the room
 * list, unread counts, typing and presence current from the server's events.
 */
export class ConfabClient {
  #o;
  #conn;
  #subs;
  #emitter = new Emitter();
  #rooms = new RoomList();
  /** @type {Set<any[]>} per `rooms()` under way, the room frames pushed meanwhile */
  #roomLoads = new Set();
  #typing = new TypingBoard();
  #replies = new ReplyStreams();
  /** @type {Set<string>} */
  #online = new Set();
  /** @type {Map<string, { sentAt: number, timer: any }>} */
  #typingOut = new Map();
  /** @type {{ promise: Promise<any>, resolve: (v: any) => void, reject: (e: Error) => void } | null} */
  #opened = null;
  /** The REST API (`/api/v1`) with this client's token: `client.rest.request("GET", "/me")`. */
  rest;

  /** @param {ClientOptions} options */
  constructor(options = {}) {
    const o = {
      tokenPlacement: /** @type {const} */ ("protocol"),
      path: "/ws",
      reconnect: true,
      sendTimeoutMs: 0,
      requestTimeoutMs: 30_000,
      connectTimeoutMs: 15_000,
      pingIntervalMs: 20_000,
      refreshMarginMs: 60_000,
      typingIntervalMs: 2500,
      typingTimeoutMs: 5000,
      // An option given as `undefined` keeps its default.
      ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
    };
    this.#o = o;
    const WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!WebSocket) {
      throw new TypeError("no WebSocket: pass the WebSocket option (Node.js 20: run with --experimental-websocket)");
    }
    const base = options.url ?? globalThis.location?.origin;
    if (!base) throw new TypeError("no url: pass the server's address, e.g. http://127.0.0.1:8080");
    const u = new URL(base);
    const secure = u.protocol === "https:" || u.protocol === "wss:";
    const prefix = u.pathname.replace(/\/+$/, "");
    const wsUrl = `${secure ? "wss" : "ws"}://${u.host}${prefix}${o.path}`;
    this.#conn = new Connection({ ...o, wsUrl, WebSocket }, {
      established: () => {
        this.#opened?.resolve(this.#conn.hello);
        this.#subs.resume();
      },
      push: (frame) => this.#push(frame),
      emit: (event) => this.#emitter.emit(event),
      dropped: () => {
        this.#subs.dropped();
        this.#typing.clear();
        for (const roomId of [...this.#typingOut.keys()]) this.#forgetTyping(roomId);
      },
      finished: (error) => {
        for (const roomId of [...this.#typingOut.keys()]) this.#forgetTyping(roomId);
        this.#subs.fail(error);
        this.#opened?.reject(error);
        this.#emitter.end();
      },
    });
    this.#subs = new Subscriptions({
      request: (frame, options) => this.#conn.request(frame, options),
      open: () => this.#conn.state === "open",
      deliver: (roomId, message) => this.#deliver(roomId, message),
      subscribed: (roomId, reply) => {
        if (this.#rooms.subscribed(roomId, reply)) this.#emitRooms();
        this.#emitter.emit({ ...reply, type: "subscribed" });
      },
      emit: (event) => this.#emitter.emit(event),
    });
    const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
    const httpBase = `${secure ? "https" : "http"}://${u.host}${prefix}`;
    // A REST call takes seconds at most: a token good for 5 more will do.
    this.rest = new Rest(httpBase, fetchImpl, () => this.#conn.tokens.forRequest(5000));
  }

  // ---- connection -------------------------------------------------------

  /** The connection's state: `idle` until {@link ConfabClient#connect}, `closed` for good. */
  get state() {
    return this.#conn.state;
  }

  /** The last `connection_established` (`user_id`, `limits`, …), `null` before the first. */
  get hello() {
    return this.#conn.hello;
  }

  /**
   * Starts connecting (and reconnecting, from now on). Resolves with the
   * first `connection_established`; rejects if the client closes for good
   * first (an auth refusal, or {@link ConfabClient#close}).
   * @returns {Promise<any>}
   */
  connect() {
    if (!this.#opened) {
      /** @type {any} */
      const d = {};
      d.promise = new Promise((resolve, reject) => Object.assign(d, { resolve, reject }));
      d.promise.catch(() => {}); // not unhandled when the caller does not wait
      this.#opened = d;
      if (this.#conn.state === "closed") d.reject(new ConfabError("closed", "the client is closed"));
    }
    this.#conn.start();
    return /** @type {Promise<any>} */ (this.#opened?.promise);
  }

  /**
   * Closes for good: no reconnect, waiting requests reject with `closed`,
   * and event iterators end.
   */
  close() {
    this.#conn.close();
  }

  /** Skips the wait before the next reconnect attempt (e.g. the browser is back online). */
  reconnectNow() {
    this.#conn.reconnectNow();
  }

  /**
   * Sends any client frame of docs/protocol.md §2.3 with a `req_id` and
   * resolves with its direct answer: the way to use a frame this client has
   * no method for. Re-sent after a reconnect unless `retry` is false.
   * @param {Record<string, any>} frame
   * @param {{ timeoutMs?: number, retry?: boolean }} [options]
   * @returns {Promise<any>}
   */
  request(frame, options) {
    return this.#conn.request(frame, options);
  }

  // ---- rooms and messages ----------------------------------------------

  /**
   * Receives a room's live events from now on, and after every reconnect,
   * resuming with `since_seq` so that nothing is missed or doubled.
   * Resolves with `subscribed` (`last_seq`, `unread_count`).
   * @param {string} roomId
   * @param {{ sinceSeq?: number }} [options] `sinceSeq`: the highest seq the
   *   app already shows; the messages after it are delivered first
   * @returns {Promise<any>}
   */
  subscribe(roomId, { sinceSeq } = {}) {
    if (this.#conn.state === "closed") return Promise.reject(new ConfabError("closed", "the client is closed"));
    return this.#subs.add(roomId, sinceSeq);
  }

  /**
   * Stops a room's live events (and its resumes).
   * @param {string} roomId
   * @returns {Promise<void>}
   */
  async unsubscribe(roomId) {
    if (!this.#subs.delete(roomId)) return;
    this.#forgetTyping(roomId);
    if (this.#conn.state !== "open") return;
    await this.#conn.request({ type: "unsubscribe_room", room_id: roomId }, { retry: false }).catch(() => {});
  }

  /**
   * The highest seq delivered in a subscribed room (`null` before any):
   * what to store to resume later with `subscribe(room, { sinceSeq })`.
   * @param {string} roomId
   */
  lastSeq(roomId) {
    return this.#subs.lastSeq(roomId);
  }

  /**
   * A message in order, once: the room list follows, the app hears it.
   * @param {string} roomId
   * @param {any} message
   */
  #deliver(roomId, message) {
    this.#replies.done(message.id);
    if (this.#rooms.message({ ...message, room_id: roomId }, this.#conn.hello?.user_id ?? null)) this.#emitRooms();
    this.#emitter.emit({ type: "message", room_id: roomId, message });
  }

  /**
   * Sends a message. Resolves with its `message_ack` (`message_id`, `seq`,
   * `duplicate`), or with `command_result` for a slash command. Until then it
   * is re-sent after every reconnect with the same `client_msg_id`, which the
   * server stores once; `rate_limited` is retried after the delay it names.
   * The returned promise carries `clientMsgId` at once (for optimistic display).
   * @param {string} roomId
   * @param {string | null} content
   * @param {SendOptions} [options]
   * @returns {Promise<any> & { clientMsgId: string }}
   */
  send(roomId, content, options = {}) {
    const clientMsgId = options.clientMsgId ?? uuid();
    /** @type {Record<string, any>} */
    const frame = { type: "send_message", room_id: roomId, client_msg_id: clientMsgId };
    if (content !== null && content !== undefined) frame.content = content;
    if (options.messageType) frame.message_type = options.messageType;
    if (options.replyTo) frame.reply_to = options.replyTo;
    if (options.metadata) frame.metadata = options.metadata;
    if (options.attachmentId) frame.attachment_id = options.attachmentId;
    if (options.location) frame.location = options.location;
    this.#forgetTyping(roomId); // sending ends the indicator on the server
    const timeoutMs = options.timeoutMs ?? this.#o.sendTimeoutMs;
    const promise = this.#conn.request(frame, { timeoutMs, retry: !isCommand(frame) });
    return Object.assign(promise, { clientMsgId });
  }

  /**
   * Runs a slash command (`/help`, `/status`, `/topic New topic`, an app's
   * own) and resolves with its `command_result` (`ok`, `text`, `data`, `code`).
   * Not re-sent after a reconnect (commands are not idempotent): a dropped
   * connection rejects it with `connection_lost`.
   * @param {string} roomId
   * @param {string} text the line as typed, starting with `/`
   */
  command(roomId, text) {
    if (!isCommand({ content: text })) {
      return Promise.reject(new ConfabError("invalid_field", `not a command: ${JSON.stringify(text)}`));
    }
    return this.send(roomId, text);
  }

  /**
   * Uploads a file (REST) and sends it as an `image` (for image types) or
   * `file` message. Resolves with the `message_ack` plus the `attachment`.
   * @param {string} roomId
   * @param {import("./rest.js").UploadBody} file
   * @param {SendOptions & { name?: string, contentType?: string, content?: string }} [options]
   */
  async sendFile(roomId, file, options = {}) {
    const attachment = await this.upload(file, options);
    const messageType = options.messageType ?? (attachment.content_type.startsWith("image/") ? "image" : "file");
    const ack = await this.send(roomId, options.content ?? "", { ...options, messageType, attachmentId: attachment.id });
    return { ...ack, attachment };
  }

  /**
   * Uploads a file (`POST /api/v1/attachments`); its `id` goes into a
   * message's `attachmentId`.
   * @param {import("./rest.js").UploadBody} file
   * @param {{ name?: string, contentType?: string }} [options]
   * @returns {Promise<import("./rest.js").Attachment>}
   */
  upload(file, options) {
    return this.rest.upload(file, options);
  }

  /**
   * Downloads an attachment (`message.attachment`) with the client's token,
   * as a `Blob`: in a page, `URL.createObjectURL(blob)` shows an image.
   * @param {import("./rest.js").Attachment | string} attachment or its `url`
   * @returns {Promise<Blob>}
   */
  download(attachment) {
    return this.rest.download(attachment);
  }

  /**
   * Replaces a message's text (its sender or a room admin). Resolves on the
   * server's `ack`; the room gets `message_updated`.
   * @param {string} roomId
   * @param {string} messageId
   * @param {string} content
   */
  edit(roomId, messageId, content) {
    return this.#conn.request({ type: "edit_message", room_id: roomId, message_id: messageId, content });
  }

  /**
   * Deletes a message (its seq stays, its content empties). Resolves on `ack`;
   * the room gets `message_deleted`.
   * @param {string} roomId
   * @param {string} messageId
   */
  deleteMessage(roomId, messageId) {
    return this.#conn.request({ type: "delete_message", room_id: roomId, message_id: messageId });
  }

  /**
   * Adds the user's reaction (idempotent). Resolves on `ack`; the room gets
   * `reaction_updated` with the message's whole map.
   * @param {string} roomId
   * @param {string} messageId
   * @param {string} emoji
   */
  react(roomId, messageId, emoji) {
    return this.#conn.request({ type: "add_reaction", room_id: roomId, message_id: messageId, emoji });
  }

  /**
   * Takes the user's reaction back (idempotent).
   * @param {string} roomId
   * @param {string} messageId
   * @param {string} emoji
   */
  unreact(roomId, messageId, emoji) {
    return this.#conn.request({ type: "remove_reaction", room_id: roomId, message_id: messageId, emoji });
  }

  /**
   * Moves the user's read marker: to `upToSeq`, to the highest of
   * `messageIds`, or (neither) to the end. Resolves on `ack`; every
   * connection of the user then gets the new unread count (`rooms` event).
   * @param {string} roomId
   * @param {{ upToSeq?: number, messageIds?: string[] }} [options]
   */
  markRead(roomId, { upToSeq, messageIds } = {}) {
    /** @type {Record<string, any>} */
    const frame = { type: "mark_read", room_id: roomId };
    if (upToSeq !== undefined) frame.up_to_seq = upToSeq;
    if (messageIds) frame.message_ids = messageIds;
    return this.#conn.request(frame);
  }

  /**
   * A page of stored messages in ascending seq: the newest `limit` (default
   * 50, at most 100), those before `beforeSeq`, or those after `afterSeq`.
   * Resolves with `{ room_id, messages, has_more }`.
   * @param {string} roomId
   * @param {{ beforeSeq?: number, afterSeq?: number, limit?: number }} [options]
   */
  history(roomId, { beforeSeq, afterSeq, limit } = {}) {
    /** @type {Record<string, any>} */
    const frame = { type: "get_history", room_id: roomId };
    if (beforeSeq !== undefined) frame.before_seq = beforeSeq;
    if (afterSeq !== undefined) frame.after_seq = afterSeq;
    if (limit !== undefined) frame.limit = limit;
    return this.#conn.request(frame);
  }

  /**
   * Pages backwards through a room's history, newest page first, for
   * "scroll up to load more": each page is ascending, like the screen.
   * @param {string} roomId
   * @param {{ beforeSeq?: number, limit?: number }} [options] start below
   *   `beforeSeq` (default: from the newest)
   * @returns {AsyncGenerator<any[], void, void>}
   */
  async *olderPages(roomId, { beforeSeq, limit = 50 } = {}) {
    let before = beforeSeq;
    for (;;) {
      const page = await this.history(roomId, { beforeSeq: before, limit });
      if (page.messages.length) yield page.messages;
      if (!page.has_more || !page.messages.length) return;
      before = page.messages[0].seq;
    }
  }

  // ---- room list --------------------------------------------------------

  /**
   * Loads the user's whole room list (every page) and resolves with it,
   * newest activity first. From then on {@link ConfabClient#roomList} stays
   * current from events, and `rooms` events say when it changed.
   * @returns {Promise<import("./rooms.js").Room[]>}
   */
  async rooms() {
    /** @type {any[]} */
    const all = [];
    /** @type {any[]} room frames pushed while the pages are read */
    const since = [];
    this.#roomLoads.add(since);
    try {
      let cursor;
      do {
        const page = await this.#conn.request(cursor ? { type: "get_room_list", limit: 100, cursor } : { type: "get_room_list", limit: 100 });
        all.push(...page.rooms);
        cursor = page.next_cursor;
      } while (cursor);
    } finally {
      this.#roomLoads.delete(since);
    }
    this.#rooms.replace(all, since);
    this.#emitRooms();
    return this.#rooms.list();
  }

  /** The room list as last known, newest activity first (empty before {@link ConfabClient#rooms}). */
  get roomList() {
    return this.#rooms.list();
  }

  /**
   * Creates a room over REST (`POST /api/v1/rooms`): a `group` by default,
   * or a `direct` room of exactly two (the existing one if there is one).
   * @param {{ id?: string, name?: string, room_type?: string, members?: string[], metadata?: Record<string, any> }} room
   */
  async createRoom(room) {
    const created = await this.rest.request("POST", "/rooms", room);
    this.#rooms.add(created);
    this.#emitRooms();
    return created;
  }

  #emitRooms() {
    this.#emitter.emit({ type: "rooms", rooms: this.#rooms.list() });
  }

  // ---- typing and presence ----------------------------------------------

  /**
   * Call on every keystroke: sends `typing` at most every
   * `typingIntervalMs`, and `stop_typing` once the calls stop for
   * `typingTimeoutMs`. Needs a subscription to the room.
   * @param {string} roomId
   */
  typing(roomId) {
    if (this.#conn.state !== "open") return;
    let t = this.#typingOut.get(roomId);
    if (!t) this.#typingOut.set(roomId, (t = { sentAt: 0, timer: null }));
    const now = Date.now();
    if (now - t.sentAt >= this.#o.typingIntervalMs) {
      this.#conn.write({ type: "typing", room_id: roomId });
      t.sentAt = now;
    }
    clearTimeout(t.timer);
    t.timer = setTimeout(() => this.stopTyping(roomId), this.#o.typingTimeoutMs);
  }

  /**
   * Ends the user's typing indicator now (e.g. the input was cleared).
   * @param {string} roomId
   */
  stopTyping(roomId) {
    if (this.#forgetTyping(roomId)) this.#conn.write({ type: "stop_typing", room_id: roomId });
  }

  /** @param {string} roomId */
  #forgetTyping(roomId) {
    const t = this.#typingOut.get(roomId);
    if (t) clearTimeout(t.timer);
    return this.#typingOut.delete(roomId);
  }

  /**
   * Who else is typing in a room now.
   * @param {string} roomId
   */
  typingIn(roomId) {
    return this.#typing.in(roomId);
  }

  /**
   * Who in a room is online, asked now; also updates {@link ConfabClient#isOnline}.
   * @param {string} roomId
   * @returns {Promise<string[]>}
   */
  async presence(roomId) {
    const reply = await this.#conn.request({ type: "get_presence", room_id: roomId });
    for (const id of reply.online) this.#online.add(id);
    return reply.online;
  }

  /**
   * Whether a user is online, as far as `presence` answers and
   * `user_online` / `user_offline` events have told.
   * @param {string} userId
   */
  isOnline(userId) {
    return this.#online.has(userId);
  }

  // ---- events -----------------------------------------------------------

  /**
   * Calls `fn` with every event of a type; returns the unsubscribe function.
   * Types: `message`, `message_updated`, `message_deleted`,
   * `reaction_updated`, `message_read`, `typing`, `user_online`,
   * `user_offline`, `room_added`, `room_removed`, `room_updated`, `rooms`,
   * `subscribed`, `assistant_delta` (with `text` so far), `command_result`,
   * `notification`, `token_refreshed`, `state`, `error`, `frame` (every raw
   * frame), or `*` for all.
   * @param {string} type
   * @param {(event: any) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    return this.#emitter.on(type, fn);
  }

  /**
   * Like {@link ConfabClient#on}, for the next event only.
   * @param {string} type
   * @param {(event: any) => void} fn
   */
  once(type, fn) {
    return this.#emitter.once(type, fn);
  }

  /**
   * Events as an async iterator (`for await (const ev of client.events())`),
   * optionally only some types; it ends when the client closes for good.
   * @param {string[]} [types]
   * @param {{ limit?: number }} [options] most unread events buffered (default 10000)
   */
  events(types, options) {
    return this.#emitter.events(types, options);
  }

  /**
   * A frame the server pushed (not a direct answer to a request).
   * @param {any} frame
   */
  #push(frame) {
    if (frame.type === "room_added" || frame.type === "room_removed" || frame.type === "room_updated") {
      for (const since of this.#roomLoads) since.push(frame);
    }
    switch (frame.type) {
      case "new_message":
        return this.#subs.message(frame);
      case "room_added":
        this.#rooms.add(frame.room);
        this.#emitRooms();
        break;
      case "room_removed":
        this.#subs.delete(frame.room_id);
        if (this.#rooms.remove(frame.room_id)) this.#emitRooms();
        break;
      case "room_updated":
        if (this.#rooms.update(frame.room_id, frame.updates ?? {})) this.#emitRooms();
        break;
      case "typing":
        this.#typing.apply(frame);
        break;
      case "user_online":
      case "user_offline": {
        const online = frame.type === "user_online";
        if (online) this.#online.add(frame.user_id);
        else this.#online.delete(frame.user_id);
        if (this.#rooms.presence(frame.user_id, online)) this.#emitRooms();
        break;
      }
      case "assistant_delta":
        return this.#emitter.emit({ ...frame, text: this.#replies.add(frame) });
      case "error":
        return this.#emitter.emit({ type: "error", error: new ConfabError(frame.code, frame.message, { frame }), room_id: frame.room_id });
      case "pong":
        return;
    }
    this.#emitter.emit(frame);
  }
}
