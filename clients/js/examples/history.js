// Scroll back through a room's history, one page at a time.
import { ConfabClient } from "confab-js";

const { CONFAB_URL, CONFAB_TOKEN, CONFAB_ROOM } = process.env;
const client = new ConfabClient({ url: CONFAB_URL, token: CONFAB_TOKEN });
await client.connect();

const latest = await client.history(CONFAB_ROOM, { limit: 20 });
console.log(`the newest ${latest.messages.length}, more before them: ${latest.has_more}`);

// Each page is in ascending seq, like the screen; pages go back in time.
for await (const page of client.olderPages(CONFAB_ROOM, { limit: 20 })) {
  console.log(`page: #${page[0].seq} to #${page[page.length - 1].seq}`);
}
client.close();
