// Slash commands, and the assistant's answer as it streams.
import { ConfabClient } from "confab-js";

const { CONFAB_URL, CONFAB_TOKEN, CONFAB_ROOM } = process.env;
const client = new ConfabClient({ url: CONFAB_URL, token: CONFAB_TOKEN });
await client.connect();

const status = await client.command(CONFAB_ROOM, "/status");
console.log(`/status: ${status.ok ? "ok" : status.code}, room ${status.data.room.id}`);
const unknown = await client.command(CONFAB_ROOM, "/frobnicate");
console.log(`/frobnicate: ${unknown.ok ? "ok" : unknown.code}`);

// In a room of type "assistant", the bot answers every question.
const session = await client.createRoom({ name: "Help", room_type: "assistant" });
await client.subscribe(session.id);
client.on("assistant_delta", ({ text }) => console.log(`assistant so far: ${text}`));
const reply = new Promise((resolve) => {
  client.on("message", ({ message }) => message.sender.id === "assistant" && resolve(message));
});
await client.send(session.id, "How do I reset my password?");
console.log(`assistant: ${(await reply).content}`);
client.close();
