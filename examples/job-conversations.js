// The job-conversations front-end's socket, moved to confab: the URL is the
// same path on confab's host, and the token comes from the app's own
// back-end (a view that mints a confab token; docs/migrating.md).
//
// Environment (in a browser these come from the page): CONFAB_URL
// (ws://host:port), CONFAB_TOKEN, CONFAB_ROOM (the conversation id).
const { CONFAB_URL, CONFAB_TOKEN, CONFAB_ROOM } = process.env;
const text = process.argv[2] || "Hello from the job board";

// `history=20`: the newest 20 messages first, as ordinary message frames.
const url = `${CONFAB_URL}/ws/chat/${encodeURIComponent(CONFAB_ROOM)}/` +
  `?token=${encodeURIComponent(CONFAB_TOKEN)}&history=20`;
const socket = new WebSocket(url);
const done = setTimeout(() => { console.error("timed out"); process.exit(2); }, 10000);

socket.onopen = () => {
  socket.send(JSON.stringify({ type: "typing", is_typing: true }));
  socket.send(JSON.stringify({ message: text, type: "TEXT" }));
};

socket.onmessage = (event) => {
  const frame = JSON.parse(event.data);
  console.log(JSON.stringify(frame));
  if (frame.type === "error") {
    console.error(`refused: ${frame.code}: ${frame.message}`);
    process.exit(1);
  }
  const message = frame.type === "message" && frame.message;
  if (message && message.message_text === text) {
    // Our own message came back from the room: stored and fanned out.
    console.log(`sent as #${message.seq} in ${message.conversation_id} by ${message.sender_name}`);
    clearTimeout(done);
    socket.close(1000);
  }
};

// 4001 no token, 4002 user disabled, 4003 bad or expired token, 4004 not a
// participant or no such conversation.
socket.onclose = (event) => {
  if (event.code !== 1000) {
    console.error(`closed: ${event.code} ${event.reason}`);
    process.exit(1);
  }
};
