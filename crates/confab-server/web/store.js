// What the page knows of each room's conversation: the messages it has
// (by id and seq, so a message delivered twice is shown once), the sends
// still waiting for their ack, the assistant's replies as they stream,
// command results shown to the user alone, and how far each member read.

/**
 * A send shown before the server acknowledged it.
 * @typedef {object} PendingSend
 * @property {string} clientMsgId
 * @property {string} content
 * @property {string | null} replyTo
 * @property {File | null} file an upload, shown from the local file meanwhile
 * @property {string | null} previewUrl the file's local `blob:` URL (images)
 * @property {"sending" | "failed"} state
 * @property {string | null} error why it failed
 * @property {string | null} messageId known once acknowledged
 * @property {string} createdAt
 */

/**
 * A command's answer, shown to the user alone where it was asked.
 * @typedef {{ id: string, command: string, afterSeq: number, result: any | null, error: string | null }} Note
 */

/** One room's conversation, as far as the page has loaded it. */
export class RoomLog {
  /** @type {Map<string, any>} message id → message */
  byId = new Map();
  /** @type {Map<number, string>} seq → message id */
  bySeq = new Map();
  /** Whether the newest page of history has been read. */
  loaded = false;
  /** Whether older messages remain to be paged in. */
  hasMore = true;
  /** @type {Map<string, PendingSend>} */
  pending = new Map();
  /** @type {Map<string, { replyId: string, text: string }>} the assistant's replies as they stream */
  streams = new Map();
  /** @type {Note[]} */
  notes = [];
  /** @type {Map<string, number>} member id → the seq they have read up to */
  readers = new Map();
  /** @type {Map<string, string>} member id → name, from the member list */
  names = new Map();

  /**
   * Adds or replaces a message (a newer copy of an edited one replaces the
   * older). Returns whether the log changed.
   * @param {any} message
   */
  put(message) {
    const old = this.byId.get(message.id);
    this.byId.set(message.id, old ? { ...old, ...message } : message);
    this.bySeq.set(message.seq, message.id);
    this.streams.delete(message.id); // the stored reply ends its stream
    for (const [key, p] of this.pending) if (p.messageId === message.id) this.dropPending(key);
    return true;
  }

  /**
   * Changes a known message (reactions); unknown ones are left alone.
   * @param {string} id
   * @param {Record<string, any>} changes
   */
  patch(id, changes) {
    const message = this.byId.get(id);
    if (!message) return false;
    this.byId.set(id, { ...message, ...changes });
    return true;
  }

  /** @param {string} id */
  get(id) {
    return this.byId.get(id);
  }

  /** Messages in seq order. */
  messages() {
    return [...this.bySeq.keys()].sort((a, b) => a - b).map((seq) => this.byId.get(/** @type {string} */ (this.bySeq.get(seq))));
  }

  /** The lowest seq loaded (null when none). */
  get oldestSeq() {
    let min = null;
    for (const seq of this.bySeq.keys()) if (min === null || seq < min) min = seq;
    return min;
  }

  /** The highest seq loaded (0 when none). */
  get newestSeq() {
    let max = 0;
    for (const seq of this.bySeq.keys()) if (seq > max) max = seq;
    return max;
  }

  /** @param {string} key a pending send's client_msg_id */
  dropPending(key) {
    const p = this.pending.get(key);
    if (p?.previewUrl) URL.revokeObjectURL(p.previewUrl);
    this.pending.delete(key);
  }

  /**
   * Someone's read marker moved (markers only move forward).
   * @param {string} userId
   * @param {number} upToSeq
   */
  read(userId, upToSeq) {
    const before = this.readers.get(userId) ?? 0;
    if (upToSeq <= before) return false;
    this.readers.set(userId, upToSeq);
    return true;
  }

  /**
   * Where the "seen by" lines go: for each other member, the newest of
   * `selfId`'s messages their marker covers. Returns message id → reader ids.
   * @param {string} selfId
   */
  seenBy(selfId) {
    const mine = this.messages().filter((m) => m.sender?.id === selfId && !m.deleted);
    /** @type {Map<string, string[]>} */
    const at = new Map();
    for (const [reader, upTo] of this.readers) {
      if (reader === selfId) continue;
      let target = null;
      for (const m of mine) if (m.seq <= upTo) target = m;
      if (!target) continue;
      at.set(target.id, [...(at.get(target.id) ?? []), reader]);
    }
    return at;
  }
}

/** Every room's log, made on first use. */
export class Store {
  /** @type {Map<string, RoomLog>} */
  #logs = new Map();

  /** @param {string} roomId */
  log(roomId) {
    let log = this.#logs.get(roomId);
    if (!log) this.#logs.set(roomId, (log = new RoomLog()));
    return log;
  }

  /** @param {string} roomId */
  has(roomId) {
    return this.#logs.has(roomId);
  }

  /** @param {string} roomId forgets a room (the user left it) */
  drop(roomId) {
    this.#logs.delete(roomId);
  }
}
