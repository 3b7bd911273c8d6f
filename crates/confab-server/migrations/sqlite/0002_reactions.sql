-- Reactions: one row per (message, user, emoji), so adding twice is a no-op.
CREATE TABLE reactions (
    message_id  TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
) STRICT, WITHOUT ROWID;
