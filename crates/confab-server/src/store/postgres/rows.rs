//! What PostgreSQL reads differently: JSONB, the reaction map built with
//! `jsonb_object_agg`, `$N` placeholders, errors that mean the server is out
//! of reach, and the look-ups the writer's jobs and the pool's reads share.
//! The decoders themselves are shared (`store::rows`).

use crate::store::rows::{
    Dialect, MEMBER_COLUMNS, ROOM_COLUMNS, USER_COLUMNS, empty_object, list_user_rooms_sql,
    member_from_row, message_from_row, room_from_row, unread_count_sql, user_from_row,
};
use crate::store::{MemberRecord, MessageRecord, RoomRecord, StoreError, UserRecord};
use sqlx::postgres::{PgRow, Postgres};
use sqlx::{PgExecutor, Row};
use std::collections::BTreeMap;

impl Dialect for Postgres {
    fn json_object(row: &PgRow, column: &str) -> sqlx::Result<serde_json::Value> {
        row.try_get(column)
    }

    fn reactions(row: &PgRow, column: &str) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
        let value: Option<serde_json::Value> = row.try_get(column)?;
        Ok(reactions_from_json(value))
    }
}

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

/// JSON as stored: `null` becomes `{}` (the column holds objects).
pub(super) fn json_object(value: &serde_json::Value) -> serde_json::Value {
    if value.is_null() {
        empty_object()
    } else {
        value.clone()
    }
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

/// `SELECT` of a message as [`message_from_row`] reads it.
macro_rules! message_select {
    () => {
        $crate::store::rows::message_select_with!($crate::store::postgres::rows::reactions_of_m!())
    };
}
pub(super) use {message_select, reactions_of_m};

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

// `unread_count_sql!`'s user (and, for one member, the room) is passed as
// the query's parameter rather than a column, so that the planner estimates
// the reader's own messages from the statistics of that very sender and
// picks `messages_by_sender` (with a column it assumes an average sender,
// which in a room dominated by one sender makes `(room_id, seq)` look
// cheaper).

/// One member's unread count; no row if they are not a member.
pub(super) const UNREAD_COUNT: &str = concat!(
    "SELECT ",
    unread_count_sql!("$1", "$2", "mb.last_read_seq", "r.last_seq", "del.deleted"),
    " FROM members mb JOIN rooms r ON r.id = mb.room_id \
     WHERE mb.room_id = $1 AND mb.user_id = $2"
);

/// A page of a user's rooms, after the cursor `($2, $3)` if given.
pub(super) const LIST_USER_ROOMS: &str = list_user_rooms_sql!(
    "$1",
    "($2::BIGINT IS NULL OR r.last_activity < $2 \
               OR (r.last_activity = $2 AND r.id > $3::TEXT))",
    "$4",
    unread_count_sql!(
        "page.id",
        "$1",
        "page.mb_last_read_seq",
        "page.last_seq",
        "del.deleted"
    )
);
