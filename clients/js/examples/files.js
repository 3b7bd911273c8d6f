// Send a file: uploaded over REST, then sent as an image or file message.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { ConfabClient } from "confab-js";

const { CONFAB_URL, CONFAB_TOKEN, CONFAB_ROOM } = process.env;
const [path, type = "application/octet-stream"] = process.argv.slice(2);
const client = new ConfabClient({ url: CONFAB_URL, token: CONFAB_TOKEN });
await client.connect();

// In a browser, pass the File of an <input type="file"> as it is.
const file = new File([await readFile(path)], basename(path), { type });
const sent = await client.sendFile(CONFAB_ROOM, file, { content: "the plan" });
const { name, content_type, size } = sent.attachment;
console.log(`${name} (${content_type}, ${size} bytes) sent as #${sent.seq}`);
client.close();
