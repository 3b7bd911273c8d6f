// Connect, follow a room, send a message and read it back from the room.
import { ConfabClient } from "confab-js";

const { CONFAB_URL, CONFAB_TOKEN, CONFAB_ROOM } = process.env;
const client = new ConfabClient({ url: CONFAB_URL, token: CONFAB_TOKEN });

const hello = await client.connect();
console.log(`signed in as ${hello.user_id}`);
const { last_seq, unread_count } = await client.subscribe(CONFAB_ROOM);
console.log(`${CONFAB_ROOM}: ${last_seq} messages, ${unread_count} unread`);

const messages = client.events(["message"]); // buffered from now on
const ack = await client.send(CONFAB_ROOM, "Hello from confab-js");
console.log(`stored as #${ack.seq}`);
for await (const { message } of messages) {
  console.log(`#${message.seq} ${message.sender.name ?? message.sender.id}: ${message.content}`);
  if (message.id === ack.message_id) break; // our own, back from the room
}
client.close();
