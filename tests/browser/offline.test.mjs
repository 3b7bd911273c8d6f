// One user goes offline (the browser's network cut) while the server is
// stopped and restarted on the same data dir and port; the other goes on
// chatting. When the first comes back: the messages sent meanwhile appear
// once, and the one typed while offline is sent once.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Server, launch, roomEntry, send, signIn, startDirect, texts } from "./helpers.mjs";

/** @type {Server} */
let server;
/** @type {import("playwright-core").Browser} */
let browser;

before(async () => {
  server = await Server.start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.cleanup();
});

test("offline through a server restart: nothing lost, nothing doubled", async () => {
  const ann = await signIn(browser, server, "Ann");
  const bob = await signIn(browser, server, "Bob");
  await startDirect(ann.page, "bob");
  await roomEntry(bob.page, "Ann").click();
  await send(ann.page, "before");
  await waitTexts(bob.page, ["before"]);
  await waitTexts(ann.page, ["before"]);

  // Ann's network goes; the server stops and comes back on the same port.
  await recordStates(ann.page);
  await ann.context.setOffline(true);
  await server.stop();
  await server.start();
  await bob.page.locator("#banner[data-state=live]").waitFor({ state: "attached" });
  // Ann learns of the drop from the server's close, or at the latest from
  // her unanswered pings (twice the 20 s ping interval).
  await ann.page
    .locator("#banner[data-state=reconnecting]")
    .waitFor({ timeout: 60_000 })
    .catch(async (e) => assert.fail(`${e.message}\nAnn's connection: ${await states(ann.page)}\nserver: ${server.stderr}`));
  assert.match((await ann.page.locator("#banner-text").textContent()) ?? "", /Reconnecting in \d+ s/);

  // Bob goes on; Ann, offline, writes one too: it waits, shown as pending.
  await send(bob.page, "while you were away");
  await send(bob.page, "still there?");
  await waitTexts(bob.page, ["before", "while you were away", "still there?"]);
  await send(ann.page, "typed offline");
  const pending = ann.page.locator("#messages li.pending");
  await pending.locator(".status", { hasText: "Waiting for the connection" }).waitFor();

  // Back online: the page reconnects at once (the browser's online event).
  await ann.context.setOffline(false);
  await ann.page.locator("#banner[data-state=live]").waitFor({ state: "attached" });
  const all = ["before", "while you were away", "still there?", "typed offline"];
  await waitTexts(ann.page, all);
  await waitTexts(bob.page, all);
  await pending.waitFor({ state: "detached" });

  // Once each in the room's history too (the send was retried with its
  // client_msg_id, not stored twice), and once on each screen.
  const stored = await bob.page.evaluate(async () => {
    const client = /** @type {any} */ (window).confab;
    const room = client.roomList[0].id;
    const page = await client.history(room, { limit: 100 });
    return page.messages.map((/** @type {any} */ m) => m.content);
  });
  assert.deepEqual(stored, all);
  // Nothing arrives late, either.
  await ann.page.waitForTimeout(300);
  assert.deepEqual(await texts(ann.page), all);
  assert.deepEqual(await texts(bob.page), all);
  assert.deepEqual([...ann.errors, ...bob.errors], []);
});

/**
 * Keeps the page's connection states from now on, for {@link states}: when
 * a wait fails, they say what the connection did instead.
 * @param {import("playwright-core").Page} page
 */
async function recordStates(page) {
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.connectionStates = [];
    w.confab.on("state", (/** @type {any} */ e) =>
      w.connectionStates.push([e.state, e.code, e.reason, e.delay].filter((x) => x !== undefined).join(" ")),
    );
  });
}

/**
 * The states {@link recordStates} kept, oldest first.
 * @param {import("playwright-core").Page} page
 */
async function states(page) {
  return page.evaluate(() => JSON.stringify(/** @type {any} */ (window).connectionStates));
}

/**
 * Waits until the stored messages on screen are exactly `expected`.
 * @param {import("playwright-core").Page} page
 * @param {string[]} expected
 */
async function waitTexts(page, expected) {
  const end = Date.now() + 20_000;
  let seen;
  for (;;) {
    seen = await texts(page);
    if (JSON.stringify(seen) === JSON.stringify(expected)) return;
    if (Date.now() > end) assert.fail(`expected ${JSON.stringify(expected)}, saw ${JSON.stringify(seen)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
