// The Send Buddy session screen's socket, moved to confab: same path, same
// `?token=` (confab verifies the app's SimpleJWT access tokens when it is
// given the same signing key; docs/migrating.md).
//
// Environment: CONFAB_URL (ws://host:port), CONFAB_TOKEN, CONFAB_ROOM (the
// session id).
const { CONFAB_URL, CONFAB_TOKEN, CONFAB_ROOM } = process.env;
const content = process.argv[2] || "On belay?";

const url = `${CONFAB_URL}/ws/sessions/${encodeURIComponent(CONFAB_ROOM)}/` +
  `?token=${encodeURIComponent(CONFAB_TOKEN)}`;
const socket = new WebSocket(url);
const done = setTimeout(() => { console.error("timed out"); process.exit(2); }, 10000);

socket.onopen = () => {
  socket.send(JSON.stringify({ type: "typing", is_typing: true }));
  socket.send(JSON.stringify({ type: "message", content }));
};

socket.onmessage = (event) => {
  const frame = JSON.parse(event.data);
  console.log(JSON.stringify(frame));
  switch (frame.type) {
    case "typing":
      console.log(`${frame.sender_name} ${frame.is_typing ? "is typing…" : "stopped typing"}`);
      break;
    case "message":
      if (frame.content === content) {
        console.log(`sent as ${frame.message_id} at ${frame.created_at} by ${frame.sender_name}`);
        clearTimeout(done);
        socket.close(1000);
      }
      break;
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
