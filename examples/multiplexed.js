// The multiplexed app's one socket per user, on confab's unified protocol:
// subscribe to a room (with `since_seq` on reconnect), send with a
// `client_msg_id` so a retry is never stored twice, read acks, messages and
// the room list.
//
// Environment: CONFAB_URL (ws://host:port), CONFAB_TOKEN, CONFAB_ROOM.
const { CONFAB_URL, CONFAB_TOKEN, CONFAB_ROOM } = process.env;
const content = process.argv[2] || "The cleaner is on the way";

// Browsers cannot set headers on a WebSocket: the token rides in the subprotocol.
const socket = new WebSocket(`${CONFAB_URL}/ws`, ["confab.v1", `bearer.${CONFAB_TOKEN}`]);
const clientMsgId = `web-${Date.now()}-${Math.random().toString(36).slice(2)}`;
let lastSeq = 0; // kept across reconnects: subscribe with since_seq
const done = setTimeout(() => { console.error("timed out"); process.exit(2); }, 10000);

const send = (frame) => socket.send(JSON.stringify(frame));

socket.onmessage = (event) => {
  const frame = JSON.parse(event.data);
  console.log(JSON.stringify(frame));
  switch (frame.type) {
    case "connection_established":
      send({ type: "subscribe_room", room_id: CONFAB_ROOM, since_seq: lastSeq, req_id: 1 });
      break;
    case "subscribed":
      send({ type: "send_message", room_id: CONFAB_ROOM, content, client_msg_id: clientMsgId, req_id: 2 });
      break;
    case "message_ack":
      console.log(`stored as #${frame.seq}${frame.duplicate ? " (already stored)" : ""}`);
      break;
    case "new_message":
      lastSeq = Math.max(lastSeq, frame.message.seq);
      if (frame.message.content === content) {
        send({ type: "mark_read", room_id: CONFAB_ROOM, req_id: 3 });
        send({ type: "get_room_list", req_id: 4 });
      }
      break;
    case "room_list":
      for (const room of frame.rooms) {
        console.log(`${room.id}: ${room.unread_count} unread, last: ${room.last_message_content}`);
      }
      clearTimeout(done);
      socket.close(1000);
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
