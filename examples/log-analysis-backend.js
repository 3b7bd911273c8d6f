// STAND-IN for the log-analysis app's back-end: the one endpoint confab calls
// for the app's own slash commands (docs/protocol.md §8.2). In the app this
// is a Django view (docs/migrating.md §5); here it is plain Node.js, so that
// the example runs on its own. confab has already checked the caller's role
// against the command's `roles` before it calls; this endpoint checks that
// the call comes from confab (the Standard Webhooks signature, at most
// 5 minutes old) and does the work.
//
// Environment: CONFAB_WEBHOOK_SECRET (confab's `webhook.secret`), PORT
// (default: any free port). Prints `listening: <url>` (the `url` of the
// `[[commands]]` entries), then `call: <command line> by <user> (<role>)`
// for each verified call and `refused: <why>` for each refused one.
const http = require("node:http");
const crypto = require("node:crypto");

const secret = process.env.CONFAB_WEBHOOK_SECRET;
// `whsec_` + base64: the key is the decoded bytes; any other string: its bytes.
const key = secret.startsWith("whsec_")
  ? Buffer.from(secret.slice("whsec_".length), "base64")
  : Buffer.from(secret, "utf8");
const TOLERANCE_S = 5 * 60;

// Why the call is not confab's, or null when it is: `webhook-signature`
// lists `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` entries.
function refusal(headers, body) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) return "not signed";
  // Older (or newer) than 5 minutes, or not a number: a replay, perhaps.
  if (!(Math.abs(Date.now() / 1000 - Number(timestamp)) <= TOLERANCE_S)) return "stale timestamp";
  const expected = crypto.createHmac("sha256", key)
    .update(`${id}.${timestamp}.`).update(body).digest();
  const matches = signatures.split(" ").some((entry) => {
    const [version, signature = ""] = entry.split(",");
    const given = Buffer.from(signature, "base64");
    return version === "v1" && given.length === expected.length &&
      crypto.timingSafeEqual(given, expected);
  });
  return matches ? null : "bad signature";
}

// The app's commands. `args` is the rest of the line, trimmed. The answer:
// `ok` (default true), `text` for the caller, `data` for programs, and
// `post`, stored in the room as a system message.
function run({ command, args, user }) {
  switch (command) {
    case "reload": {
      const days = args === "" ? 1 : Number(args);
      if (!/^\d*$/.test(args) || days < 1 || days > 90) {
        return { ok: false, text: "usage: /reload [days], days from 1 to 90" };
      }
      // The app would re-read its log index here.
      const plural = days === 1 ? "day" : "days";
      return {
        text: `Reloaded ${days} ${plural} of logs`,
        data: { days },
        post: `${user.name ?? user.id} reloaded the last ${days} ${plural} of logs`,
      };
    }
    default:
      return { ok: false, text: `this app has no /${command}` };
  }
}

const server = http.createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    const answer = (status, body) => {
      response.writeHead(status, { "content-type": "application/json" });
      response.end(JSON.stringify(body));
    };
    const body = Buffer.concat(chunks);
    const why = request.method === "POST" ? refusal(request.headers, body) : "not a POST";
    if (why) {
      console.log(`refused: ${why}`);
      return answer(401, { error: why });
    }
    const call = JSON.parse(body);
    console.log(`call: ${call.text} by ${call.user.id} (${call.user.role})`);
    answer(200, run(call));
  });
});

server.listen(Number(process.env.PORT) || 0, "127.0.0.1", () => {
  console.log(`listening: http://127.0.0.1:${server.address().port}/commands`);
});
