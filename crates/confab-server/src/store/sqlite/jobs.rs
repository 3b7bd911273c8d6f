//! SQLite's write jobs: its SQL for the shared ones (`store::queries`), and the
//! jobs it runs its own way. With one writer, "look, then write" inside a
//! job is race-free, so creating a room looks before it inserts; the appends
//! are `batch_append`'s.

use super::MIGRATOR;
use super::rows::json_text;
use crate::store::queries::{JobSql, Sql};
use crate::store::rows::{member_columns, room_columns, user_columns};
use crate::store::{CreateOutcome, NewRoom, StoreError, StoreResult};
use confab_protocol::Timestamp;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqliteQueryResult};

impl JobSql for Sqlite {
    type Json = String;

    fn json_param(value: &serde_json::Value) -> String {
        json_text(value)
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    const UPSERT_USER: &'static str = concat!(
        "INSERT INTO users (id, username, name, role, disabled, created_at) \
         VALUES (?1, COALESCE(?2, ?1), ?3, COALESCE(?4, 'member'), COALESCE(?5, 0), ?6) \
         ON CONFLICT (id) DO UPDATE SET \
             username = COALESCE(?2, username), \
             name = COALESCE(?3, name), \
             role = COALESCE(?4, role), \
             disabled = COALESCE(?5, disabled) \
         RETURNING ",
        user_columns!()
    );
    const INSERT_ROOM: &'static str = concat!(
        "INSERT INTO rooms (id, name, room_type, metadata, closed, last_seq, last_activity, created_at, direct_key) \
         VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, ?5, ?6) \
         RETURNING ",
        room_columns!()
    );
    const INSERT_MEMBER: &'static str = "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
         VALUES (?1, ?2, ?3, 0, ?4) \
         ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role";
    const UPDATE_ROOM: &'static str = concat!(
        "UPDATE rooms SET name = COALESCE(?2, name), metadata = COALESCE(?3, metadata) \
         WHERE id = ?1 RETURNING ",
        room_columns!()
    );
    const EXPIRE_SESSION: &'static str = concat!(
        "UPDATE rooms SET closed = 1 \
         WHERE id = ?1 AND room_type = 'assistant' AND closed = 0 AND last_activity < ?2 \
         RETURNING ",
        room_columns!()
    );
    const CLOSE_ROOM: &'static str = concat!(
        "UPDATE rooms SET closed = 1 WHERE id = ?1 RETURNING ",
        room_columns!()
    );
    const ADD_MEMBER: &'static str = concat!(
        "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
         SELECT id, ?2, ?3, last_seq, ?4 FROM rooms WHERE id = ?1 \
         ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role \
         RETURNING ",
        member_columns!()
    );
    const EDIT_MESSAGE: &'static str = "UPDATE messages SET content = ?3, edited_at = ?4 \
         WHERE room_id = ?1 AND id = ?2 AND deleted = 0";
    const DELETE_MESSAGE: &'static str =
        "UPDATE messages SET content = '', deleted = 1 WHERE room_id = ?1 AND id = ?2";
    const MESSAGE_IS_LIVE: &'static str =
        "SELECT 1 FROM messages WHERE room_id = ?1 AND id = ?2 AND deleted = 0";
    const MARK_READ: &'static str = "UPDATE members SET last_read_seq = \
             MIN(?3, (SELECT last_seq FROM rooms WHERE rooms.id = members.room_id)) \
         WHERE room_id = ?1 AND user_id = ?2 \
           AND last_read_seq < MIN(?3, (SELECT last_seq FROM rooms WHERE rooms.id = members.room_id)) \
         RETURNING last_read_seq";
}

/// Applies the embedded migrations that are not applied yet.
pub(super) async fn migrate(conn: &mut SqliteConnection) -> StoreResult<()> {
    // `run` takes an `Acquire`, whose lifetime cannot be proven general enough
    // inside the writer's higher-ranked job closure; `run_direct` is the same
    // code on a plain connection, public (though hidden) for exactly this.
    MIGRATOR.run_direct(conn).await?;
    Ok(())
}

/// Creates the room with its members, or finds the direct room with the
/// same key. The single writer makes looking first enough: nothing can
/// insert between the look and the insert.
pub(super) async fn create_room(
    conn: &mut SqliteConnection,
    room: NewRoom,
) -> StoreResult<CreateOutcome> {
    if let Some(key) = &room.direct_key
        && let Some(existing) = Sql::<Sqlite>::direct_room(conn, key).await?
    {
        return Ok(CreateOutcome::ExistingDirect(existing));
    }
    if Sql::<Sqlite>::fetch_room(&mut *conn, &room.id)
        .await?
        .is_some()
    {
        return Err(StoreError::AlreadyExists);
    }

    let now = Timestamp::now().millis();
    // RETURNING gives the row: a taken key fails the insert instead.
    let record = Sql::<Sqlite>::insert_room(conn, &room, now)
        .await?
        .ok_or(StoreError::AlreadyExists)?;
    Sql::<Sqlite>::insert_members(conn, &room, now).await?;
    Ok(CreateOutcome::Created(record))
}
