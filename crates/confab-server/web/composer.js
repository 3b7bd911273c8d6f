// The message box and what goes with it: Enter sends, Shift+Enter makes a
// new line, Esc cancels a reply, an edit or an attachment, Arrow Up in an
// empty box edits the user's last message; typing indicators; the chosen
// file's preview; the location dialog. Drafts are kept per room.

import { byId, el } from "./dom.js";
import { fileSize, personName } from "./format.js";
import { snippet } from "./message.js";

export class Composer {
  /** @type {{ kind: "reply" | "edit", message: any } | null} */
  #mode = null;
  /** @type {File | null} */
  #file = null;
  /** @type {string | null} */
  #fileUrl = null;
  /** @type {string | null} */
  #roomId = null;
  /** @type {Map<string, string>} room → unsent text */
  #drafts = new Map();
  /** The draft put aside while editing a message. */
  #beforeEdit = "";

  /** @param {import("./conversation.js").Conversation} conversation */
  constructor(conversation) {
    this.conversation = conversation;
    this.$form = byId("composer");
    this.$input = /** @type {HTMLTextAreaElement} */ (byId("message-input"));
    this.$file = /** @type {HTMLInputElement} */ (byId("file-input"));
    this.$bar = byId("context-bar");
    this.$barText = byId("context-text");
    this.$preview = byId("attachment-preview");
    this.$send = byId("send-button");

    this.$form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.$input.addEventListener("keydown", (e) => this.#onKey(e));
    this.$input.addEventListener("input", () => {
      this.#grow();
      if (this.#mode?.kind !== "edit") this.conversation.typing(this.$input.value.trim() !== "");
    });
    byId("context-cancel").addEventListener("click", () => {
      this.cancel();
      this.focus();
    });
    byId("attach-button").addEventListener("click", () => this.$file.click());
    this.$file.addEventListener("change", () => {
      const file = this.$file.files?.[0];
      if (file) this.attach(file);
      this.$file.value = "";
    });
    byId("location-button").addEventListener("click", () => this.#askLocation());
    // Files dropped on the room or pasted into the box are attached too.
    const room = byId("room-view");
    room.addEventListener("dragover", (/** @type {DragEvent} */ e) => e.preventDefault());
    room.addEventListener("drop", (/** @type {DragEvent} */ e) => {
      const file = e.dataTransfer?.files?.[0];
      if (!file) return;
      e.preventDefault();
      this.attach(file);
    });
    this.$input.addEventListener("paste", (e) => {
      const file = e.clipboardData?.files?.[0];
      if (file) {
        e.preventDefault();
        this.attach(file);
      }
    });
    this.#locationDialog();
  }

  focus() {
    this.$input.focus();
  }

  /**
   * Another room was opened: keep this room's draft, restore that one's.
   * @param {string | null} roomId
   */
  switchTo(roomId) {
    if (this.#roomId && this.#mode?.kind !== "edit") this.#drafts.set(this.#roomId, this.$input.value);
    this.#setMode(null);
    this.#detach();
    this.#roomId = roomId;
    this.$input.value = (roomId && this.#drafts.get(roomId)) || "";
    this.#grow();
  }

  /** @param {any} message answers it with the next send */
  startReply(message) {
    if (this.#mode?.kind === "edit") this.$input.value = this.#beforeEdit;
    this.#setMode({ kind: "reply", message });
    this.focus();
  }

  /** @param {any} message puts its text in the box; Enter saves, Esc cancels */
  startEdit(message) {
    if (this.#mode?.kind !== "edit") this.#beforeEdit = this.$input.value;
    this.#detach();
    this.#setMode({ kind: "edit", message });
    this.$input.value = message.content ?? "";
    this.#grow();
    this.focus();
    this.$input.setSelectionRange(this.$input.value.length, this.$input.value.length);
  }

  /** Esc: drops the reply, the edit (restoring the draft) or the attachment. */
  cancel() {
    if (this.#mode?.kind === "edit") {
      this.$input.value = this.#beforeEdit;
      this.#grow();
    }
    const had = this.#mode !== null || this.#file !== null;
    this.#setMode(null);
    this.#detach();
    return had;
  }

  /** @param {File} file shows it, to be sent with the next Enter */
  attach(file) {
    if (this.#mode?.kind === "edit") this.cancel();
    this.#detach();
    this.#file = file;
    this.#fileUrl = file.type.startsWith("image/") ? URL.createObjectURL(file) : null;
    this.$preview.replaceChildren(
      this.#fileUrl ? el("img", { src: this.#fileUrl, alt: `Preview of ${file.name}` }) : el("span", { class: "file-icon", text: "📄", attrs: { "aria-hidden": "true" } }),
      el("span", { class: "preview-name", text: `${file.name} · ${fileSize(file.size)}` }),
      el("button", { type: "button", class: "link", text: "Remove", on: { click: () => (this.#detach(), this.focus()) } }),
    );
    this.$preview.hidden = false;
    this.$input.placeholder = "Add a caption (optional)";
    this.focus();
  }

  /** Sends (or saves the edit) and empties the box. */
  submit() {
    const text = this.$input.value;
    const mode = this.#mode;
    if (mode?.kind === "edit") {
      if (!text.trim()) {
        this.conversation.showError("An edit cannot be empty: delete the message instead.");
        return;
      }
      if (text !== mode.message.content) this.conversation.edit(mode.message.id, text);
      this.$input.value = this.#beforeEdit;
    } else if (this.#file) {
      this.conversation.sendFile(this.#file, text.trim() ? text : "", { replyTo: mode?.message.id ?? null });
      this.$input.value = "";
    } else {
      if (!text.trim()) return;
      this.conversation.send(text, { replyTo: mode?.message.id ?? null });
      this.$input.value = "";
    }
    if (this.#roomId) this.#drafts.delete(this.#roomId);
    this.#setMode(null);
    this.#detach();
    this.#grow();
    this.focus();
  }

  /** @param {KeyboardEvent} e */
  #onKey(e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      this.submit();
    } else if (e.key === "Escape") {
      if (this.cancel()) e.preventDefault();
    } else if (e.key === "ArrowUp" && this.$input.value === "" && !this.#mode && !this.#file) {
      const last = this.conversation.lastOwnMessage();
      if (last) {
        e.preventDefault();
        this.startEdit(last);
      }
    }
  }

  /** @param {{ kind: "reply" | "edit", message: any } | null} mode */
  #setMode(mode) {
    this.#mode = mode;
    this.$bar.hidden = !mode;
    this.$bar.dataset.kind = mode?.kind ?? "";
    if (mode?.kind === "reply") this.$barText.textContent = `Replying to ${personName(mode.message.sender)}: ${snippet(mode.message)}`;
    else if (mode?.kind === "edit") this.$barText.textContent = "Editing your message (Enter saves)";
    else this.$barText.textContent = "";
    this.$send.textContent = mode?.kind === "edit" ? "Save" : "Send";
  }

  /** Drops the chosen file and its preview (a pending send makes its own). */
  #detach() {
    if (this.#fileUrl) URL.revokeObjectURL(this.#fileUrl);
    this.#file = null;
    this.#fileUrl = null;
    this.$preview.hidden = true;
    this.$preview.replaceChildren();
    this.$input.placeholder = "Message";
  }

  /** The box grows with its text, up to a limit (set from script: the CSP allows no inline style). */
  #grow() {
    const t = this.$input;
    t.style.height = "auto";
    t.style.height = `${Math.min(t.scrollHeight + 2, 200)}px`;
  }

  // ---- location -------------------------------------------------------------

  #locationDialog() {
    const dialog = /** @type {HTMLDialogElement} */ (byId("location-dialog"));
    const form = byId("location-form");
    const lat = /** @type {HTMLInputElement} */ (byId("location-lat"));
    const lng = /** @type {HTMLInputElement} */ (byId("location-lng"));
    const error = byId("location-error");
    byId("location-cancel").addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => this.focus());
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const la = Number(lat.value.replace(",", "."));
      const ln = Number(lng.value.replace(",", "."));
      if (!lat.value.trim() || !Number.isFinite(la) || la < -90 || la > 90) return void (error.textContent = "Latitude: a number from -90 to 90.");
      if (!lng.value.trim() || !Number.isFinite(ln) || ln < -180 || ln > 180) return void (error.textContent = "Longitude: a number from -180 to 180.");
      dialog.close();
      this.conversation.sendLocation(la, ln);
    });
    this.$dialog = dialog;
  }

  /** Opens the location dialog, filled in from the device's position when it is shared. */
  #askLocation() {
    const status = byId("location-status");
    byId("location-error").textContent = "";
    const lat = /** @type {HTMLInputElement} */ (byId("location-lat"));
    const lng = /** @type {HTMLInputElement} */ (byId("location-lng"));
    this.$dialog?.showModal();
    if (!navigator.geolocation) {
      status.textContent = "Type the coordinates (this browser cannot tell where you are).";
      return;
    }
    status.textContent = "Asking the browser where you are…";
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        lat.value = pos.coords.latitude.toFixed(5);
        lng.value = pos.coords.longitude.toFixed(5);
        status.textContent = "Your position, from the browser. Change it if you like.";
      },
      () => (status.textContent = "Your position is not available: type the coordinates."),
      { timeout: 8000, maximumAge: 60_000 },
    );
  }
}
