//! PostgreSQL's write jobs: its SQL for the shared ones (`store::queries`), and
//! the jobs it runs its own way (creating a room, where another node may be
//! inserting the same direct room; appending, under the batch's room lock).
//! They may run more than once (a batch that met a deadlock is tried
//! again), so each starts from its inputs and keeps no state between runs.

use super::rows::{json_object, message_select};
use crate::store::outbox::append_events;
use crate::store::queries::{JobSql, Sql};
use crate::store::rows::{
    member_columns, message_from_row, on_constraint, room_columns, stored_record, user_columns,
};
use crate::store::{
    AppendOutcome, CreateOutcome, EventSet, NewMessage, NewRoom, StoreError, StoreResult,
};
use confab_protocol::Timestamp;
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgQueryResult, Postgres};

impl JobSql for Postgres {
    type Json = serde_json::Value;

    fn json_param(value: &serde_json::Value) -> serde_json::Value {
        json_object(value)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    const UPSERT_USER: &'static str = concat!(
        "INSERT INTO users (id, username, name, role, disabled, created_at) \
         VALUES ($1, COALESCE($2::TEXT, $1), $3::TEXT, COALESCE($4::TEXT, 'member'), \
                 COALESCE($5::BOOLEAN, FALSE), $6) \
         ON CONFLICT (id) DO UPDATE SET \
             username = COALESCE($2::TEXT, users.username), \
             name = COALESCE($3::TEXT, users.name), \
             role = COALESCE($4::TEXT, users.role), \
             disabled = COALESCE($5::BOOLEAN, users.disabled) \
         RETURNING ",
        user_columns!()
    );
    const INSERT_ROOM: &'static str = concat!(
        "INSERT INTO rooms (id, name, room_type, metadata, closed, last_seq, last_activity, created_at, direct_key) \
         VALUES ($1, $2, $3, $4, FALSE, 0, $5, $5, $6) \
         ON CONFLICT DO NOTHING \
         RETURNING ",
        room_columns!()
    );
    const INSERT_MEMBER: &'static str = "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
         VALUES ($1, $2, $3, 0, $4) \
         ON CONFLICT (room_id, user_id) DO UPDATE SET role = EXCLUDED.role";
    const UPDATE_ROOM: &'static str = concat!(
        "UPDATE rooms SET name = COALESCE($2::TEXT, name), metadata = COALESCE($3::JSONB, metadata) \
         WHERE id = $1 RETURNING ",
        room_columns!()
    );
    const EXPIRE_SESSION: &'static str = concat!(
        "UPDATE rooms SET closed = TRUE \
         WHERE id = $1 AND room_type = 'assistant' AND NOT closed AND last_activity < $2 \
         RETURNING ",
        room_columns!()
    );
    const CLOSE_ROOM: &'static str = concat!(
        "UPDATE rooms SET closed = TRUE WHERE id = $1 RETURNING ",
        room_columns!()
    );
    const ADD_MEMBER: &'static str = concat!(
        "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
         SELECT id, $2::TEXT, $3::TEXT, last_seq, $4::BIGINT FROM rooms WHERE id = $1 \
         ON CONFLICT (room_id, user_id) DO UPDATE SET role = EXCLUDED.role \
         RETURNING ",
        member_columns!()
    );
    const EDIT_MESSAGE: &'static str = "UPDATE messages SET content = $3, edited_at = $4 \
         WHERE room_id = $1 AND id = $2 AND NOT deleted";
    const DELETE_MESSAGE: &'static str =
        "UPDATE messages SET content = '', deleted = TRUE WHERE room_id = $1 AND id = $2";
    const MESSAGE_IS_LIVE: &'static str =
        "SELECT TRUE FROM messages WHERE room_id = $1 AND id = $2 AND NOT deleted";
    const MARK_READ: &'static str = "UPDATE members mb SET last_read_seq = LEAST($3::BIGINT, r.last_seq) \
         FROM rooms r \
         WHERE r.id = mb.room_id AND mb.room_id = $1 AND mb.user_id = $2 \
           AND mb.last_read_seq < LEAST($3::BIGINT, r.last_seq) \
         RETURNING mb.last_read_seq";
}

/// Creates the room with its members, or finds the direct room with the
/// same key, even when another node creates it at the same moment.
pub(super) async fn create_room(
    conn: &mut PgConnection,
    room: NewRoom,
) -> StoreResult<CreateOutcome> {
    if let Some(key) = &room.direct_key
        && let Some(existing) = Sql::<Postgres>::direct_room(conn, key).await?
    {
        return Ok(CreateOutcome::ExistingDirect(existing));
    }

    // Another node may be inserting the same direct room right now: the
    // unique index makes this insert wait for it, and `DO NOTHING` turns its
    // commit into "no row" instead of an error, so the look-up below finds
    // the winner (READ COMMITTED: each statement sees what committed before it).
    let now = Timestamp::now().millis();
    let inserted = Sql::<Postgres>::insert_room(conn, &room, now).await?;
    let Some(record) = inserted else {
        if let Some(key) = &room.direct_key
            && let Some(existing) = Sql::<Postgres>::direct_room(conn, key).await?
        {
            return Ok(CreateOutcome::ExistingDirect(existing));
        }
        return Err(StoreError::AlreadyExists);
    };
    Sql::<Postgres>::insert_members(conn, &room, now).await?;
    Ok(CreateOutcome::Created(record))
}

/// Appends a message with the room's next seq, or finds the original of a
/// repeated `client_msg_id`.
pub(super) async fn append_message(
    conn: &mut PgConnection,
    message: NewMessage,
    events: EventSet,
) -> StoreResult<AppendOutcome> {
    // The batch holds the room's row lock (see the writer), on every node:
    // nothing can slip in between this look-up and the insert.
    if let Some(client_msg_id) = &message.client_msg_id {
        let original = sqlx::query(concat!(
            message_select!(),
            "WHERE m.sender_id = $1 AND m.room_id = $2 AND m.client_msg_id = $3"
        ))
        .bind(&message.sender_id)
        .bind(&message.room_id)
        .bind(client_msg_id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = original {
            return Ok(AppendOutcome::Duplicate(message_from_row(&row, "")?));
        }
    }

    // The seq bump, the insert and the sender's display fields in one
    // statement (one round trip instead of three). The bump and the insert
    // share this job's savepoint: if the insert fails (an unknown sender
    // breaks its foreign key), the bump is rolled back with it and no seq
    // is used; an unknown room bumps nothing and inserts nothing.
    let metadata = json_object(&message.metadata);
    let row = sqlx::query(
        "WITH bumped AS ( \
             UPDATE rooms SET last_seq = last_seq + 1, last_activity = GREATEST(last_activity, $12) \
             WHERE id = $2 RETURNING last_seq) \
         INSERT INTO messages (id, room_id, seq, sender_id, content, message_type, reply_to, \
             metadata, attachment_id, lat, lng, client_msg_id, created_at, edited_at, deleted) \
         SELECT $1, $2, bumped.last_seq, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, FALSE \
         FROM bumped \
         RETURNING seq, (SELECT username FROM users WHERE id = $3) AS username, \
                   (SELECT name FROM users WHERE id = $3) AS name",
    )
    .bind(&message.id)
    .bind(&message.room_id)
    .bind(&message.sender_id)
    .bind(&message.content)
    .bind(message.message_type.as_str())
    .bind(&message.reply_to)
    .bind(&metadata)
    .bind(message.attachment.as_ref().map(|a| &a.id))
    .bind(message.location.map(|l| l.lat))
    .bind(message.location.map(|l| l.lng))
    .bind(&message.client_msg_id)
    .bind(message.created_at.millis())
    .fetch_optional(&mut *conn)
    .await
    .map_err(on_constraint)?
    .ok_or(StoreError::NotFound)?;
    let seq: i64 = row.try_get("seq")?;
    let username: String = row.try_get("username")?;
    let name: Option<String> = row.try_get("name")?;
    if !events.is_empty() {
        Sql::<Postgres>::record_events(conn, &events.keep(append_events(&message))).await?;
    }

    Ok(AppendOutcome::Stored(stored_record(
        message, seq, username, name,
    )))
}
