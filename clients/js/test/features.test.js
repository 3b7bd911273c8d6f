// Typing, reactions, edits, deletes, uploads and commands.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ConfabError } from "../src/confab.js";
import { TestServer, collect, next, sleep, tapped, until } from "./helpers.js";

/** A 1×1 PNG: the server sniffs image uploads. */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
);

/** @type {TestServer} */
let server;
before(async () => {
  server = await TestServer.start();
});
after(() => server.cleanup());

/** Two connected, subscribed clients in a fresh room. */
async function pair(options = {}) {
  const room = await server.room("ann", ["bob"]);
  const annTap = tapped();
  const ann = server.client("ann", { WebSocket: annTap.WebSocket, ...options });
  const bob = server.client("bob");
  await Promise.all([ann.connect(), bob.connect()]);
  await Promise.all([ann.subscribe(room), bob.subscribe(room)]);
  return { room, ann, bob, annTap };
}

test("typing is throttled, seen by the others only, and stopped by the client when the typist pauses", async () => {
  const { room, ann, bob, annTap } = await pair({ typingTimeoutMs: 300 });
  const bobSees = collect(bob, "typing");
  const annSees = collect(ann, "typing");
  for (let i = 0; i < 5; i++) ann.typing(room); // keystrokes
  await until(() => bobSees.length === 1, "bob sees ann typing");
  assert.equal(bobSees[0].user_id, "ann");
  assert.equal(bobSees[0].is_typing, true);
  assert.deepEqual(bob.typingIn(room).map((t) => t.user_id), ["ann"]);
  assert.equal(annTap.sent.filter((f) => f.type === "typing").length, 1, "one frame for five keystrokes");
  // No more keystrokes: the client ends the indicator by itself.
  await until(() => bobSees.length === 2, "ann stopped typing");
  assert.equal(bobSees[1].is_typing, false);
  assert.ok(annTap.sent.some((f) => f.type === "stop_typing" && f.room_id === room), "the client sent stop_typing");
  assert.deepEqual(bob.typingIn(room), []);
  assert.equal(annSees.length, 0, "never back to the typist");
  // Sending a message ends it too.
  ann.typing(room);
  await until(() => bobSees.length === 3, "typing again");
  await ann.send(room, "done typing");
  await until(() => bobSees.length === 4, "stopped by the send");
  assert.equal(bobSees[3].is_typing, false);
});

test("reactions, replies, edits and deletes reach the room", async () => {
  const { room, ann, bob } = await pair();
  const posted = next(bob, "message");
  const ack = await ann.send(room, "react to me");
  const message = (await posted).message;
  assert.equal(message.id, ack.message_id);

  const reacted = next(ann, "reaction_updated");
  assert.equal((await bob.react(room, message.id, "👍")).type, "ack");
  assert.deepEqual((await reacted).reactions, { "👍": ["bob"] });
  const unreacted = next(ann, "reaction_updated");
  await bob.unreact(room, message.id, "👍");
  assert.deepEqual((await unreacted).reactions, {});

  const reply = next(ann, "message", (e) => e.message.reply_to === message.id);
  await bob.send(room, "a reply", { replyTo: message.id });
  assert.equal((await reply).message.content, "a reply");

  const edited = next(bob, "message_updated");
  await ann.edit(room, message.id, "edited");
  const update = await edited;
  assert.equal(update.message.id, message.id);
  assert.equal(update.message.content, "edited");
  assert.ok(update.message.edited_at);
  await assert.rejects(bob.edit(room, message.id, "not mine"), (e) => e instanceof ConfabError && e.code === "forbidden");

  const deleted = next(bob, "message_deleted");
  await ann.deleteMessage(room, message.id);
  const gone = await deleted;
  assert.equal(gone.message.deleted, true);
  assert.equal(gone.message.content, "");
  const history = await bob.history(room);
  assert.deepEqual(
    history.messages.map((m) => [m.seq, m.deleted, m.content]),
    [
      [1, true, ""],
      [2, false, "a reply"],
    ],
  );
});

test("uploads go over REST and arrive as image and file messages", async () => {
  const { room, ann, bob } = await pair();
  const image = next(bob, "message", (e) => e.message.message_type === "image");
  const sent = await ann.sendFile(room, PNG, { name: "dot.png", contentType: "image/png", content: "a dot" });
  assert.equal(sent.type, "message_ack");
  assert.equal(sent.attachment.content_type, "image/png");
  const { message } = await image;
  assert.equal(message.id, sent.message_id);
  assert.equal(message.content, "a dot");
  assert.equal(message.attachment.id, sent.attachment.id);
  assert.equal(message.attachment.name, "dot.png");
  assert.equal(message.attachment.size, PNG.length);
  // Bob, a member of the room, downloads the same bytes.
  const downloaded = await bob.download(message.attachment);
  assert.equal(downloaded.type, "image/png");
  assert.deepEqual(Buffer.from(await downloaded.arrayBuffer()), PNG);
  const outsider = server.client("eve");
  await assert.rejects(outsider.download(message.attachment.url), (e) => e instanceof ConfabError && e.status === 403);

  const file = next(bob, "message", (e) => e.message.message_type === "file");
  const blob = new Blob(["col\n1\n"], { type: "text/csv" });
  await ann.sendFile(room, blob, { name: "data.csv" });
  const csv = (await file).message;
  assert.equal(csv.attachment.name, "data.csv");
  assert.equal(csv.attachment.size, 6);
  await assert.rejects(
    ann.upload(Buffer.from("not a png"), { name: "fake.png", contentType: "image/png" }),
    (e) => e instanceof ConfabError && e.code === "invalid_field" && e.status === 422,
  );
});

test("commands resolve with command_result, and are not re-sent after a reconnect", async () => {
  const { room, ann, bob, annTap } = await pair({ reconnect: { initialMs: 20, maxMs: 50 } });
  const status = await ann.command(room, "/status");
  assert.equal(status.type, "command_result");
  assert.equal(status.ok, true);
  assert.equal(status.command, "status");
  assert.equal(status.data.user.id, "ann");
  assert.equal(status.data.room.id, room);
  const unknown = await ann.command(room, "/nope");
  assert.equal(unknown.ok, false);
  assert.equal(unknown.code, "not_found");
  await assert.rejects(ann.command(room, "plain text"), (e) => e instanceof ConfabError && e.code === "invalid_field");

  // `/me` stores a message: acknowledged like any send.
  const action = next(bob, "message", (e) => e.message.metadata?.action === true);
  const me = await ann.send(room, "/me waves");
  assert.equal(me.type, "message_ack");
  assert.equal((await action).message.content, "waves");

  annTap.dropAfter = (frame) => frame.content === "/topic Lost";
  await assert.rejects(ann.command(room, "/topic Lost"), (e) => e instanceof ConfabError && e.code === "connection_lost");
  await until(() => ann.state === "open", "ann back");
  await sleep(100);
  assert.equal(annTap.sent.filter((f) => f.content === "/topic Lost").length, 1, "sent once, never again");
});

test("notifications from the app's back-end arrive as events", async () => {
  const ann = server.client("ann");
  await ann.connect();
  const notified = next(ann, "notification");
  const { status, body } = await server.api(null, "POST", "/users/ann/notify", { event: "order.shipped", data: { order: 7 } });
  assert.equal(status, 200);
  assert.ok(body.connections >= 1);
  const event = await notified;
  assert.equal(event.event, "order.shipped");
  assert.deepEqual(event.data, { order: 7 });
});

test("a subscribe overtaken by unsubscribe rejects instead of hanging", async () => {
  const room = await server.room("ann", []);
  const ann = server.client("ann");
  const subscribing = ann.subscribe(room); // queued: not connected yet
  await ann.unsubscribe(room);
  await assert.rejects(subscribing, (e) => e instanceof ConfabError && e.code === "unsubscribed");
  await ann.connect();
  const messages = collect(ann, "message");
  await ann.send(room, "not followed");
  await sleep(100);
  assert.equal(messages.length, 0, "no events of a room not followed");
});
