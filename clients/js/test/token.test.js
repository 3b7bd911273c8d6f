// Tokens that run out: refreshed on the open connection, or the end of it.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ConfabError } from "../src/confab.js";
import { TestServer, collect, sleep, tapped, token, until } from "./helpers.js";

/** @type {TestServer} */
let server;
before(async () => {
  // No leeway: a token is done at its exp, to the second.
  server = await TestServer.start({ env: { CONFAB_AUTH__LEEWAY_S: "0" } });
});
after(() => server.cleanup());

const now = () => Math.floor(Date.now() / 1000);

test("a function token source is asked again before expiry, and the same connection lives on", async () => {
  const room = await server.room("ann", []);
  /** @type {number[]} */
  const minted = [];
  const tap = tapped();
  const ann = server.client(
    () => {
      const exp = now() + 2;
      minted.push(exp);
      return token("ann", { exp });
    },
    { WebSocket: tap.WebSocket, refreshMarginMs: 700 },
  );
  const states = collect(ann, "state");
  const refreshed = collect(ann, "token_refreshed");
  const hello = await ann.connect();
  const firstExpiry = minted[0] * 1000;
  await until(() => Date.now() > firstExpiry + 1500, "well past the first token's expiry", 6000);
  assert.equal(ann.state, "open");
  assert.deepEqual(states.map((e) => e.state), ["connecting", "open"], "never dropped");
  assert.equal((await ann.send(room, "still here")).seq, 1);
  assert.equal(ann.hello.connection_id, hello.connection_id, "the same connection");
  assert.ok(refreshed.length >= 1);
  const refreshes = tap.sent.filter((f) => f.type === "refresh_token");
  assert.ok(refreshes.length >= 1);
  assert.ok(refreshed.every((e) => e.expires_at > firstExpiry), "each refresh moved the expiry later");
});

test("a string token cannot be renewed: at its expiry the connection ends with 4003, without a reconnect", async () => {
  const ann = server.client(token("ann", { exp: now() + 2 }), { reconnect: { initialMs: 1, maxMs: 1 } });
  const states = collect(ann, "state");
  await ann.connect();
  await until(() => ann.state === "closed", "closed at expiry", 6000);
  assert.deepEqual(states.map((e) => e.state), ["connecting", "open", "closed"]);
  assert.equal(states[2].code, 4003);
  await assert.rejects(ann.send("any", "x"), (e) => e instanceof ConfabError && e.code === "closed");
});

test("a connection that expired anyway comes back with a fresh token from the function", async () => {
  const room = await server.room("ann", []);
  // The source gives the same short token for the whole first connection,
  // so no refresh can move its expiry and the server closes it with 4003;
  // the next connection gets a fresh one.
  const stale = token("ann", { exp: now() + 2 });
  let attempts = 0;
  const ann = server.client(() => (attempts <= 1 ? stale : token("ann", { ttlS: 600 })), {
    refreshMarginMs: 0,
    reconnect: { initialMs: 1, maxMs: 1 },
  });
  const states = collect(ann, "state");
  ann.on("state", ({ state }) => {
    if (state === "connecting") attempts += 1;
  });
  await ann.connect();
  await until(() => states.some((e) => e.state === "reconnecting"), "the expiry", 8000);
  assert.equal(states.find((e) => e.state === "reconnecting").code, 4003);
  await until(() => ann.state === "open", "open again");
  assert.equal(attempts, 2, "one reconnect");
  assert.equal((await ann.send(room, "back")).seq, 1);
  await sleep(50);
  assert.equal(ann.state, "open");
});
