-- Satisfaction ratings of assistant sessions, as SQLite's 0005: one row per
-- room of type `assistant`, replaced by a later rating (the latest wins).
-- Core checks the room type and the range; the CHECK keeps any other writer
-- to 1–5. `user_id` is who rated: a member, or the server key's user.
-- Times are BIGINT milliseconds since the Unix epoch, as everywhere.
CREATE TABLE session_ratings (
    room_id   TEXT    NOT NULL PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   TEXT    NOT NULL REFERENCES users (id),
    rating    BIGINT  NOT NULL CHECK (rating BETWEEN 1 AND 5),
    -- NULL when the rater left none.
    feedback  TEXT,
    rated_at  BIGINT  NOT NULL
);
