// The client's pure parts, without a server: backoff, close codes, JWT
// expiry, in-order delivery and the event iterator's bound.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Emitter } from "../src/emitter.js";
import { backoffDelay, shouldReconnect } from "../src/policy.js";
import { RoomStream } from "../src/sequence.js";
import { jwtExpiry, refreshDelay } from "../src/token.js";
import { isCommand } from "../src/live.js";
import { RoomList } from "../src/rooms.js";
import { mintJwt } from "./helpers.js";

test("backoff grows exponentially to its ceiling, with full jitter below it", () => {
  const ceilings = [0, 1, 2, 3, 10, 100].map((n) => backoffDelay(n, { jitter: false }));
  assert.deepEqual(ceilings, [500, 1000, 2000, 4000, 30000, 30000]);
  assert.equal(backoffDelay(3, {}, () => 0), 0);
  assert.equal(backoffDelay(3, {}, () => 0.5), 2000);
  assert.equal(backoffDelay(1, { initialMs: 100, maxMs: 150 }, () => 0.999999), 150);
});

test("refusals end the client; blips and an expiry with a renewable token do not", () => {
  const fresh = { wasOpen: false, canRenewToken: true };
  const open = { wasOpen: true, canRenewToken: true };
  for (const code of [4001, 4002, 4003, 4004]) assert.equal(shouldReconnect(code, fresh), false, String(code));
  for (const code of [1000, 1006, 1011, 1012, 4000, 4008, 4029]) assert.equal(shouldReconnect(code, fresh), true, String(code));
  assert.equal(shouldReconnect(4003, open), true);
  assert.equal(shouldReconnect(4003, { wasOpen: true, canRenewToken: false }), false);
  assert.equal(shouldReconnect(4002, open), false);
});

test("a JWT's exp is read without verifying it, and refreshes come before it", () => {
  assert.equal(jwtExpiry(mintJwt({ sub: "a", exp: 2_000_000_000 }, "any")), 2_000_000_000_000);
  assert.equal(jwtExpiry(mintJwt({ sub: "a" }, "any")), null);
  assert.equal(jwtExpiry("not a token"), null);
  assert.equal(jwtExpiry(null), null);
  // An hour's token: refreshed at three quarters; a short one, at its margin.
  assert.equal(refreshDelay(3_600_000, 60_000, 0), 2_700_000);
  assert.equal(refreshDelay(100_000, 60_000, 0), 40_000);
  assert.equal(refreshDelay(1_000, 60_000, 0), 0);
});

test("a room stream delivers each seq once, in order, holding what comes above a gap", () => {
  const stream = new RoomStream(2);
  const seqs = (/** @type {any[]} */ ms) => ms.map((m) => m.seq);
  assert.deepEqual(seqs(stream.accept({ seq: 2 })), [], "already had it");
  assert.deepEqual(seqs(stream.accept({ seq: 3 })), [3]);
  assert.deepEqual(seqs(stream.accept({ seq: 5 })), [], "held above the gap");
  assert.equal(stream.gap, true);
  assert.deepEqual(seqs(stream.accept({ seq: 6 })), []);
  assert.deepEqual(seqs(stream.accept({ seq: 4 })), [4, 5, 6], "the gap filled releases the held");
  assert.deepEqual(seqs(stream.accept({ seq: 5 })), [], "a duplicate");
  assert.equal(stream.gap, false);
  stream.target = 10;
  assert.equal(stream.behind, true);
  stream.accept({ seq: 9 });
  assert.deepEqual(seqs(stream.release()), [9], "given up on: what is held goes out");
  assert.equal(stream.behind, false);
});

test("the event iterator fails rather than grow without bound", async () => {
  const emitter = new Emitter();
  const events = emitter.events(undefined, { limit: 2 });
  for (let i = 0; i < 3; i++) emitter.emit({ type: "x", i });
  assert.deepEqual((await events.next()).value, { type: "x", i: 0 });
  assert.deepEqual((await events.next()).value, { type: "x", i: 1 });
  await assert.rejects(events.next(), /fell behind/);
  assert.equal((await events.next()).done, true);
});

test("slash commands are told from messages as the server tells them", () => {
  for (const text of ["/help", "/STATUS", "/topic Hello", "/reload 7"]) assert.equal(isCommand({ content: text }), true, text);
  for (const text of ["/me waves", "//help", "/ hi", "/path/to/file", " /help", "hello", "/héllo"]) {
    assert.equal(isCommand({ content: text }), false, text);
  }
  assert.equal(isCommand({ content: "/help", message_type: "location" }), false);
});

test("a room list read while rooms change keeps what changed meanwhile", () => {
  const list = new RoomList();
  const room = (id, extra = {}) => ({ id, name: id, last_seq: 0, unread_count: 0, last_message_time: null, ...extra });
  // The answer lists a and c; meanwhile b was added, a renamed and c removed.
  list.replace([room("a"), room("c")], [
    { type: "room_added", room: room("b") },
    { type: "room_updated", room_id: "a", updates: { name: "A" } },
    { type: "room_removed", room_id: "c" },
  ]);
  assert.deepEqual(list.list().map((r) => [r.id, r.name]), [["a", "A"], ["b", "b"]]);
  // Without frames it is the answer alone.
  list.replace([room("z")]);
  assert.deepEqual(list.list().map((r) => r.id), ["z"]);
});
