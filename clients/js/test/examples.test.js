// The examples of docs/client.md run against a live confab, as a user would
// run them, and the doc shows each of them as it is.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import path from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { REPO, TestServer, token } from "./helpers.js";

const EXAMPLES = path.join(REPO, "clients/js/examples");
const DOC = path.join(REPO, "docs/client.md");
const run = promisify(execFile);
/** Node.js 20 has WebSocket behind a flag; 22 and later by default. */
const NODE_FLAGS = Number(process.versions.node.split(".")[0]) < 22 ? ["--experimental-websocket"] : [];

/** @type {TestServer} */
let server;
/** @type {import("node:http").Server} */
let helper;
let room = "";
let tokenUrl = "";

before(async () => {
  // One stand-in for two things of the app's: an OpenAI-compatible
  // provider for the assistant, and the back-end endpoint that mints tokens.
  helper = createServer((request, response) => {
    if (request.url === "/token") {
      response.writeHead(200, { "content-type": "text/plain" });
      return response.end(token("ann", { name: "Ann", ttlS: 62 }));
    }
    request.resume();
    request.on("end", () => {
      response.writeHead(200, { "content-type": "text/event-stream" });
      for (const piece of ["Use the ", "link in the e-mail."]) {
        response.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: piece } }] })}\n\n`);
      }
      response.end("data: [DONE]\n\n");
    });
  });
  await new Promise((resolve) => helper.listen(0, "127.0.0.1", () => resolve(undefined)));
  const port = /** @type {import("node:net").AddressInfo} */ (helper.address()).port;
  tokenUrl = `http://127.0.0.1:${port}/token`;
  server = await TestServer.start({ env: { CONFAB_ASSISTANT__BASE_URL: `http://127.0.0.1:${port}/v1` } });
  room = await server.room("ann", ["bob"], { id: "general", name: "General" });
});
after(async () => {
  await server.cleanup();
  helper.close();
});

/**
 * Runs `node examples/{file} {args}` as Ann; returns what it printed.
 * @param {string} file
 * @param {string[]} [args]
 */
async function example(file, args = []) {
  const env = {
    ...process.env,
    CONFAB_URL: server.url,
    CONFAB_TOKEN: token("ann", { name: "Ann" }),
    CONFAB_ROOM: room,
    CONFAB_TOKEN_URL: tokenUrl,
  };
  const { stdout } = await run(process.execPath, [...NODE_FLAGS, path.join(EXAMPLES, file), ...args], {
    env,
    timeout: 20_000,
  });
  return stdout;
}

/** Bob says something in the room, over REST. */
const bobSays = (/** @type {string} */ content) => server.api("bob", "POST", `/rooms/${room}/messages`, { content });

test("quickstart.js sends a message and reads it back", async () => {
  await bobSays("hi Ann");
  const out = await example("quickstart.js");
  assert.match(out, /^signed in as ann$/m);
  assert.match(out, /^general: 1 messages, 1 unread$/m);
  assert.match(out, /^stored as #2$/m);
  assert.match(out, /^#2 Ann: Hello from confab-js$/m);
});

test("room-list.js shows unread counts, and none after markRead", async () => {
  await bobSays("are you there?");
  await bobSays("hello?");
  const out = await example("room-list.js");
  const lines = out.trim().split("\n");
  assert.match(lines[0], /^General: [1-9]\d* unread, last: hello\?$/);
  assert.equal(lines[1], "General: 0 unread, last: hello?");
  assert.equal(lines[2], "online: ann");
});

test("history.js pages back to the first message", async () => {
  await Promise.all(Array.from({ length: 45 }, (_, i) => bobSays(`filler ${i}`)));
  const { body } = await server.api("ann", "GET", `/rooms/${room}/messages?limit=1`);
  const last = body.messages[0].seq;
  const out = await example("history.js");
  const pages = [...out.matchAll(/^page: #(\d+) to #(\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.match(out, /^the newest 20, more before them: true$/m);
  assert.deepEqual(pages[0], [last - 19, last]);
  assert.deepEqual(pages[pages.length - 1][0], 1);
  for (let i = 1; i < pages.length; i++) assert.equal(pages[i][1], pages[i - 1][0] - 1, "pages join up");
});

test("conversation.js replies, reacts, edits and deletes", async () => {
  const out = await example("conversation.js");
  assert.match(out, /^reactions: \{"👍":\["ann"\]\}$/m);
  assert.match(out, /^edited #\d+: Or 12:30\?$/m);
  assert.match(out, /^deleted #\d+$/m);
  assert.match(out, /^typing now: nobody$/m);
  const messages = await server.allMessages("ann", room);
  const [question, answer, location] = messages.slice(-3);
  assert.equal(question.content, "Lunch at 12?");
  assert.deepEqual(question.reactions, { "👍": ["ann"] });
  assert.equal(answer.reply_to, question.id);
  assert.equal(answer.deleted, true);
  assert.equal(location.message_type, "location");
  assert.deepEqual(location.location, { lat: 52.52, lng: 13.405 });
});

test("files.js uploads and sends a file", async () => {
  const file = path.join(server.dataDir, "plan.txt");
  writeFileSync(file, "step 1\n");
  const out = await example("files.js", [file, "text/plain"]);
  assert.match(out, /^plan\.txt \(text\/plain, 7 bytes\) sent as #\d+$/m);
  const last = (await server.allMessages("bob", room)).at(-1);
  assert.equal(last.message_type, "file");
  assert.equal(last.attachment.name, "plan.txt");
});

test("commands.js runs commands and streams the assistant's answer", async () => {
  const out = await example("commands.js");
  assert.match(out, /^\/status: ok, room general$/m);
  assert.match(out, /^\/frobnicate: not_found$/m);
  assert.match(out, /^assistant so far: Use the $/m);
  assert.match(out, /^assistant so far: Use the link in the e-mail\.$/m);
  assert.match(out, /^assistant: Use the link in the e-mail\.$/m);
});

test("tokens.js refreshes a short-lived token on the open connection", async () => {
  const out = await example("tokens.js");
  assert.deepEqual(out.trim().split("\n").slice(0, 2), ["connecting", "open"]);
  assert.match(out, /^token refreshed: valid until \d{4}-\d\d-\d\dT/m);
  assert.doesNotMatch(out, /reconnecting/);
});

test("docs/client.md shows every example as it is, and links only inside the repository", () => {
  const doc = readFileSync(DOC, "utf8");
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith(".js"));
  assert.ok(files.length >= 7);
  for (const file of files) {
    const text = readFileSync(path.join(EXAMPLES, file), "utf8");
    assert.ok(doc.includes("```js\n" + text + "```"), `docs/client.md shows clients/js/examples/${file} verbatim`);
  }
  for (const [, target] of doc.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
    if (/^[a-z]+:/.test(target)) continue; // a web address
    const resolved = path.resolve(path.dirname(DOC), target);
    assert.ok(resolved.startsWith(REPO + path.sep), `${target} stays inside the repository`);
    assert.doesNotThrow(() => readFileSync(resolved.endsWith("/") ? path.join(resolved, "README.md") : resolved), `${target} exists`);
  }
});
