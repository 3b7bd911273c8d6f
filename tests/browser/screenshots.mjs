// Takes the README's screenshots (docs/screenshots/*.png): a real server,
// Debian's Chromium, and a few people chatting through the page.
//   CONFAB_BIN=target/debug/confab node tests/browser/screenshots.mjs

import { mkdirSync } from "node:fs";
import path from "node:path";
import { REPO, Server, launch, png, roomEntry, send, signIn, startDirect } from "./helpers.mjs";

const OUT = path.join(REPO, "docs/screenshots");
mkdirSync(OUT, { recursive: true });
const desktop = { width: 1180, height: 800 };
const phone = { width: 390, height: 780 };

const server = await Server.start();
const browser = await launch();
try {
  // 1. The sign-in screen, as a first visitor sees it.
  {
    const context = await browser.newContext({ viewport: { width: 900, height: 860 } });
    const page = await context.newPage();
    await page.goto(server.url);
    await page.getByLabel("Your name").fill("Bob");
    await shoot(page, "sign-in.png");
    await context.close();
  }

  const alice = await signIn(browser, server, "Alice", { viewport: desktop });
  const carol = await signIn(browser, server, "Carol", { viewport: desktop });
  const bob = await signIn(browser, server, "Bob", { viewport: desktop });

  // Rooms: Alice and Bob; a group of three; Carol and Bob; Bob and the assistant.
  await startDirect(alice.page, "bob");
  const aliceBob = await currentRoom(alice.page);
  await group(carol.page, "Trip to Lisbon", "alice, bob");
  const trip = await currentRoom(carol.page);
  await startDirect(carol.page, "bob");
  await send(carol.page, "Did you get the tickets?");

  // The conversation Bob will look at, built through the page.
  await roomEntry(alice.page, "Bob").click();
  await send(alice.page, "Hi Bob! Here is the floor plan for Saturday 🏠");
  await alice.page.locator("#file-input").setInputFiles({ name: "floor-plan.png", mimeType: "image/png", buffer: png(320, 180) });
  await send(alice.page, "Kitchen on the left, the living room faces the garden.");
  await roomEntry(bob.page, "Alice").click();
  await bob.page.locator("#messages figure.image img").waitFor();
  await react(bob.page, "Hi Bob!", "❤️");
  await react(bob.page, "Kitchen on the left", "👍");
  await replyTo(bob.page, "Kitchen on the left", "Looks great. Where do we meet?");
  await alice.page.getByRole("button", { name: "Share a location" }).click();
  await alice.page.getByLabel("Latitude").fill("38.71380");
  await alice.page.getByLabel("Longitude").fill("-9.13940");
  await alice.page.getByRole("button", { name: "Send location" }).click();
  await send(alice.page, "At the café on the corner, 10:00?");
  await send(bob.page, "Perfect, see you there!");
  await alice.page.getByRole("textbox", { name: "Message" }).pressSequentially("Bring the", { delay: 15 });
  await bob.page.locator("#typing", { hasText: "Alice is typing" }).waitFor();
  await bob.page.locator("#messages li.msg.mine .status", { hasText: "Seen by Alice" }).waitFor();

  // Unread messages elsewhere, for the badges of Bob's list.
  await carol.page.evaluate(async (room) => {
    const client = /** @type {any} */ (window).confab;
    await client.send(room, "Flights are booked ✈️");
    await client.send(room, "Who wants the window seat?");
  }, trip);
  await carol.page.evaluate(async () => {
    const client = /** @type {any} */ (window).confab;
    const direct = client.roomList.find((/** @type {any} */ r) => r.room_type === "direct");
    await client.send(direct.id, "I can pick them up tomorrow.");
  });
  await roomEntry(bob.page, "Trip to Lisbon").locator(".badge", { hasText: "2" }).waitFor();
  await roomEntry(bob.page, "Carol").locator(".badge", { hasText: "2" }).waitFor();
  await bob.page.mouse.move(0, 0);
  await bob.page.waitForTimeout(3000); // the banner steps aside once live
  await bob.page.evaluate(() => /** @type {HTMLElement} */ (document.activeElement)?.blur());
  await shoot(bob.page, "conversation.png");

  // 3. The room list on its own (Bob's, at phone width: the list view).
  const bobPhone = await signIn(browser, server, "Bob", { viewport: phone });
  await roomEntry(bobPhone.page, "Trip to Lisbon").locator(".badge").waitFor();
  await bobPhone.page.waitForTimeout(3000);
  await shoot(bobPhone.page, "room-list.png");
  // 4. A room at phone width.
  await roomEntry(bobPhone.page, "Alice").click();
  await bobPhone.page.locator("#messages figure.image img").waitFor();
  await bobPhone.page.locator("#scroller").evaluate((s) => (s.scrollTop = s.scrollHeight));
  await bobPhone.page.waitForTimeout(300);
  await bobPhone.page.evaluate(() => /** @type {HTMLElement} */ (document.activeElement)?.blur());
  await shoot(bobPhone.page, "phone.png");
  void aliceBob;
} catch (error) {
  for (const [i, context] of browser.contexts().entries()) {
    for (const page of context.pages()) await page.screenshot({ path: `/tmp/screenshot-failure-${i}.png` });
  }
  throw error;
} finally {
  await browser.close();
  await server.cleanup();
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} name
 */
async function shoot(page, name) {
  await page.screenshot({ path: path.join(OUT, name) });
  console.log(`wrote docs/screenshots/${name}`);
}

/** @param {import("playwright-core").Page} page the id of the room the page shows */
function currentRoom(page) {
  return page.evaluate(() => decodeURIComponent(location.hash.replace(/^#room\//, "")));
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} name
 * @param {string} members
 */
async function group(page, name, members) {
  await page.getByRole("button", { name: "New conversation" }).click();
  await page.getByLabel("A group").check();
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Members' user ids (separated by commas)").fill(members);
  await page.getByRole("button", { name: "Start" }).click();
  await page.locator("#room-title", { hasText: name }).waitFor();
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} text
 */
function message(page, text) {
  return page.locator("#messages li.msg", { has: page.locator(".text", { hasText: text }) }).first();
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} text
 * @param {string} emoji
 */
async function react(page, text, emoji) {
  const m = message(page, text);
  await m.hover();
  await m.getByRole("button", { name: "React", exact: true }).click();
  await m.getByRole("button", { name: `React with ${emoji}` }).click();
  await m.locator(".chip", { hasText: emoji }).waitFor();
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} text
 * @param {string} answer
 */
async function replyTo(page, text, answer) {
  const m = message(page, text);
  await m.hover();
  await m.getByRole("button", { name: "Reply" }).click();
  await send(page, answer);
}
