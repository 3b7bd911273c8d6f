// Two people chat in two browser windows (two Chromium contexts, each its
// own sessionStorage): typing, unread badges, live reordering, read
// receipts, an image, the XSS probe, keyboard-only sending, phone width,
// and where the token goes. One server and one browser for the file.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Server, launch, png, roomEntry, send, signIn, startDirect, texts } from "./helpers.mjs";

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

describe("two users", () => {
  test("chat, see typing, unread badges, live reordering and read receipts", async () => {
    const ann = await signIn(browser, server, "Ann");
    const bob = await signIn(browser, server, "Bob");
    await startDirect(ann.page, "bob");
    await assertText(ann.page.locator("#room-title"), "Bob");

    // Bob is on his room list: Ann's messages make an unread badge.
    await send(ann.page, "Hello Bob");
    await send(ann.page, "Are you there?");
    const annInBob = roomEntry(bob.page, "Ann");
    await assertText(annInBob.locator(".badge"), "2");
    await assertText(annInBob.locator(".room-last"), "Are you there?");
    // Sent, not seen yet.
    const annLast = ann.page.locator("#messages li.msg.mine").last();
    await assertText(annLast.locator(".status"), "Sent");

    // A second room, newer: it goes to the top of Bob's list; a message in
    // the first brings that one back up.
    await ann.page.getByRole("button", { name: "New conversation" }).click();
    await ann.page.getByLabel("A group").check();
    await ann.page.getByLabel("Name", { exact: true }).fill("Lunch");
    await ann.page.getByLabel("Members' user ids (separated by commas)").fill("bob");
    await ann.page.getByRole("button", { name: "Start" }).click();
    await assertText(ann.page.locator("#room-title"), "Lunch");
    await send(ann.page, "Pizza?");
    await bob.page.waitForFunction(() => document.querySelector("#room-list .room-name")?.textContent?.includes("Lunch"));
    await roomEntry(ann.page, "Bob").click();
    await assertText(ann.page.locator("#room-title"), "Bob");
    await send(ann.page, "Bob?");
    await bob.page.waitForFunction(() => document.querySelector("#room-list .room-name")?.textContent === "Ann");
    await assertText(annInBob.locator(".badge"), "3");

    // Bob opens the room: the messages are there, the badge goes, and Ann
    // sees that he read them.
    await annInBob.click();
    assert.deepEqual(await waitTexts(bob.page, 3), ["Hello Bob", "Are you there?", "Bob?"]);
    await bob.page.waitForFunction(() => !document.querySelector("#room-list button[aria-current] .badge"));
    await assertText(annLast.locator(".status"), "Seen by Bob");
    assert.equal(await ann.page.locator("#messages .status", { hasText: "Seen by" }).count(), 1, "one 'seen by', under the newest read");

    // Bob types: Ann sees it; he sends: it stops, and his message arrives.
    await bob.page.getByRole("textbox", { name: "Message" }).pressSequentially("Yes, here", { delay: 20 });
    await assertText(ann.page.locator("#typing"), "Bob is typing…");
    await bob.page.getByRole("textbox", { name: "Message" }).press("Enter");
    await assertText(ann.page.locator("#messages li.msg.theirs .text").last(), "Yes, here");
    await assertText(ann.page.locator("#typing"), "");
    // Ann has the room open: she read it at once, and Bob sees that.
    await assertText(bob.page.locator("#messages li.msg.mine .status").last(), "Seen by Ann");
    // And Ann's list shows no badge for the room she is in.
    assert.equal(await roomEntry(ann.page, "Bob").locator(".badge").count(), 0);
    // The Lunch room, unread for Bob, still has its badge.
    await assertText(roomEntry(bob.page, "Lunch").locator(".badge"), "1");

    assert.deepEqual([...ann.errors, ...bob.errors], []);
    await ann.context.close();
    await bob.context.close();
  });

  test("an image uploaded in one window appears in the other", async () => {
    const ann = await signIn(browser, server, "Ann Image");
    const bob = await signIn(browser, server, "Bob Image");
    await startDirect(ann.page, "bob-image");
    await roomEntry(bob.page, "Ann Image").click();

    await ann.page.locator("#file-input").setInputFiles({ name: "gradient.png", mimeType: "image/png", buffer: png(64, 48) });
    // A preview before sending, from the local file.
    await ann.page.locator("#attachment-preview img").waitFor();
    await send(ann.page, "the plan");

    const img = bob.page.locator("#messages li.msg.theirs figure.image img");
    await img.waitFor();
    const seen = await img.evaluate(async (node) => {
      const image = /** @type {HTMLImageElement} */ (node);
      if (!image.complete) await new Promise((resolve) => image.addEventListener("load", resolve, { once: true }));
      return { src: image.src, width: image.naturalWidth, height: image.naturalHeight, alt: image.alt };
    });
    assert.match(seen.src, /^blob:/, "downloaded with the token, shown from a blob: URL");
    assert.deepEqual([seen.width, seen.height, seen.alt], [64, 48, "the plan"]);
    await assertText(bob.page.locator("#messages li.msg.theirs .text").last(), "the plan");
    // Ann's own copy is the stored one now, not the pending preview.
    await ann.page.locator("#messages li.msg.mine:not(.pending) figure.image img").waitFor();
    assert.equal(await ann.page.locator("#messages li.pending").count(), 0);

    assert.deepEqual([...ann.errors, ...bob.errors], []);
    await ann.context.close();
    await bob.context.close();
  });
});

describe("safety", () => {
  test("the XSS probe shows as text and runs nothing", async () => {
    const probe = `<img src=x onerror="window.__xss=1">`;
    const evil = `<img src=x onerror=window.__xss=2>`;
    const eve = await signIn(browser, server, evil);
    const bob = await signIn(browser, server, "Bob Probe");
    const eveId = await eve.page.evaluate(() => window.confab.hello.user_id);
    await startDirect(bob.page, eveId);
    await roomEntry(eve.page, "Bob Probe").click();
    await send(eve.page, probe);
    await send(eve.page, `<script>window.__xss=3</script>`);

    assert.deepEqual(await waitTexts(bob.page, 2), [probe, `<script>window.__xss=3</script>`]);
    // Her name, the room's title and the last message: text too.
    await assertText(bob.page.locator("#messages li.msg.theirs .sender").first(), evil);
    await assertText(roomEntry(bob.page, evil).locator(".room-last"), `<script>window.__xss=3</script>`);
    await assertText(bob.page.locator("#room-title"), evil);
    for (const p of [eve.page, bob.page]) {
      assert.equal(await p.locator("#messages img, #room-list img, #messages script").count(), 0);
      assert.equal(await p.evaluate(() => /** @type {any} */ (window).__xss), undefined);
    }
    assert.deepEqual([...eve.errors, ...bob.errors], []);
    await eve.context.close();
    await bob.context.close();
  });

  test("the token stays out of every URL, the page has its CSP and no inline code", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    /** @type {string[]} */
    const urls = [];
    page.on("request", (r) => urls.push(r.url()));
    page.on("websocket", (ws) => urls.push(ws.url()));
    const response = await page.goto(server.url);
    const csp = response?.headers()["content-security-policy"] ?? "";
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const html = (await response?.text()) ?? "";
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, "no inline script");
    assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, "no inline style or handler");

    await page.getByLabel("Your name").fill("Tess");
    await page.getByLabel("Your name").press("Enter");
    await page.locator("#banner[data-state=live]").waitFor({ state: "attached" });
    const stored = await page.evaluate(() => ({ session: sessionStorage.getItem("confab.session"), local: localStorage.length }));
    const token = JSON.parse(stored.session ?? "{}").token;
    assert.ok(token, "the token is in sessionStorage");
    assert.equal(stored.local, 0, "nothing in localStorage");
    assert.ok(urls.some((u) => u.endsWith("/ws")), "the socket was opened");
    for (const u of urls) assert.ok(!u.includes(token) && !/token=/.test(u), `no token in ${u}`);
    assert.ok(!page.url().includes(token));

    // A reload in the same tab stays signed in; signing out forgets the token.
    await page.reload();
    await page.locator("#banner[data-state=live]").waitFor({ state: "attached" });
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Your name").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("confab.session")), null);
    await context.close();
  });
});

describe("sign-in", () => {
  test("a pasted token the server refuses brings the sign-in back with the reason", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url);
    const b64 = (/** @type {any} */ value) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const forged = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: "mallory", exp: Math.floor(Date.now() / 1000) + 600 })}.${b64("not the signature")}`;
    await page.getByLabel("Token", { exact: true }).fill("not a token");
    await page.getByRole("button", { name: "Sign in with the token" }).click();
    await page.getByRole("alert").filter({ hasText: "That is not a token" }).waitFor();
    await page.getByLabel("Token", { exact: true }).fill(forged);
    await page.getByRole("button", { name: "Sign in with the token" }).click();
    await page.getByRole("alert").filter({ hasText: "The token was refused (invalid or expired)." }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("confab.session")), null, "the refused token is forgotten");
    assert.ok(await page.locator("#chat").isHidden());
    await context.close();
  });
});

describe("keyboard and small screens", () => {
  test("keyboard only: Enter sends, Shift+Enter makes a new line, Esc cancels an edit", async () => {
    const bob = await signIn(browser, server, "Bob Keys");
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url);
    const kb = page.keyboard;
    // The name field gets the focus.
    await page.waitForFunction(() => document.activeElement?.id === "dev-name");
    await kb.type("Ann Keys");
    await kb.press("Enter");
    await page.locator("#banner[data-state=live]").waitFor({ state: "attached" });
    await tabTo(page, "#new-room-button");
    await kb.press("Enter");
    await tabTo(page, "#new-room-members");
    await kb.type("bob-keys");
    await kb.press("Enter");
    await page.locator("#room-view").waitFor({ state: "visible" });
    assert.equal(await page.evaluate(() => document.activeElement?.id), "message-input");

    await kb.type("line one");
    await kb.press("Shift+Enter");
    await kb.type("line two");
    await kb.press("Enter");
    await kb.type("second");
    await kb.press("Enter");
    await roomEntry(bob.page, "Ann Keys").click();
    assert.deepEqual(await waitTexts(bob.page, 2), ["line one\nline two", "second"]);

    // Arrow Up edits the last message; Esc cancels and leaves it as it was.
    await kb.press("ArrowUp");
    await page.locator("#context-bar[data-kind=edit]").waitFor();
    assert.equal(await page.getByRole("textbox", { name: "Message" }).inputValue(), "second");
    await kb.press("End");
    await kb.type(" (not saved)");
    await kb.press("Escape");
    await page.locator("#context-bar").waitFor({ state: "hidden" });
    assert.equal(await page.getByRole("textbox", { name: "Message" }).inputValue(), "");
    // Again, and Enter saves it this time.
    await kb.press("ArrowUp");
    await kb.press("End");
    await kb.type(" thoughts");
    await kb.press("Enter");
    await assertText(bob.page.locator("#messages li.msg.theirs .text").last(), "second thoughts");
    await bob.page.locator("#messages li.msg.theirs .edited").waitFor();
    assert.deepEqual(await texts(bob.page), ["line one\nline two", "second thoughts"], "edited in place, nothing added");

    await context.close();
    await bob.context.close();
  });

  test("at phone width the page shows the list or the room", async () => {
    const viewport = { width: 390, height: 760 };
    const ann = await signIn(browser, server, "Ann Phone", { viewport });
    const list = ann.page.locator("#sidebar");
    const room = ann.page.locator("#room");
    assert.ok(await list.isVisible());
    assert.ok(!(await room.isVisible()));
    await startDirect(ann.page, "bob-phone");
    assert.ok(!(await list.isVisible()));
    await send(ann.page, "from my phone");
    await ann.page.locator("#messages li.msg.mine:not(.pending)").waitFor();
    assert.ok(await ann.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no sideways scrolling");
    await ann.page.getByRole("button", { name: "Back to the conversations" }).click();
    assert.ok(await list.isVisible());
    assert.ok(!(await room.isVisible()));
    // The browser's Back button works the same way.
    await roomEntry(ann.page, "bob-phone").click();
    await room.waitFor({ state: "visible" });
    await ann.page.goBack();
    await list.waitFor({ state: "visible" });
    assert.deepEqual(ann.errors, []);
    await ann.context.close();
  });
});

/**
 * Waits until the locator's text is exactly `text`.
 * @param {import("playwright-core").Locator} locator
 * @param {string} text
 */
async function assertText(locator, text) {
  const end = Date.now() + 15_000;
  let last;
  for (;;) {
    last = await locator.textContent({ timeout: Math.max(1, end - Date.now()) }).catch(() => undefined);
    if (last === text) return;
    if (Date.now() > end) assert.fail(`expected ${JSON.stringify(text)}, saw ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The stored messages' texts once there are `n` of them.
 * @param {import("playwright-core").Page} page
 * @param {number} n
 */
async function waitTexts(page, n) {
  await page.waitForFunction((count) => document.querySelectorAll("#messages li.msg:not(.pending) .text").length >= count, n);
  return texts(page);
}

/**
 * Presses Tab until `selector` has the focus (at most 30 times).
 * @param {import("playwright-core").Page} page
 * @param {string} selector
 */
async function tabTo(page, selector) {
  for (let i = 0; i < 30; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
    await page.keyboard.press("Tab");
  }
  assert.fail(`Tab never reached ${selector}`);
}
