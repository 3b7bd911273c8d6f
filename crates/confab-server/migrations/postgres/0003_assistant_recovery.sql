-- Questions to the assistant bot left unanswered by a node that stopped
-- (protocol.md §6.2): every node looks, now and then, for open `assistant`
-- rooms whose newest message is a user's text older than a grace period.
-- This index lists those rooms and nothing else. It is on `id`, not on
-- `last_activity` as SQLite's is: a column in any index takes the appends'
-- `UPDATE rooms` off the cheap HOT path (see 0001), for every room, and
-- `room_type`, `closed` and `id` never change on an append. So a look reads
-- every open assistant room (one index entry and one row each), not only
-- the recently active ones.
CREATE INDEX rooms_open_assistant ON rooms (id)
    WHERE room_type = 'assistant' AND NOT closed;
