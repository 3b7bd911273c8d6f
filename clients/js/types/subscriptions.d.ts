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
    /** @param {SubscriptionHooks} hooks */
    constructor(hooks: SubscriptionHooks);
    /**
     * Subscribes (or waits for the subscription under way); see
     * `ConfabClient#subscribe`.
     * @param {string} roomId
     * @param {number | undefined} sinceSeq
     * @returns {Promise<any>}
     */
    add(roomId: string, sinceSeq: number | undefined): Promise<any>;
    /**
     * Forgets a room (unsubscribed, or removed from it); a `subscribe()` still
     * waiting rejects with `unsubscribed`.
     * @param {string} roomId
     */
    delete(roomId: string): boolean;
    /** @param {string} roomId */
    lastSeq(roomId: string): number | null;
    /** The connection is (re-)established: resume every room. */
    resume(): void;
    /** The socket dropped: the subscribe requests in flight are gone with it. */
    dropped(): void;
    /**
     * The client closed for good.
     * @param {Error} error
     */
    fail(error: Error): void;
    /**
     * A `new_message` frame: delivered if it is the next in the room, held if
     * above a gap (which is then filled), dropped if already delivered.
     * @param {any} frame
     */
    message(frame: any): void;
    #private;
}
/**
 * A subscribed room.
 */
export type Subscription = {
    /**
     * what has been delivered
     */
    stream: RoomStream;
    /**
     *   `subscribe()` calls waiting for `subscribed`
     */
    waiters: {
        resolve: (frame: any) => void;
        reject: (error: Error) => void;
    }[];
    /**
     * the last `subscribed`
     */
    last: any;
    /**
     * a `subscribe_room` awaits its answer
     */
    inFlight: boolean;
    /**
     * history pages are being fetched
     */
    filling: boolean;
};
/**
 * What the subscriptions need from the client.
 */
export type SubscriptionHooks = {
    request: (frame: Record<string, any>, options?: {
        timeoutMs?: number;
        retry?: boolean;
        internal?: boolean;
    }) => Promise<any>;
    /**
     * whether the connection is established
     */
    open: () => boolean;
    /**
     * a message, in order, once
     */
    deliver: (roomId: string, message: any) => void;
    /**
     * a `subscribed` answer
     */
    subscribed: (roomId: string, subscribed: any) => void;
    emit: (event: {
        type: string;
        [key: string]: any;
    }) => void;
};
import { RoomStream } from "./sequence.js";
