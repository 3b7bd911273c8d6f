// How things read on screen: people's names, times, sizes, room titles and
// the OpenStreetMap link of a location. Pure functions of their arguments.

/**
 * A sender or participant as people know them.
 * @param {{ id?: string, name?: string | null, username?: string } | null | undefined} who
 */
export function personName(who) {
  if (!who) return "someone";
  if (who.id === "assistant" && !who.name) return "Assistant"; // the server's bot
  return who.name || who.username || who.id || "someone";
}

/**
 * `10:32` today, `Mon 10:32` this week, else `3 Feb 10:32`.
 * @param {string | null | undefined} iso
 * @param {Date} [now]
 */
export function shortTime(iso, now = new Date()) {
  if (!iso) return "";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "";
  const time = t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const days = (now.getTime() - t.getTime()) / 86_400_000;
  if (t.toDateString() === now.toDateString()) return time;
  if (days < 6) return `${t.toLocaleDateString([], { weekday: "short" })} ${time}`;
  return `${t.toLocaleDateString([], { day: "numeric", month: "short" })} ${time}`;
}

/**
 * A full date and time, for a tooltip.
 * @param {string | null | undefined} iso
 */
export function longTime(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? "" : t.toLocaleString();
}

/** @param {number} bytes */
export function fileSize(bytes) {
  if (!Number.isFinite(bytes)) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * The room's title: its name, else (a direct room) the other person's.
 * @param {any} room
 * @param {string | null} selfId
 */
export function roomTitle(room, selfId) {
  if (!room) return "";
  if (room.name) return room.name;
  const others = (room.participants ?? []).filter((p) => p.id !== selfId);
  if (others.length) return others.map(personName).join(", ");
  return room.id;
}

/**
 * The people in a room other than the user.
 * @param {any} room
 * @param {string | null} selfId
 * @returns {{ id: string, name?: string, online?: boolean }[]}
 */
export function others(room, selfId) {
  return (room?.participants ?? []).filter((p) => p.id !== selfId);
}

/**
 * The OpenStreetMap page of a point (a link: nothing is loaded from there).
 * @param {{ lat: number, lng: number }} location
 */
export function mapLink({ lat, lng }) {
  const la = Number(lat).toFixed(5);
  const ln = Number(lng).toFixed(5);
  return `https://www.openstreetmap.org/?mlat=${la}&mlon=${ln}#map=16/${la}/${ln}`;
}

/**
 * "Ann is typing…", "Ann and Bob are typing…", "3 people are typing…".
 * @param {{ name?: string | null, username?: string, user_id: string }[]} typists
 */
export function typingText(typists) {
  const names = typists.map((t) => t.name || t.username || t.user_id);
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

/**
 * "Seen by Ann", "Seen by Ann and Bob", "Seen by Ann, Bob and 2 others".
 * @param {string[]} names
 */
export function seenText(names) {
  if (names.length === 1) return `Seen by ${names[0]}`;
  if (names.length === 2) return `Seen by ${names[0]} and ${names[1]}`;
  if (names.length === 3) return `Seen by ${names[0]}, ${names[1]} and ${names[2]}`;
  return `Seen by ${names[0]}, ${names[1]} and ${names.length - 2} others`;
}
