// Reconnecting: nothing lost, nothing doubled, no loop after a refusal.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfabError } from "../src/confab.js";
import { TestServer, collect, gate, mintJwt, sleep, tapped, token, until } from "./helpers.js";

const QUICK = { reconnect: { initialMs: 50, maxMs: 300 } };

/** @param {any[]} events `message` events */
const seqs = (events) => events.map((e) => e.message.seq);

test("after a kill -9 and a restart on the same data dir and port, pending sends are stored once and the receiver misses nothing", async (t) => {
  const server = await TestServer.start();
  t.after(() => server.cleanup());
  const room = await server.room("ann", ["bob", "cat"]);
  const annTap = tapped();
  const ann = server.client("ann", { ...QUICK, WebSocket: annTap.WebSocket });
  let bobGate = gate();
  let bobAway = false;
  const bob = server.client(
    async () => {
      if (bobAway) await bobGate.closed;
      return token("bob");
    },
    QUICK,
  );
  await Promise.all([ann.connect(), bob.connect()]);
  await Promise.all([ann.subscribe(room), bob.subscribe(room)]);
  const bobSees = collect(bob, "message");
  const bobStates = collect(bob, "state");
  for (const text of ["one", "two", "three"]) await ann.send(room, text);
  await until(() => bobSees.length === 3, "the first three messages");

  // Frozen, the server reads nothing: this send is on the wire, unanswered.
  bobAway = true;
  server.proc?.kill("SIGSTOP");
  const sentBeforeKill = ann.send(room, "sent to a frozen server");
  await until(() => annTap.sent.some((f) => f.client_msg_id === sentBeforeKill.clientMsgId), "the send on the wire");
  const annStates = collect(ann, "state");
  await server.kill();
  const dropped = (/** @type {any[]} */ states) => states.some((e) => e.state === "reconnecting");
  await until(() => dropped(annStates) && dropped(bobStates), "both clients reconnecting");
  // This one is queued while the server is down.
  const sentWhileDown = ann.send(room, "sent while down");
  await server.restart();

  const [first, second] = await Promise.all([sentBeforeKill, sentWhileDown]);
  assert.deepEqual([first.seq, second.seq], [4, 5]);
  assert.equal(first.client_msg_id, sentBeforeKill.clientMsgId);
  assert.equal(second.client_msg_id, sentWhileDown.clientMsgId);
  // The frozen send went out twice, with the same client_msg_id.
  const frozenSends = annTap.sent.filter((f) => f.type === "send_message" && f.content === "sent to a frozen server");
  assert.equal(frozenSends.length, 2);
  assert.equal(new Set(frozenSends.map((f) => f.client_msg_id)).size, 1);

  // Bob is still away (his token function waits): the room goes on.
  const { status } = await server.api("cat", "POST", `/rooms/${room}/messages`, { content: "from cat" });
  assert.equal(status, 201);
  await ann.send(room, "after the restart");
  assert.notEqual(bob.state, "open");
  assert.equal(bobSees.length, 3);

  bobGate.open();
  await until(() => bobSees.length >= 7, "bob's catch-up");
  await sleep(100); // a duplicate, if any, would come now
  assert.deepEqual(seqs(bobSees), [1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(
    bobSees.map((e) => e.message.content),
    ["one", "two", "three", "sent to a frozen server", "sent while down", "from cat", "after the restart"],
  );
  const resubscribe = bobStates.filter((e) => e.state === "open").length;
  assert.equal(resubscribe, 1, "bob reconnected once");
  assert.equal(bob.lastSeq(room), 7);
  const stored = await server.allMessages("ann", room);
  assert.deepEqual(
    stored.map((m) => m.seq),
    [1, 2, 3, 4, 5, 6, 7],
  );
});

test("a send whose ack was lost with the connection is re-sent with its client_msg_id and acknowledged as a duplicate", async (t) => {
  const server = await TestServer.start();
  t.after(() => server.cleanup());
  const room = await server.room("ann", ["bob"]);
  const tap = tapped();
  const ann = server.client("ann", { ...QUICK, WebSocket: tap.WebSocket });
  const bob = server.client("bob");
  await Promise.all([ann.connect(), bob.connect()]);
  await bob.subscribe(room);
  const bobSees = collect(bob, "message");
  tap.dropAfter = (frame) => frame.type === "send_message";
  const ack = await ann.send(room, "the ack of this one is lost");
  const sends = tap.sent.filter((f) => f.type === "send_message");
  assert.equal(sends.length, 2);
  assert.equal(sends[0].client_msg_id, sends[1].client_msg_id);
  assert.equal(ack.duplicate, true, "the server had stored the first");
  assert.equal(ack.seq, 1);
  await until(() => bobSees.length === 1, "bob's copy");
  await sleep(100);
  assert.equal(bobSees.length, 1);
  assert.equal((await server.allMessages("bob", room)).length, 1);
});

test("a resumed room with a backlog over the server's catch-up limit is paged from history: no gap, no duplicate", async (t) => {
  const server = await TestServer.start({ env: { CONFAB_LIMITS__MAX_CATCH_UP: "50" } });
  t.after(() => server.cleanup());
  const room = await server.room("ann", ["bob"]);
  const ann = server.client("ann");
  let bobGate = gate();
  let bobAway = false;
  const tap = tapped();
  const bob = server.client(
    async () => {
      if (bobAway) await bobGate.closed;
      return token("bob");
    },
    { ...QUICK, WebSocket: tap.WebSocket },
  );
  await Promise.all([ann.connect(), bob.connect()]);
  await Promise.all([ann.subscribe(room), bob.subscribe(room)]);
  const bobSees = collect(bob, "message");
  await ann.send(room, "before the blip");
  await until(() => bobSees.length === 1, "the first message");

  bobAway = true;
  tap.drop();
  await until(() => bob.state === "reconnecting" || bob.state === "connecting", "bob away");
  const total = 181;
  await Promise.all(Array.from({ length: total - 1 }, (_, i) => ann.send(room, `backlog ${i + 2}`)));
  bobGate.open();
  await until(() => bobSees.length >= total, "bob's catch-up");
  // Live messages right after the resume come in order after the backlog.
  await ann.send(room, "live again");
  await until(() => bobSees.length >= total + 1, "the live message");
  await sleep(100);
  assert.deepEqual(
    seqs(bobSees),
    Array.from({ length: total + 1 }, (_, i) => i + 1),
  );
  const resume = tap.sent.filter((f) => f.type === "subscribe_room").at(-1);
  assert.equal(resume.since_seq, 1);
  assert.ok(
    tap.sent.some((f) => f.type === "get_history" && f.after_seq >= 50),
    "the rest of the backlog came from get_history",
  );
});

test("a refused token closes for good: no reconnect loop", async (t) => {
  const server = await TestServer.start();
  t.after(() => server.cleanup());
  const cases = [
    { what: "bad signature", token: mintJwt({ sub: "mal", exp: Math.floor(Date.now() / 1000) + 600 }, "wrong secret"), code: 4003 },
    { what: "expired", token: token("old", { exp: Math.floor(Date.now() / 1000) - 3600 }), code: 4003 },
    { what: "no token", token: null, code: 4001 },
  ];
  for (const c of cases) {
    let calls = 0;
    const client = server.client(
      () => {
        calls += 1;
        return c.token;
      },
      { reconnect: { initialMs: 1, maxMs: 1 } },
    );
    const states = collect(client, "state");
    await assert.rejects(client.connect(), (error) => error instanceof ConfabError && error.code === "closed" && error.closeCode === c.code, c.what);
    await sleep(150); // a loop would have tried again by now
    assert.deepEqual(
      states.map((e) => e.state),
      ["connecting", "closed"],
      c.what,
    );
    assert.equal(states[1].code, c.code, c.what);
    assert.equal(calls, 1, c.what);
    await assert.rejects(client.send("any", "x"), (error) => error instanceof ConfabError && error.code === "closed");
  }
});

test("a server shutting down (1012) is a blip: the client comes back by itself", async (t) => {
  const server = await TestServer.start();
  t.after(() => server.cleanup());
  const room = await server.room("ann", []);
  const ann = server.client("ann", QUICK);
  await ann.connect();
  await ann.subscribe(room);
  const states = collect(ann, "state");
  await server.stop();
  await until(() => states.some((e) => e.state === "reconnecting"), "reconnecting");
  assert.equal(states.find((e) => e.state === "reconnecting").code, 1012);
  await server.restart();
  await until(() => ann.state === "open", "open again");
  assert.equal((await ann.send(room, "back")).seq, 1);
  const reconnecting = states.find((e) => e.state === "reconnecting");
  assert.ok(reconnecting.delay >= 0 && reconnecting.delay <= 50, "the first delay is within the configured ceiling");
});
