// The room list (newest activity first, reordered live, with unread
// badges, the last message and presence dots) and the dialog that starts a
// conversation: with one person, a group, or the assistant.

import { byId, el, srOnly } from "./dom.js";
import { others, personName, roomTitle, shortTime } from "./format.js";

export class RoomList {
  /** @type {string | null} */
  activeId = null;
  /** @type {Map<string, HTMLElement>} room id → its list item */
  #items = new Map();

  /**
   * @param {object} deps
   * @param {import("./confab/confab.js").ConfabClient} deps.client
   * @param {{ id: string, name: string }} deps.self
   * @param {(roomId: string | null) => void} deps.navigate
   */
  constructor({ client, self, navigate }) {
    this.client = client;
    this.self = self;
    this.navigate = navigate;
    this.$list = byId("room-list");
    this.$empty = byId("room-list-empty");
    client.on("rooms", () => this.render());
    this.$list.addEventListener("keydown", (/** @type {KeyboardEvent} */ e) => this.#onKey(e));
    this.#dialog();
  }

  /** @param {string | null} roomId marks the open room */
  setActive(roomId) {
    this.activeId = roomId;
    this.render();
  }

  /** Draws the list in the client's order, reusing each room's item (moved, not rebuilt, when it reorders). */
  render() {
    const rooms = this.client.roomList;
    this.$empty.hidden = rooms.length > 0;
    const focused = document.activeElement;
    const keep = new Set();
    /** @type {ChildNode | null} */
    let cursor = this.$list.firstChild;
    for (const room of rooms) {
      keep.add(room.id);
      const fresh = this.#item(room);
      const old = this.#items.get(room.id);
      let node = fresh;
      if (old && old.dataset.sig === fresh.dataset.sig) node = old;
      else if (old) {
        if (cursor === old) cursor = fresh;
        old.replaceWith(fresh);
      }
      this.#items.set(room.id, node);
      if (node === cursor) cursor = cursor.nextSibling;
      else this.$list.insertBefore(node, cursor);
    }
    for (const [id, node] of this.#items) {
      if (!keep.has(id)) {
        node.remove();
        this.#items.delete(id);
      }
    }
    // A moved or redrawn item loses the focus: give it back.
    if (focused instanceof HTMLElement && !focused.isConnected && focused.dataset.room) {
      /** @type {HTMLElement | undefined} */ (this.#items.get(focused.dataset.room)?.querySelector("button"))?.focus();
    }
    this.#people();
  }

  /**
   * One room's item: a button with the title, presence, time, last message
   * and unread badge (spelled out for screen readers).
   * @param {any} room
   */
  #item(room) {
    const title = roomTitle(room, this.self.id);
    const people = others(room, this.self.id);
    const online = people.some((p) => p.online);
    const active = room.id === this.activeId;
    // The open room is read as messages come: no badge while it shows.
    const unread = active && document.visibilityState === "visible" ? 0 : room.unread_count ?? 0;
    const kind = room.room_type === "assistant" ? "🤖 " : room.room_type === "group" ? "# " : "";
    const last = room.last_message_content ?? "";
    const sig = JSON.stringify([title, online, active, unread, last, room.last_message_time, room.closed, kind]);
    const button = el(
      "button",
      {
        type: "button",
        class: `room${unread ? " has-unread" : ""}`,
        dataset: { room: room.id },
        attrs: { "aria-current": active ? "true" : null },
        on: { click: () => this.navigate(room.id) },
      },
      el("span", {
        class: `dot${online ? " online" : ""}`,
        title: online ? "online" : "offline",
        attrs: { "aria-hidden": "true" },
      }),
      el("span", { class: "room-name" }, kind ? el("span", { class: "kind", text: kind, attrs: { "aria-hidden": "true" } }) : null, title),
      el("time", { class: "room-time muted", dateTime: room.last_message_time ?? "", text: shortTime(room.last_message_time) }),
      el("span", { class: "room-last muted", text: room.closed ? "(closed)" : last || (room.last_seq ? "…" : "No messages yet") }),
      unread ? el("span", { class: "badge", text: unread > 99 ? "99+" : String(unread), attrs: { "aria-hidden": "true" } }) : null,
      srOnly(`${online ? ", someone online" : ""}${unread ? `, ${unread} unread` : ""}`),
    );
    const li = el("li", { dataset: { sig, roomId: room.id } }, button);
    return li;
  }

  /** @param {KeyboardEvent} e Arrow Up and Down move between rooms */
  #onKey(e) {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const buttons = /** @type {HTMLElement[]} */ ([...this.$list.querySelectorAll("button.room")]);
    const at = buttons.indexOf(/** @type {HTMLElement} */ (document.activeElement));
    if (at < 0) return;
    e.preventDefault();
    buttons[Math.max(0, Math.min(buttons.length - 1, at + (e.key === "ArrowDown" ? 1 : -1)))].focus();
  }

  /** Everyone met in a room, offered when starting a conversation. */
  #people() {
    const list = byId("known-people");
    /** @type {Map<string, string>} */
    const seen = new Map();
    for (const room of this.client.roomList) for (const p of others(room, this.self.id)) if (p.id !== "assistant") seen.set(p.id, personName(p));
    list.replaceChildren(...[...seen].map(([id, name]) => el("option", { value: id, text: name })));
  }

  // ---- the "new conversation" dialog ----------------------------------------

  #dialog() {
    const dialog = /** @type {HTMLDialogElement} */ (byId("new-room-dialog"));
    const form = /** @type {HTMLFormElement} */ (byId("new-room-form"));
    const name = /** @type {HTMLInputElement} */ (byId("new-room-name"));
    const members = /** @type {HTMLInputElement} */ (byId("new-room-members"));
    const error = byId("new-room-error");
    const kind = () => /** @type {HTMLInputElement | null} */ (form.querySelector("input[name=kind]:checked"))?.value ?? "direct";
    const fields = () => {
      const k = kind();
      byId("field-name").hidden = k === "direct";
      byId("field-members").hidden = k === "assistant";
      byId("new-room-members-label").textContent = k === "group" ? "Members' user ids (separated by commas)" : "Their user id";
      byId("new-room-members-hint").textContent =
        k === "group" ? "Such as bob, carol: people who signed in as “Bob” and “Carol”. You can /invite more later." : "A user id, such as bob (someone who signed in as “Bob”).";
      name.placeholder = k === "assistant" ? "Help" : "Lunch plans";
    };
    form.addEventListener("change", fields);
    byId("new-room-button").addEventListener("click", () => {
      form.reset();
      error.textContent = "";
      fields();
      dialog.showModal();
    });
    byId("new-room-cancel").addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      error.textContent = "";
      const k = kind();
      const ids = members.value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
      /** @type {Record<string, any>} */
      const room = { room_type: k };
      if (k !== "direct" && name.value.trim()) room.name = name.value.trim();
      if (k === "assistant" && !room.name) room.name = "Assistant";
      if (k === "direct") {
        if (ids.length !== 1) return void (error.textContent = "Give one user id.");
        if (ids[0] === this.self.id) return void (error.textContent = "That is you: give someone else's id.");
        room.members = ids;
      }
      if (k === "group") {
        if (!room.name) return void (error.textContent = "Give the group a name.");
        room.members = ids;
      }
      try {
        const created = await this.client.createRoom(room);
        dialog.close();
        this.navigate(created.id);
      } catch (err) {
        error.textContent = `Could not start it: ${/** @type {any} */ (err)?.message ?? err}`;
      }
    });
  }
}
