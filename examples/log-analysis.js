// The log-analysis chat's front-end, moved to confab: one socket on `/ws`,
// where a message starting with `/` and a word is a command, not a message.
// confab answers its built-ins itself (/help, /status, /stats, /sessions…)
// and the app's own commands (/reload [days]) by calling the app's back-end
// (log-analysis-backend.js stands in for it), after checking the caller's
// role: the token's `role` claim (admin, analyst, viewer). A command is never
// stored; its answer is a `command_result` for this connection only, tied
// to the command by its `req_id`. What the app announces to the room (its
// answer's `post`) arrives as a system message, like any message.
//
// Environment: CONFAB_URL (ws://host:port), CONFAB_TOKEN, CONFAB_ROOM.
// Arguments: the commands to run, e.g. /help "/reload 7" /stat.
const { CONFAB_URL, CONFAB_TOKEN, CONFAB_ROOM } = process.env;
const commands = process.argv.slice(2);

// Browsers cannot set headers on a WebSocket: the token rides in the subprotocol.
const socket = new WebSocket(`${CONFAB_URL}/ws`, ["confab.v1", `bearer.${CONFAB_TOKEN}`]);
const waiting = new Set(); // req_ids of the commands still without a result
let me = null;             // our user id
let announcements = 0;     // our successful /reloads minus their posts seen (either may come first)
const done = setTimeout(() => { console.error("timed out"); process.exit(2); }, 10000);

const send = (frame) => socket.send(JSON.stringify(frame));

function finishIfDone() {
  if (waiting.size === 0 && announcements <= 0) {
    clearTimeout(done);
    socket.close(1000);
  }
}

socket.onmessage = (event) => {
  const frame = JSON.parse(event.data);
  switch (frame.type) {
    case "connection_established":
      me = frame.user_id;
      send({ type: "subscribe_room", room_id: CONFAB_ROOM, req_id: "subscribe" });
      break;
    case "subscribed":
      // A command is sent as a message; its req_id comes back on its result.
      commands.forEach((content, i) => {
        waiting.add(`command-${i}`);
        send({ type: "send_message", room_id: CONFAB_ROOM, content, req_id: `command-${i}` });
      });
      finishIfDone();
      break;
    case "command_result": {
      // `text` is for people, `data` for programs; `code` says why not ok
      // (forbidden, not_found, invalid_field, upstream_error…); an app's
      // own refusal has none.
      waiting.delete(frame.req_id);
      console.log(`result /${frame.command} ${frame.ok ? "ok" : frame.code ?? "failed"}: ${frame.text}`);
      if (frame.command === "reload" && frame.ok) announcements += 1;
      finishIfDone();
      break;
    }
    case "new_message": {
      const { sender, content, message_type, metadata } = frame.message;
      if (message_type !== "system") {
        console.log(`${sender.name ?? sender.id}: ${content}`);
        break;
      }
      // A post says which command and which user it follows.
      console.log(`system: ${content}`);
      if (metadata.command === "reload" && metadata.user_id === me) {
        announcements -= 1;
        finishIfDone();
      }
      break;
    }
    case "error":
      console.error(`refused: ${frame.code}: ${frame.message}`);
      process.exit(1);
  }
};

socket.onclose = (event) => {
  if (event.code !== 1000) {
    console.error(`closed: ${event.code} ${event.reason}`);
    process.exit(1);
  }
};
