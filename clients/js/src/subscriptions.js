// Subscribed rooms: resumed after every reconnect with since_seq, and
// delivered in seq order, each message once, with no gap.

import { ConfabError } from "./errors.js";
import { HISTORY_PAGE, RoomStream } from "./sequence.js";

/**
 * A subscribed room.
 * @typedef {object} Subscription
 * @property {RoomStream} stream what has been delivered
 * @property {{ resolve: (frame: any) => void, reject: (error: Error) => void }[]} waiters
 *   `subscribe()` calls waiting for `subscribed`
 * @property {any} last the last `subscribed`
 * @property {boolean} inFlight a `subscribe_room` awaits its answer
 * @property {boolean} filling history pages are being fetched
 */

/**
 * What the subscriptions need from the client.
 * @typedef {object} SubscriptionHooks
 * @property {(frame: Record<string, any>, options?: { timeoutMs?: number, retry?: boolean, internal?: boolean }) => Promise<any>} request
 * @property {() => boolean} open whether the connection is established
 * @property {(roomId: string, message: any) => void} deliver a message, in order, once
 * @property {(roomId: string, subscribed: any) => void} subscribed a `subscribed` answer
 * @property {(event: { type: string, [key: string]: any }) => void} emit
 */

/**
 * The client algorithm of docs/protocol.md §2.11: remember the highest seq
 * seen per room; on reconnect subscribe with `since_seq` = that; apply
 * messages above it; page `get_history` for what a cut replay left out.
 */
export class Subscriptions {
  /** @type {Map<string, Subscription>} */
  #subs = new Map();
  #hooks;

  /** @param {SubscriptionHooks} hooks */
  constructor(hooks) {
    this.#hooks = hooks;
  }

  /**
   * Subscribes (or waits for the subscription under way); see
   * `ConfabClient#subscribe`.
   * @param {string} roomId
   * @param {number | undefined} sinceSeq
   * @returns {Promise<any>}
   */
  add(roomId, sinceSeq) {
    let sub = this.#subs.get(roomId);
    if (sub?.last && !sub.inFlight && this.#hooks.open()) return Promise.resolve(sub.last);
    if (!sub) {
      sub = { stream: new RoomStream(sinceSeq ?? null), waiters: [], last: null, inFlight: false, filling: false };
      this.#subs.set(roomId, sub);
    }
    const s = sub;
    const promise = new Promise((resolve, reject) => s.waiters.push({ resolve, reject }));
    if (this.#hooks.open() && !sub.inFlight) this.#send(roomId, sub);
    return promise;
  }

  /**
   * Forgets a room (unsubscribed, or removed from it); a `subscribe()` still
   * waiting rejects with `unsubscribed`.
   * @param {string} roomId
   */
  delete(roomId) {
    const sub = this.#subs.get(roomId);
    if (!sub) return false;
    this.#subs.delete(roomId);
    const error = new ConfabError("unsubscribed", `no longer subscribed to ${roomId}`);
    for (const w of sub.waiters.splice(0)) w.reject(error);
    return true;
  }

  /** @param {string} roomId */
  lastSeq(roomId) {
    return this.#subs.get(roomId)?.stream.highest ?? null;
  }

  /** The connection is (re-)established: resume every room. */
  resume() {
    for (const [roomId, sub] of this.#subs) this.#send(roomId, sub);
  }

  /** The socket dropped: the subscribe requests in flight are gone with it. */
  dropped() {
    for (const sub of this.#subs.values()) sub.inFlight = false;
  }

  /**
   * The client closed for good.
   * @param {Error} error
   */
  fail(error) {
    for (const sub of this.#subs.values()) for (const w of sub.waiters.splice(0)) w.reject(error);
  }

  /**
   * @param {string} roomId
   * @param {Subscription} sub
   */
  #send(roomId, sub) {
    sub.inFlight = true;
    /** @type {Record<string, any>} */
    const frame = { type: "subscribe_room", room_id: roomId };
    if (sub.stream.highest !== null) frame.since_seq = sub.stream.highest;
    const internal = { internal: true, timeoutMs: 0 };
    this.#hooks.request(frame, internal).then((reply) => {
      if (this.#subs.get(roomId) !== sub) return;
      sub.inFlight = false;
      if (reply.type === "error") {
        this.#subs.delete(roomId);
        const error = new ConfabError(reply.code, reply.message, { frame: reply });
        const waiters = sub.waiters.splice(0);
        for (const w of waiters) w.reject(error);
        // A resume nobody waits for (removed from the room while away, say).
        if (!waiters.length) this.#hooks.emit({ type: "error", error, room_id: roomId });
        return;
      }
      sub.last = reply;
      if (sub.stream.highest === null) sub.stream.highest = reply.last_seq;
      sub.stream.target = reply.last_seq;
      this.#hooks.subscribed(roomId, reply);
      for (const w of sub.waiters.splice(0)) w.resolve(reply);
    });
    // Frames are answered in order, this one after the replay: what the
    // replay left out (a backlog over the server's catch-up limit) is
    // paged from history.
    this.#hooks.request({ type: "ping" }, internal).then(() => {
      if (this.#subs.get(roomId) === sub && sub.stream.behind) this.#fill(roomId, sub);
    });
  }

  /**
   * A `new_message` frame: delivered if it is the next in the room, held if
   * above a gap (which is then filled), dropped if already delivered.
   * @param {any} frame
   */
  message(frame) {
    const sub = this.#subs.get(frame.room_id);
    if (!sub) return; // in flight when the room was unsubscribed

    this.#accept(frame.room_id, sub, frame.message);
    if (sub.stream.gap && sub.last) this.#fill(frame.room_id, sub);
  }

  /**
   * @param {string} roomId
   * @param {Subscription} sub
   * @param {any} message
   */
  #accept(roomId, sub, message) {
    const ready = sub.stream.accept(message);
    for (const m of ready) this.#hooks.deliver(roomId, m);
    return ready.length;
  }

  /**
   * Pages `get_history` after the highest seq seen until nothing is missing.
   * @param {string} roomId
   * @param {Subscription} sub
   */
  async #fill(roomId, sub) {
    if (sub.filling) return;
    sub.filling = true;
    try {
      while (this.#subs.get(roomId) === sub && sub.stream.behind && this.#hooks.open()) {
        const after = sub.stream.highest ?? 0;
        const frame = { type: "get_history", room_id: roomId, after_seq: after, limit: HISTORY_PAGE };
        const page = await this.#hooks.request(frame, { retry: false });
        let delivered = 0;
        for (const m of page.messages) delivered += this.#accept(roomId, sub, m);
        if (!delivered) {
          // Nothing after `after` can be had (seqs have no holes, so this
          // should not happen): deliver what is held rather than wait forever.
          for (const m of sub.stream.release()) this.#hooks.deliver(roomId, m);
          break;
        }
      }
    } catch (error) {
      // A dropped connection resumes with since_seq; anything else is news.
      if (!(error instanceof ConfabError && ["connection_lost", "closed"].includes(error.code))) {
        this.#hooks.emit({ type: "error", error, room_id: roomId });
      }
    } finally {
      sub.filling = false;
    }
  }
}
