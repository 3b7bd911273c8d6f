-- Satisfaction ratings of assistant sessions (rooms of type `assistant`):
-- one row per room, replaced by a later rating (the latest wins). Core
-- checks the room type and the range; the CHECK keeps any other writer to
-- 1–5. `user_id` is who rated: a member, or the server key's user.
CREATE TABLE session_ratings (
    room_id   TEXT    NOT NULL PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   TEXT    NOT NULL REFERENCES users (id),
    rating    INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    -- NULL when the rater left none.
    feedback  TEXT,
    rated_at  INTEGER NOT NULL
) STRICT;
