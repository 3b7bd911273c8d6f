//! What SQLite reads differently: JSON kept as TEXT, the reaction map built
//! with `json_group_object`, `?N` placeholders and `0`/`1` booleans. The
//! decoders and the reads themselves are shared (`store::rows`,
//! `store::queries`).

use crate::store::StoreError;
use crate::store::rows::{
    Dialect, Statement, empty_object, history_sql, list_user_rooms_sql, room_columns,
    unanswered_questions_sql, unread_count_sql, user_columns,
};
use sqlx::sqlite::{Sqlite, SqliteRow};
use sqlx::{ColumnIndex, Row};
use std::collections::BTreeMap;

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

history_sql!("?1", "?2", "?3", message_select!());

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

/// Questions the assistant bot has not answered, stored in `[?1, ?2)`,
/// neither from the bot (`?3`) nor the system user (`?4`), at most `?5`.
pub(super) const UNANSWERED_QUESTIONS: &str = unanswered_questions_sql!(
    "?1",
    "?2",
    "?3",
    "?4",
    "?5",
    "r.closed = 0",
    "m.deleted = 0"
);

impl Dialect for Sqlite {
    fn json_object(row: &SqliteRow, column: &str) -> sqlx::Result<serde_json::Value> {
        Ok(json_value(row.try_get(column)?))
    }

    fn reactions<I: ColumnIndex<SqliteRow>>(
        row: &SqliteRow,
        column: I,
    ) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
        let text: Option<String> = row.try_get(column)?;
        Ok(reactions_from_json(text.as_deref()))
    }

    fn read_error(e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::PoolClosed => StoreError::Closed,
            other => StoreError::Database(other),
        }
    }

    fn spell(statement: &Statement) -> &'static str {
        statement.sqlite
    }

    fn room_ids(row: &SqliteRow) -> sqlx::Result<Vec<String>> {
        let rooms: String = row.try_get("rooms")?;
        serde_json::from_str(&rooms).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }

    const USER_WITH_ROOMS: &'static str = concat!(
        "SELECT ",
        user_columns!(),
        ", \
             (SELECT json_group_array(room_id) FROM \
                 (SELECT room_id FROM members WHERE user_id = ?1 ORDER BY room_id)) AS rooms \
         FROM users WHERE id = ?1"
    );
    const MESSAGE_BY_IDS: &'static str =
        concat!(message_select!(), "WHERE m.id = ?1 AND m.room_id = ?2");
    const REACTIONS_OF: &'static str = "SELECT json_group_object(emoji, json(users)) FROM \
            (SELECT emoji, json_group_array(user_id) AS users FROM \
                (SELECT emoji, user_id FROM reactions WHERE message_id = ?1 \
                 ORDER BY emoji, created_at, user_id) \
             GROUP BY emoji)";
    const HISTORY_LATEST: &'static str = HISTORY_LATEST;
    const HISTORY_BEFORE: &'static str = HISTORY_BEFORE;
    const HISTORY_AFTER: &'static str = HISTORY_AFTER;
    const UNREAD_COUNT: &'static str = UNREAD_COUNT;
    const LIST_USER_ROOMS: &'static str = LIST_USER_ROOMS;
    const ATTACHMENT_SHARED_WITH: &'static str = "SELECT 1 FROM messages m JOIN members mb ON mb.room_id = m.room_id AND mb.user_id = ?2 \
         WHERE m.attachment_id = ?1 LIMIT 1";
    const COUNTS: &'static str = "SELECT COUNT(*), COALESCE(SUM(last_seq), 0) FROM rooms";
    const OPEN_SESSION: &'static str = concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms WHERE id = (SELECT r.id FROM members mb JOIN rooms r ON r.id = mb.room_id \
           WHERE mb.user_id = ?1 AND mb.role = 'owner' \
             AND r.room_type = 'assistant' AND r.closed = 0 \
           ORDER BY r.last_activity DESC, r.id DESC LIMIT 1)"
    );
    const IDLE_SESSIONS: &'static str = "SELECT id FROM rooms \
         WHERE room_type = 'assistant' AND closed = 0 AND last_activity < ?1 \
         ORDER BY last_activity LIMIT ?2";
    const UNANSWERED_QUESTIONS: &'static str = UNANSWERED_QUESTIONS;
}
