// Small pieces of live state a chat screen shows: who is typing, who is
// online, and the assistant's reply as it streams.

/**
 * How long a shown "is typing" lasts without news: the server ends an
 * indicator after 6 s (docs/protocol.md §2.12) and says so; this is the
 * fallback for when that word is lost with the connection.
 */
export const TYPING_TTL_MS = 7000;

/** Most assistant replies streamed at once that are remembered. */
const MAX_STREAMS = 64;

/**
 * Others' typing indicators per room, from `typing` frames, so a screen can
 * ask who is typing instead of keeping its own timers.
 */
export class TypingBoard {
  /** @type {Map<string, Map<string, { user_id: string, username?: string, name?: string | null, until: number }>>} */
  #rooms = new Map();

  /**
   * Applies a `typing` frame.
   * @param {{ room_id: string, user_id: string, username?: string, name?: string | null, is_typing: boolean }} frame
   */
  apply(frame) {
    let room = this.#rooms.get(frame.room_id);
    if (!frame.is_typing) return room?.delete(frame.user_id) ?? false;
    if (!room) this.#rooms.set(frame.room_id, (room = new Map()));
    const { user_id, username, name } = frame;
    room.set(user_id, { user_id, username, name, until: Date.now() + TYPING_TTL_MS });
    return true;
  }

  /**
   * Who is typing in a room now.
   * @param {string} roomId
   * @returns {{ user_id: string, username?: string, name?: string | null }[]}
   */
  in(roomId) {
    const room = this.#rooms.get(roomId);
    if (!room) return [];
    const now = Date.now();
    for (const [id, entry] of room) if (entry.until <= now) room.delete(id);
    return [...room.values()].map(({ user_id, username, name }) => ({ user_id, username, name }));
  }

  /** Forgets everything (the connection dropped: indicators are unknown). */
  clear() {
    this.#rooms.clear();
  }
}

/**
 * The assistant's replies as they stream (`assistant_delta`), so each delta
 * event can carry the whole text so far; a reply is forgotten once its
 * stored message (whose `id` is the deltas' `reply_id`) arrives.
 */
export class ReplyStreams {
  /** @type {Map<string, string>} */
  #text = new Map();

  /**
   * @param {{ reply_id: string, delta: string }} frame
   * @returns {string} the reply's text so far
   */
  add(frame) {
    const text = (this.#text.get(frame.reply_id) ?? "") + frame.delta;
    this.#text.delete(frame.reply_id);
    this.#text.set(frame.reply_id, text);
    if (this.#text.size > MAX_STREAMS) this.#text.delete(this.#text.keys().next().value ?? "");
    return text;
  }

  /** @param {string} messageId a stored message: its stream, if any, is done */
  done(messageId) {
    this.#text.delete(messageId);
  }
}

/**
 * A v4 UUID for `client_msg_id`: `crypto.randomUUID()` where it exists (Node,
 * browsers on https or localhost), else built from `crypto.getRandomValues`
 * (browsers on plain http, where `randomUUID` is missing).
 * @returns {string}
 */
export function uuid() {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Whether a send is a slash command (docs/protocol.md §6.1): answered by
 * `command_result`, stored nowhere, and not idempotent, so never re-sent
 * after a reconnect. `/me` is the exception: it stores a message and keeps
 * the send's `client_msg_id`.
 * @param {{ content?: string, message_type?: string }} frame
 */
export function isCommand(frame) {
  if (frame.message_type && frame.message_type.toLowerCase() !== "text") return false;
  const match = /^\/([A-Za-z0-9_-]{1,32})(\s|$)/.exec(frame.content ?? "");
  return match !== null && match[1].toLowerCase() !== "me";
}
