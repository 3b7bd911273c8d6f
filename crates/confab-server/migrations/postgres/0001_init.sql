-- confab's PostgreSQL schema, version 1: the same tables, indexes and meaning
-- as the SQLite migrations 0001–0004, in PostgreSQL's own types.
--
-- Once applied, a migration is never edited: later changes go in a new file.
-- Times are BIGINT milliseconds since the Unix epoch (as in SQLite, so both
-- backends read and compare them the same way); JSON objects are JSONB.

CREATE TABLE users (
    id          TEXT     NOT NULL PRIMARY KEY,
    username    TEXT     NOT NULL,
    name        TEXT,
    role        TEXT     NOT NULL DEFAULT 'member',
    disabled    BOOLEAN  NOT NULL DEFAULT FALSE,
    created_at  BIGINT   NOT NULL
);

CREATE TABLE rooms (
    id             TEXT     NOT NULL PRIMARY KEY,
    name           TEXT,
    room_type      TEXT     NOT NULL,
    metadata       JSONB    NOT NULL DEFAULT '{}',
    closed         BOOLEAN  NOT NULL DEFAULT FALSE,
    -- The newest message's seq; bumped in the same transaction as the insert
    -- (`UPDATE … RETURNING last_seq`: the row lock orders concurrent writers,
    -- on every node).
    last_seq       BIGINT   NOT NULL DEFAULT 0,
    last_activity  BIGINT   NOT NULL,
    created_at     BIGINT   NOT NULL,
    -- Set only for direct rooms; NULLs never collide, so the constraint only
    -- dedupes direct rooms.
    direct_key     TEXT     UNIQUE
);

-- No index on last_activity or last_seq: every append updates both, and an
-- unindexed update stays a cheap HOT update. A room list sorts one user's
-- memberships, found through members_by_user.

CREATE TABLE members (
    room_id        TEXT     NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id        TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role           TEXT     NOT NULL DEFAULT 'member',
    -- Every message with seq <= this is read by the member.
    last_read_seq  BIGINT   NOT NULL DEFAULT 0,
    joined_at      BIGINT   NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- A user's room list starts from their memberships.
CREATE INDEX members_by_user ON members (user_id, room_id);

-- Uploads. The bytes live in DATA_DIR/attachments/<sha256>, shared by
-- identical uploads; this row is one upload of them by one user.
CREATE TABLE attachments (
    id            TEXT     NOT NULL PRIMARY KEY,
    uploader_id   TEXT     NOT NULL REFERENCES users (id),
    sha256        TEXT     NOT NULL,
    content_type  TEXT     NOT NULL,
    size          BIGINT   NOT NULL,
    name          TEXT     NOT NULL,
    created_at    BIGINT   NOT NULL
);

CREATE TABLE messages (
    id             TEXT              NOT NULL PRIMARY KEY,
    room_id        TEXT              NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq            BIGINT            NOT NULL,
    sender_id      TEXT              NOT NULL REFERENCES users (id),
    content        TEXT              NOT NULL,
    message_type   TEXT              NOT NULL,
    reply_to       TEXT,
    metadata       JSONB             NOT NULL DEFAULT '{}',
    -- Not a foreign key, as in SQLite: core checks the upload before the send.
    attachment_id  TEXT,
    lat            DOUBLE PRECISION,
    lng            DOUBLE PRECISION,
    client_msg_id  TEXT,
    created_at     BIGINT            NOT NULL,
    edited_at      BIGINT,
    deleted        BOOLEAN           NOT NULL DEFAULT FALSE,
    -- The room log's order. Its index serves history pages, the last message
    -- of a room (seq = last_seq) and unread counts (seq > marker) as ranges.
    CONSTRAINT messages_room_seq UNIQUE (room_id, seq)
);

-- Unread counts without reading the room's history (spec §7 "Unread"), as
-- in SQLite's 0004:
-- unread = (rooms.last_seq - marker)            every seq above the marker is a row
--        - own messages above the marker         messages_by_sender
--        - others' deleted messages above it     messages_deleted
-- so the cost follows the reader's own recent messages and the room's
-- deletions, never the number of messages in the room.
CREATE INDEX messages_by_sender ON messages (room_id, sender_id, seq);
CREATE INDEX messages_deleted ON messages (room_id, seq) WHERE deleted;

-- Idempotent sends: one message per (sender, room, client_msg_id).
CREATE UNIQUE INDEX messages_client_msg_id
    ON messages (sender_id, room_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- Who may download an upload: members of rooms whose messages reference it.
CREATE INDEX messages_by_attachment ON messages (attachment_id) WHERE attachment_id IS NOT NULL;

-- Reactions: one row per (message, user, emoji), so adding twice is a no-op.
CREATE TABLE reactions (
    message_id  TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);
