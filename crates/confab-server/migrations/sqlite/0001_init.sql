-- confab's SQLite schema, version 1.
--
-- Once applied, a migration is never edited: later changes go in a new file.
-- Times are INTEGER milliseconds since the Unix epoch; booleans are 0/1;
-- JSON objects are TEXT. STRICT makes SQLite refuse a value of the wrong type.

CREATE TABLE users (
    id          TEXT    NOT NULL PRIMARY KEY,
    username    TEXT    NOT NULL,
    name        TEXT,
    role        TEXT    NOT NULL DEFAULT 'member',
    disabled    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE rooms (
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT,
    room_type      TEXT    NOT NULL,
    metadata       TEXT    NOT NULL DEFAULT '{}',
    closed         INTEGER NOT NULL DEFAULT 0,
    -- The newest message's seq; bumped in the same transaction as the insert.
    last_seq       INTEGER NOT NULL DEFAULT 0,
    last_activity  INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    -- Set only for direct rooms; NULLs never collide, so the constraint only
    -- dedupes direct rooms.
    direct_key     TEXT    UNIQUE
) STRICT;

-- One row per (room, user). WITHOUT ROWID keeps a room's members together in
-- the primary key's b-tree.
CREATE TABLE members (
    room_id        TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role           TEXT    NOT NULL DEFAULT 'member',
    -- Every message with seq <= this is read by the member.
    last_read_seq  INTEGER NOT NULL DEFAULT 0,
    joined_at      INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) STRICT, WITHOUT ROWID;

-- A user's room list starts from their memberships.
CREATE INDEX members_by_user ON members (user_id, room_id);

CREATE TABLE messages (
    id             TEXT    NOT NULL PRIMARY KEY,
    room_id        TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    sender_id      TEXT    NOT NULL REFERENCES users (id),
    content        TEXT    NOT NULL,
    message_type   TEXT    NOT NULL,
    reply_to       TEXT,
    metadata       TEXT    NOT NULL DEFAULT '{}',
    attachment_id  TEXT,
    lat            REAL,
    lng            REAL,
    client_msg_id  TEXT,
    created_at     INTEGER NOT NULL,
    edited_at      INTEGER,
    deleted        INTEGER NOT NULL DEFAULT 0,
    -- The room log's order. Its index serves history pages, the last message
    -- of a room (seq = last_seq) and unread counts (seq > marker) as ranges.
    UNIQUE (room_id, seq)
) STRICT;

-- Idempotent sends: one message per (sender, room, client_msg_id).
CREATE UNIQUE INDEX messages_client_msg_id
    ON messages (sender_id, room_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
