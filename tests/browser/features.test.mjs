// The rest of the page's features, each in the browser against the real
// server: scrolling back through history, reactions, replies, deletes,
// slash commands, locations, and the assistant's reply as it streams (from
// a stand-in for an OpenAI-compatible provider, served here).

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { Server, freePort, launch, roomEntry, send, signIn, startDirect, texts } from "./helpers.mjs";

/** @type {Server} */
let server;
/** @type {import("playwright-core").Browser} */
let browser;
/** @type {import("node:http").Server} */
let provider;

/** The assistant's reply, streamed in these pieces. */
const PIECES = ["Press ", "“Forgot password” ", "on the sign-in page."];

before(async () => {
  // Chat Completions with stream: true, as server-sent events, slowly
  // enough for the page to show the reply growing.
  provider = createServer((req, res) => {
    req.resume();
    req.on("end", async () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (const piece of PIECES) {
        res.write(`data: ${JSON.stringify({ choices: [{ delta: { content: piece } }] })}\n\n`);
        await new Promise((resolve) => setTimeout(resolve, 400));
      }
      res.end("data: [DONE]\n\n");
    });
  });
  const port = await freePort();
  await new Promise((resolve) => provider.listen(port, "127.0.0.1", () => resolve(undefined)));
  server = await Server.start({
    env: {
      CONFAB_ASSISTANT__BASE_URL: `http://127.0.0.1:${port}/v1`,
      CONFAB_ASSISTANT__MODEL: "test-model",
      CONFAB_RATE_LIMIT__MESSAGES_PER_MINUTE: "6000",
      CONFAB_RATE_LIMIT__BURST: "1000",
    },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.cleanup();
  provider?.close();
});

test("scrolling up pages in older history, each message once", async () => {
  const ann = await signIn(browser, server, "Ann History");
  await startDirect(ann.page, "bob-history");
  // 120 messages, sent by Ann's own client (the page's, in the console)
  // before Bob signs in: he has none of them yet.
  await ann.page.evaluate(async () => {
    const client = /** @type {any} */ (window).confab;
    const room = client.roomList[0].id;
    for (let i = 1; i <= 120; i++) await client.send(room, `message ${i}`);
  });
  const bob = await signIn(browser, server, "Bob History");
  await roomEntry(bob.page, "Ann History").click();
  // The newest page first.
  await bob.page.waitForFunction(() => document.querySelectorAll("#messages li.msg").length >= 50);
  const first = await texts(bob.page);
  assert.equal(first[first.length - 1], "message 120");
  assert.ok(first.length < 120, "not everything at once");
  // Scrolling to the top brings the rest, in order.
  const expected = Array.from({ length: 120 }, (_, i) => `message ${i + 1}`);
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    await bob.page.locator("#scroller").evaluate((s) => (s.scrollTop = 0));
    if ((await texts(bob.page)).length === 120) break;
    await bob.page.waitForTimeout(100);
  }
  assert.deepEqual(await texts(bob.page), expected);
  await bob.page.locator("#history-state", { hasText: "The beginning of the conversation." }).waitFor();
  assert.deepEqual([...ann.errors, ...bob.errors], []);
  await ann.context.close();
  await bob.context.close();
});

test("reactions, replies, deletes, a location and a command", async () => {
  const ann = await signIn(browser, server, "Ann Features");
  const bob = await signIn(browser, server, "Bob Features");
  await startDirect(ann.page, "bob-features");
  await send(ann.page, "Lunch at 12?");
  await send(ann.page, "Typo here");
  await roomEntry(bob.page, "Ann Features").click();
  const bobSees = (text) => bob.page.locator("#messages li.msg", { has: bob.page.locator(".text", { hasText: text }) });
  const annSees = (text) => ann.page.locator("#messages li.msg", { has: ann.page.locator(".text", { hasText: text }) });

  // Bob reacts with 👍 from the picker: both see it, pressed for Bob only.
  const lunch = bobSees("Lunch at 12?");
  await lunch.hover();
  await lunch.getByRole("button", { name: "React", exact: true }).click();
  await lunch.getByRole("button", { name: "React with 👍" }).click();
  await lunch.locator(".chip[aria-pressed=true]", { hasText: "👍 1" }).waitFor();
  await annSees("Lunch at 12?").locator(".chip[aria-pressed=false]", { hasText: "👍 1" }).waitFor();

  // Bob replies to it: Ann sees the quote.
  await lunch.hover();
  await lunch.getByRole("button", { name: "Reply" }).click();
  await bob.page.locator("#context-text", { hasText: "Replying to Ann Features: Lunch at 12?" }).waitFor();
  await send(bob.page, "Sure!");
  const reply = annSees("Sure!");
  await reply.locator(".quote", { hasText: "Lunch at 12?" }).waitFor();
  assert.equal(await reply.locator(".quote-who").textContent(), "↪ Ann Features");

  // Ann deletes her typo (asked twice): Bob sees it go.
  const typo = annSees("Typo here");
  await typo.hover();
  await typo.getByRole("button", { name: "Delete" }).click();
  await typo.getByRole("button", { name: "Delete for everyone?" }).click();
  await bob.page.locator("#messages li.msg.deleted", { hasText: "This message was deleted." }).waitFor();
  assert.equal(await bobSees("Typo here").count(), 0);

  // A location, as a map link.
  await ann.page.getByRole("button", { name: "Share a location" }).click();
  await ann.page.getByLabel("Latitude").fill("52.52");
  await ann.page.getByLabel("Longitude").fill("13.405");
  await ann.page.getByRole("button", { name: "Send location" }).click();
  const link = bob.page.locator("#messages li.msg .location a");
  await link.waitFor();
  assert.equal(await link.getAttribute("href"), "https://www.openstreetmap.org/?mlat=52.52000&mlon=13.40500#map=16/52.52000/13.40500");
  assert.equal(await link.getAttribute("rel"), "noopener noreferrer");

  // /help answers Ann alone, and is stored nowhere.
  await send(ann.page, "/help");
  const note = ann.page.locator("#messages li.note");
  await note.locator(".note-text", { hasText: "/status" }).waitFor();
  assert.match((await note.textContent()) ?? "", /only you see this/);
  await bob.page.waitForTimeout(300);
  assert.equal(await bob.page.locator("#messages li.note").count(), 0);
  assert.ok(!(await texts(bob.page)).includes("/help"));

  assert.deepEqual([...ann.errors, ...bob.errors], []);
  await ann.context.close();
  await bob.context.close();
});

test("the assistant's reply streams in, then stays as its message", async () => {
  const ann = await signIn(browser, server, "Ann Asks");
  await ann.page.getByRole("button", { name: "New conversation" }).click();
  await ann.page.getByLabel("With the assistant").check();
  await ann.page.getByRole("button", { name: "Start" }).click();
  await ann.page.locator("#room-sub", { hasText: "with the assistant" }).waitFor();
  await send(ann.page, "How do I reset my password?");
  // Part of the reply, while it streams.
  const streaming = ann.page.locator("#messages li.streaming");
  await streaming.locator(".text", { hasText: "Press" }).waitFor();
  const partial = await streaming.locator(".text").textContent();
  assert.ok(partial && partial.length < PIECES.join("").length, `a partial reply: ${partial}`);
  // Then the stored reply replaces it.
  const reply = ann.page.locator("#messages li.msg.theirs:not(.streaming) .text", { hasText: PIECES.join("") });
  await reply.waitFor();
  await streaming.waitFor({ state: "detached" });
  assert.equal(await ann.page.locator("#messages li.msg.theirs .sender").last().textContent(), "Assistant");
  assert.deepEqual(ann.errors, []);
  await ann.context.close();
});
