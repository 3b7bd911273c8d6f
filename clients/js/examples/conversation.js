// Typing, replies, reactions, edits and deletes.
import { ConfabClient } from "confab-js";

const { CONFAB_URL, CONFAB_TOKEN, CONFAB_ROOM } = process.env;
const client = new ConfabClient({ url: CONFAB_URL, token: CONFAB_TOKEN });
await client.connect();
await client.subscribe(CONFAB_ROOM); // typing needs a subscription

client.on("typing", ({ user_id, is_typing }) => console.log(`${user_id} typing: ${is_typing}`));
client.on("reaction_updated", ({ reactions }) => console.log(`reactions: ${JSON.stringify(reactions)}`));
client.on("message_updated", ({ message }) => console.log(`edited #${message.seq}: ${message.content}`));
client.on("message_deleted", ({ message }) => console.log(`deleted #${message.seq}`));

client.typing(CONFAB_ROOM); // on every keystroke: throttled, and stopped after a pause
const question = await client.send(CONFAB_ROOM, "Lunch at 12?"); // sending ends typing
const answer = await client.send(CONFAB_ROOM, "Or 12:30", { replyTo: question.message_id });
await client.react(CONFAB_ROOM, question.message_id, "👍");
await client.edit(CONFAB_ROOM, answer.message_id, "Or 12:30?");
await client.deleteMessage(CONFAB_ROOM, answer.message_id);
await client.send(CONFAB_ROOM, "I'm here", { messageType: "location", location: { lat: 52.52, lng: 13.405 } });
console.log(`typing now: ${client.typingIn(CONFAB_ROOM).map((t) => t.user_id).join(", ") || "nobody"}`);
client.close();
