/**
 * Messages per `get_history` page when filling a gap: the server's maximum
 * (docs/protocol.md §2.16), so a cut backlog takes as few round trips as it can.
 */
export const HISTORY_PAGE: 100;
/**
 * What one subscribed room has delivered to the app: the highest `seq` seen
 * and the messages held back behind a gap. It turns the server's stream
 * (live `new_message` frames, a `since_seq` replay after a reconnect, and
 * `get_history` pages that fill a cut backlog, possibly overlapping) into
 * every message exactly once, in `seq` order (docs/protocol.md §2.11).
 */
export class RoomStream {
    /** @param {number | null} [sinceSeq] what the app already has */
    constructor(sinceSeq?: number | null);
    /** @type {number | null} highest seq delivered, null before the first */
    highest: number | null;
    /** the room's `last_seq` when the subscription took effect */
    target: number;
    /**
     * Takes a message from any source; returns those now deliverable in
     * order (none for a duplicate or one above a gap).
     * @param {{ seq: number }} message
     * @returns {any[]}
     */
    accept(message: {
        seq: number;
    }): any[];
    /** Whether a message arrived above a gap (the ones below it are missing). */
    get gap(): boolean;
    /** Whether messages are missing: a gap, or fewer than `target` delivered. */
    get behind(): boolean;
    /**
     * Gives up on a gap that history cannot fill (it should never happen: seqs
     * have no holes, and deleted messages keep theirs): returns the held
     * messages in order, so nothing is stuck behind it.
     * @returns {any[]}
     */
    release(): any[];
    #private;
}
