-- Assistant sessions (protocol.md §3.4): the leases that let one node at a
-- time do a cluster-wide chore (the sweep that closes sessions idle past
-- assistant.session_ttl). The sweep finds idle sessions through
-- rooms_open_assistant (0003).
CREATE TABLE leases (
    name       TEXT   NOT NULL PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
