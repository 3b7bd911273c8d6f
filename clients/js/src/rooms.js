// The room list with unread counts, kept current from the server's events.

/**
 * A room as `room_list`, `room_added` and the REST API describe it
 * (docs/protocol.md §2.15).
 * @typedef {object} Room
 * @property {string} id
 * @property {string} [name]
 * @property {string} [room_type]
 * @property {number} [last_seq]
 * @property {string | null} [last_message_content]
 * @property {string | null} [last_message_time]
 * @property {number} unread_count
 * @property {number} [last_read_seq] known once the user marked it read
 * @property {{ id: string, name?: string, online?: boolean }[]} [participants]
 * @property {boolean} [closed]
 * @property {Record<string, any>} [metadata]
 */

/**
 * The user's rooms, newest activity first, with unread counts that follow
 * new messages, reads from any of the user's connections and (re)subscribes,
 * so a room list can be drawn without asking the server again.
 */
export class RoomList {
  /** @type {Map<string, Room>} */
  #rooms = new Map();
  /** @type {Map<string, number>} per room, the seq up to which `unread_count` is the server's */
  #counted = new Map();

  /** Every known room, newest activity first (ties by id), as the server sorts them. */
  list() {
    return [...this.#rooms.values()].sort((a, b) => {
      const ta = a.last_message_time ?? "";
      const tb = b.last_message_time ?? "";
      if (ta !== tb) return ta < tb ? 1 : -1;
      return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    });
  }

  /** @param {string} id */
  get(id) {
    return this.#rooms.get(id);
  }

  /**
   * Replaces the list with a full `room_list` answer (all pages), then
   * applies again the `room_added`, `room_removed` and `room_updated`
   * frames that arrived while it was being read, in order: the answer may
   * predate them (a room added meanwhile would otherwise vanish).
   * @param {Room[]} rooms
   * @param {any[]} [since] those frames
   */
  replace(rooms, since = []) {
    this.#rooms = new Map(rooms.map((room) => [room.id, { ...room }]));
    this.#counted = new Map(rooms.map((room) => [room.id, room.last_seq ?? 0]));
    for (const frame of since) {
      if (frame.type === "room_added") this.add(frame.room);
      else if (frame.type === "room_removed") this.remove(frame.room_id);
      else if (frame.type === "room_updated") this.update(frame.room_id, frame.updates ?? {});
    }
  }

  /** @param {Room} room (`room_added`, `createRoom`) */
  add(room) {
    this.#rooms.set(room.id, { ...this.#rooms.get(room.id), ...room });
    this.#counted.set(room.id, Math.max(this.#counted.get(room.id) ?? 0, room.last_seq ?? 0));
  }

  /** @param {string} id (`room_removed`) */
  remove(id) {
    return this.#rooms.delete(id);
  }

  /**
   * Merges a `room_updated`'s `updates` (name, metadata, closed, or the
   * unread count and read marker after a read).
   * @param {string} id
   * @param {Record<string, any>} updates
   */
  update(id, updates) {
    const room = this.#rooms.get(id);
    if (!room) return false;
    Object.assign(room, updates);
    return true;
  }

  /**
   * The server's unread count as a subscription took effect: the
   * messages it replays next are already counted in it.
   * @param {string} id
   * @param {{ last_seq: number, unread_count: number }} subscribed
   */
  subscribed(id, subscribed) {
    if (!this.#rooms.has(id)) return false;
    this.#counted.set(id, subscribed.last_seq);
    return this.update(id, { unread_count: subscribed.unread_count });
  }

  /**
   * A message delivered in order: the room's last message moves, and it
   * counts as unread unless the user sent it or has read past it.
   * @param {any} message
   * @param {string | null} selfId
   */
  message(message, selfId) {
    const room = this.#rooms.get(message.room_id);
    if (!room) return false;
    let changed = false;
    if (message.seq >= (room.last_seq ?? 0)) {
      room.last_seq = message.seq;
      room.last_message_content = message.content;
      room.last_message_time = message.timestamp;
      changed = true;
    }
    if (message.seq > (this.#counted.get(room.id) ?? 0)) {
      this.#counted.set(room.id, message.seq);
      const mine = message.sender?.id === selfId;
      if (!mine && !message.deleted && message.seq > (room.last_read_seq ?? 0)) {
        room.unread_count = (room.unread_count ?? 0) + 1;
        changed = true;
      }
    }
    return changed;
  }

  /**
   * A user came online or went offline: their `online` flag in every room.
   * @param {string} userId
   * @param {boolean} online
   */
  presence(userId, online) {
    let changed = false;
    for (const room of this.#rooms.values()) {
      for (const p of room.participants ?? []) {
        if (p.id === userId && p.online !== online) {
          p.online = online;
          changed = true;
        }
      }
    }
    return changed;
  }
}
