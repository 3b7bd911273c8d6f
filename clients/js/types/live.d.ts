/**
 * A v4 UUID for `client_msg_id`: `crypto.randomUUID()` where it exists (Node,
 * browsers on https or localhost), else built from `crypto.getRandomValues`
 * (browsers on plain http, where `randomUUID` is missing).
 * @returns {string}
 */
export function uuid(): string;
/**
 * Whether a send is a slash command (docs/protocol.md §6.1): answered by
 * `command_result`, stored nowhere, and not idempotent, so never re-sent
 * after a reconnect. `/me` is the exception: it stores a message and keeps
 * the send's `client_msg_id`.
 * @param {{ content?: string, message_type?: string }} frame
 */
export function isCommand(frame: {
    content?: string;
    message_type?: string;
}): boolean;
/**
 * How long a shown "is typing" lasts without news: the server ends an
 * indicator after 6 s (docs/protocol.md §2.12) and says so; this is the
 * fallback for when that word is lost with the connection.
 */
export const TYPING_TTL_MS: 7000;
/**
 * Others' typing indicators per room, from `typing` frames, so a screen can
 * ask who is typing instead of keeping its own timers.
 */
export class TypingBoard {
    /**
     * Applies a `typing` frame.
     * @param {{ room_id: string, user_id: string, username?: string, name?: string | null, is_typing: boolean }} frame
     */
    apply(frame: {
        room_id: string;
        user_id: string;
        username?: string;
        name?: string | null;
        is_typing: boolean;
    }): boolean;
    /**
     * Who is typing in a room now.
     * @param {string} roomId
     * @returns {{ user_id: string, username?: string, name?: string | null }[]}
     */
    in(roomId: string): {
        user_id: string;
        username?: string;
        name?: string | null;
    }[];
    /** Forgets everything (the connection dropped: indicators are unknown). */
    clear(): void;
    #private;
}
/**
 * The assistant's replies as they stream (`assistant_delta`), so each delta
 * event can carry the whole text so far; a reply is forgotten once its
 * stored message (whose `id` is the deltas' `reply_id`) arrives.
 */
export class ReplyStreams {
    /**
     * @param {{ reply_id: string, delta: string }} frame
     * @returns {string} the reply's text so far
     */
    add(frame: {
        reply_id: string;
        delta: string;
    }): string;
    /** @param {string} messageId a stored message: its stream, if any, is done */
    done(messageId: string): void;
    #private;
}
