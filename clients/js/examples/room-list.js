// The room list with unread counts, kept current by events; read markers.
import { ConfabClient } from "confab-js";

const { CONFAB_URL, CONFAB_TOKEN, CONFAB_ROOM } = process.env;
const client = new ConfabClient({ url: CONFAB_URL, token: CONFAB_TOKEN });
await client.connect();

const show = (rooms) => {
  for (const room of rooms) {
    console.log(`${room.name}: ${room.unread_count} unread, last: ${room.last_message_content}`);
  }
};
show(await client.rooms()); // every page, newest activity first

// Unread counts move with the events of subscribed rooms, and with reads
// made on any of this user's connections.
await client.subscribe(CONFAB_ROOM);
const updated = new Promise((resolve) => client.once("rooms", ({ rooms }) => resolve(rooms)));
await client.markRead(CONFAB_ROOM); // everything; or { upToSeq: 7 }
show(await updated);

const online = await client.presence(CONFAB_ROOM); // then user_online / user_offline events
console.log(`online: ${online.join(", ")}`);
client.close();
