//! What PostgreSQL reads differently: JSONB, the reaction map built with
//! `jsonb_object_agg`, `$N` placeholders, casts, booleans, and errors that
//! mean the server is out of reach. The decoders and the reads themselves
//! are shared (`store::rows`, `store::queries`).

use crate::store::StoreError;
use crate::store::rows::{
    Dialect, Statement, empty_object, history_sql, list_user_rooms_sql, room_columns,
    unanswered_questions_sql, unread_count_sql, user_columns,
};
use sqlx::postgres::{PgRow, Postgres};
use sqlx::{ColumnIndex, Row};
use std::collections::BTreeMap;

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

history_sql!("$1", "$2", "$3", message_select!());

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

/// Questions the assistant bot has not answered, stored in `[$1, $2)`,
/// neither from the bot (`$3`) nor the system user (`$4`), at most `$5`.
pub(super) const UNANSWERED_QUESTIONS: &str = unanswered_questions_sql!(
    "$1",
    "$2",
    "$3",
    "$4",
    "$5",
    "NOT r.closed",
    "NOT m.deleted"
);

impl Dialect for Postgres {
    fn json_object(row: &PgRow, column: &str) -> sqlx::Result<serde_json::Value> {
        row.try_get(column)
    }

    fn reactions<I: ColumnIndex<PgRow>>(
        row: &PgRow,
        column: I,
    ) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
        let value: Option<serde_json::Value> = row.try_get(column)?;
        Ok(reactions_from_json(value))
    }

    /// A database out of reach is [`StoreError::Unavailable`].
    fn read_error(e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::PoolClosed => StoreError::Closed,
            e if unreachable(&e) => StoreError::Unavailable(e.to_string()),
            other => StoreError::Database(other),
        }
    }

    fn spell(statement: &Statement) -> &'static str {
        statement.postgres
    }

    fn room_ids(row: &PgRow) -> sqlx::Result<Vec<String>> {
        row.try_get("rooms")
    }

    const USER_WITH_ROOMS: &'static str = concat!(
        "SELECT ",
        user_columns!(),
        ", \
             ARRAY(SELECT room_id FROM members WHERE user_id = $1 ORDER BY room_id) AS rooms \
         FROM users WHERE id = $1"
    );
    const MESSAGE_BY_IDS: &'static str =
        concat!(message_select!(), "WHERE m.id = $1 AND m.room_id = $2");
    const REACTIONS_OF: &'static str = concat!(
        "SELECT ",
        reactions_of_m!(),
        " FROM (SELECT $1::TEXT AS id) m"
    );
    const HISTORY_LATEST: &'static str = HISTORY_LATEST;
    const HISTORY_BEFORE: &'static str = HISTORY_BEFORE;
    const HISTORY_AFTER: &'static str = HISTORY_AFTER;
    const UNREAD_COUNT: &'static str = UNREAD_COUNT;
    const LIST_USER_ROOMS: &'static str = LIST_USER_ROOMS;
    const ATTACHMENT_SHARED_WITH: &'static str = "SELECT TRUE FROM messages m JOIN members mb ON mb.room_id = m.room_id AND mb.user_id = $2 \
             WHERE m.attachment_id = $1 LIMIT 1";
    const COUNTS: &'static str = "SELECT COUNT(*), COALESCE(SUM(last_seq), 0)::BIGINT FROM rooms";
    const OPEN_SESSION: &'static str = concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms WHERE id = (SELECT r.id FROM members mb JOIN rooms r ON r.id = mb.room_id \
           WHERE mb.user_id = $1 AND mb.role = 'owner' \
             AND r.room_type = 'assistant' AND NOT r.closed \
           ORDER BY r.last_activity DESC, r.id DESC LIMIT 1)"
    );
    const IDLE_SESSIONS: &'static str = "SELECT id FROM rooms \
         WHERE room_type = 'assistant' AND NOT closed AND last_activity < $1 \
         ORDER BY last_activity LIMIT $2";
    const UNANSWERED_QUESTIONS: &'static str = UNANSWERED_QUESTIONS;
}
