export { ConfabError } from "./errors.js";
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
    /** @param {ClientOptions} options */
    constructor(options?: ClientOptions);
    /** The REST API (`/api/v1`) with this client's token: `client.rest.request("GET", "/me")`. */
    rest: Rest;
    /** The connection's state: `idle` until {@link ConfabClient#connect}, `closed` for good. */
    get state(): import("./connection.js").ConnectionState;
    /** The last `connection_established` (`user_id`, `limits`, …), `null` before the first. */
    get hello(): any;
    /**
     * Starts connecting (and reconnecting, from now on). Resolves with the
     * first `connection_established`; rejects if the client closes for good
     * first (an auth refusal, or {@link ConfabClient#close}).
     * @returns {Promise<any>}
     */
    connect(): Promise<any>;
    /**
     * Closes for good: no reconnect, waiting requests reject with `closed`,
     * and event iterators end.
     */
    close(): void;
    /** Skips the wait before the next reconnect attempt (e.g. the browser is back online). */
    reconnectNow(): void;
    /**
     * Sends any client frame of docs/protocol.md §2.3 with a `req_id` and
     * resolves with its direct answer: the way to use a frame this client has
     * no method for. Re-sent after a reconnect unless `retry` is false.
     * @param {Record<string, any>} frame
     * @param {{ timeoutMs?: number, retry?: boolean }} [options]
     * @returns {Promise<any>}
     */
    request(frame: Record<string, any>, options?: {
        timeoutMs?: number;
        retry?: boolean;
    }): Promise<any>;
    /**
     * Receives a room's live events from now on, and after every reconnect,
     * resuming with `since_seq` so that nothing is missed or doubled.
     * Resolves with `subscribed` (`last_seq`, `unread_count`).
     * @param {string} roomId
     * @param {{ sinceSeq?: number }} [options] `sinceSeq`: the highest seq the
     *   app already shows; the messages after it are delivered first
     * @returns {Promise<any>}
     */
    subscribe(roomId: string, { sinceSeq }?: {
        sinceSeq?: number;
    }): Promise<any>;
    /**
     * Stops a room's live events (and its resumes).
     * @param {string} roomId
     * @returns {Promise<void>}
     */
    unsubscribe(roomId: string): Promise<void>;
    /**
     * The highest seq delivered in a subscribed room (`null` before any):
     * what to store to resume later with `subscribe(room, { sinceSeq })`.
     * @param {string} roomId
     */
    lastSeq(roomId: string): number | null;
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
    send(roomId: string, content: string | null, options?: SendOptions): Promise<any> & {
        clientMsgId: string;
    };
    /**
     * Runs a slash command (`/help`, `/status`, `/topic New topic`, an app's
     * own) and resolves with its `command_result` (`ok`, `text`, `data`, `code`).
     * Not re-sent after a reconnect (commands are not idempotent): a dropped
     * connection rejects it with `connection_lost`.
     * @param {string} roomId
     * @param {string} text the line as typed, starting with `/`
     */
    command(roomId: string, text: string): (Promise<any> & {
        clientMsgId: string;
    }) | Promise<never>;
    /**
     * Uploads a file (REST) and sends it as an `image` (for image types) or
     * `file` message. Resolves with the `message_ack` plus the `attachment`.
     * @param {string} roomId
     * @param {import("./rest.js").UploadBody} file
     * @param {SendOptions & { name?: string, contentType?: string, content?: string }} [options]
     */
    sendFile(roomId: string, file: import("./rest.js").UploadBody, options?: SendOptions & {
        name?: string;
        contentType?: string;
        content?: string;
    }): Promise<any>;
    /**
     * Uploads a file (`POST /api/v1/attachments`); its `id` goes into a
     * message's `attachmentId`.
     * @param {import("./rest.js").UploadBody} file
     * @param {{ name?: string, contentType?: string }} [options]
     * @returns {Promise<import("./rest.js").Attachment>}
     */
    upload(file: import("./rest.js").UploadBody, options?: {
        name?: string;
        contentType?: string;
    }): Promise<import("./rest.js").Attachment>;
    /**
     * Downloads an attachment (`message.attachment`) with the client's token,
     * as a `Blob`: in a page, `URL.createObjectURL(blob)` shows an image.
     * @param {import("./rest.js").Attachment | string} attachment or its `url`
     * @returns {Promise<Blob>}
     */
    download(attachment: import("./rest.js").Attachment | string): Promise<Blob>;
    /**
     * Replaces a message's text (its sender or a room admin). Resolves on the
     * server's `ack`; the room gets `message_updated`.
     * @param {string} roomId
     * @param {string} messageId
     * @param {string} content
     */
    edit(roomId: string, messageId: string, content: string): Promise<any>;
    /**
     * Deletes a message (its seq stays, its content empties). Resolves on `ack`;
     * the room gets `message_deleted`.
     * @param {string} roomId
     * @param {string} messageId
     */
    deleteMessage(roomId: string, messageId: string): Promise<any>;
    /**
     * Adds the user's reaction (idempotent). Resolves on `ack`; the room gets
     * `reaction_updated` with the message's whole map.
     * @param {string} roomId
     * @param {string} messageId
     * @param {string} emoji
     */
    react(roomId: string, messageId: string, emoji: string): Promise<any>;
    /**
     * Takes the user's reaction back (idempotent).
     * @param {string} roomId
     * @param {string} messageId
     * @param {string} emoji
     */
    unreact(roomId: string, messageId: string, emoji: string): Promise<any>;
    /**
     * Moves the user's read marker: to `upToSeq`, to the highest of
     * `messageIds`, or (neither) to the end. Resolves on `ack`; every
     * connection of the user then gets the new unread count (`rooms` event).
     * @param {string} roomId
     * @param {{ upToSeq?: number, messageIds?: string[] }} [options]
     */
    markRead(roomId: string, { upToSeq, messageIds }?: {
        upToSeq?: number;
        messageIds?: string[];
    }): Promise<any>;
    /**
     * A page of stored messages in ascending seq: the newest `limit` (default
     * 50, at most 100), those before `beforeSeq`, or those after `afterSeq`.
     * Resolves with `{ room_id, messages, has_more }`.
     * @param {string} roomId
     * @param {{ beforeSeq?: number, afterSeq?: number, limit?: number }} [options]
     */
    history(roomId: string, { beforeSeq, afterSeq, limit }?: {
        beforeSeq?: number;
        afterSeq?: number;
        limit?: number;
    }): Promise<any>;
    /**
     * Pages backwards through a room's history, newest page first, for
     * "scroll up to load more": each page is ascending, like the screen.
     * @param {string} roomId
     * @param {{ beforeSeq?: number, limit?: number }} [options] start below
     *   `beforeSeq` (default: from the newest)
     * @returns {AsyncGenerator<any[], void, void>}
     */
    olderPages(roomId: string, { beforeSeq, limit }?: {
        beforeSeq?: number;
        limit?: number;
    }): AsyncGenerator<any[], void, void>;
    /**
     * Loads the user's whole room list (every page) and resolves with it,
     * newest activity first. From then on {@link ConfabClient#roomList} stays
     * current from events, and `rooms` events say when it changed.
     * @returns {Promise<import("./rooms.js").Room[]>}
     */
    rooms(): Promise<import("./rooms.js").Room[]>;
    /** The room list as last known, newest activity first (empty before {@link ConfabClient#rooms}). */
    get roomList(): import("./rooms.js").Room[];
    /**
     * Creates a room over REST (`POST /api/v1/rooms`): a `group` by default,
     * or a `direct` room of exactly two (the existing one if there is one).
     * @param {{ id?: string, name?: string, room_type?: string, members?: string[], metadata?: Record<string, any> }} room
     */
    createRoom(room: {
        id?: string;
        name?: string;
        room_type?: string;
        members?: string[];
        metadata?: Record<string, any>;
    }): Promise<any>;
    /**
     * Call on every keystroke: sends `typing` at most every
     * `typingIntervalMs`, and `stop_typing` once the calls stop for
     * `typingTimeoutMs`. Needs a subscription to the room.
     * @param {string} roomId
     */
    typing(roomId: string): void;
    /**
     * Ends the user's typing indicator now (e.g. the input was cleared).
     * @param {string} roomId
     */
    stopTyping(roomId: string): void;
    /**
     * Who else is typing in a room now.
     * @param {string} roomId
     */
    typingIn(roomId: string): {
        user_id: string;
        username?: string;
        name?: string | null;
    }[];
    /**
     * Who in a room is online, asked now; also updates {@link ConfabClient#isOnline}.
     * @param {string} roomId
     * @returns {Promise<string[]>}
     */
    presence(roomId: string): Promise<string[]>;
    /**
     * Whether a user is online, as far as `presence` answers and
     * `user_online` / `user_offline` events have told.
     * @param {string} userId
     */
    isOnline(userId: string): boolean;
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
    on(type: string, fn: (event: any) => void): () => void;
    /**
     * Like {@link ConfabClient#on}, for the next event only.
     * @param {string} type
     * @param {(event: any) => void} fn
     */
    once(type: string, fn: (event: any) => void): () => void;
    /**
     * Events as an async iterator (`for await (const ev of client.events())`),
     * optionally only some types; it ends when the client closes for good.
     * @param {string[]} [types]
     * @param {{ limit?: number }} [options] most unread events buffered (default 10000)
     */
    events(types?: string[], options?: {
        limit?: number;
    }): AsyncIterableIterator<any>;
    #private;
}
/**
 * How the client is set up. In a page served by confab only `token` is
 * needed; elsewhere give `url` too.
 */
export type ClientOptions = {
    /**
     * the server: `http(s)://host:port` or `ws(s)://…`,
     * with a path prefix if confab sits under one (default: the page's origin)
     */
    url?: string | undefined;
    /**
     * a JWT, or a function
     * (sync or async) returning one, called for every connection and before expiry
     */
    token?: import("./token.js").TokenInput;
    /**
     * where
     * the token goes (docs/protocol.md §1.1): the `Sec-WebSocket-Protocol`
     * (default, works in browsers), an `Authorization` header (Node's own
     * WebSocket only), a first `auth` frame, or `?token=` (ends up in logs)
     */
    tokenPlacement?: "protocol" | "header" | "auth" | "query" | undefined;
    /**
     * the WebSocket constructor (default `globalThis.WebSocket`)
     */
    WebSocket?: any;
    /**
     * for uploads and REST (default `globalThis.fetch`)
     */
    fetch?: typeof fetch | undefined;
    /**
     * the socket's path (default `/ws`)
     */
    path?: string | undefined;
    /**
     * reconnect after a blip, with these delays (default true)
     */
    reconnect?: boolean | import("./policy.js").BackoffOptions | undefined;
    /**
     * reject a send not acknowledged in this
     * long (default 0: never; it is re-sent after each reconnect until acknowledged)
     */
    sendTimeoutMs?: number | undefined;
    /**
     * the same for other requests (default 30000)
     */
    requestTimeoutMs?: number | undefined;
    /**
     * give up an attempt that is not
     * established in this long, and try again (default 15000)
     */
    connectTimeoutMs?: number | undefined;
    /**
     * ping this often; a connection silent
     * for two intervals is dead and replaced (default 20000; 0: never)
     */
    pingIntervalMs?: number | undefined;
    /**
     * refresh the token at least this long
     * before it expires (default 60000; and at the latest three quarters into its life)
     */
    refreshMarginMs?: number | undefined;
    /**
     * resend `typing` at most this often
     * while the user types (default 2500; the server forgets after 6 s)
     */
    typingIntervalMs?: number | undefined;
    /**
     * send `stop_typing` after this long
     * without a `typing()` call (default 5000)
     */
    typingTimeoutMs?: number | undefined;
};
/**
 * What {@link ConfabClient#send} takes besides the text.
 */
export type SendOptions = {
    /**
     * the send's idempotency key (default: a
     * fresh UUID); give the same one to retry a send yourself
     */
    clientMsgId?: string | undefined;
    messageType?: "text" | "file" | "location" | "image" | "system" | undefined;
    /**
     * the id of the message this one answers
     */
    replyTo?: string | undefined;
    metadata?: Record<string, any> | undefined;
    /**
     * an upload's id (`image` / `file`)
     */
    attachmentId?: string | undefined;
    /**
     * (`location`)
     */
    location?: {
        lat: number;
        lng: number;
    } | undefined;
    /**
     * overrides `sendTimeoutMs`
     */
    timeoutMs?: number | undefined;
};
import { Rest } from "./rest.js";
export { CLOSE_CODES, REFUSAL_CODES, DEFAULT_BACKOFF, backoffDelay, shouldReconnect } from "./policy.js";
