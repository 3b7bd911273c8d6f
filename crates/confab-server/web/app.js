// The browser client's entry point (GET / loads it): signs the user in,
// connects with confab-js, and wires the room list, the open room and the
// connection banner together. The room shown is in the URL's #fragment
// (#room/ID), so reloads and the browser's Back button work; the token is
// never in the URL.

import { ConfabClient } from "./confab/confab.js";
import { connectionBanner } from "./banner.js";
import { Conversation } from "./conversation.js";
import { byId } from "./dom.js";
import { RoomList } from "./rooms.js";
import { signIn } from "./signin.js";
import { BASE, claims, forget, load, save, tokenSource } from "./session.js";
import { Store } from "./store.js";

/** Close codes that mean "this token will not do" (docs/protocol.md §2.1). */
const REFUSED = { 4001: "No token was given.", 4002: "This user is disabled or unknown here.", 4003: "The token was refused (invalid or expired)." };

/** Where a refusal's reason waits for the sign-in screen across the reload. */
const PROBLEM = "confab.problem";

async function main() {
  const problem = sessionStorage.getItem(PROBLEM) ?? undefined;
  sessionStorage.removeItem(PROBLEM);
  const session = load() ?? (await signIn(problem));
  save(session);
  const outcome = await chat(session);
  // Signed out, or the token was refused: start afresh from the sign-in
  // screen (a reload drops every listener and element of this session).
  forget();
  if (outcome) sessionStorage.setItem(PROBLEM, outcome);
  location.replace(location.pathname + location.search);
}

/**
 * Runs the chat until the user signs out (resolves null) or the server
 * refuses the token (resolves with why).
 * @param {import("./session.js").Session} session
 * @returns {Promise<string | null>}
 */
async function chat(session) {
  const client = new ConfabClient({
    url: BASE,
    token: tokenSource(session),
    // The first frame carries the token: never the URL, where logs keep it.
    tokenPlacement: "auth",
  });
  // For the tests and the curious: the page's client, in the console.
  /** @type {any} */ (window).confab = client;
  const stopBanner = connectionBanner(client);
  const ended = new Promise((resolve) => {
    client.on("state", (event) => {
      if (event.state === "closed") resolve(REFUSED[/** @type {keyof typeof REFUSED} */ (event.code)] ?? `The connection closed (${event.code}).`);
    });
  });

  let hello;
  try {
    hello = await client.connect();
  } catch {
    stopBanner();
    return ended;
  }
  const c = claims(session.token);
  const self = { id: hello.user_id, name: session.dev?.name ?? c?.name ?? hello.username ?? hello.user_id };
  client.rest
    .request("GET", "/me")
    .then((me) => {
      if (me?.name) self.name = me.name;
      byId("me-name").textContent = self.name;
    })
    .catch(() => {});
  byId("me-name").textContent = self.name;
  byId("me-id").textContent = `id: ${self.id}`;
  byId("chat").hidden = false;

  const chatEl = byId("chat");
  const store = new Store();
  /** @param {string | null} roomId */
  const navigate = (roomId) => {
    const hash = roomId ? `#room/${encodeURIComponent(roomId)}` : "";
    if (location.hash !== hash) {
      if (hash) location.hash = hash;
      else history.pushState(null, "", location.pathname + location.search);
    }
    show();
  };
  const rooms = new RoomList({ client, self, navigate });
  const conversation = new Conversation({ client, store, self, navigate });
  const show = () => {
    const match = /^#room\/(.+)$/.exec(location.hash);
    const roomId = match ? decodeURIComponent(match[1]) : null;
    chatEl.dataset.view = roomId ? "room" : "list";
    rooms.setActive(roomId);
    conversation.open(roomId);
    if (!roomId) document.title = "confab";
  };
  window.addEventListener("hashchange", show);
  window.addEventListener("popstate", show);

  // Every room is followed, so that badges, last messages, receipts and
  // presence stay live for the whole list, not only the open room.
  const followed = new Set();
  client.on("rooms", ({ rooms: list }) => {
    for (const room of list) {
      if (followed.has(room.id)) continue;
      followed.add(room.id);
      client.subscribe(room.id).catch(() => followed.delete(room.id));
    }
  });
  client.on("room_removed", ({ room_id }) => followed.delete(room_id));
  // A room added while the list is being read may be missing from the
  // answer, and the answer replaces the list: read it again then.
  let addedMeanwhile = false;
  const offAdded = client.on("room_added", () => (addedMeanwhile = true));
  try {
    for (let tries = 0; tries < 3; tries++) {
      addedMeanwhile = false;
      await client.rooms();
      if (!addedMeanwhile) break;
    }
  } catch (error) {
    conversation.showError(`Could not load your rooms: ${/** @type {any} */ (error)?.message ?? error}`);
  }
  offAdded();
  show();
  chatEl.dataset.ready = "true";

  const signedOut = new Promise((resolve) => {
    byId("sign-out").onclick = () => resolve(null);
  });
  const outcome = await Promise.race([ended, signedOut]);
  window.removeEventListener("hashchange", show);
  window.removeEventListener("popstate", show);
  stopBanner();
  client.close();
  return outcome;
}

main().catch((error) => {
  console.error(error);
  const banner = byId("banner");
  banner.hidden = false;
  banner.dataset.state = "closed";
  byId("banner-text").textContent = `The page failed: ${error?.message ?? error}. Reload to try again.`;
});
