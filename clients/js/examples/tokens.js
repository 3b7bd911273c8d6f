// Short-lived tokens from the app's back-end, and the connection's state.
import { ConfabClient } from "confab-js";

const { CONFAB_URL, CONFAB_TOKEN_URL } = process.env;
const client = new ConfabClient({
  url: CONFAB_URL,
  // Called for every connection, and again before the token expires.
  token: async () => (await fetch(CONFAB_TOKEN_URL)).text(),
  reconnect: { initialMs: 500, maxMs: 30_000 }, // the defaults
});

client.on("state", ({ state, delay, code }) => {
  if (state === "reconnecting") console.log(`closed with ${code}, reconnecting in ${delay} ms`);
  else console.log(state);
});
const refreshed = new Promise((resolve) => client.once("token_refreshed", resolve));
await client.connect();
const { expires_at } = await refreshed; // the same connection, a later token
console.log(`token refreshed: valid until ${new Date(expires_at).toISOString()}`);
client.close();
