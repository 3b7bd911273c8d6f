//! Row decoding and the SQL pieces both backends share.
//!
//! Both schemas have the same tables and columns; they differ in how JSON is
//! kept (TEXT in SQLite, JSONB in PostgreSQL), in how SQL builds the
//! reaction map, and in placeholders (`?1` / `$1`). So the decoders are
//! written once, generic over the backend's row, and ask the backend only
//! for what differs ([`Dialect`]); each backend's `rows.rs` keeps the SQL
//! that differs and its own look-ups.

use crate::store::{
    AttachmentRecord, GlobalRole, MemberRecord, MessageRecord, NewMessage, RatingRecord,
    RoomListEntry, RoomRecord, RoomRole, StoreError, UnansweredQuestion, UserRecord,
};
use confab_protocol::{Location, MessageType, Timestamp};
use sqlx::error::ErrorKind;
use sqlx::{ColumnIndex, Decode, Row, Type};
use std::collections::BTreeMap;

/// A statement written once, with SQLite's `?N` placeholders, and as
/// PostgreSQL spells it (`$N`): made by [`statement!`] at compile time, so
/// each backend runs a constant, as when it spelled the statement itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Statement {
    /// With `?N` placeholders.
    pub(crate) sqlite: &'static str,
    /// With `$N` placeholders.
    pub(crate) postgres: &'static str,
}

/// `sql` with every `?` made `$` (the statements written once hold no `?`
/// but their placeholders), for [`statement!`].
pub(crate) const fn dollar_placeholders<const N: usize>(sql: &str) -> [u8; N] {
    let bytes = sql.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if bytes[i] == b'?' { b'$' } else { bytes[i] };
        i += 1;
    }
    out
}

/// A [`Statement`] from SQL written with `?N` placeholders (a literal or a
/// `concat!`).
macro_rules! statement {
    ($sql:expr) => {{
        const SQLITE: &str = $sql;
        const POSTGRES: [u8; SQLITE.len()] = $crate::store::rows::dollar_placeholders(SQLITE);
        $crate::store::rows::Statement {
            sqlite: SQLITE,
            postgres: match std::str::from_utf8(&POSTGRES) {
                Ok(sql) => sql,
                Err(_) => panic!("a statement is not UTF-8"),
            },
        }
    }};
}
pub(crate) use statement;

/// What the shared reads need to know about a backend: how it keeps JSON,
/// how its errors read, and its SQL for each shared read (placeholders,
/// booleans and JSON functions differ; see `queries.rs` for what each binds).
pub(crate) trait Dialect: sqlx::Database {
    /// A JSON object column (`metadata`), as the record holds it: SQLite
    /// keeps TEXT (and `{}` stands in for what is missing or unreadable),
    /// PostgreSQL JSONB.
    fn json_object(row: &Self::Row, column: &str) -> sqlx::Result<serde_json::Value>;

    /// The `{"emoji": ["user", …]}` object a reactions subquery built, as a
    /// map (empty when null). A missing column is an error left to the
    /// caller ([`message_from_row`] reads it as "no reactions").
    fn reactions<I: ColumnIndex<Self::Row>>(
        row: &Self::Row,
        column: I,
    ) -> sqlx::Result<BTreeMap<String, Vec<String>>>;

    /// Maps a read's error: a closed pool means the store is shutting down
    /// (PostgreSQL also tells a database out of reach).
    fn read_error(e: sqlx::Error) -> StoreError;

    /// A statement that differs only in its placeholders, as this backend
    /// spells it.
    fn spell(statement: &Statement) -> &'static str;

    /// The ids in the `rooms` column of [`Dialect::USER_WITH_ROOMS`] (SQLite
    /// builds a JSON array of them, PostgreSQL an array).
    fn room_ids(row: &Self::Row) -> sqlx::Result<Vec<String>>;

    /// A user's [`user_columns`] and, as `rooms`, the ids of its rooms in id
    /// order: `(user)`.
    const USER_WITH_ROOMS: &'static str;

    /// A message as [`message_from_row`] reads it, by `(message, room)`.
    const MESSAGE_BY_IDS: &'static str;
    /// One message's reaction map, one column: `(message)`.
    const REACTIONS_OF: &'static str;
    /// The newest `limit` messages, newest first: `(room, limit)`.
    const HISTORY_LATEST: &'static str;
    /// The newest `limit` messages below a seq: `(room, limit, seq)`.
    const HISTORY_BEFORE: &'static str;
    /// The oldest `limit` messages above a seq: `(room, limit, seq)`.
    const HISTORY_AFTER: &'static str;
    /// One member's unread count, no row if not a member: `(room, user)`.
    const UNREAD_COUNT: &'static str;
    /// A page of a user's rooms ([`list_user_rooms_sql`]):
    /// `(user, after_activity, after_id, limit)`.
    const LIST_USER_ROOMS: &'static str;
    /// A row if a message in one of the user's rooms carries the upload:
    /// `(upload, user)`.
    const ATTACHMENT_SHARED_WITH: &'static str;
    /// The number of rooms and of stored messages, as two `BIGINT`s.
    const COUNTS: &'static str;
    /// The [`room_columns`] of a user's newest open `assistant` room that
    /// the user owns: `(user)`.
    const OPEN_SESSION: &'static str;
    /// Ids of open `assistant` rooms without a message since a time, the
    /// longest idle first: `(idle_before, limit)`.
    const IDLE_SESSIONS: &'static str;
    /// Unanswered questions ([`unanswered_questions_sql`]), oldest first:
    /// `(asked_from, asked_before, bot, system user, limit)`.
    const UNANSWERED_QUESTIONS: &'static str;
}

/// The typed column reads the decoders need, so that their bounds are
/// written once (on the blanket impl) rather than on every decoder.
pub(crate) trait StoreRow {
    /// A `TEXT NOT NULL` column.
    fn text(&self, column: &str) -> sqlx::Result<String>;
    /// A nullable `TEXT` column.
    fn text_opt(&self, column: &str) -> sqlx::Result<Option<String>>;
    /// A `BIGINT` (SQLite `INTEGER`) column.
    fn int(&self, column: &str) -> sqlx::Result<i64>;
    /// A nullable `BIGINT` column.
    fn int_opt(&self, column: &str) -> sqlx::Result<Option<i64>>;
    /// A nullable `DOUBLE PRECISION` (SQLite `REAL`) column.
    fn float_opt(&self, column: &str) -> sqlx::Result<Option<f64>>;
    /// A `BOOLEAN` (SQLite `INTEGER` 0/1) column.
    fn flag(&self, column: &str) -> sqlx::Result<bool>;
    /// See [`Dialect::json_object`].
    fn json_object(&self, column: &str) -> sqlx::Result<serde_json::Value>;
    /// See [`Dialect::reactions`].
    fn reactions(&self, column: &str) -> sqlx::Result<BTreeMap<String, Vec<String>>>;
}

impl<R> StoreRow for R
where
    R: Row,
    R::Database: Dialect,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &str) -> sqlx::Result<String> {
        self.try_get(column)
    }

    fn text_opt(&self, column: &str) -> sqlx::Result<Option<String>> {
        self.try_get(column)
    }

    fn int(&self, column: &str) -> sqlx::Result<i64> {
        self.try_get(column)
    }

    fn int_opt(&self, column: &str) -> sqlx::Result<Option<i64>> {
        self.try_get(column)
    }

    fn float_opt(&self, column: &str) -> sqlx::Result<Option<f64>> {
        self.try_get(column)
    }

    fn flag(&self, column: &str) -> sqlx::Result<bool> {
        self.try_get(column)
    }

    fn json_object(&self, column: &str) -> sqlx::Result<serde_json::Value> {
        <R::Database as Dialect>::json_object(self, column)
    }

    fn reactions(&self, column: &str) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
        <R::Database as Dialect>::reactions(self, column)
    }
}

/// Translates constraint violations where they happen: a missing referenced
/// row is `NotFound`, a taken unique key is `AlreadyExists`.
pub(crate) fn on_constraint(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            ErrorKind::ForeignKeyViolation => return StoreError::NotFound,
            ErrorKind::UniqueViolation => return StoreError::AlreadyExists,
            _ => {}
        }
    }
    StoreError::Database(e)
}

/// The JSON object a missing or `null` one stands for (the columns hold
/// objects).
pub(crate) fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// The columns [`user_from_row`] reads, as a literal for `concat!`.
macro_rules! user_columns {
    () => {
        "id, username, name, role, disabled, created_at"
    };
}
pub(crate) use user_columns;

/// A row of [`Dialect::USER_WITH_ROOMS`] (or of a backend's many-users
/// form of it): the user and the ids of its rooms.
pub(crate) fn user_with_rooms_from_row<D: Dialect>(
    row: &D::Row,
) -> sqlx::Result<(UserRecord, Vec<String>)>
where
    D::Row: StoreRow,
{
    Ok((user_from_row(row)?, D::room_ids(row)?))
}

/// A `users` row.
pub(crate) fn user_from_row(row: &impl StoreRow) -> sqlx::Result<UserRecord> {
    Ok(UserRecord {
        id: row.text("id")?,
        username: row.text("username")?,
        name: row.text_opt("name")?,
        role: GlobalRole::parse(&row.text("role")?).unwrap_or_default(),
        disabled: row.flag("disabled")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}

/// The columns [`room_from_row`] reads, as a literal for `concat!`.
macro_rules! room_columns {
    () => {
        "id, name, room_type, metadata, closed, last_seq, last_activity, created_at, direct_key"
    };
}
pub(crate) use room_columns;

/// A `rooms` row.
pub(crate) fn room_from_row(row: &impl StoreRow) -> sqlx::Result<RoomRecord> {
    Ok(RoomRecord {
        id: row.text("id")?,
        name: row.text_opt("name")?,
        room_type: row.text("room_type")?,
        metadata: row.json_object("metadata")?,
        closed: row.flag("closed")?,
        last_seq: row.int("last_seq")?,
        last_activity: Timestamp(row.int("last_activity")?),
        created_at: Timestamp(row.int("created_at")?),
        direct_key: row.text_opt("direct_key")?,
    })
}

/// The columns [`member_from_row`] reads, as a literal for `concat!`.
macro_rules! member_columns {
    () => {
        "room_id, user_id, role, last_read_seq, joined_at"
    };
}
pub(crate) use member_columns;

/// A `members` row.
pub(crate) fn member_from_row(row: &impl StoreRow) -> sqlx::Result<MemberRecord> {
    Ok(MemberRecord {
        room_id: row.text("room_id")?,
        user_id: row.text("user_id")?,
        role: RoomRole::parse(&row.text("role")?).unwrap_or_default(),
        last_read_seq: row.int("last_read_seq")?,
        joined_at: Timestamp(row.int("joined_at")?),
    })
}

/// `SELECT` of a message with its sender's display fields, its reactions
/// (the backend's subquery over the message `m`, given as the argument) and
/// its upload, as [`message_from_row`] reads it (columns without prefix).
macro_rules! message_select_with {
    ($($reactions:tt)+) => {
        concat!(
            "SELECT m.id, m.room_id, m.seq, m.sender_id, \
                COALESCE(u.username, m.sender_id) AS sender_username, u.name AS sender_name, \
                m.content, m.message_type, m.reply_to, m.metadata, m.attachment_id, \
                m.lat, m.lng, m.client_msg_id, m.created_at, m.edited_at, m.deleted, ",
            $($reactions)+,
            " AS reactions, \
                a.uploader_id AS a_uploader_id, a.sha256 AS a_sha256, \
                a.content_type AS a_content_type, a.size AS a_size, a.name AS a_name, \
                a.created_at AS a_created_at \
             FROM messages m LEFT JOIN users u ON u.id = m.sender_id \
             LEFT JOIN attachments a ON a.id = m.attachment_id "
        )
    };
}
pub(crate) use message_select_with;

/// Reads a message whose columns carry `prefix` (`""` or `"lm_"`).
pub(crate) fn message_from_row(row: &impl StoreRow, prefix: &str) -> sqlx::Result<MessageRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    let lat = row.float_opt(&col("lat"))?;
    let lng = row.float_opt(&col("lng"))?;
    Ok(MessageRecord {
        id: row.text(&col("id"))?,
        room_id: row.text(&col("room_id"))?,
        seq: row.int(&col("seq"))?,
        sender_id: row.text(&col("sender_id"))?,
        sender_username: row.text(&col("sender_username"))?,
        sender_name: row.text_opt(&col("sender_name"))?,
        content: row.text(&col("content"))?,
        message_type: MessageType::parse(&row.text(&col("message_type"))?).unwrap_or_default(),
        reply_to: row.text_opt(&col("reply_to"))?,
        metadata: row.json_object(&col("metadata"))?,
        attachment: attachment_from_row(row, row.text_opt(&col("attachment_id"))?)?,
        location: lat.zip(lng).map(|(lat, lng)| Location { lat, lng }),
        client_msg_id: row.text_opt(&col("client_msg_id"))?,
        created_at: Timestamp(row.int(&col("created_at"))?),
        edited_at: row.int_opt(&col("edited_at"))?.map(Timestamp),
        deleted: row.flag(&col("deleted"))?,
        reactions: match row.reactions(&col("reactions")) {
            Ok(reactions) => reactions,
            // Queries that do not select reactions (a room list's last message).
            Err(sqlx::Error::ColumnNotFound(_)) => BTreeMap::new(),
            Err(e) => return Err(e),
        },
    })
}

/// The upload a message references, from the `a_` columns of
/// [`message_select_with`] (`None` in queries that do not join uploads: a
/// room list's last message).
fn attachment_from_row(
    row: &impl StoreRow,
    id: Option<String>,
) -> sqlx::Result<Option<AttachmentRecord>> {
    let Some(id) = id else {
        return Ok(None);
    };
    let uploader_id = match row.text_opt("a_uploader_id") {
        Ok(v) => v,
        Err(sqlx::Error::ColumnNotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(uploader_id) = uploader_id else {
        return Ok(None);
    };
    Ok(Some(AttachmentRecord {
        id,
        uploader_id,
        sha256: row.text("a_sha256")?,
        content_type: row.text("a_content_type")?,
        size: row.int("a_size")?,
        name: row.text("a_name")?,
        created_at: Timestamp(row.int("a_created_at")?),
    }))
}

/// An `attachments` row.
pub(crate) fn attachment_record(row: &impl StoreRow) -> sqlx::Result<AttachmentRecord> {
    Ok(AttachmentRecord {
        id: row.text("id")?,
        uploader_id: row.text("uploader_id")?,
        sha256: row.text("sha256")?,
        content_type: row.text("content_type")?,
        size: row.int("size")?,
        name: row.text("name")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}

/// The columns [`rating_from_row`] reads, as a literal for `concat!`.
macro_rules! rating_columns {
    () => {
        "room_id, user_id, rating, feedback, rated_at"
    };
}
pub(crate) use rating_columns;

/// A `session_ratings` row.
pub(crate) fn rating_from_row(row: &impl StoreRow) -> sqlx::Result<RatingRecord> {
    Ok(RatingRecord {
        room_id: row.text("room_id")?,
        user_id: row.text("user_id")?,
        rating: row.int("rating")?,
        feedback: row.text_opt("feedback")?,
        rated_at: Timestamp(row.int("rated_at")?),
    })
}

/// The record of a message just inserted with `seq`, as a read would return
/// it (so without a second look-up after the insert).
pub(crate) fn stored_record(
    message: NewMessage,
    seq: i64,
    sender_username: String,
    sender_name: Option<String>,
) -> MessageRecord {
    // As stored: `null` becomes `{}`.
    let metadata = if message.metadata.is_null() {
        empty_object()
    } else {
        message.metadata
    };
    MessageRecord {
        id: message.id,
        room_id: message.room_id,
        seq,
        sender_id: message.sender_id,
        sender_username,
        sender_name,
        content: message.content,
        message_type: message.message_type,
        reply_to: message.reply_to,
        metadata,
        attachment: message.attachment,
        location: message.location,
        client_msg_id: message.client_msg_id,
        created_at: message.created_at,
        edited_at: None,
        deleted: false,
        reactions: BTreeMap::new(),
    }
}

/// Defines a backend's three history pages, `HISTORY_LATEST`,
/// `HISTORY_BEFORE` and `HISTORY_AFTER`, from its placeholders for the room,
/// the page size and the seq bound, and its [`message_select_with`].
macro_rules! history_sql {
    ($room:literal, $limit:literal, $seq:literal, $($select:tt)+) => {
        /// The newest `limit` messages, newest first.
        pub(super) const HISTORY_LATEST: &str = concat!(
            $($select)+,
            "WHERE m.room_id = ", $room, " ORDER BY m.seq DESC LIMIT ", $limit
        );
        /// The newest `limit` messages with a seq below the bound, newest first.
        pub(super) const HISTORY_BEFORE: &str = concat!(
            $($select)+,
            "WHERE m.room_id = ", $room, " AND m.seq < ", $seq, " ORDER BY m.seq DESC LIMIT ", $limit
        );
        /// The oldest `limit` messages with a seq above the bound, oldest first.
        pub(super) const HISTORY_AFTER: &str = concat!(
            $($select)+,
            "WHERE m.room_id = ", $room, " AND m.seq > ", $seq, " ORDER BY m.seq ASC LIMIT ", $limit
        );
    };
}
pub(crate) use history_sql;

/// `unread_count` of one member (protocol.md §7): every seq above the marker is a
/// row, so it is the distance to the room's `last_seq` minus the member's own
/// messages above the marker minus others' deleted ones above it. Both
/// subtractions are index ranges (`messages_by_sender`, the partial
/// `messages_deleted`) over rows the reader sent or the room deleted, never
/// the room's history, so a room with 100k messages answers as fast as one
/// with 10. Arguments are SQL expressions for the room id, user id, marker,
/// the room's last seq and "`del` is deleted" (the backends spell booleans
/// differently).
macro_rules! unread_count_sql {
    ($room:literal, $user:literal, $marker:literal, $last_seq:literal, $deleted:literal) => {
        concat!(
            "(",
            $last_seq,
            " - ",
            $marker,
            " - (SELECT COUNT(*) FROM messages own WHERE own.room_id = ",
            $room,
            " AND own.sender_id = ",
            $user,
            " AND own.seq > ",
            $marker,
            ")",
            " - (SELECT COUNT(*) FROM messages del WHERE del.room_id = ",
            $room,
            " AND ",
            $deleted,
            " AND del.seq > ",
            $marker,
            " AND del.sender_id <> ",
            $user,
            "))"
        )
    };
}
pub(crate) use unread_count_sql;

/// A page of a user's rooms. `keys` picks the page first (the arguments:
/// the SQL of the user's id and of the keyset filter, and the page size),
/// so the unread count (the last argument) and the last message are looked
/// up for that page only. Picking the page is the one part that grows with
/// the user's rooms: the order is by `rooms.last_activity`, which every
/// append moves, so no index of the user's memberships can hold it (keeping
/// one would cost every append a write per member of the room). The sort
/// therefore carries only `(id, last_activity)` per membership, and the
/// page's full rows are read once it is known: on SQLite the wide sort
/// cost twice as much per room (docs/performance.md, "Scale of data").
macro_rules! list_user_rooms_sql {
    ($user:literal, $after:literal, $limit:literal, $($unread:tt)+) => {
        concat!(
            "WITH keys AS ( \
                SELECT r.id, r.last_activity \
                FROM members mb JOIN rooms r ON r.id = mb.room_id \
                WHERE mb.user_id = ",
            $user,
            " \
                  AND ",
            $after,
            " \
                ORDER BY r.last_activity DESC, r.id ASC \
                LIMIT ",
            $limit,
            " \
             ), page AS ( \
                SELECT r.id, r.name, r.room_type, r.metadata, r.closed, r.last_seq, r.last_activity, \
                       r.created_at, r.direct_key, mb.user_id AS mb_user_id, mb.role AS mb_role, \
                       mb.last_read_seq AS mb_last_read_seq, mb.joined_at AS mb_joined_at \
                FROM keys JOIN rooms r ON r.id = keys.id \
                JOIN members mb ON mb.room_id = keys.id AND mb.user_id = ",
            $user,
            " \
             ) \
             SELECT page.*, ",
            $($unread)+,
            " AS unread_count, \
                lm.id AS lm_id, lm.room_id AS lm_room_id, lm.seq AS lm_seq, lm.sender_id AS lm_sender_id, \
                COALESCE(lu.username, lm.sender_id) AS lm_sender_username, lu.name AS lm_sender_name, \
                lm.content AS lm_content, lm.message_type AS lm_message_type, lm.reply_to AS lm_reply_to, \
                lm.metadata AS lm_metadata, lm.attachment_id AS lm_attachment_id, lm.lat AS lm_lat, \
                lm.lng AS lm_lng, lm.client_msg_id AS lm_client_msg_id, lm.created_at AS lm_created_at, \
                lm.edited_at AS lm_edited_at, lm.deleted AS lm_deleted \
             FROM page \
             LEFT JOIN messages lm ON lm.room_id = page.id AND lm.seq = page.last_seq \
             LEFT JOIN users lu ON lu.id = lm.sender_id \
             ORDER BY page.last_activity DESC, page.id ASC"
        )
    };
}
pub(crate) use list_user_rooms_sql;

/// The newest message of each open `assistant` room when it is a live
/// `text` message from neither the bot nor the system user, stored in
/// `[from, before)`: questions the bot has not answered. The arguments are
/// the backend's placeholders for `from`, `before`, the bot's id, the system
/// user's id and the limit, then its SQL of "the room `r` is open" and "the
/// message `m` is not deleted" (booleans are spelled differently). The room
/// type and the two tests are written as the `rooms_open_assistant` index's
/// predicate is, so that the index serves the look; `last_activity` is never
/// below the newest message's time, so it narrows the rooms to those active
/// since `from` before the message is read (SQLite's index is on it).
macro_rules! unanswered_questions_sql {
    ($from:literal, $before:literal, $bot:literal, $system:literal, $limit:literal,
     $open:literal, $live:literal) => {
        concat!(
            "SELECT m.room_id, m.id, m.seq, m.created_at \
             FROM rooms r JOIN messages m ON m.room_id = r.id AND m.seq = r.last_seq \
             WHERE r.room_type = 'assistant' AND ",
            $open,
            " AND r.last_activity >= ",
            $from,
            " AND m.created_at >= ",
            $from,
            " AND m.created_at < ",
            $before,
            " AND m.message_type = 'text' AND ",
            $live,
            " AND m.sender_id <> ",
            $bot,
            " AND m.sender_id <> ",
            $system,
            " ORDER BY m.created_at, m.room_id LIMIT ",
            $limit
        )
    };
}
pub(crate) use unanswered_questions_sql;

/// One row of a backend's `UNANSWERED_QUESTIONS` (see
/// [`unanswered_questions_sql`]).
pub(crate) fn unanswered_question_from_row(
    row: &impl StoreRow,
) -> sqlx::Result<UnansweredQuestion> {
    Ok(UnansweredQuestion {
        room_id: row.text("room_id")?,
        message_id: row.text("id")?,
        seq: row.int("seq")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}

/// One row of a backend's `LIST_USER_ROOMS` (see [`list_user_rooms_sql`]).
pub(crate) fn room_list_entry_from_row(row: &impl StoreRow) -> sqlx::Result<RoomListEntry> {
    let room = room_from_row(row)?;
    let member = MemberRecord {
        room_id: room.id.clone(),
        user_id: row.text("mb_user_id")?,
        role: RoomRole::parse(&row.text("mb_role")?).unwrap_or_default(),
        last_read_seq: row.int("mb_last_read_seq")?,
        joined_at: Timestamp(row.int("mb_joined_at")?),
    };
    let last_message = match row.text_opt("lm_id")? {
        Some(_) => Some(message_from_row(row, "lm_")?),
        None => None,
    };
    Ok(RoomListEntry {
        room,
        member,
        last_message,
        unread_count: row.int("unread_count")?,
    })
}
