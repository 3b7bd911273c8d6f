// Events as callbacks and as async iterators, from one source.

/**
 * Why iterators are bounded: an iterator nobody reads would otherwise hold
 * every event forever. Past this many unread events it fails instead (like
 * the server's 4008 for a slow consumer), so the reader learns it fell behind.
 */
export const DEFAULT_ITERATOR_LIMIT = 10_000;

/**
 * Delivers events (objects with a string `type`) to callbacks registered with
 * {@link Emitter#on} and to async iterators made by {@link Emitter#events},
 * so an app can use whichever style suits it.
 */
export class Emitter {
  /** @type {Map<string, Set<(event: any) => void>>} */
  #handlers = new Map();
  /** @type {Set<{ push: (event: any) => void, end: () => void, accepts: (type: string) => boolean }>} */
  #iterators = new Set();
  #ended = false;

  /**
   * Calls `fn` with every event of type `type` (`"*"`: every event).
   * Returns a function that unsubscribes, so callers need not keep `fn`.
   * @param {string} type
   * @param {(event: any) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    let set = this.#handlers.get(type);
    if (!set) this.#handlers.set(type, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
    };
  }

  /**
   * Calls `fn` with the next event of type `type` only.
   * @param {string} type
   * @param {(event: any) => void} fn
   * @returns {() => void} unsubscribes before it fired
   */
  once(type, fn) {
    const off = this.on(type, (event) => {
      off();
      fn(event);
    });
    return off;
  }

  /**
   * Events as an async iterator: `for await (const ev of emitter.events())`.
   * Events are buffered from the moment of this call (none are missed between
   * two `next()`), up to `limit` unread ones; `break` ends it. It finishes
   * when the emitter ends (the client closed for good).
   * @param {string[] | undefined} [types] only these types (default: all)
   * @param {{ limit?: number }} [options]
   * @returns {AsyncIterableIterator<any>}
   */
  events(types, { limit = DEFAULT_ITERATOR_LIMIT } = {}) {
    /** @type {any[]} */
    const queue = [];
    /** @type {((result: IteratorResult<any>) => void)[]} */
    const waiting = [];
    /** @type {Error | null} */
    let failure = null;
    let done = this.#ended;
    const wanted = types ? new Set(types) : null;
    const finish = () => {
      done = true;
      this.#iterators.delete(sink);
      while (waiting.length) waiting.shift()?.({ value: undefined, done: true });
    };
    const sink = {
      accepts: (/** @type {string} */ type) => !wanted || wanted.has(type),
      push: (/** @type {any} */ event) => {
        const next = waiting.shift();
        if (next) return next({ value: event, done: false });
        if (queue.length >= limit) {
          failure = new Error(`event iterator fell behind: more than ${limit} unread events`);
          return finish();
        }
        queue.push(event);
      },
      end: finish,
    };
    if (!done) this.#iterators.add(sink);
    return {
      next() {
        if (queue.length) return Promise.resolve({ value: queue.shift(), done: false });
        if (failure) {
          const error = failure;
          failure = null;
          return Promise.reject(error);
        }
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => waiting.push(resolve));
      },
      return() {
        queue.length = 0;
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /**
   * Hands `event` to the callbacks of its type, the `"*"` callbacks and the
   * iterators. A callback that throws does not stop the others (its error
   * is reported on the console, as a browser reports an event listener's).
   * @param {{ type: string, [key: string]: any }} event
   */
  emit(event) {
    for (const type of [event.type, "*"]) {
      const set = this.#handlers.get(type);
      if (!set) continue;
      for (const fn of [...set]) {
        try {
          fn(event);
        } catch (error) {
          console.error(error);
        }
      }
    }
    for (const sink of [...this.#iterators]) {
      if (sink.accepts(event.type)) sink.push(event);
    }
  }

  /** Ends every iterator (after its buffered events); later ones end at once. */
  end() {
    this.#ended = true;
    for (const sink of [...this.#iterators]) sink.end();
  }
}
