-- Unread counts without reading the room's history (spec §7 "Unread").
-- unread = (rooms.last_seq - marker)            every seq above the marker is a row
--        - own messages above the marker         messages_by_sender
--        - others' deleted messages above it     messages_deleted
-- so the cost follows the reader's own recent messages and the room's
-- deletions, never the number of messages in the room.
CREATE INDEX messages_by_sender ON messages (room_id, sender_id, seq);
CREATE INDEX messages_deleted ON messages (room_id, seq) WHERE deleted = 1;
