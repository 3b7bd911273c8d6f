-- Assistant sessions (protocol.md §3.4): finding the sessions idle past
-- assistant.session_ttl without reading every room, and the leases that let
-- one node at a time do cluster-wide chores (the session sweeper).
-- Not on last_activity, which every append changes (on PostgreSQL that
-- would end the rooms' cheap HOT updates): the open sessions are few (those
-- active within the TTL), and the sweep reads their last_activity.
CREATE INDEX rooms_open_by_type ON rooms (room_type, id)
    WHERE closed = 0;

CREATE TABLE leases (
    name       TEXT    NOT NULL PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
