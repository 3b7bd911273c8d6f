//! What SQLite reads differently: JSON kept as TEXT, the reaction map built
//! with `json_group_object`, `?N` placeholders, and the look-ups the writer's
//! jobs and the readers share. The decoders themselves are shared
//! (`store::rows`).

use crate::store::rows::{
    Dialect, MEMBER_COLUMNS, ROOM_COLUMNS, USER_COLUMNS, empty_object, list_user_rooms_sql,
    member_from_row, message_from_row, room_from_row, unread_count_sql, user_from_row,
};
use crate::store::{MemberRecord, MessageRecord, RoomRecord, StoreError, UserRecord};
use sqlx::sqlite::{Sqlite, SqliteRow};
use sqlx::{Row, SqliteExecutor};
use std::collections::BTreeMap;

impl Dialect for Sqlite {
    fn json_object(row: &SqliteRow, column: &str) -> sqlx::Result<serde_json::Value> {
        Ok(json_value(row.try_get(column)?))
    }

    fn reactions(row: &SqliteRow, column: &str) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
        let text: Option<String> = row.try_get(column)?;
        Ok(reactions_from_json(text.as_deref()))
    }
}

/// Maps a read's error: a closed pool means the store is shutting down.
pub(super) fn read_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolClosed => StoreError::Closed,
        other => StoreError::Database(other),
    }
}

/// JSON as stored: `null` becomes `{}`.
pub(super) fn json_text(value: &serde_json::Value) -> String {
    if value.is_null() {
        "{}".to_owned()
    } else {
        value.to_string()
    }
}

/// JSON as read: missing or unreadable becomes `{}`.
fn json_value(text: Option<String>) -> serde_json::Value {
    match text {
        Some(text) if !text.is_empty() => serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable JSON in the database; using {{}}");
            empty_object()
        }),
        _ => empty_object(),
    }
}

/// `SELECT` of a message as [`message_from_row`] reads it, its reactions as
/// one JSON object `{"emoji": ["user", …]}`, users in reaction order.
macro_rules! message_select {
    () => {
        $crate::store::rows::message_select_with!(
            "(SELECT json_group_object(emoji, json(users)) FROM \
                (SELECT emoji, json_group_array(user_id) AS users FROM \
                    (SELECT emoji, user_id FROM reactions r WHERE r.message_id = m.id \
                     ORDER BY emoji, created_at, user_id) \
                 GROUP BY emoji))"
        )
    };
}
pub(super) use message_select;

/// Parses the `{"emoji": ["user", …]}` object the reactions subquery builds.
fn reactions_from_json(text: Option<&str>) -> BTreeMap<String, Vec<String>> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// The reaction map of one message, in the same order history shows it.
pub(super) async fn fetch_reactions<'e>(
    ex: impl SqliteExecutor<'e>,
    message_id: &str,
) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
    let text: Option<String> = sqlx::query_scalar(
        "SELECT json_group_object(emoji, json(users)) FROM \
            (SELECT emoji, json_group_array(user_id) AS users FROM \
                (SELECT emoji, user_id FROM reactions WHERE message_id = ?1 \
                 ORDER BY emoji, created_at, user_id) \
             GROUP BY emoji)",
    )
    .bind(message_id)
    .fetch_one(ex)
    .await?;
    Ok(reactions_from_json(text.as_deref()))
}

/// The user, if stored.
pub(super) async fn fetch_user<'e>(
    ex: impl SqliteExecutor<'e>,
    id: &str,
) -> sqlx::Result<Option<UserRecord>> {
    sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

/// The room, if stored.
pub(super) async fn fetch_room<'e>(
    ex: impl SqliteExecutor<'e>,
    id: &str,
) -> sqlx::Result<Option<RoomRecord>> {
    sqlx::query(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ?1"))
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(room_from_row)
        .transpose()
}

/// The membership, if the user is a member.
pub(super) async fn fetch_member<'e>(
    ex: impl SqliteExecutor<'e>,
    room_id: &str,
    user_id: &str,
) -> sqlx::Result<Option<MemberRecord>> {
    sqlx::query(&format!(
        "SELECT {MEMBER_COLUMNS} FROM members WHERE room_id = ?1 AND user_id = ?2"
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
    ex: impl SqliteExecutor<'e>,
    room_id: &str,
    message_id: &str,
) -> sqlx::Result<Option<MessageRecord>> {
    sqlx::query(concat!(
        message_select!(),
        "WHERE m.id = ?1 AND m.room_id = ?2"
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
    "WHERE m.room_id = ?1 ORDER BY m.seq DESC LIMIT ?2"
);
/// The newest `limit` messages with `seq < ?3`, newest first.
pub(super) const HISTORY_BEFORE: &str = concat!(
    message_select!(),
    "WHERE m.room_id = ?1 AND m.seq < ?3 ORDER BY m.seq DESC LIMIT ?2"
);
/// The oldest `limit` messages with `seq > ?3`, oldest first.
pub(super) const HISTORY_AFTER: &str = concat!(
    message_select!(),
    "WHERE m.room_id = ?1 AND m.seq > ?3 ORDER BY m.seq ASC LIMIT ?2"
);

/// One member's unread count; no row if they are not a member.
pub(super) const UNREAD_COUNT: &str = concat!(
    "SELECT ",
    unread_count_sql!(
        "mb.room_id",
        "mb.user_id",
        "mb.last_read_seq",
        "r.last_seq",
        "del.deleted = 1"
    ),
    " FROM members mb JOIN rooms r ON r.id = mb.room_id \
     WHERE mb.room_id = ?1 AND mb.user_id = ?2"
);

/// A page of a user's rooms, after the cursor `(?2, ?3)` if given.
pub(super) const LIST_USER_ROOMS: &str = list_user_rooms_sql!(
    "?1",
    "(?2 IS NULL OR r.last_activity < ?2 OR (r.last_activity = ?2 AND r.id > ?3))",
    "?4",
    unread_count_sql!(
        "page.id",
        "page.mb_user_id",
        "page.mb_last_read_seq",
        "page.last_seq",
        "del.deleted = 1"
    )
);
