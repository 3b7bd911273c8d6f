-- Questions to the assistant bot left unanswered by a node that stopped
-- (protocol.md §6.2): every node looks, now and then, for open `assistant`
-- rooms whose newest message is a user's text older than a grace period.
-- Only those rooms are in this index, by `last_activity` (never below the
-- newest message's time), so a look reads the rooms active in its window
-- and not every room. An append moves a room's entry only in `assistant`
-- rooms; other rooms' appends skip it.
CREATE INDEX rooms_open_assistant ON rooms (last_activity)
    WHERE room_type = 'assistant' AND closed = 0;
