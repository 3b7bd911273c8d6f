// Connecting, sending and receiving: the basics every app uses.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ConfabClient, ConfabError } from "../src/confab.js";
import { TestServer, collect, next, token, until } from "./helpers.js";

/** @type {TestServer} */
let server;
before(async () => {
  server = await TestServer.start();
});
after(() => server.cleanup());

test("a send resolves on its message_ack with the stored seq", async () => {
  const room = await server.room("ann", ["bob"]);
  const ann = server.client("ann");
  const hello = await ann.connect();
  assert.equal(hello.user_id, "ann");
  assert.equal(ann.state, "open");
  const first = ann.send(room, "hello");
  assert.match(first.clientMsgId, /^[0-9a-f-]{36}$/);
  const ack = await first;
  assert.equal(ack.type, "message_ack");
  assert.equal(ack.seq, 1);
  assert.equal(ack.client_msg_id, first.clientMsgId);
  assert.equal(ack.duplicate, false);
  const second = await ann.send(room, "again");
  assert.equal(second.seq, 2);
  const stored = await server.allMessages("ann", room);
  assert.deepEqual(stored.map((m) => [m.seq, m.content, m.id]), [
    [1, "hello", ack.message_id],
    [2, "again", second.message_id],
  ]);
});

test("a refused send rejects with the error's code", async () => {
  const room = await server.room("ann", ["bob"]);
  const ann = server.client("ann");
  await ann.connect();
  await assert.rejects(ann.send(room, "   "), (error) => error instanceof ConfabError && error.code === "empty_message");
  await assert.rejects(ann.send("no-such-room", "hi"), (error) => error instanceof ConfabError && error.code === "not_found");
  const outsider = server.client("eve");
  await outsider.connect();
  await assert.rejects(outsider.send(room, "hi"), (error) => error instanceof ConfabError && error.code === "forbidden");
  await assert.rejects(outsider.subscribe(room), (error) => error instanceof ConfabError && error.code === "forbidden");
});

test("two clients in a room see each other's messages, each once and in order", async () => {
  const room = await server.room("ann", ["bob"]);
  const ann = server.client("ann");
  const bob = server.client("bob");
  await Promise.all([ann.connect(), bob.connect()]);
  await Promise.all([ann.subscribe(room), bob.subscribe(room)]);
  const annSees = collect(ann, "message");
  const bobSees = collect(bob, "message");
  const heard = next(bob, "message");
  await ann.send(room, "hi bob");
  await bob.send(room, "hi ann", { replyTo: (await heard).message.id });
  await until(() => annSees.length === 2 && bobSees.length === 2, "both messages on both sides");
  for (const seen of [annSees, bobSees]) {
    assert.deepEqual(
      seen.map((e) => [e.room_id, e.message.seq, e.message.sender.id, e.message.content]),
      [
        [room, 1, "ann", "hi bob"],
        [room, 2, "bob", "hi ann"],
      ],
    );
  }
  assert.equal(bobSees[1].message.reply_to, annSees[0].message.id);
});

test("every token placement the server supports connects", async () => {
  for (const tokenPlacement of /** @type {const} */ (["protocol", "header", "auth", "query"])) {
    const client = server.client(token("pat", { name: "Pat" }), { tokenPlacement });
    const hello = await client.connect();
    assert.equal(hello.user_id, "pat", tokenPlacement);
    const room = await server.room("pat", []);
    assert.equal((await client.send(room, `via ${tokenPlacement}`)).seq, 1, tokenPlacement);
    client.close();
  }
});

test("a function token source is called for the connection", async () => {
  let calls = 0;
  const client = server.client(async () => {
    calls += 1;
    return token("fay");
  });
  assert.equal((await client.connect()).user_id, "fay");
  assert.equal(calls, 1);
});

test("events come as an async iterator too, and it ends when the client closes", async () => {
  const room = await server.room("ann", ["bob"]);
  const ann = server.client("ann");
  const bob = server.client("bob");
  await Promise.all([ann.connect(), bob.connect()]);
  await bob.subscribe(room);
  const iterator = bob.events(["message", "state"]);
  await ann.send(room, "one");
  await ann.send(room, "two");
  /** @type {string[]} */
  const got = [];
  const reading = (async () => {
    for await (const event of iterator) {
      if (event.type === "message") got.push(event.message.content);
      if (event.type === "state") got.push(`state ${event.state}`);
    }
    return "ended";
  })();
  await until(() => got.length === 2, "two messages from the iterator");
  bob.close();
  assert.equal(await reading, "ended");
  assert.deepEqual(got, ["one", "two", "state closed"]);
});

test("callbacks unsubscribe with the function on() returns", async () => {
  const room = await server.room("ann", []);
  const ann = server.client("ann");
  await ann.connect();
  await ann.subscribe(room);
  /** @type {string[]} */
  const seen = [];
  const off = ann.on("message", (event) => seen.push(event.message.content));
  await ann.send(room, "heard");
  await until(() => seen.length === 1, "the first message");
  off();
  const everything = collect(ann, "message");
  await ann.send(room, "not heard");
  await until(() => everything.length === 1, "the second message");
  assert.deepEqual(seen, ["heard"]);
});

test("without a WebSocket the constructor says how to get one", () => {
  const saved = globalThis.WebSocket;
  // @ts-ignore: Node.js 20 without --experimental-websocket
  globalThis.WebSocket = undefined;
  try {
    assert.throws(() => new ConfabClient({ url: server.url, token: "t" }), /--experimental-websocket/);
  } finally {
    globalThis.WebSocket = saved;
  }
});
