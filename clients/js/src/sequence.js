// Per-room ordering: every message once, in seq order, none missing.

/**
 * Messages per `get_history` page when filling a gap: the server's maximum
 * (docs/protocol.md §2.16), so a cut backlog takes as few round trips as it can.
 */
export const HISTORY_PAGE = 100;

/**
 * What one subscribed room has delivered to the app: the highest `seq` seen
 * and the messages held back behind a gap. It turns the server's stream
 * (live `new_message` frames, a `since_seq` replay after a reconnect, and
 * `get_history` pages that fill a cut backlog, possibly overlapping) into
 * every message exactly once, in `seq` order (docs/protocol.md §2.11).
 */
export class RoomStream {
  /** @type {number | null} highest seq delivered, null before the first */
  highest = null;
  /** the room's `last_seq` when the subscription took effect */
  target = 0;
  /** @type {Map<number, any>} messages above a gap, by seq */
  #held = new Map();

  /** @param {number | null} [sinceSeq] what the app already has */
  constructor(sinceSeq = null) {
    this.highest = sinceSeq;
  }

  /**
   * Takes a message from any source; returns those now deliverable in
   * order (none for a duplicate or one above a gap).
   * @param {{ seq: number }} message
   * @returns {any[]}
   */
  accept(message) {
    const seq = message.seq;
    if (this.highest === null) this.highest = seq - 1;
    if (seq <= this.highest) return [];
    if (seq !== this.highest + 1) {
      this.#held.set(seq, message);
      return [];
    }
    const out = [message];
    let highest = seq;
    for (let next = this.#held.get(highest + 1); next; next = this.#held.get(highest + 1)) {
      this.#held.delete(next.seq);
      out.push(next);
      highest = next.seq;
    }
    this.highest = highest;
    return out;
  }

  /** Whether a message arrived above a gap (the ones below it are missing). */
  get gap() {
    return this.#held.size > 0;
  }

  /** Whether messages are missing: a gap, or fewer than `target` delivered. */
  get behind() {
    return this.gap || (this.highest ?? 0) < this.target;
  }

  /**
   * Gives up on a gap that history cannot fill (it should never happen: seqs
   * have no holes, and deleted messages keep theirs): returns the held
   * messages in order, so nothing is stuck behind it.
   * @returns {any[]}
   */
  release() {
    const out = [...this.#held.values()].sort((a, b) => a.seq - b.seq);
    this.#held.clear();
    if (out.length) this.highest = out[out.length - 1].seq;
    this.target = Math.min(this.target, this.highest ?? 0);
    return out;
  }
}
