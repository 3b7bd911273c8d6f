//! Write jobs: what each writing [`Store`](crate::store::Store) method does
//! inside its savepoint on the writer's connection. They may run more than
//! once (a batch that met a deadlock is tried again), so each starts from its
//! inputs and keeps no state between runs.

use super::rows::{
    fetch_member, fetch_message, fetch_reactions, fetch_user, json_object, message_select,
};
use crate::store::rows::{
    MEMBER_COLUMNS, ROOM_COLUMNS, USER_COLUMNS, member_from_row, message_from_row, on_constraint,
    room_from_row, stored_record, user_from_row,
};
use crate::store::{
    AppendOutcome, AttachmentRecord, CreateOutcome, GlobalRole, MemberRecord, MessageRecord,
    NewMessage, NewRoom, ReactionChange, RoomRecord, RoomRole, StoreError, StoreResult, UserRecord,
    UserUpsert,
};
use confab_protocol::Timestamp;
use sqlx::postgres::PgConnection;
use std::collections::BTreeMap;

pub(super) async fn upsert_user(
    conn: &mut PgConnection,
    user: UserUpsert,
) -> StoreResult<UserRecord> {
    let row = sqlx::query(&format!(
        "INSERT INTO users (id, username, name, role, disabled, created_at) \
         VALUES ($1, COALESCE($2::TEXT, $1), $3::TEXT, COALESCE($4::TEXT, 'member'), \
                 COALESCE($5::BOOLEAN, FALSE), $6) \
         ON CONFLICT (id) DO UPDATE SET \
             username = COALESCE($2::TEXT, users.username), \
             name = COALESCE($3::TEXT, users.name), \
             role = COALESCE($4::TEXT, users.role), \
             disabled = COALESCE($5::BOOLEAN, users.disabled) \
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

/// The direct room with this key, if one exists.
async fn direct_room(conn: &mut PgConnection, key: &str) -> StoreResult<Option<RoomRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {ROOM_COLUMNS} FROM rooms WHERE direct_key = $1"
    ))
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(room_from_row).transpose()?)
}

pub(super) async fn create_room(
    conn: &mut PgConnection,
    room: NewRoom,
) -> StoreResult<CreateOutcome> {
    if let Some(key) = &room.direct_key
        && let Some(existing) = direct_room(conn, key).await?
    {
        return Ok(CreateOutcome::ExistingDirect(existing));
    }

    // Another node may be inserting the same direct room right now: the
    // unique index makes this insert wait for it, and `DO NOTHING` turns its
    // commit into "no row" instead of an error, so the look-up below finds
    // the winner (READ COMMITTED: each statement sees what committed before it).
    let now = Timestamp::now().millis();
    let inserted = sqlx::query(&format!(
        "INSERT INTO rooms (id, name, room_type, metadata, closed, last_seq, last_activity, created_at, direct_key) \
         VALUES ($1, $2, $3, $4, FALSE, 0, $5, $5, $6) \
         ON CONFLICT DO NOTHING \
         RETURNING {ROOM_COLUMNS}"
    ))
    .bind(&room.id)
    .bind(&room.name)
    .bind(&room.room_type)
    .bind(json_object(&room.metadata))
    .bind(now)
    .bind(&room.direct_key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(on_constraint)?;
    let Some(row) = inserted else {
        if let Some(key) = &room.direct_key
            && let Some(existing) = direct_room(conn, key).await?
        {
            return Ok(CreateOutcome::ExistingDirect(existing));
        }
        return Err(StoreError::AlreadyExists);
    };
    let record = room_from_row(&row)?;

    for (user_id, role) in &room.members {
        // A new room has last_seq 0, so new members start with nothing unread.
        // A user listed twice keeps the last role given.
        sqlx::query(
            "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
             VALUES ($1, $2, $3, 0, $4) \
             ON CONFLICT (room_id, user_id) DO UPDATE SET role = EXCLUDED.role",
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
    conn: &mut PgConnection,
    id: String,
    name: Option<String>,
    metadata: Option<serde_json::Value>,
) -> StoreResult<RoomRecord> {
    let row = sqlx::query(&format!(
        "UPDATE rooms SET name = COALESCE($2::TEXT, name), metadata = COALESCE($3::JSONB, metadata) \
         WHERE id = $1 RETURNING {ROOM_COLUMNS}"
    ))
    .bind(&id)
    .bind(&name)
    .bind(metadata.as_ref().map(json_object))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(room_from_row(&row)?)
}

pub(super) async fn close_room(conn: &mut PgConnection, id: String) -> StoreResult<RoomRecord> {
    let row = sqlx::query(&format!(
        "UPDATE rooms SET closed = TRUE WHERE id = $1 RETURNING {ROOM_COLUMNS}"
    ))
    .bind(&id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(room_from_row(&row)?)
}

pub(super) async fn add_member(
    conn: &mut PgConnection,
    room_id: String,
    user_id: String,
    role: RoomRole,
) -> StoreResult<MemberRecord> {
    // No row from the SELECT (missing room) inserts nothing and returns
    // nothing; a missing user fails the foreign key.
    let row = sqlx::query(&format!(
        "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
         SELECT id, $2::TEXT, $3::TEXT, last_seq, $4::BIGINT FROM rooms WHERE id = $1 \
         ON CONFLICT (room_id, user_id) DO UPDATE SET role = EXCLUDED.role \
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
    conn: &mut PgConnection,
    room_id: String,
    user_id: String,
) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM members WHERE room_id = $1 AND user_id = $2")
        .bind(&room_id)
        .bind(&user_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn append_message(
    conn: &mut PgConnection,
    message: NewMessage,
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

    let sender = fetch_user(&mut *conn, &message.sender_id)
        .await?
        .ok_or(StoreError::NotFound)?;

    // The seq and the insert share this job's savepoint: if the insert
    // fails, the bump is rolled back with it and no seq is used.
    let seq: i64 = sqlx::query_scalar(
        "UPDATE rooms SET last_seq = last_seq + 1, last_activity = GREATEST(last_activity, $2) \
         WHERE id = $1 RETURNING last_seq",
    )
    .bind(&message.room_id)
    .bind(message.created_at.millis())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;

    let metadata = json_object(&message.metadata);
    sqlx::query(
        "INSERT INTO messages (id, room_id, seq, sender_id, content, message_type, reply_to, \
             metadata, attachment_id, lat, lng, client_msg_id, created_at, edited_at, deleted) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, FALSE)",
    )
    .bind(&message.id)
    .bind(&message.room_id)
    .bind(seq)
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
    .execute(&mut *conn)
    .await
    .map_err(on_constraint)?;

    Ok(AppendOutcome::Stored(stored_record(
        message,
        seq,
        sender.username,
        sender.name,
    )))
}

pub(super) async fn edit_message(
    conn: &mut PgConnection,
    room_id: String,
    message_id: String,
    content: String,
    edited_at: Timestamp,
) -> StoreResult<MessageRecord> {
    let updated = sqlx::query(
        "UPDATE messages SET content = $3, edited_at = $4 \
         WHERE room_id = $1 AND id = $2 AND NOT deleted",
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
    conn: &mut PgConnection,
    room_id: String,
    message_id: String,
) -> StoreResult<MessageRecord> {
    let updated = sqlx::query(
        "UPDATE messages SET content = '', deleted = TRUE WHERE room_id = $1 AND id = $2",
    )
    .bind(&room_id)
    .bind(&message_id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM reactions WHERE message_id = $1")
        .bind(&message_id)
        .execute(&mut *conn)
        .await?;
    fetch_message(&mut *conn, &room_id, &message_id)
        .await?
        .ok_or(StoreError::NotFound)
}

pub(super) async fn set_reaction(
    conn: &mut PgConnection,
    change: ReactionChange,
) -> StoreResult<BTreeMap<String, Vec<String>>> {
    let live: Option<bool> = sqlx::query_scalar(
        "SELECT TRUE FROM messages WHERE room_id = $1 AND id = $2 AND NOT deleted",
    )
    .bind(&change.room_id)
    .bind(&change.message_id)
    .fetch_optional(&mut *conn)
    .await?;
    if live.is_none() {
        return Err(StoreError::NotFound);
    }
    if change.present {
        sqlx::query(
            "INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES ($1, $2, $3, $4) \
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
        sqlx::query("DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3")
            .bind(&change.message_id)
            .bind(&change.user_id)
            .bind(&change.emoji)
            .execute(&mut *conn)
            .await?;
    }
    Ok(fetch_reactions(&mut *conn, &change.message_id).await?)
}

pub(super) async fn create_attachment(
    conn: &mut PgConnection,
    attachment: AttachmentRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO attachments (id, uploader_id, sha256, content_type, size, name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
    conn: &mut PgConnection,
    room_id: String,
    user_id: String,
    up_to_seq: i64,
) -> StoreResult<i64> {
    // Writes only when the marker moves forward; clamped to the room's last seq.
    let moved: Option<i64> = sqlx::query_scalar(
        "UPDATE members mb SET last_read_seq = LEAST($3::BIGINT, r.last_seq) \
         FROM rooms r \
         WHERE r.id = mb.room_id AND mb.room_id = $1 AND mb.user_id = $2 \
           AND mb.last_read_seq < LEAST($3::BIGINT, r.last_seq) \
         RETURNING mb.last_read_seq",
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
