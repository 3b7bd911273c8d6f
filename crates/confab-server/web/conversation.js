// The open room: its messages (the newest page first, older ones paged in
// as the user scrolls up), live events from confab-js applied as they come
// (new messages, edits, deletes, reactions, read receipts, typing, the
// assistant's stream), optimistic sends, and the marking of what was read.

import { isCommand, uuid } from "./confab/live.js";
import { Composer } from "./composer.js";
import { announce, byId, el } from "./dom.js";
import { others, personName, roomTitle, seenText, typingText } from "./format.js";
import { renderMessage, renderNote, renderPending, renderStream, snippet } from "./message.js";

/** Messages per history page. */
const PAGE = 50;
/** How close to the bottom (px) still counts as "at the bottom". */
const STICK_PX = 80;

export class Conversation {
  /** @type {string | null} the open room */
  openId = null;
  /** @type {Map<string, { node: HTMLElement, sig: string }>} the list's elements by key */
  #nodes = new Map();
  /** Whether the view follows new messages (the user is at the bottom). */
  #stick = true;
  #loadingOlder = false;
  /** @type {string | null} */
  #pickerFor = null;
  /** @type {string | null} */
  #confirmDelete = null;
  /** @type {any} */
  #confirmTimer = null;
  /** @type {string | null} the list entry that takes the Tab stop */
  #current = null;
  /** @type {Map<string, { url: string | null, error: string | null }>} attachment id → blob: URL */
  #blobs = new Map();
  /** @type {Map<string, number>} room → the seq last marked read */
  #marked = new Map();
  /** @type {any} */
  #readTimer = null;
  /** @type {any} */
  #typingTimer = null;
  /** @type {any} */
  #errorTimer = null;
  #wasOpen = false;

  /**
   * @param {object} deps
   * @param {import("./confab/confab.js").ConfabClient} deps.client
   * @param {import("./store.js").Store} deps.store
   * @param {{ id: string, name: string }} deps.self
   * @param {(roomId: string | null) => void} deps.navigate opens a room (or the list)
   */
  constructor({ client, store, self, navigate }) {
    this.client = client;
    this.store = store;
    this.self = self;
    this.navigate = navigate;
    this.$empty = byId("room-empty");
    this.$view = byId("room-view");
    this.$title = byId("room-title");
    this.$sub = byId("room-sub");
    this.$scroller = byId("scroller");
    this.$history = byId("history-state");
    this.$list = byId("messages");
    this.$typing = byId("typing");
    this.$error = byId("room-error");
    this.composer = new Composer(this);
    this.#listen();
    this.$scroller.addEventListener("scroll", () => this.#onScroll(), { passive: true });
    this.$list.addEventListener("keydown", (e) => this.#onListKey(e));
    this.$list.addEventListener("focusin", (e) => {
      const li = /** @type {HTMLElement} */ (e.target).closest?.("li[data-key]");
      if (li instanceof HTMLElement && li.dataset.key !== this.#current) {
        this.#current = li.dataset.key ?? null;
        this.#roving();
      }
    });
    document.addEventListener("visibilitychange", () => this.#scheduleRead());
    byId("back-button").addEventListener("click", () => this.navigate(null));
  }

  // ---- events from confab-js ----------------------------------------------

  #listen() {
    const c = this.client;
    c.on("message", ({ room_id, message }) => {
      this.store.log(room_id).put(message);
      if (room_id !== this.openId) return;
      this.render();
      if (message.sender?.id !== this.self.id) {
        announce(`${personName(message.sender)}: ${snippet(message)}`);
        this.#scheduleRead();
      }
    });
    const replace = ({ room_id, message }) => {
      const log = this.store.log(room_id);
      if (!log.get(message.id)) return; // not loaded: history will have it as it is
      log.put(message);
      if (room_id === this.openId) this.render();
    };
    c.on("message_updated", replace);
    c.on("message_deleted", replace);
    c.on("reaction_updated", ({ room_id, message_id, reactions }) => {
      if (this.store.log(room_id).patch(message_id, { reactions }) && room_id === this.openId) this.render();
    });
    c.on("message_read", ({ room_id, user_id, up_to_seq }) => {
      if (this.store.log(room_id).read(user_id, up_to_seq) && room_id === this.openId) this.render();
    });
    c.on("typing", ({ room_id }) => {
      if (room_id === this.openId) this.#showTyping();
    });
    c.on("assistant_delta", ({ room_id, reply_id, text }) => {
      const log = this.store.log(room_id);
      if (log.get(reply_id)) return; // already stored
      log.streams.set(reply_id, { replyId: reply_id, text });
      if (room_id === this.openId) this.render();
    });
    c.on("rooms", () => {
      if (this.openId) this.#header();
    });
    c.on("room_removed", ({ room_id }) => {
      this.store.drop(room_id);
      if (room_id === this.openId) {
        this.navigate(null);
        announce("You were removed from that conversation.");
      }
    });
    c.on("state", ({ state }) => {
      if (state === "open") {
        // After a reconnect: edits, deletes and reactions made meanwhile
        // are not replayed (new messages are): re-read what is on screen.
        if (this.#wasOpen && this.openId) this.#refresh(this.openId);
        this.#wasOpen = true;
      }
      if (this.openId) this.render();
    });
  }

  // ---- opening and loading ------------------------------------------------

  /**
   * Shows a room (or nothing, with `null`).
   * @param {string | null} roomId
   */
  async open(roomId) {
    if (roomId === this.openId) return;
    if (this.openId) this.client.stopTyping(this.openId);
    this.openId = roomId;
    this.#nodes.clear();
    this.$list.replaceChildren();
    this.#pickerFor = this.#confirmDelete = this.#current = null;
    this.#stick = true;
    this.#hideError();
    this.composer.switchTo(roomId);
    this.$empty.hidden = roomId !== null;
    this.$view.hidden = roomId === null;
    if (!roomId) return;
    this.#header();
    this.#showTyping();
    const log = this.store.log(roomId);
    this.render();
    this.composer.focus();
    try {
      if (!log.loaded) await this.#loadLatest(roomId);
    } catch (error) {
      if (this.openId === roomId) this.showError(`Could not load the messages: ${reason(error)}`);
    }
    if (this.openId !== roomId) return;
    this.render();
    this.#fill();
    this.#loadMembers(roomId);
    this.#scheduleRead(true);
  }

  /** @param {string} roomId reads the newest page of history */
  async #loadLatest(roomId) {
    const page = await this.client.history(roomId, { limit: PAGE });
    const log = this.store.log(roomId);
    for (const m of page.messages) log.put(m);
    if (!log.loaded) log.hasMore = page.has_more;
    log.loaded = true;
  }

  /** @param {string} roomId re-reads the newest page and the members after a reconnect */
  async #refresh(roomId) {
    try {
      const page = await this.client.history(roomId, { limit: PAGE });
      const log = this.store.log(roomId);
      for (const m of page.messages) log.put(m);
      this.#loadMembers(roomId);
      if (this.openId === roomId) this.render();
    } catch {
      // the next reconnect tries again
    }
  }

  /** @param {string} roomId the members' names and read markers, for "seen by" */
  async #loadMembers(roomId) {
    try {
      const { members } = await this.client.rest.request("GET", `/rooms/${encodeURIComponent(roomId)}/members`);
      const log = this.store.log(roomId);
      for (const m of members) {
        if (m.name) log.names.set(m.user_id, m.name);
        log.read(m.user_id, m.last_read_seq ?? 0);
      }
      if (this.openId === roomId) {
        this.render();
        this.#header();
      }
    } catch {
      // receipts then come from live events only
    }
  }

  /** Pages in older messages (scrolling up, or the button). */
  async loadOlder() {
    const roomId = this.openId;
    if (!roomId || this.#loadingOlder) return;
    const log = this.store.log(roomId);
    if (!log.loaded || !log.hasMore) return;
    this.#loadingOlder = true;
    this.#historyLine();
    try {
      const oldest = log.oldestSeq;
      const page = await this.client.history(roomId, oldest ? { beforeSeq: oldest, limit: PAGE } : { limit: PAGE });
      if (this.openId !== roomId) return;
      const fromBottom = this.$scroller.scrollHeight - this.$scroller.scrollTop;
      for (const m of page.messages) log.put(m);
      log.hasMore = page.has_more && page.messages.length > 0;
      this.render({ keep: fromBottom });
    } catch (error) {
      this.showError(`Could not load earlier messages: ${reason(error)}`);
    } finally {
      this.#loadingOlder = false;
      this.#historyLine();
    }
    this.#fill();
  }

  /** Loads older pages until the view can scroll (a short page leaves no scrollbar to pull). */
  #fill() {
    const s = this.$scroller;
    if (s.scrollHeight <= s.clientHeight + 10) setTimeout(() => this.loadOlder(), 0);
  }

  #onScroll() {
    const s = this.$scroller;
    this.#stick = s.scrollHeight - s.scrollTop - s.clientHeight < STICK_PX;
    if (s.scrollTop < 200) this.loadOlder();
    if (this.#stick) this.#scheduleRead();
  }

  // ---- the header, typing and errors ------------------------------------

  #room() {
    return this.client.roomList.find((r) => r.id === this.openId);
  }

  #header() {
    const room = this.#room();
    const self = this.self.id;
    this.$title.textContent = room ? roomTitle(room, self) : (this.openId ?? "");
    if (!room) return (this.$sub.textContent = "");
    const people = others(room, self);
    let sub;
    if (room.room_type === "assistant") sub = "with the assistant";
    else if (room.room_type === "direct" && people.length === 1) sub = people[0].online ? "online" : "offline";
    else {
      const online = people.filter((p) => p.online).length;
      sub = `${people.length + 1} members · ${online} other${online === 1 ? "" : "s"} online`;
    }
    if (room.closed) sub += " · closed";
    if (room.metadata?.topic) sub += ` · ${room.metadata.topic}`;
    this.$sub.textContent = sub;
    document.title = `${this.$title.textContent} · confab`;
  }

  #showTyping() {
    clearTimeout(this.#typingTimer);
    if (!this.openId) return;
    const typists = this.client.typingIn(this.openId);
    this.$typing.textContent = typingText(typists);
    // Indicators expire by themselves: look again while one shows.
    if (typists.length) this.#typingTimer = setTimeout(() => this.#showTyping(), 1000);
  }

  /** @param {string} text */
  showError(text) {
    clearTimeout(this.#errorTimer);
    this.$error.textContent = text;
    this.$error.hidden = false;
    this.#errorTimer = setTimeout(() => this.#hideError(), 8000);
  }

  #hideError() {
    this.$error.hidden = true;
    this.$error.textContent = "";
  }

  #historyLine() {
    const log = this.openId ? this.store.log(this.openId) : null;
    const h = this.$history;
    h.replaceChildren();
    if (!log || !log.loaded) h.textContent = "Loading messages…";
    else if (this.#loadingOlder) h.textContent = "Loading earlier messages…";
    else if (log.hasMore) h.append(el("button", { type: "button", class: "link", text: "Load earlier messages", on: { click: () => this.loadOlder() } }));
    else h.textContent = log.byId.size ? "The beginning of the conversation." : "No messages yet: say hello.";
  }

  // ---- read markers ---------------------------------------------------------

  /**
   * Marks the open room read up to its newest message, when the user can
   * see it (the tab visible, the view at the bottom). Debounced.
   * @param {boolean} [force] also when the marker is believed to be there
   */
  #scheduleRead(force = false) {
    clearTimeout(this.#readTimer);
    this.#readTimer = setTimeout(() => {
      const roomId = this.openId;
      if (!roomId || document.visibilityState !== "visible" || !this.#stick) return;
      const log = this.store.log(roomId);
      const upTo = log.newestSeq;
      const room = this.#room();
      const behind = (room?.unread_count ?? 0) > 0;
      const marked = this.#marked.get(roomId) ?? 0;
      if (!upTo || (upTo <= marked && !(force && behind))) return;
      this.#marked.set(roomId, upTo);
      this.client.markRead(roomId, { upToSeq: upTo }).catch(() => this.#marked.delete(roomId));
    }, 150);
  }

  // ---- sending ----------------------------------------------------------------

  /**
   * Sends the composer's text: a slash command (answered to the user alone)
   * or a message, shown at once as pending.
   * @param {string} text
   * @param {{ replyTo?: string | null }} [options]
   */
  send(text, { replyTo = null } = {}) {
    const roomId = this.openId;
    if (!roomId) return;
    if (isCommand({ content: text })) return this.#command(roomId, text);
    const promise = this.client.send(roomId, text, { replyTo: replyTo ?? undefined });
    this.#pending(roomId, { clientMsgId: promise.clientMsgId, content: text, replyTo }, promise);
  }

  /**
   * Uploads a file and sends it (as an image or a file message).
   * @param {File} file
   * @param {string} caption
   * @param {{ replyTo?: string | null }} [options]
   */
  sendFile(file, caption, { replyTo = null } = {}) {
    const roomId = this.openId;
    if (!roomId) return;
    const clientMsgId = uuid();
    const previewUrl = file.type.startsWith("image/") ? URL.createObjectURL(file) : null;
    const promise = this.client.sendFile(roomId, file, { content: caption, replyTo: replyTo ?? undefined, clientMsgId });
    this.#pending(roomId, { clientMsgId, content: caption, replyTo, file, previewUrl }, promise);
  }

  /**
   * Sends a location message.
   * @param {number} lat
   * @param {number} lng
   */
  sendLocation(lat, lng) {
    const roomId = this.openId;
    if (!roomId) return;
    const promise = this.client.send(roomId, "", { messageType: "location", location: { lat, lng } });
    this.#pending(roomId, { clientMsgId: promise.clientMsgId, content: `📍 ${lat.toFixed(5)}, ${lng.toFixed(5)}`, replyTo: null, location: { lat, lng } }, promise);
  }

  /**
   * @param {string} roomId
   * @param {Partial<import("./store.js").PendingSend> & { clientMsgId: string, content: string, location?: any }} fields
   * @param {Promise<any>} promise
   */
  #pending(roomId, fields, promise) {
    const log = this.store.log(roomId);
    /** @type {any} */
    const p = { file: null, previewUrl: null, replyTo: null, state: "sending", error: null, messageId: null, createdAt: new Date().toISOString(), ...fields };
    log.pending.set(p.clientMsgId, p);
    this.#stick = true;
    if (roomId === this.openId) this.render();
    this.#track(roomId, p, promise);
  }

  /**
   * @param {string} roomId
   * @param {any} p
   * @param {Promise<any>} promise
   */
  #track(roomId, p, promise) {
    promise.then(
      (ack) => {
        const log = this.store.log(roomId);
        if (!log.pending.has(p.clientMsgId)) return;
        if (log.get(ack.message_id)) log.dropPending(p.clientMsgId);
        else p.messageId = ack.message_id;
        if (roomId === this.openId) this.render();
      },
      (error) => {
        p.state = "failed";
        p.error = reason(error);
        if (roomId === this.openId) this.render();
      },
    );
  }

  /** @param {any} p a failed send, sent again with its client_msg_id */
  #retry(p) {
    const roomId = this.openId;
    if (!roomId) return;
    p.state = "sending";
    p.error = null;
    const options = { replyTo: p.replyTo ?? undefined, clientMsgId: p.clientMsgId };
    let promise;
    if (p.file) promise = this.client.sendFile(roomId, p.file, { ...options, content: p.content });
    else if (p.location) promise = this.client.send(roomId, "", { ...options, messageType: "location", location: p.location });
    else promise = this.client.send(roomId, p.content, options);
    this.render();
    this.#track(roomId, p, promise);
  }

  /**
   * @param {string} roomId
   * @param {string} text
   */
  #command(roomId, text) {
    const log = this.store.log(roomId);
    /** @type {import("./store.js").Note} */
    const note = { id: uuid(), command: text.split(/\s/)[0], afterSeq: log.newestSeq, result: null, error: null };
    log.notes.push(note);
    this.#stick = true;
    this.render();
    this.client.command(roomId, text).then(
      (result) => (note.result = result),
      (error) => (note.error = reason(error)),
    ).finally(() => {
      if (this.openId === roomId) {
        this.render();
        announce(`${note.command}: ${note.error ?? note.result?.text ?? ""}`);
      }
    });
  }

  /**
   * Saves an edit.
   * @param {string} messageId
   * @param {string} text
   */
  edit(messageId, text) {
    const roomId = this.openId;
    if (!roomId) return;
    this.client.edit(roomId, messageId, text).catch((error) => this.showError(`Not edited: ${reason(error)}`));
  }

  /** The user's newest message that can be edited (for Arrow Up). */
  lastOwnMessage() {
    if (!this.openId) return null;
    const mine = this.store.log(this.openId).messages().filter((m) => m.sender?.id === this.self.id && !m.deleted && m.message_type === "text");
    return mine[mine.length - 1] ?? null;
  }

  /** The composer's text changed: tell the room the user is typing. */
  typing(active = true) {
    if (!this.openId) return;
    if (active) this.client.typing(this.openId);
    else this.client.stopTyping(this.openId);
  }

  // ---- actions on messages ---------------------------------------------------

  /**
   * @param {string} action
   * @param {string} id a message id (or a pending send's client_msg_id)
   * @param {any} [extra]
   */
  act(action, id, extra) {
    const roomId = this.openId;
    if (!roomId) return;
    const log = this.store.log(roomId);
    const message = log.get(id);
    switch (action) {
      case "reply":
        if (message) this.composer.startReply(message);
        break;
      case "edit":
        if (message) this.composer.startEdit(message);
        break;
      case "picker":
        this.#pickerFor = this.#pickerFor === id ? null : id;
        this.render();
        this.#focusIn(id, this.#pickerFor ? "[data-action=pick]" : "[data-action=picker]");
        break;
      case "react":
      case "unreact":
        this.#pickerFor = null;
        this.render();
        this.#focusIn(id, "[data-action=picker]");
        (action === "react" ? this.client.react(roomId, id, extra) : this.client.unreact(roomId, id, extra)).catch((error) =>
          this.showError(`Reaction not saved: ${reason(error)}`),
        );
        break;
      case "ask-delete":
        this.#confirmDelete = id;
        clearTimeout(this.#confirmTimer);
        this.#confirmTimer = setTimeout(() => {
          this.#confirmDelete = null;
          this.render();
        }, 5000);
        this.render();
        this.#focusIn(id, "[data-action=delete]");
        break;
      case "delete":
        this.#confirmDelete = null;
        this.client.deleteMessage(roomId, id).catch((error) => this.showError(`Not deleted: ${reason(error)}`));
        break;
      case "jump": {
        const node = this.#nodes.get(`m:${id}`)?.node;
        if (node) {
          node.scrollIntoView({ block: "center" });
          node.focus();
          node.classList.add("flash");
          setTimeout(() => node.classList.remove("flash"), 1500);
        } else this.showError("That message is further back: scroll up to load it.");
        break;
      }
      case "download":
        if (message?.attachment) this.#download(message.attachment);
        break;
      case "retry": {
        const p = log.pending.get(id);
        if (p) this.#retry(p);
        break;
      }
      case "discard":
        log.dropPending(id);
        this.render();
        break;
      case "media-loaded":
        if (this.#stick) this.$scroller.scrollTop = this.$scroller.scrollHeight;
        break;
    }
  }

  /**
   * Focuses an element inside a list entry after it was redrawn.
   * @param {string} id
   * @param {string} selector
   */
  #focusIn(id, selector) {
    const node = this.#nodes.get(`m:${id}`)?.node;
    /** @type {HTMLElement | null | undefined} */ (node?.querySelector(selector))?.focus();
  }

  /**
   * An attachment's `blob:` URL: downloaded with the token (its URL needs
   * one), cached per attachment. Redraws when it arrives.
   * @param {any} attachment
   */
  #blob(attachment) {
    let entry = this.#blobs.get(attachment.id);
    if (!entry) {
      entry = { url: null, error: null };
      this.#blobs.set(attachment.id, entry);
      const e = entry;
      this.client.download(attachment).then(
        (blob) => (e.url = URL.createObjectURL(blob)),
        (error) => (e.error = reason(error)),
      ).finally(() => this.openId && this.render());
    }
    return entry;
  }

  /** @param {any} attachment saves a file: fetched with the token, handed over as a blob: URL */
  async #download(attachment) {
    try {
      const blob = await this.client.download(attachment);
      const url = URL.createObjectURL(blob);
      const a = el("a", { href: url, download: attachment.name || "file", hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (error) {
      this.showError(`Could not download ${attachment.name}: ${reason(error)}`);
    }
  }

  // ---- drawing the list -------------------------------------------------------

  /** @param {string} userId */
  nameOf(userId) {
    if (userId === this.self.id) return this.self.name;
    const log = this.openId ? this.store.log(this.openId) : null;
    const known = log?.names.get(userId);
    if (known) return known;
    const p = this.#room()?.participants?.find((x) => x.id === userId);
    return p?.name || userId;
  }

  /**
   * Redraws the open room's list: only entries that changed are rebuilt
   * (keyed by message id), so focus and scroll stay where they are.
   * @param {{ keep?: number }} [options] `keep`: distance from the bottom to
   *   hold (older messages were put above)
   */
  render({ keep } = {}) {
    const roomId = this.openId;
    if (!roomId) return;
    const log = this.store.log(roomId);
    const self = this.self.id;
    const online = this.client.state === "open";
    /** @type {import("./message.js").RenderContext} */
    const ctx = {
      selfId: self,
      selfName: this.self.name,
      lookup: (id) => log.get(id),
      nameOf: (id) => this.nameOf(id),
      blob: (a) => this.#blob(a),
      pickerFor: this.#pickerFor,
      confirmDelete: this.#confirmDelete,
      online,
      act: (action, id, extra) => this.act(action, id, extra),
    };
    const messages = log.messages();
    const seen = log.seenBy(self);
    const lastMine = [...messages].reverse().find((m) => m.sender?.id === self && !m.deleted);

    /** @type {{ key: string, pos: number, sig: string, make: () => HTMLElement }[]} */
    const items = [];
    for (const m of messages) {
      const readers = seen.get(m.id);
      let status = null;
      if (readers) status = seenText(readers.map((r) => this.nameOf(r)));
      else if (m === lastMine) status = "Sent";
      const replied = m.reply_to ? log.get(m.reply_to) : null;
      const blob = m.attachment ? this.#blobs.get(m.attachment.id) : null;
      const sig = JSON.stringify([
        m.content, m.deleted, m.edited_at, m.reactions, status, m.reply_to && snippet(replied), replied?.sender?.id,
        blob?.url ?? blob?.error ?? null, this.#pickerFor === m.id, this.#confirmDelete === m.id,
        m.sender?.name,
      ]);
      items.push({ key: `m:${m.id}`, pos: m.seq, sig, make: () => renderMessage(m, ctx, status) });
    }
    for (const n of log.notes) {
      items.push({ key: `n:${n.id}`, pos: n.afterSeq + 0.5, sig: JSON.stringify([n.result, n.error]), make: () => renderNote(n) });
    }
    items.sort((a, b) => a.pos - b.pos);
    for (const s of log.streams.values()) {
      items.push({ key: `s:${s.replyId}`, pos: Infinity, sig: s.text, make: () => renderStream(s) });
    }
    for (const p of log.pending.values()) {
      const sig = JSON.stringify([p.state, p.error, p.messageId, online, p.content]);
      items.push({ key: `p:${p.clientMsgId}`, pos: Infinity, sig, make: () => renderPending(p, ctx) });
    }

    this.#reconcile(items);
    this.#roving();
    this.#historyLine();
    const s = this.$scroller;
    if (keep !== undefined) s.scrollTop = s.scrollHeight - keep;
    else if (this.#stick) s.scrollTop = s.scrollHeight;
  }

  /**
   * Puts the entries in order in the list, reusing unchanged elements.
   * @param {{ key: string, sig: string, make: () => HTMLElement }[]} items
   */
  #reconcile(items) {
    const list = this.$list;
    /** @type {ChildNode | null} */
    let cursor = list.firstChild;
    const keys = new Set();
    for (const item of items) {
      keys.add(item.key);
      let entry = this.#nodes.get(item.key);
      if (entry && entry.sig !== item.sig) {
        const fresh = item.make();
        fresh.dataset.key = item.key;
        const focused = entry.node.contains(document.activeElement) ? /** @type {HTMLElement} */ (document.activeElement) : null;
        if (cursor === entry.node) cursor = fresh;
        entry.node.replaceWith(fresh);
        if (focused) refocus(focused, entry.node, fresh);
        entry = { node: fresh, sig: item.sig };
        this.#nodes.set(item.key, entry);
      }
      if (!entry) {
        const node = item.make();
        node.dataset.key = item.key;
        entry = { node, sig: item.sig };
        this.#nodes.set(item.key, entry);
      }
      if (entry.node === cursor) cursor = cursor.nextSibling;
      else list.insertBefore(entry.node, cursor);
    }
    for (const [key, entry] of this.#nodes) {
      if (!keys.has(key)) {
        entry.node.remove();
        this.#nodes.delete(key);
      }
    }
  }

  /** One list entry (the current one, else the newest) takes the Tab stop; arrows move between them. */
  #roving() {
    const entries = /** @type {HTMLElement[]} */ ([...this.$list.children]);
    if (!entries.length) return;
    // Tabbing into the list from elsewhere lands on the newest entry.
    const inside = this.$list.contains(document.activeElement);
    if (!inside || !this.#current || !this.#nodes.has(this.#current)) this.#current = entries[entries.length - 1].dataset.key ?? null;
    for (const li of entries) {
      const on = li.dataset.key === this.#current;
      li.tabIndex = on ? 0 : -1;
      for (const b of li.querySelectorAll("button, a")) /** @type {HTMLElement} */ (b).tabIndex = on ? 0 : -1;
    }
  }

  /** @param {KeyboardEvent} e arrows, Home and End move between messages; Esc goes back to the box */
  #onListKey(e) {
    const entries = /** @type {HTMLElement[]} */ ([...this.$list.children]);
    const li = /** @type {HTMLElement} */ (e.target).closest?.("li[data-key]");
    const at = li ? entries.indexOf(/** @type {HTMLElement} */ (li)) : -1;
    let next = -1;
    if (e.key === "ArrowUp") next = Math.max(0, at - 1);
    else if (e.key === "ArrowDown") next = Math.min(entries.length - 1, at + 1);
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = entries.length - 1;
    else if (e.key === "Escape") {
      if (this.#pickerFor) {
        const id = this.#pickerFor;
        this.#pickerFor = null;
        this.render();
        this.#focusIn(id, "[data-action=picker]");
      } else this.composer.focus();
      e.preventDefault();
      return;
    }
    if (next < 0 || at < 0) return;
    e.preventDefault();
    entries[next].focus();
    if (next === 0) this.loadOlder();
  }
}

/**
 * Puts the focus back on the same control of a redrawn entry.
 * @param {HTMLElement} focused
 * @param {HTMLElement} old
 * @param {HTMLElement} fresh
 */
function refocus(focused, old, fresh) {
  if (focused === old) return fresh.focus();
  const action = focused.dataset.action;
  const emoji = focused.dataset.emoji;
  const selector = action ? `[data-action="${action}"]${emoji ? `[data-emoji="${CSS.escape(emoji)}"]` : ""}` : null;
  const same = selector ? /** @type {HTMLElement | null} */ (fresh.querySelector(selector)) : null;
  (same ?? fresh).focus();
}

/** @param {any} error a failure, as people read it */
export function reason(error) {
  if (!error) return "unknown error";
  return error.message || error.code || String(error);
}
