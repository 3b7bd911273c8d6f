// The help desk's chat widget, moved to confab: the front-end keeps its
// socket code and changes only the URL, to confab's `/ws/assistant/`. A
// visitor gets a session and Sophie's welcome, asks its questions, watches
// each answer stream in, and rates the session when it is done. The
// `visitor_token` of `session_started` replaces the session cookie: kept in
// localStorage, it brings a returning visitor back to the same session,
// history and all.
//
// Environment (in a browser these come from the page): CONFAB_URL
// (ws://host:port); CONFAB_VISITOR_TOKEN, the token an earlier run printed
// (what localStorage would hold); CONFAB_KEEP_OPEN=1 to leave without
// closing the session (the visitor just closes the tab).
// Arguments: the visitor's questions, asked one after the other.
const { CONFAB_URL, CONFAB_KEEP_OPEN } = process.env;
const questions = process.argv.slice(2);

// STAND-IN for the browser's localStorage when run under Node.js: the token
// is read from CONFAB_VISITOR_TOKEN and printed when it is stored.
const storage = typeof window !== "undefined" ? window.localStorage : {
  token: process.env.CONFAB_VISITOR_TOKEN || null,
  getItem(key) { return key === "visitor_token" ? this.token : null; },
  setItem(key, value) { this.token = value; console.log(`${key}: ${value}`); },
  removeItem() { this.token = null; },
};

let sessionId = null;
let resumed = false;   // a returning visitor: the history comes first
let ready = false;     // the welcome or the history has been shown
let asking = null;     // the question waiting for its answer
let closing = false;   // session_close sent
let draft = { id: null, text: "" }; // the answer as it streams

let socket;
const done = setTimeout(() => { console.error("timed out"); process.exit(2); }, 10000);
const send = (frame) => socket.send(JSON.stringify(frame));

// No token: a new visitor. A stored visitor token: the same visitor again.
function connect() {
  const saved = storage.getItem("visitor_token");
  socket = new WebSocket(`${CONFAB_URL}/ws/assistant/` +
    (saved ? `?token=${encodeURIComponent(saved)}` : ""));
  socket.onmessage = onMessage;
  socket.onclose = (event) => {
    if (event.code === 4003 && saved) {
      // A token this confab did not sign (another server's, a new secret):
      // forget it and come in as a new visitor.
      console.log("visitor token refused: starting over");
      storage.removeItem("visitor_token");
      connect();
    } else if (event.code !== 1000) {
      // 4001: no anonymous access; 4029: too many connections from here.
      console.error(`closed: ${event.code} ${event.reason}`);
      process.exit(1);
    }
  };
}

// Asks the next question; once all are answered, rates and closes the
// session, or just leaves it open for the visitor's return.
function next() {
  asking = questions.shift() ?? null;
  if (asking !== null) {
    send({ type: "message", content: asking });
  } else if (CONFAB_KEEP_OPEN) {
    console.log(`left: ${sessionId}`);
    clearTimeout(done);
    socket.close(1000);
  } else {
    // The rating form at the end of the chat: 1–5 stars and a comment.
    closing = true;
    send({ type: "session_close", rating: 5, feedback: "Quick and friendly" });
  }
}

function onMessage(event) {
  const frame = JSON.parse(event.data);
  switch (frame.type) {
    case "session_started":
      sessionId = frame.session_id;
      resumed = frame.resumed;
      console.log(`session: ${sessionId}${resumed ? " (resumed)" : ""}`);
      // Every session_started carries a fresh token: keep the latest.
      if (frame.visitor_token) storage.setItem("visitor_token", frame.visitor_token);
      // The welcome (new session) or the history (resumed) follows; a
      // pong answers only after it, so it marks where the chat begins.
      send({ type: "ping" });
      break;
    case "pong":
      if (!ready) { ready = true; next(); }
      break;
    case "message": {
      const { id, sender_type, content, metadata } = frame.message;
      if (!ready) {
        console.log(resumed ? `history: ${sender_type}: ${content}` : `welcome: ${content}`);
      } else if (sender_type === "user") {
        console.log(`you: ${content}`);
      } else if (sender_type === "assistant") {
        // The stored answer replaces the streamed draft (its id is the
        // deltas' reply_id); a fallback says why the provider failed.
        const note = metadata.fallback ? ` (fallback: ${metadata.reason})` : "";
        console.log(`assistant: ${content}${note}${id === draft.id ? "" : " (not streamed)"}`);
        draft = { id: null, text: "" };
        next();
      }
      break;
    }
    case "typing":
      if (frame.sender_type === "assistant" && frame.is_typing) console.log("Sophie is typing…");
      break;
    case "assistant_delta":
      if (frame.reply_id !== draft.id) draft = { id: frame.reply_id, text: "" };
      draft.text += frame.delta;
      console.log(`… ${draft.text}`);
      break;
    case "error":
      if (frame.code === "rate_limited") {
        // Nothing was stored: ask again once the wait (in seconds) is over.
        console.log(`rate limited: retrying in ${frame.retry_after} s`);
        setTimeout(() => send({ type: "message", content: asking }), frame.retry_after * 1000);
      } else {
        console.error(`refused: ${frame.code}: ${frame.message}`);
        process.exit(1);
      }
      break;
    case "session_closed":
      // Also when the session expires or the help desk closes it; the page
      // would then offer a new chat (`{"type": "session_init"}`).
      console.log(`closed: ${frame.session_id}`);
      clearTimeout(done);
      socket.close(1000);
      if (!closing) {
        console.error("the session ended before the visitor was done");
        process.exit(1);
      }
      break;
  }
}

connect();
