// One entry of the conversation as an element: a stored message (text,
// reply quote, image, file, location, reactions, "seen by", its actions), a
// send waiting for its ack, the assistant's reply as it streams, or a
// command's result. Everything a user wrote goes in as text.

import { el } from "./dom.js";
import { fileSize, longTime, mapLink, personName, shortTime } from "./format.js";

/** The reactions offered by the picker (any emoji the server accepts works). */
export const REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

/**
 * What rendering needs from the conversation.
 * @typedef {object} RenderContext
 * @property {string} selfId
 * @property {string} selfName
 * @property {(id: string) => any} lookup a loaded message by id (reply quotes)
 * @property {(userId: string) => string} nameOf
 * @property {(attachment: any) => { url: string | null, error: string | null }} blob
 *   the attachment's `blob:` URL once downloaded (starts the download)
 * @property {string | null} pickerFor the message whose reaction picker is open
 * @property {string | null} confirmDelete the message whose delete awaits a confirmation
 * @property {boolean} online whether the connection is open (for pending sends)
 * @property {(action: string, id: string, extra?: any) => void} act
 */

/**
 * A short, single-line version of a message, for reply quotes.
 * @param {any} message
 */
export function snippet(message) {
  if (!message) return "an earlier message";
  if (message.deleted) return "a deleted message";
  const text = (message.content ?? "").replace(/\s+/g, " ").trim();
  const kind = { image: "🖼 image", file: "📄 file", location: "📍 location" }[message.message_type];
  const base = text || kind || "";
  return base.length > 90 ? `${base.slice(0, 89)}…` : base;
}

/**
 * @param {string} label
 * @param {string} action
 * @param {string} id
 * @param {RenderContext} ctx
 * @param {Record<string, any>} [props]
 */
function actionButton(label, action, id, ctx, props = {}) {
  return el("button", {
    type: "button",
    class: props.class ?? "action",
    text: label,
    dataset: { action },
    attrs: props.attrs,
    on: { click: () => ctx.act(action, id, props.extra) },
  });
}

/**
 * The quote above a reply: who and what it answers (a button that scrolls
 * to it, when loaded).
 * @param {string} replyTo
 * @param {RenderContext} ctx
 */
function quote(replyTo, ctx) {
  const original = ctx.lookup(replyTo);
  const who = original ? personName(original.sender) : "";
  return el(
    "button",
    {
      type: "button",
      class: "quote",
      dataset: { action: "jump" },
      attrs: { "aria-label": `Reply to ${who || "an earlier message"}: ${snippet(original)}. Show it.` },
      on: { click: () => ctx.act("jump", replyTo) },
    },
    el("span", { class: "quote-who", text: who ? `↪ ${who}` : "↪" }),
    " ",
    el("span", { class: "quote-text", text: snippet(original) }),
  );
}

/**
 * The body of a stored message by its type.
 * @param {any} m
 * @param {RenderContext} ctx
 */
function body(m, ctx) {
  if (m.deleted) return [el("p", { class: "deleted-text", text: "This message was deleted." })];
  const parts = [];
  if (m.message_type === "image" && m.attachment) {
    const { url, error } = ctx.blob(m.attachment);
    const name = m.attachment.name || "image";
    parts.push(
      el(
        "figure",
        { class: "image" },
        url
          ? el("img", { src: url, alt: m.content || name, attrs: { loading: "lazy" }, on: { load: () => ctx.act("media-loaded", m.id) } })
          : el("div", { class: "image-placeholder", text: error ? `Could not load ${name}: ${error}` : `Loading ${name}…` }),
        el("figcaption", { class: "muted", text: `${name} · ${fileSize(m.attachment.size)}` }),
      ),
    );
  } else if (m.message_type === "file" && m.attachment) {
    const name = m.attachment.name || "file";
    parts.push(
      el(
        "button",
        {
          type: "button",
          class: "file",
          dataset: { action: "download" },
          on: { click: () => ctx.act("download", m.id) },
        },
        el("span", { class: "file-icon", text: "📄", attrs: { "aria-hidden": "true" } }),
        el("span", { class: "file-name", text: name }),
        el("span", { class: "muted", text: ` ${fileSize(m.attachment.size)} · download` }),
      ),
    );
  } else if (m.message_type === "location" && m.location) {
    const { lat, lng } = m.location;
    parts.push(
      el(
        "p",
        { class: "location" },
        el("span", { text: `📍 ${Number(lat).toFixed(5)}, ${Number(lng).toFixed(5)} ` }),
        el("a", {
          href: mapLink(m.location),
          target: "_blank",
          rel: "noopener noreferrer",
          text: "Open the map",
          attrs: { "aria-label": `Open ${Number(lat).toFixed(5)}, ${Number(lng).toFixed(5)} in OpenStreetMap (a new tab)` },
        }),
      ),
    );
  }
  if (m.content) {
    if (m.metadata?.action) {
      parts.push(el("p", { class: "text action-text", text: `* ${personName(m.sender)} ${m.content}` }));
    } else {
      parts.push(el("p", { class: "text", text: m.content }));
    }
  }
  if (m.metadata?.fallback) parts.push(el("p", { class: "muted small", text: "(the assistant's fallback reply)" }));
  return parts;
}

/**
 * The reaction chips: one button per emoji, pressed when the user is among
 * those who reacted.
 * @param {any} m
 * @param {RenderContext} ctx
 */
function reactions(m, ctx) {
  const entries = Object.entries(m.reactions ?? {}).filter(([, users]) => users.length);
  if (!entries.length || m.deleted) return null;
  return el(
    "div",
    { class: "reactions", attrs: { role: "group", "aria-label": "Reactions" } },
    ...entries.map(([emoji, users]) => {
      const mine = users.includes(ctx.selfId);
      const names = users.map((u) => (u === ctx.selfId ? "you" : ctx.nameOf(u)));
      return el("button", {
        type: "button",
        class: "chip",
        text: `${emoji} ${users.length}`,
        title: names.join(", "),
        dataset: { action: "toggle-reaction", emoji },
        attrs: { "aria-pressed": mine ? "true" : "false", "aria-label": `${emoji} ${users.length}: ${names.join(", ")}` },
        on: { click: () => ctx.act(mine ? "unreact" : "react", m.id, emoji) },
      });
    }),
  );
}

/**
 * A stored message.
 * @param {any} m
 * @param {RenderContext} ctx
 * @param {string | null} status the status line under the user's own message
 */
export function renderMessage(m, ctx, status) {
  const mine = m.sender?.id === ctx.selfId;
  const system = m.message_type === "system";
  const classes = ["msg", mine ? "mine" : "theirs"];
  if (system) classes.push("system");
  if (m.deleted) classes.push("deleted");
  const who = mine ? "You" : personName(m.sender);
  const li = el("li", {
    class: classes.join(" "),
    tabIndex: -1,
    dataset: { id: m.id, seq: String(m.seq), sender: m.sender?.id ?? "" },
  });
  li.append(
    el(
      "div",
      { class: "meta" },
      el("span", { class: "sender", text: system ? "" : who }),
      el("time", { dateTime: m.timestamp, title: longTime(m.timestamp), text: shortTime(m.timestamp) }),
      m.edited_at && !m.deleted ? el("span", { class: "edited muted", text: "(edited)", title: `edited ${longTime(m.edited_at)}` }) : null,
    ),
  );
  if (m.reply_to && !m.deleted) li.append(quote(m.reply_to, ctx));
  li.append(el("div", { class: "bubble" }, ...body(m, ctx)));
  const chips = reactions(m, ctx);
  if (chips) li.append(chips);
  if (status) li.append(el("p", { class: "status muted", text: status }));
  if (!m.deleted && !system) {
    const actions = el("div", { class: "actions", attrs: { role: "group", "aria-label": "Message actions" } });
    actions.append(actionButton("Reply", "reply", m.id, ctx));
    actions.append(
      actionButton("React", "picker", m.id, ctx, { attrs: { "aria-expanded": ctx.pickerFor === m.id ? "true" : "false" } }),
    );
    if (mine && (m.message_type === "text" || m.content)) actions.append(actionButton("Edit", "edit", m.id, ctx));
    if (mine) {
      const confirming = ctx.confirmDelete === m.id;
      actions.append(actionButton(confirming ? "Delete for everyone?" : "Delete", confirming ? "delete" : "ask-delete", m.id, ctx, { class: confirming ? "action danger" : "action" }));
    }
    li.append(actions);
    if (ctx.pickerFor === m.id) {
      li.append(
        el(
          "div",
          { class: "picker", attrs: { role: "group", "aria-label": "Pick a reaction" } },
          ...REACTIONS.map((emoji) =>
            el("button", {
              type: "button",
              class: "chip",
              text: emoji,
              dataset: { action: "pick", emoji },
              attrs: { "aria-label": `React with ${emoji}` },
              on: { click: () => ctx.act("react", m.id, emoji) },
            }),
          ),
        ),
      );
    }
  }
  return li;
}

/**
 * A send not yet acknowledged: shown at once, marked as sending, waiting
 * for the connection, or failed (with Retry and Discard).
 * @param {import("./store.js").PendingSend} p
 * @param {RenderContext} ctx
 */
export function renderPending(p, ctx) {
  const li = el("li", {
    class: `msg mine pending${p.state === "failed" ? " failed" : ""}`,
    tabIndex: -1,
    dataset: { pending: p.clientMsgId },
  });
  li.append(el("div", { class: "meta" }, el("span", { class: "sender", text: "You" }), el("time", { dateTime: p.createdAt, text: shortTime(p.createdAt) })));
  if (p.replyTo) li.append(quote(p.replyTo, ctx));
  const bubble = el("div", { class: "bubble" });
  if (p.file) {
    if (p.previewUrl) bubble.append(el("figure", { class: "image" }, el("img", { src: p.previewUrl, alt: p.file.name })));
    else bubble.append(el("p", { class: "file", text: `📄 ${p.file.name} · ${fileSize(p.file.size)}` }));
  }
  if (p.content) bubble.append(el("p", { class: "text", text: p.content }));
  li.append(bubble);
  let status;
  if (p.state === "failed") status = `Not sent: ${p.error ?? "failed"}`;
  else if (p.messageId) status = "Sent";
  else if (!ctx.online) status = "Waiting for the connection…";
  else status = p.file ? "Uploading…" : "Sending…";
  li.append(el("p", { class: "status muted", text: status, attrs: { role: p.state === "failed" ? "alert" : null } }));
  if (p.state === "failed") {
    li.append(
      el(
        "div",
        { class: "actions visible", attrs: { role: "group", "aria-label": "Failed send" } },
        actionButton("Retry", "retry", p.clientMsgId, ctx),
        actionButton("Discard", "discard", p.clientMsgId, ctx),
      ),
    );
  }
  return li;
}

/**
 * The assistant's reply while it streams.
 * @param {{ replyId: string, text: string }} s
 */
export function renderStream(s) {
  return el(
    "li",
    { class: "msg theirs streaming", tabIndex: -1, dataset: { stream: s.replyId }, attrs: { "aria-busy": "true" } },
    el("div", { class: "meta" }, el("span", { class: "sender", text: "Assistant" }), el("span", { class: "muted", text: "writing…" })),
    el("div", { class: "bubble" }, el("p", { class: "text", text: s.text })),
  );
}

/**
 * A command's answer, seen by the user alone.
 * @param {import("./store.js").Note} n
 */
export function renderNote(n) {
  const r = n.result;
  const failed = n.error || (r && !r.ok);
  const li = el("li", { class: `note${failed ? " failed" : ""}`, tabIndex: -1, dataset: { note: n.id } });
  li.append(el("p", { class: "meta" }, el("strong", { text: n.command }), " ", el("span", { class: "muted", text: "· only you see this" })));
  let text;
  if (n.error) text = `Failed: ${n.error}`;
  else if (!r) text = "Running…";
  else if (r.ok) text = r.text || "Done.";
  else text = `${r.code ? `${r.code}: ` : ""}${r.text || "the command failed"}`;
  li.append(el("pre", { class: "note-text", text }));
  return li;
}
