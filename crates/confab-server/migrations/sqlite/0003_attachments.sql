-- Uploads. The bytes live in DATA_DIR/attachments/<sha256>, shared by
-- identical uploads; this row is one upload of them by one user.
CREATE TABLE attachments (
    id            TEXT    NOT NULL PRIMARY KEY,
    uploader_id   TEXT    NOT NULL REFERENCES users (id),
    sha256        TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

-- Who may download an upload: members of rooms whose messages reference it.
CREATE INDEX messages_by_attachment ON messages (attachment_id) WHERE attachment_id IS NOT NULL;
