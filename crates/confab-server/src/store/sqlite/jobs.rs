//! Write jobs: what each writing [`Store`](crate::store::Store) method does
//! inside its savepoint on the writer's connection (the appends are
//! `batch_append`'s). With one writer, "look, then write" is race-free.

use super::MIGRATOR;
use super::rows::{fetch_member, fetch_message, fetch_reactions, fetch_room, json_text};
use crate::store::rows::{
    MEMBER_COLUMNS, ROOM_COLUMNS, USER_COLUMNS, member_from_row, on_constraint, room_from_row,
    user_from_row,
};
use crate::store::{
    AttachmentRecord, CreateOutcome, GlobalRole, MemberRecord, MessageRecord, NewRoom,
    ReactionChange, RoomRecord, RoomRole, StoreError, StoreResult, UserRecord, UserUpsert,
};
use confab_protocol::Timestamp;
use sqlx::sqlite::SqliteConnection;
use std::collections::BTreeMap;

pub(super) async fn migrate(conn: &mut SqliteConnection) -> StoreResult<()> {
    // `run` takes an `Acquire`, whose lifetime cannot be proven general enough
    // inside the writer's higher-ranked job closure; `run_direct` is the same
    // code on a plain connection, public (though hidden) for exactly this.
    MIGRATOR.run_direct(conn).await?;
    Ok(())
}

pub(super) async fn upsert_user(
    conn: &mut SqliteConnection,
    user: UserUpsert,
) -> StoreResult<UserRecord> {
    let row = sqlx::query(&format!(
        "INSERT INTO users (id, username, name, role, disabled, created_at) \
         VALUES (?1, COALESCE(?2, ?1), ?3, COALESCE(?4, 'member'), COALESCE(?5, 0), ?6) \
         ON CONFLICT (id) DO UPDATE SET \
             username = COALESCE(?2, username), \
             name = COALESCE(?3, name), \
             role = COALESCE(?4, role), \
             disabled = COALESCE(?5, disabled) \
         RETURNING {USER_COLUMNS}"
    ))
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.name)
    .bind(user.role.map(GlobalRole::as_str))
    .bind(user.disabled)
    .bind(Timestamp::now().millis())
    .fetch_one(&mut *conn)
    .await
    .map_err(on_constraint)?;
    Ok(user_from_row(&row)?)
}

pub(super) async fn create_room(
    conn: &mut SqliteConnection,
    room: NewRoom,
) -> StoreResult<CreateOutcome> {
    if let Some(key) = &room.direct_key {
        let existing = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms WHERE direct_key = ?1"
        ))
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = existing {
            return Ok(CreateOutcome::ExistingDirect(room_from_row(&row)?));
        }
    }
    if fetch_room(&mut *conn, &room.id).await?.is_some() {
        return Err(StoreError::AlreadyExists);
    }

    let now = Timestamp::now().millis();
    let row = sqlx::query(&format!(
        "INSERT INTO rooms (id, name, room_type, metadata, closed, last_seq, last_activity, created_at, direct_key) \
         VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, ?5, ?6) \
         RETURNING {ROOM_COLUMNS}"
    ))
    .bind(&room.id)
    .bind(&room.name)
    .bind(&room.room_type)
    .bind(json_text(&room.metadata))
    .bind(now)
    .bind(&room.direct_key)
    .fetch_one(&mut *conn)
    .await
    .map_err(on_constraint)?;
    let record = room_from_row(&row)?;

    for (user_id, role) in &room.members {
        // A new room has last_seq 0, so new members start with nothing unread.
        // A user listed twice keeps the last role given.
        sqlx::query(
            "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
             VALUES (?1, ?2, ?3, 0, ?4) \
             ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(&room.id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    }
    Ok(CreateOutcome::Created(record))
}

pub(super) async fn update_room(
    conn: &mut SqliteConnection,
    id: String,
    name: Option<String>,
    metadata: Option<serde_json::Value>,
) -> StoreResult<RoomRecord> {
    let row = sqlx::query(&format!(
        "UPDATE rooms SET name = COALESCE(?2, name), metadata = COALESCE(?3, metadata) \
         WHERE id = ?1 RETURNING {ROOM_COLUMNS}"
    ))
    .bind(&id)
    .bind(&name)
    .bind(metadata.as_ref().map(json_text))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(room_from_row(&row)?)
}

pub(super) async fn close_room(conn: &mut SqliteConnection, id: String) -> StoreResult<RoomRecord> {
    let row = sqlx::query(&format!(
        "UPDATE rooms SET closed = 1 WHERE id = ?1 RETURNING {ROOM_COLUMNS}"
    ))
    .bind(&id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(room_from_row(&row)?)
}

pub(super) async fn add_member(
    conn: &mut SqliteConnection,
    room_id: String,
    user_id: String,
    role: RoomRole,
) -> StoreResult<MemberRecord> {
    // No row from the SELECT (missing room) inserts nothing and returns
    // nothing; a missing user fails the foreign key.
    let row = sqlx::query(&format!(
        "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
         SELECT id, ?2, ?3, last_seq, ?4 FROM rooms WHERE id = ?1 \
         ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role \
         RETURNING {MEMBER_COLUMNS}"
    ))
    .bind(&room_id)
    .bind(&user_id)
    .bind(role.as_str())
    .bind(Timestamp::now().millis())
    .fetch_optional(&mut *conn)
    .await
    .map_err(on_constraint)?
    .ok_or(StoreError::NotFound)?;
    Ok(member_from_row(&row)?)
}

pub(super) async fn remove_member(
    conn: &mut SqliteConnection,
    room_id: String,
    user_id: String,
) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM members WHERE room_id = ?1 AND user_id = ?2")
        .bind(&room_id)
        .bind(&user_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn edit_message(
    conn: &mut SqliteConnection,
    room_id: String,
    message_id: String,
    content: String,
    edited_at: Timestamp,
) -> StoreResult<MessageRecord> {
    let updated = sqlx::query(
        "UPDATE messages SET content = ?3, edited_at = ?4 \
         WHERE room_id = ?1 AND id = ?2 AND deleted = 0",
    )
    .bind(&room_id)
    .bind(&message_id)
    .bind(&content)
    .bind(edited_at.millis())
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    fetch_message(&mut *conn, &room_id, &message_id)
        .await?
        .ok_or(StoreError::NotFound)
}

pub(super) async fn delete_message(
    conn: &mut SqliteConnection,
    room_id: String,
    message_id: String,
) -> StoreResult<MessageRecord> {
    let updated =
        sqlx::query("UPDATE messages SET content = '', deleted = 1 WHERE room_id = ?1 AND id = ?2")
            .bind(&room_id)
            .bind(&message_id)
            .execute(&mut *conn)
            .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM reactions WHERE message_id = ?1")
        .bind(&message_id)
        .execute(&mut *conn)
        .await?;
    fetch_message(&mut *conn, &room_id, &message_id)
        .await?
        .ok_or(StoreError::NotFound)
}

pub(super) async fn set_reaction(
    conn: &mut SqliteConnection,
    change: ReactionChange,
) -> StoreResult<BTreeMap<String, Vec<String>>> {
    let live: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM messages WHERE room_id = ?1 AND id = ?2 AND deleted = 0")
            .bind(&change.room_id)
            .bind(&change.message_id)
            .fetch_optional(&mut *conn)
            .await?;
    if live.is_none() {
        return Err(StoreError::NotFound);
    }
    if change.present {
        sqlx::query(
            "INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&change.message_id)
        .bind(&change.user_id)
        .bind(&change.emoji)
        .bind(change.at.millis())
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    } else {
        sqlx::query("DELETE FROM reactions WHERE message_id = ?1 AND user_id = ?2 AND emoji = ?3")
            .bind(&change.message_id)
            .bind(&change.user_id)
            .bind(&change.emoji)
            .execute(&mut *conn)
            .await?;
    }
    Ok(fetch_reactions(&mut *conn, &change.message_id).await?)
}

pub(super) async fn create_attachment(
    conn: &mut SqliteConnection,
    attachment: AttachmentRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO attachments (id, uploader_id, sha256, content_type, size, name, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(&attachment.id)
    .bind(&attachment.uploader_id)
    .bind(&attachment.sha256)
    .bind(&attachment.content_type)
    .bind(attachment.size)
    .bind(&attachment.name)
    .bind(attachment.created_at.millis())
    .execute(&mut *conn)
    .await
    .map_err(on_constraint)?;
    Ok(())
}

pub(super) async fn mark_read(
    conn: &mut SqliteConnection,
    room_id: String,
    user_id: String,
    up_to_seq: i64,
) -> StoreResult<i64> {
    // Writes only when the marker moves forward; clamped to the room's last seq.
    let moved: Option<i64> = sqlx::query_scalar(
        "UPDATE members SET last_read_seq = \
             MIN(?3, (SELECT last_seq FROM rooms WHERE rooms.id = members.room_id)) \
         WHERE room_id = ?1 AND user_id = ?2 \
           AND last_read_seq < MIN(?3, (SELECT last_seq FROM rooms WHERE rooms.id = members.room_id)) \
         RETURNING last_read_seq",
    )
    .bind(&room_id)
    .bind(&user_id)
    .bind(up_to_seq)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(marker) = moved {
        return Ok(marker);
    }
    let member = fetch_member(&mut *conn, &room_id, &user_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(member.last_read_seq)
}
