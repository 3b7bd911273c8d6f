// The room list, unread counts, read markers, history and presence.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { TestServer, collect, next, until } from "./helpers.js";

/** @type {TestServer} */
let server;
before(async () => {
  server = await TestServer.start();
});
after(() => server.cleanup());

/**
 * @param {import("../src/confab.js").ConfabClient} client
 * @param {string} roomId
 */
const unread = (client, roomId) => client.roomList.find((r) => r.id === roomId)?.unread_count;

test("the room list keeps unread counts current from events, and read markers clear them on every connection", async () => {
  const first = await server.room("ann", ["bob"], { name: "First" });
  const second = await server.room("ann", ["bob"], { name: "Second" });
  const ann = server.client("ann");
  const bob = server.client("bob");
  const bobElsewhere = server.client("bob");
  await Promise.all([ann.connect(), bob.connect(), bobElsewhere.connect()]);
  const listed = await bob.rooms();
  assert.deepEqual(new Set(listed.map((r) => r.id)), new Set([first, second]));
  assert.ok(listed.every((r) => r.unread_count === 0));
  await Promise.all([ann.subscribe(first), bob.subscribe(first), bob.subscribe(second)]);

  await ann.send(first, "one");
  await ann.send(first, "two");
  await ann.send(second, "three");
  await until(() => unread(bob, first) === 2 && unread(bob, second) === 1, "bob's unread counts");
  assert.deepEqual(
    bob.roomList.map((r) => [r.id, r.last_message_content]),
    [
      [second, "three"],
      [first, "two"],
    ],
    "newest activity first",
  );
  // Own messages never count.
  await bob.send(first, "mine");
  await until(() => bob.roomList[0].id === first, "the room moves up");
  assert.equal(unread(bob, first), 2);

  await bobElsewhere.rooms();
  const read = next(ann, "message_read");
  await bob.markRead(first, { upToSeq: 1 });
  const receipt = await read;
  assert.equal(receipt.user_id, "bob");
  assert.equal(receipt.up_to_seq, 1);
  await until(() => unread(bob, first) === 1 && unread(bobElsewhere, first) === 1, "one left unread on both of bob's connections");
  await bob.markRead(first);
  await until(() => unread(bob, first) === 0 && unread(bobElsewhere, first) === 0, "all read on both connections");

  const truth = await server.api("bob", "GET", "/rooms");
  for (const room of truth.body.rooms) assert.equal(unread(bob, room.id), room.unread_count, `room ${room.id}`);
});

test("rooms added and removed show in the list without asking again", async () => {
  const ann = server.client("ann");
  const bob = server.client("bob");
  await Promise.all([ann.connect(), bob.connect()]);
  await bob.rooms();
  const changes = collect(bob, "rooms");
  const created = await ann.createRoom({ name: "Later", members: ["bob"] });
  assert.equal(created.name, "Later");
  assert.ok(ann.roomList.some((r) => r.id === created.id), "the creator's list has it at once");
  await until(() => bob.roomList.some((r) => r.id === created.id), "room_added on bob's side");
  assert.ok(changes.length >= 1);
  const { status } = await server.api("ann", "DELETE", `/rooms/${created.id}/members/bob`);
  assert.equal(status, 204);
  await until(() => !bob.roomList.some((r) => r.id === created.id), "room_removed on bob's side");
});

test("history pages go back by seq, each message once", async () => {
  const room = await server.room("ann", ["bob"]);
  const ann = server.client("ann");
  await ann.connect();
  const total = 125;
  await Promise.all(Array.from({ length: total }, (_, i) => ann.send(room, `m${i + 1}`)));
  const newest = await ann.history(room);
  assert.equal(newest.messages.length, 50);
  assert.equal(newest.messages[0].seq, total - 49);
  assert.equal(newest.has_more, true);
  /** @type {number[][]} */
  const pages = [];
  for await (const page of ann.olderPages(room, { limit: 50 })) pages.push(page.map((m) => m.seq));
  assert.deepEqual(
    pages.map((p) => [p[0], p[p.length - 1]]),
    [
      [76, 125],
      [26, 75],
      [1, 25],
    ],
  );
  assert.deepEqual(pages.reverse().flat(), Array.from({ length: total }, (_, i) => i + 1));
  const tail = await ann.history(room, { afterSeq: 120 });
  assert.deepEqual(
    tail.messages.map((m) => m.content),
    ["m121", "m122", "m123", "m124", "m125"],
  );
  assert.equal(tail.has_more, false);
  const fromMiddle = [];
  for await (const page of ann.olderPages(room, { beforeSeq: 11, limit: 4 })) fromMiddle.push(...page.map((m) => m.seq));
  assert.deepEqual(fromMiddle, [7, 8, 9, 10, 3, 4, 5, 6, 1, 2]);
});

test("presence: who is online, from answers and events, in the room list too", async () => {
  const room = await server.room("cai", ["dee"]);
  const cai = server.client("cai");
  await cai.connect();
  await cai.subscribe(room);
  await cai.rooms();
  const participant = () => cai.roomList.find((r) => r.id === room)?.participants?.find((p) => p.id === "dee");
  assert.equal(participant()?.online, false);
  assert.deepEqual(await cai.presence(room), ["cai"]);
  const dee = server.client("dee");
  const online = next(cai, "user_online", (e) => e.user_id === "dee");
  await dee.connect();
  await online;
  assert.equal(cai.isOnline("dee"), true);
  assert.equal(participant()?.online, true);
  assert.deepEqual(new Set(await cai.presence(room)), new Set(["cai", "dee"]));
  const offline = next(cai, "user_offline", (e) => e.user_id === "dee");
  dee.close();
  await offline;
  assert.equal(cai.isOnline("dee"), false);
  assert.equal(participant()?.online, false);
});
