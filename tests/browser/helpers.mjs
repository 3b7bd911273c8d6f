// What the browser tests share: the real confab binary on a free port with
// a temporary data dir (a generated secret on loopback: the dev sign-in is
// on, as after a first `confab serve`), Debian's Chromium driven by
// playwright-core, and the page's own gestures (sign in, open a room, send).
// (No tests here: node --test runs *.test.mjs only.)

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's root. */
export const REPO = path.resolve(here, "../..");
/** The server binary: `CONFAB_BIN`, else what `cargo build` made. */
export const BIN = process.env.CONFAB_BIN || path.join(REPO, "target/debug/confab");
/** Debian's Chromium (`apt-get install chromium`): no browser is downloaded. */
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
/** How long a test waits for something that must happen. */
export const WAIT_MS = 15_000;

/** A free TCP port on 127.0.0.1 (so a restart can come back on the same one). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (probe.address());
      probe.close(() => resolve(port));
    });
  });
}

/**
 * `confab serve --listen 127.0.0.1:PORT --data-dir DIR`, as a user runs it:
 * no secret configured, so the dev sign-in is on. `stop()` and `start()`
 * again keep the data dir and the port.
 */
export class Server {
  /** @type {import("node:child_process").ChildProcess | null} */
  proc = null;
  stderr = "";

  /** @param {{ env?: Record<string, string> }} [options] settings on top of the defaults */
  constructor({ env = {} } = {}) {
    this.env = env;
    this.dataDir = mkdtempSync(path.join(tmpdir(), "confab-browser-"));
    this.port = 0;
  }

  /** @param {{ env?: Record<string, string> }} [options] */
  static async start(options) {
    const server = new Server(options);
    server.port = await freePort();
    await server.start();
    return server;
  }

  get url() {
    return `http://127.0.0.1:${this.port}/`;
  }

  async start() {
    // The tests' own environment must not leak settings in (a secret would
    // turn the dev sign-in off).
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("CONFAB_")));
    const env = { ...inherited, CONFAB_SERVER__SHUTDOWN_GRACE_S: "1", RUST_LOG: "warn", ...this.env };
    const args = ["serve", "--listen", `127.0.0.1:${this.port}`, "--data-dir", this.dataDir];
    const proc = spawn(BIN, args, { cwd: this.dataDir, env, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    proc.stderr?.on("data", (chunk) => (this.stderr = (this.stderr + chunk).slice(-20_000)));
    await new Promise((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`confab did not start:\n${this.stderr}`)), WAIT_MS);
      proc.once("error", (e) => reject(new Error(`cannot run ${BIN} (cargo build -p confab, or set CONFAB_BIN): ${e.message}`)));
      proc.once("exit", (code) => reject(new Error(`confab exited with ${code}:\n${this.stderr}`)));
      proc.stdout?.on("data", (chunk) => {
        out += chunk;
        if (/listening on http:\/\//.test(out)) {
          clearTimeout(timer);
          resolve(undefined);
        }
      });
    });
    proc.removeAllListeners("exit");
  }

  /** Stops it (SIGTERM: the way Ctrl-C does) and waits for the exit. */
  async stop() {
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }

  async cleanup() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Debian's Chromium, headless. */
export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"], headless: true });
}

/**
 * A browser window signed in as `name` with the dev sign-in. Page errors
 * (uncaught exceptions, CSP violations) are collected in `errors`.
 * @param {import("playwright-core").Browser} browser
 * @param {Server} server
 * @param {string} name
 * @param {{ viewport?: { width: number, height: number } }} [options]
 */
export async function signIn(browser, server, name, { viewport = { width: 1100, height: 720 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = watch(page);
  await page.goto(server.url);
  await page.getByLabel("Your name").fill(name);
  await page.getByLabel("Your name").press("Enter");
  await page.locator("#chat[data-ready=true]").waitFor();
  await page.locator("#banner[data-state=live]").waitFor({ state: "attached" });
  return { context, page, errors };
}

/**
 * Collects what went wrong in a page: uncaught errors and console errors
 * (a CSP violation is one), except the expected failures of a socket
 * while the network is down.
 * @param {import("playwright-core").Page} page
 */
export function watch(page) {
  /** @type {string[]} */
  const errors = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const text = m.text();
    if (/WebSocket connection to .* failed|ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED/.test(text)) return;
    errors.push(`console: ${text}`);
  });
  return errors;
}

/**
 * Starts a direct conversation from the page with `userId`.
 * @param {import("playwright-core").Page} page
 * @param {string} userId
 */
export async function startDirect(page, userId) {
  await page.getByRole("button", { name: "New conversation" }).click();
  await page.getByLabel("With one person").check();
  await page.getByLabel("Their user id").fill(userId);
  await page.getByRole("button", { name: "Start" }).click();
  await page.locator("#room-view").waitFor({ state: "visible" });
}

/**
 * The room list's entry for a room titled `title`.
 * @param {import("playwright-core").Page} page
 * @param {string} title
 */
export function roomEntry(page, title) {
  return page.locator("#room-list button.room").filter({ has: page.locator(".room-name", { hasText: title }) });
}

/**
 * Types into the message box and presses Enter.
 * @param {import("playwright-core").Page} page
 * @param {string} text
 */
export async function send(page, text) {
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill(text);
  await box.press("Enter");
}

/**
 * The stored messages shown (not pending), as `{ text, sender }`.
 * @param {import("playwright-core").Page} page
 */
export function shown(page) {
  return page.locator("#messages li.msg:not(.pending)");
}

/**
 * The texts of the stored messages on screen, in order.
 * @param {import("playwright-core").Page} page
 */
export function texts(page) {
  return page.locator("#messages li.msg:not(.pending) .text").allTextContents();
}

/**
 * A small PNG (`width` × `height`, a colour gradient), made here so the
 * tests ship no binary file.
 * @param {number} width
 * @param {number} height
 */
export function png(width, height) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // no filter
    for (let x = 0; x < width; x++) {
      const i = row + 1 + x * 3;
      raw[i] = Math.round((255 * x) / Math.max(1, width - 1));
      raw[i + 1] = Math.round((180 * y) / Math.max(1, height - 1));
      raw[i + 2] = 200;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** @param {Buffer} data */
function crc32(data) {
  let c = ~0;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}
