// The assistant's reply as it streams: assistant_delta, then the stored reply.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";
import { TestServer, collect, next, until } from "./helpers.js";

/**
 * A stand-in for an OpenAI-compatible provider: answers every
 * `POST /v1/chat/completions` with these pieces as server-sent events.
 * @param {string[]} pieces
 */
async function provider(pieces) {
  const http = createServer((request, response) => {
    request.resume();
    request.on("end", async () => {
      response.writeHead(200, { "content-type": "text/event-stream" });
      for (const piece of pieces) {
        response.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: piece } }] })}\n\n`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      response.end("data: [DONE]\n\n");
    });
  });
  await new Promise((resolve) => http.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = /** @type {import("node:net").AddressInfo} */ (http.address());
  return { http, baseUrl: `http://127.0.0.1:${address.port}/v1` };
}

test("assistant_delta events carry the reply as it streams, then the stored reply arrives", async (t) => {
  const fake = await provider(["Hel", "lo ", "there"]);
  const server = await TestServer.start({ env: { CONFAB_ASSISTANT__BASE_URL: fake.baseUrl } });
  t.after(async () => {
    await server.cleanup();
    fake.http.close();
  });
  const ann = server.client("ann");
  await ann.connect();
  const room = await ann.createRoom({ name: "Help", room_type: "assistant" });
  await ann.subscribe(room.id);
  const deltas = collect(ann, "assistant_delta");
  const reply = next(ann, "message", (e) => e.message.sender.id === "assistant");
  await ann.send(room.id, "hi bot");
  const stored = (await reply).message;
  await until(() => deltas.length === 3, "three deltas");
  assert.deepEqual(
    deltas.map((d) => [d.room_id, d.delta, d.text]),
    [
      [room.id, "Hel", "Hel"],
      [room.id, "lo ", "Hello "],
      [room.id, "there", "Hello there"],
    ],
  );
  assert.ok(deltas.every((d) => d.reply_id === stored.id), "the deltas name the stored reply");
  assert.equal(stored.content, "Hello there");
  assert.equal(stored.seq, 2);
});
