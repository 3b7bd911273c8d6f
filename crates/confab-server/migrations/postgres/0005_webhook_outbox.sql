-- Webhooks (protocol.md §8.1): the outbox. A write that changes what an
-- event reports inserts the event in the same transaction, so a change that
-- rolled back sends nothing and a committed one is sent even after a crash.
-- Rows hold references (ids, the role or seq a later read could not find);
-- the payload is read when the event is sent. A delivered event is deleted;
-- one that ran out of attempts keeps `failed_at` until it is retried or
-- trimmed (webhook.max_pending, webhook.max_age_s).
CREATE TABLE webhook_events (
    id              TEXT    NOT NULL PRIMARY KEY, -- evt_ + UUIDv7: creation order
    kind            TEXT    NOT NULL,             -- message.created, room.closed, …
    room_id         TEXT    NOT NULL,
    message_id      TEXT,
    user_id         TEXT,
    role            TEXT,
    seq             BIGINT,
    created_at      BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    -- When the next attempt is due; a node claiming the event pushes it past
    -- the attempt's timeout, so a node that died mid-attempt lets it fall due again.
    next_attempt_at BIGINT  NOT NULL,
    last_error      TEXT,
    failed_at       BIGINT
);
-- What falls due next: the delivery loop's claim.
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE failed_at IS NULL;
