//! Row decoding and the `SELECT` pieces shared by the writer's jobs and the
//! pool's reads: one place that knows how a PostgreSQL row becomes a record.

use crate::store::{
    AttachmentRecord, GlobalRole, MemberRecord, MessageRecord, RoomListEntry, RoomRecord, RoomRole,
    StoreError, UserRecord,
};
use confab_protocol::{Location, MessageType, Timestamp};
use sqlx::error::ErrorKind;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};
use std::collections::BTreeMap;

/// Maps a read's error: a closed pool means the store is shutting down, a
/// database out of reach is [`StoreError::Unavailable`].
pub(super) fn read_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolClosed => StoreError::Closed,
        e if unreachable(&e) => StoreError::Unavailable(e.to_string()),
        other => StoreError::Database(other),
    }
}

/// Whether an error means the database is out of reach rather than that a
/// statement failed: no connection in time, a broken socket, or the server
/// refusing or dropping connections (SQLSTATE classes 08 connection
/// exception, 53 insufficient resources, 57 operator intervention; 3D000
/// no such database; 55000 when it does not accept connections).
pub(super) fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            ["08", "53", "57"]
                .iter()
                .any(|class| code.starts_with(class))
                || matches!(&*code, "3D000" | "55000")
        }),
        _ => false,
    }
}

/// Translates constraint violations where they happen: a missing referenced
/// row is `NotFound`, a taken unique key is `AlreadyExists`.
pub(super) fn on_constraint(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            ErrorKind::ForeignKeyViolation => return StoreError::NotFound,
            ErrorKind::UniqueViolation => return StoreError::AlreadyExists,
            _ => {}
        }
    }
    StoreError::Database(e)
}

/// JSON as stored: `null` becomes `{}` (the column holds objects).
pub(super) fn json_object(value: &serde_json::Value) -> serde_json::Value {
    if value.is_null() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        value.clone()
    }
}

/// The columns [`user_from_row`] reads.
pub(super) const USER_COLUMNS: &str = "id, username, name, role, disabled, created_at";

/// A `users` row.
pub(super) fn user_from_row(row: &PgRow) -> sqlx::Result<UserRecord> {
    let role: String = row.try_get("role")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        name: row.try_get("name")?,
        role: GlobalRole::parse(&role).unwrap_or_default(),
        disabled: row.try_get("disabled")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

/// The columns [`room_from_row`] reads.
pub(super) const ROOM_COLUMNS: &str =
    "id, name, room_type, metadata, closed, last_seq, last_activity, created_at, direct_key";

/// A `rooms` row.
pub(super) fn room_from_row(row: &PgRow) -> sqlx::Result<RoomRecord> {
    Ok(RoomRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        room_type: row.try_get("room_type")?,
        metadata: row.try_get("metadata")?,
        closed: row.try_get("closed")?,
        last_seq: row.try_get("last_seq")?,
        last_activity: Timestamp(row.try_get("last_activity")?),
        created_at: Timestamp(row.try_get("created_at")?),
        direct_key: row.try_get("direct_key")?,
    })
}

/// The columns [`member_from_row`] reads.
pub(super) const MEMBER_COLUMNS: &str = "room_id, user_id, role, last_read_seq, joined_at";

/// A `members` row.
pub(super) fn member_from_row(row: &PgRow) -> sqlx::Result<MemberRecord> {
    let role: String = row.try_get("role")?;
    Ok(MemberRecord {
        room_id: row.try_get("room_id")?,
        user_id: row.try_get("user_id")?,
        role: RoomRole::parse(&role).unwrap_or_default(),
        last_read_seq: row.try_get("last_read_seq")?,
        joined_at: Timestamp(row.try_get("joined_at")?),
    })
}

/// The reaction map of the message `m`, as one JSONB object
/// `{"emoji": ["user", …]}`, users in reaction order.
macro_rules! reactions_of_m {
    () => {
        "(SELECT jsonb_object_agg(emoji, users) FROM \
            (SELECT emoji, jsonb_agg(user_id ORDER BY created_at, user_id) AS users \
             FROM reactions r WHERE r.message_id = m.id GROUP BY emoji) x)"
    };
}

/// `SELECT` of a message with its sender's display fields, its reactions and
/// its upload, as [`message_from_row`] reads it (columns without prefix).
macro_rules! message_select {
    () => {
        concat!(
            "SELECT m.id, m.room_id, m.seq, m.sender_id, \
                COALESCE(u.username, m.sender_id) AS sender_username, u.name AS sender_name, \
                m.content, m.message_type, m.reply_to, m.metadata, m.attachment_id, \
                m.lat, m.lng, m.client_msg_id, m.created_at, m.edited_at, m.deleted, ",
            $crate::store::postgres::rows::reactions_of_m!(),
            " AS reactions, \
                a.uploader_id AS a_uploader_id, a.sha256 AS a_sha256, \
                a.content_type AS a_content_type, a.size AS a_size, a.name AS a_name, \
                a.created_at AS a_created_at \
             FROM messages m LEFT JOIN users u ON u.id = m.sender_id \
             LEFT JOIN attachments a ON a.id = m.attachment_id "
        )
    };
}
pub(super) use {message_select, reactions_of_m};

/// Reads a message whose columns carry `prefix` (`""` or `"lm_"`).
pub(super) fn message_from_row(row: &PgRow, prefix: &str) -> sqlx::Result<MessageRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    let message_type: String = row.try_get(&*col("message_type"))?;
    let lat: Option<f64> = row.try_get(&*col("lat"))?;
    let lng: Option<f64> = row.try_get(&*col("lng"))?;
    let edited_at: Option<i64> = row.try_get(&*col("edited_at"))?;
    Ok(MessageRecord {
        id: row.try_get(&*col("id"))?,
        room_id: row.try_get(&*col("room_id"))?,
        seq: row.try_get(&*col("seq"))?,
        sender_id: row.try_get(&*col("sender_id"))?,
        sender_username: row.try_get(&*col("sender_username"))?,
        sender_name: row.try_get(&*col("sender_name"))?,
        content: row.try_get(&*col("content"))?,
        message_type: MessageType::parse(&message_type).unwrap_or_default(),
        reply_to: row.try_get(&*col("reply_to"))?,
        metadata: row.try_get(&*col("metadata"))?,
        attachment: attachment_from_row(row, row.try_get(&*col("attachment_id"))?)?,
        location: lat.zip(lng).map(|(lat, lng)| Location { lat, lng }),
        client_msg_id: row.try_get(&*col("client_msg_id"))?,
        created_at: Timestamp(row.try_get(&*col("created_at"))?),
        edited_at: edited_at.map(Timestamp),
        deleted: row.try_get(&*col("deleted"))?,
        reactions: match row.try_get::<Option<serde_json::Value>, _>(&*col("reactions")) {
            Ok(value) => reactions_from_json(value),
            // Queries that do not select reactions (a room list's last message).
            Err(sqlx::Error::ColumnNotFound(_)) => BTreeMap::new(),
            Err(e) => return Err(e),
        },
    })
}

/// The upload a message references, from the `a_` columns of
/// [`message_select`] (`None` in queries that do not join uploads: a room
/// list's last message).
fn attachment_from_row(row: &PgRow, id: Option<String>) -> sqlx::Result<Option<AttachmentRecord>> {
    let Some(id) = id else {
        return Ok(None);
    };
    let uploader_id: Option<String> = match row.try_get("a_uploader_id") {
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
        sha256: row.try_get("a_sha256")?,
        content_type: row.try_get("a_content_type")?,
        size: row.try_get("a_size")?,
        name: row.try_get("a_name")?,
        created_at: Timestamp(row.try_get("a_created_at")?),
    }))
}

/// An `attachments` row.
pub(super) fn attachment_record(row: &PgRow) -> sqlx::Result<AttachmentRecord> {
    Ok(AttachmentRecord {
        id: row.try_get("id")?,
        uploader_id: row.try_get("uploader_id")?,
        sha256: row.try_get("sha256")?,
        content_type: row.try_get("content_type")?,
        size: row.try_get("size")?,
        name: row.try_get("name")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

/// Parses the `{"emoji": ["user", …]}` object the reactions subquery builds.
fn reactions_from_json(value: Option<serde_json::Value>) -> BTreeMap<String, Vec<String>> {
    value
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// The reaction map of one message, in the same order history shows it.
pub(super) async fn fetch_reactions<'e>(
    ex: impl PgExecutor<'e>,
    message_id: &str,
) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
    let value: Option<serde_json::Value> = sqlx::query_scalar(concat!(
        "SELECT ",
        reactions_of_m!(),
        " FROM (SELECT $1::TEXT AS id) m"
    ))
    .bind(message_id)
    .fetch_one(ex)
    .await?;
    Ok(reactions_from_json(value))
}

/// The user, if stored.
pub(super) async fn fetch_user<'e>(
    ex: impl PgExecutor<'e>,
    id: &str,
) -> sqlx::Result<Option<UserRecord>> {
    sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

/// The room, if stored.
pub(super) async fn fetch_room<'e>(
    ex: impl PgExecutor<'e>,
    id: &str,
) -> sqlx::Result<Option<RoomRecord>> {
    sqlx::query(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(room_from_row)
        .transpose()
}

/// The membership, if the user is a member.
pub(super) async fn fetch_member<'e>(
    ex: impl PgExecutor<'e>,
    room_id: &str,
    user_id: &str,
) -> sqlx::Result<Option<MemberRecord>> {
    sqlx::query(&format!(
        "SELECT {MEMBER_COLUMNS} FROM members WHERE room_id = $1 AND user_id = $2"
    ))
    .bind(room_id)
    .bind(user_id)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(member_from_row)
    .transpose()
}

/// The message, if it is in this room.
pub(super) async fn fetch_message<'e>(
    ex: impl PgExecutor<'e>,
    room_id: &str,
    message_id: &str,
) -> sqlx::Result<Option<MessageRecord>> {
    sqlx::query(concat!(
        message_select!(),
        "WHERE m.id = $1 AND m.room_id = $2"
    ))
    .bind(message_id)
    .bind(room_id)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(|row| message_from_row(row, ""))
    .transpose()
}

/// The newest `limit` messages, newest first.
pub(super) const HISTORY_LATEST: &str = concat!(
    message_select!(),
    "WHERE m.room_id = $1 ORDER BY m.seq DESC LIMIT $2"
);
/// The newest `limit` messages with `seq < $3`, newest first.
pub(super) const HISTORY_BEFORE: &str = concat!(
    message_select!(),
    "WHERE m.room_id = $1 AND m.seq < $3 ORDER BY m.seq DESC LIMIT $2"
);
/// The oldest `limit` messages with `seq > $3`, oldest first.
pub(super) const HISTORY_AFTER: &str = concat!(
    message_select!(),
    "WHERE m.room_id = $1 AND m.seq > $3 ORDER BY m.seq ASC LIMIT $2"
);

/// `unread_count` of one member (protocol.md §7): every seq above the marker is a
/// row, so it is the distance to the room's `last_seq` minus the member's own
/// messages above the marker minus others' deleted ones above it. Both
/// subtractions are index ranges (`messages_by_sender`, the partial
/// `messages_deleted`) over rows the reader sent or the room deleted, never
/// the room's history. Arguments are SQL expressions for the room id, user
/// id, marker and the room's last seq. The same formula as SQLite's; the
/// user (and, for one member, the room) is passed as the query's parameter
/// rather than a column, so that the planner estimates the reader's own
/// messages from the statistics of that very sender and picks
/// `messages_by_sender` (with a column it assumes an average sender, which
/// in a room dominated by one sender makes `(room_id, seq)` look cheaper).
macro_rules! unread_count_sql {
    ($room:literal, $user:literal, $marker:literal, $last_seq:literal) => {
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
            " AND del.deleted AND del.seq > ",
            $marker,
            " AND del.sender_id <> ",
            $user,
            "))"
        )
    };
}

/// One member's unread count; no row if they are not a member.
pub(super) const UNREAD_COUNT: &str = concat!(
    "SELECT ",
    unread_count_sql!("$1", "$2", "mb.last_read_seq", "r.last_seq"),
    " FROM members mb JOIN rooms r ON r.id = mb.room_id \
     WHERE mb.room_id = $1 AND mb.user_id = $2"
);

/// A page of a user's rooms. The inner query picks the page first, so the
/// unread count and the last message are looked up for that page only.
pub(super) const LIST_USER_ROOMS: &str = concat!(
    "WITH page AS ( \
        SELECT r.id, r.name, r.room_type, r.metadata, r.closed, r.last_seq, r.last_activity, \
               r.created_at, r.direct_key, mb.user_id AS mb_user_id, mb.role AS mb_role, \
               mb.last_read_seq AS mb_last_read_seq, mb.joined_at AS mb_joined_at \
        FROM members mb JOIN rooms r ON r.id = mb.room_id \
        WHERE mb.user_id = $1 \
          AND ($2::BIGINT IS NULL OR r.last_activity < $2 \
               OR (r.last_activity = $2 AND r.id > $3::TEXT)) \
        ORDER BY r.last_activity DESC, r.id ASC \
        LIMIT $4 \
     ) \
     SELECT page.*, ",
    unread_count_sql!("page.id", "$1", "page.mb_last_read_seq", "page.last_seq"),
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
);

/// One row of [`LIST_USER_ROOMS`].
pub(super) fn room_list_entry_from_row(row: &PgRow) -> sqlx::Result<RoomListEntry> {
    let room = room_from_row(row)?;
    let role: String = row.try_get("mb_role")?;
    let member = MemberRecord {
        room_id: room.id.clone(),
        user_id: row.try_get("mb_user_id")?,
        role: RoomRole::parse(&role).unwrap_or_default(),
        last_read_seq: row.try_get("mb_last_read_seq")?,
        joined_at: Timestamp(row.try_get("mb_joined_at")?),
    };
    let last_id: Option<String> = row.try_get("lm_id")?;
    let last_message = match last_id {
        Some(_) => Some(message_from_row(row, "lm_")?),
        None => None,
    };
    Ok(RoomListEntry {
        room,
        member,
        last_message,
        unread_count: row.try_get("unread_count")?,
    })
}
