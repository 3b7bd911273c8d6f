/**
 * A room as `room_list`, `room_added` and the REST API describe it
 * (docs/protocol.md §2.15).
 * @typedef {object} Room
 * @property {string} id
 * @property {string} [name]
 * @property {string} [room_type]
 * @property {number} [last_seq]
 * @property {string | null} [last_message_content]
 * @property {string | null} [last_message_time]
 * @property {number} unread_count
 * @property {number} [last_read_seq] known once the user marked it read
 * @property {{ id: string, name?: string, online?: boolean }[]} [participants]
 * @property {boolean} [closed]
 * @property {Record<string, any>} [metadata]
 */
/**
 * The user's rooms, newest activity first, with unread counts that follow
 * new messages, reads from any of the user's connections and (re)subscribes,
 * so a room list can be drawn without asking the server again.
 */
export class RoomList {
    /** Every known room, newest activity first (ties by id), as the server sorts them. */
    list(): Room[];
    /** @param {string} id */
    get(id: string): Room | undefined;
    /**
     * Replaces the list with a full `room_list` answer (all pages), then
     * applies again the `room_added`, `room_removed` and `room_updated`
     * frames that arrived while it was being read, in order: the answer may
     * predate them (a room added meanwhile would otherwise vanish).
     * @param {Room[]} rooms
     * @param {any[]} [since] those frames
     */
    replace(rooms: Room[], since?: any[]): void;
    /** @param {Room} room (`room_added`, `createRoom`) */
    add(room: Room): void;
    /** @param {string} id (`room_removed`) */
    remove(id: string): boolean;
    /**
     * Merges a `room_updated`'s `updates` (name, metadata, closed, or the
     * unread count and read marker after a read).
     * @param {string} id
     * @param {Record<string, any>} updates
     */
    update(id: string, updates: Record<string, any>): boolean;
    /**
     * The server's unread count as a subscription took effect: the
     * messages it replays next are already counted in it.
     * @param {string} id
     * @param {{ last_seq: number, unread_count: number }} subscribed
     */
    subscribed(id: string, subscribed: {
        last_seq: number;
        unread_count: number;
    }): boolean;
    /**
     * A message delivered in order: the room's last message moves, and it
     * counts as unread unless the user sent it or has read past it.
     * @param {any} message
     * @param {string | null} selfId
     */
    message(message: any, selfId: string | null): boolean;
    /**
     * A user came online or went offline: their `online` flag in every room.
     * @param {string} userId
     * @param {boolean} online
     */
    presence(userId: string, online: boolean): boolean;
    #private;
}
/**
 * A room as `room_list`, `room_added` and the REST API describe it
 * (docs/protocol.md §2.15).
 */
export type Room = {
    id: string;
    name?: string | undefined;
    room_type?: string | undefined;
    last_seq?: number | undefined;
    last_message_content?: string | null | undefined;
    last_message_time?: string | null | undefined;
    unread_count: number;
    /**
     * known once the user marked it read
     */
    last_read_seq?: number | undefined;
    participants?: {
        id: string;
        name?: string;
        online?: boolean;
    }[] | undefined;
    closed?: boolean | undefined;
    metadata?: Record<string, any> | undefined;
};
