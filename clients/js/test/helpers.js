// The one test helper: a real confab binary on a free port with a temporary
// SQLite data dir and a known JWT secret, tokens minted with node:crypto,
// REST calls with fetch, and clients that are closed after each test.
// (No tests here: node --test runs this file too, and finds none.)

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ConfabClient } from "../src/confab.js";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's root. */
export const REPO = path.resolve(here, "../../..");
/** The server binary: `CONFAB_BIN`, else what `cargo build` made. */
export const BIN = process.env.CONFAB_BIN || path.join(REPO, "target/debug/confab");
/** The HS256 secret every test server signs with. */
export const SECRET = "confab-js-test-secret";
/** The server key every test server accepts. */
export const API_KEY = "confab-js-test-key";
/** How long a test waits for something that must happen. */
export const WAIT_MS = 10_000;

/** Settings every test server gets: limits out of the tests' way, a quick stop. */
const BASE_ENV = {
  CONFAB_JWT_SECRET: SECRET,
  CONFAB_API_KEY: API_KEY,
  CONFAB_RATE_LIMIT__MESSAGES_PER_MINUTE: "6000",
  CONFAB_RATE_LIMIT__BURST: "1000",
  CONFAB_RATE_LIMIT__HANDSHAKES_PER_MINUTE: "6000",
  CONFAB_RATE_LIMIT__HANDSHAKE_BURST: "1000",
  CONFAB_RATE_LIMIT__REACTIONS_PER_MINUTE: "6000",
  CONFAB_RATE_LIMIT__REACTION_BURST: "1000",
  CONFAB_SERVER__SHUTDOWN_GRACE_S: "1",
};

/** @param {string | Buffer} data */
const b64url = (data) => Buffer.from(data).toString("base64url");

/**
 * An HS256 JWT signed with `secret`.
 * @param {Record<string, any>} claims
 * @param {string} [secret]
 */
export function mintJwt(claims, secret = SECRET) {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const signature = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}

/**
 * A user token valid for `ttlS` seconds (an `exp` of its own if given).
 * @param {string} user
 * @param {{ name?: string, role?: string, ttlS?: number, exp?: number }} [options]
 */
export function token(user, { name, role, ttlS = 600, exp } = {}) {
  const claims = { sub: user, exp: exp ?? Math.floor(Date.now() / 1000) + ttlS };
  if (name) Object.assign(claims, { name });
  if (role) Object.assign(claims, { role });
  return mintJwt(claims);
}

/**
 * Polls until `check()` is truthy; fails after `ms`.
 * @template T
 * @param {() => T} check
 * @param {string} what named in the failure
 * @param {number} [ms]
 * @returns {Promise<T>}
 */
export async function until(check, what, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A confab server process. `start()` it, `kill()` (SIGKILL) and `restart()`
 * it on the same data dir and port, and `cleanup()` it after the test
 * (which also closes the clients it made).
 */
export class TestServer {
  /** @type {import("node:child_process").ChildProcess | null} */
  proc = null;
  port = 0;
  url = "";
  stderr = "";
  /** @type {ConfabClient[]} */
  #clients = [];
  #env;
  #ownsDir;

  /**
   * @param {{ env?: Record<string, string>, dataDir?: string }} [options]
   */
  constructor({ env = {}, dataDir } = {}) {
    this.#env = env;
    this.#ownsDir = !dataDir;
    this.dataDir = dataDir ?? mkdtempSync(path.join(tmpdir(), "confab-js-"));
  }

  /**
   * Starts a server (settings in `env` on top of the tests' own).
   * @param {{ env?: Record<string, string> }} [options]
   */
  static async start(options) {
    const server = new TestServer(options);
    await server.#spawn();
    return server;
  }

  async #spawn() {
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("CONFAB_")));
    const env = {
      ...inherited,
      ...BASE_ENV,
      CONFAB_LISTEN: `127.0.0.1:${this.port}`,
      CONFAB_DATA_DIR: this.dataDir,
      ...this.#env,
    };
    // The data dir as working directory: no stray confab.toml is read.
    const proc = spawn(BIN, ["serve"], { cwd: this.dataDir, env, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    proc.stderr?.on("data", (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-20_000);
    });
    const listening = await new Promise((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`confab did not start:\n${this.stderr}`)), WAIT_MS);
      proc.once("error", (error) => reject(new Error(`cannot run ${BIN} (build it with cargo build, or set CONFAB_BIN): ${error.message}`)));
      proc.once("exit", (code) => reject(new Error(`confab exited with ${code}:\n${this.stderr}`)));
      proc.stdout?.on("data", (chunk) => {
        out += chunk;
        const match = /listening on (http:\/\/[^\s]+)/.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
    });
    this.url = String(listening);
    this.port = Number(new URL(this.url).port);
  }

  /** Kills the server at once (SIGKILL): nothing is flushed or closed politely. */
  async kill() {
    await this.#signal("SIGKILL");
  }

  /** Stops the server the polite way (SIGTERM: sockets closed with 1012). */
  async stop() {
    await this.#signal("SIGTERM");
  }

  /** @param {NodeJS.Signals} signal */
  async #signal(signal) {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill(signal);
    await exited;
    this.proc = null;
  }

  /** Starts the server again on the same data dir and port. */
  async restart() {
    await this.kill();
    await this.#spawn();
  }

  /**
   * A client of this server for `user` (a user id: a fresh 10-minute token;
   * or a token or token function), closed by `cleanup()`.
   * @param {string | (() => any)} user
   * @param {import("../src/confab.js").ClientOptions} [options]
   */
  client(user, options = {}) {
    const tokenInput = typeof user === "string" && !user.includes(".") ? token(user, { name: user }) : user;
    const client = new ConfabClient({ url: this.url, token: tokenInput, ...options });
    this.#clients.push(client);
    return client;
  }

  /**
   * Calls the REST API as `user` (a user id, or the server key when `null`).
   * @param {string | null} user
   * @param {string} method
   * @param {string} apiPath under /api/v1
   * @param {any} [body]
   */
  async api(user, method, apiPath, body) {
    /** @type {Record<string, string>} */
    const headers = { authorization: `Bearer ${user === null ? API_KEY : token(user, { name: user })}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(`${this.url}/api/v1${apiPath}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  /**
   * Creates a room owned by `owner` with `members`; returns its id.
   * @param {string} owner
   * @param {string[]} members
   * @param {Record<string, any>} [extra] more fields (`id`, `room_type`, …)
   */
  async room(owner, members, extra = {}) {
    const { status, body } = await this.api(owner, "POST", "/rooms", { name: "Test room", members, ...extra });
    if (status !== 201 && status !== 200) throw new Error(`room not created: ${status} ${JSON.stringify(body)}`);
    return /** @type {string} */ (body.id);
  }

  /**
   * Every stored message of a room, as `user` reads them over REST.
   * @param {string} user
   * @param {string} roomId
   */
  async allMessages(user, roomId) {
    /** @type {any[]} */
    const all = [];
    let after = 0;
    for (;;) {
      const { body } = await this.api(user, "GET", `/rooms/${roomId}/messages?after_seq=${after}&limit=100`);
      all.push(...body.messages);
      if (!body.has_more || !body.messages.length) return all;
      after = body.messages[body.messages.length - 1].seq;
    }
  }

  /** Closes the clients, stops the server, removes the data dir. */
  async cleanup() {
    for (const client of this.#clients) client.close();
    await this.kill();
    if (this.#ownsDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * Collects a client's events of one type from now on (the test asserts on
 * the array).
 * @param {ConfabClient} client
 * @param {string} type
 * @returns {any[]}
 */
export function collect(client, type) {
  /** @type {any[]} */
  const seen = [];
  client.on(type, (event) => seen.push(event));
  return seen;
}

/**
 * The next event of `type` (matching `filter`), or a failure after `ms`.
 * @param {ConfabClient} client
 * @param {string} type
 * @param {(event: any) => boolean} [filter]
 * @param {number} [ms]
 * @returns {Promise<any>}
 */
export function next(client, type, filter = () => true, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} event within ${ms} ms`));
    }, ms);
    const off = client.on(type, (event) => {
      if (!filter(event)) return;
      clearTimeout(timer);
      off();
      resolve(event);
    });
  });
}

/**
 * The platform's own WebSocket, watched: every frame a client sends is
 * recorded, and the test can cut the connection (as a network blip would)
 * now with `drop()`, or right after a frame it picks with `dropAfter`.
 * Nothing is simulated: the frames go to the real server.
 */
export function tapped() {
  /** @type {any[]} */
  const sent = [];
  /** @type {WebSocket[]} */
  const sockets = [];
  const tap = {
    sent,
    sockets,
    /** @type {((frame: any) => boolean) | null} cut the connection right after a frame this accepts (once) */
    dropAfter: null,
    /** Cuts the current connection. */
    drop() {
      sockets[sockets.length - 1]?.close(4000, "test: dropped");
    },
    WebSocket: class extends WebSocket {
      /** @param {ConstructorParameters<typeof WebSocket>} args */
      constructor(...args) {
        super(...args);
        sockets.push(this);
      }

      /** @param {string} data */
      send(data) {
        const frame = JSON.parse(data);
        sent.push(frame);
        super.send(data);
        if (tap.dropAfter?.(frame)) {
          tap.dropAfter = null;
          this.close(4000, "test: dropped after a frame");
        }
      }
    },
  };
  return tap;
}

/**
 * A promise and its resolve function, to hold something back until the
 * test lets it go (a token function, say).
 */
export function gate() {
  /** @type {() => void} */
  let open = () => {};
  /** @type {Promise<void>} */
  const closed = new Promise((resolve) => {
    open = resolve;
  });
  return { closed, open };
}
