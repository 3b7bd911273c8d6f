/**
 * Why iterators are bounded: an iterator nobody reads would otherwise hold
 * every event forever. Past this many unread events it fails instead (like
 * the server's 4008 for a slow consumer), so the reader learns it fell behind.
 */
export const DEFAULT_ITERATOR_LIMIT: 10000;
/**
 * Delivers events (objects with a string `type`) to callbacks registered with
 * {@link Emitter#on} and to async iterators made by {@link Emitter#events},
 * so an app can use whichever style suits it.
 */
export class Emitter {
    /**
     * Calls `fn` with every event of type `type` (`"*"`: every event).
     * Returns a function that unsubscribes, so callers need not keep `fn`.
     * @param {string} type
     * @param {(event: any) => void} fn
     * @returns {() => void}
     */
    on(type: string, fn: (event: any) => void): () => void;
    /**
     * Calls `fn` with the next event of type `type` only.
     * @param {string} type
     * @param {(event: any) => void} fn
     * @returns {() => void} unsubscribes before it fired
     */
    once(type: string, fn: (event: any) => void): () => void;
    /**
     * Events as an async iterator: `for await (const ev of emitter.events())`.
     * Events are buffered from the moment of this call (none are missed between
     * two `next()`), up to `limit` unread ones; `break` ends it. It finishes
     * when the emitter ends (the client closed for good).
     * @param {string[] | undefined} [types] only these types (default: all)
     * @param {{ limit?: number }} [options]
     * @returns {AsyncIterableIterator<any>}
     */
    events(types?: string[] | undefined, { limit }?: {
        limit?: number;
    }): AsyncIterableIterator<any>;
    /**
     * Hands `event` to the callbacks of its type, the `"*"` callbacks and the
     * iterators. A callback that throws does not stop the others (its error
     * is reported on the console, as a browser reports an event listener's).
     * @param {{ type: string, [key: string]: any }} event
     */
    emit(event: {
        type: string;
        [key: string]: any;
    }): void;
    /** Ends every iterator (after its buffered events); later ones end at once. */
    end(): void;
    #private;
}
