//! The write jobs both backends run the same way, written once: what a
//! writing [`Store`](crate::store::Store) method does inside its savepoint on
//! the writer's connection, with the backend's SQL ([`JobSql`]). Each starts
//! from its inputs and keeps no state between runs, so PostgreSQL may run it
//! again when its batch is retried. Where the backends' logic differs
//! (creating a room, PostgreSQL's appends, SQLite's batched appends) the job
//! stays with its backend.

use crate::store::reads::Reads;
use crate::store::rows::{
    Dialect, StoreRow, member_from_row, on_constraint, room_from_row, user_from_row,
};
use crate::store::{
    AttachmentRecord, GlobalRole, MemberRecord, MessageRecord, NewRoom, ReactionChange, RoomRecord,
    RoomRole, StoreError, StoreResult, UserRecord, UserUpsert,
};
use confab_protocol::Timestamp;
use sqlx::{ColumnIndex, Encode, Executor, FromRow, IntoArguments, Type};
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// The SQL of the shared write jobs, as each backend spells it (booleans,
/// casts, `excluded`, placeholders), and how it binds JSON.
pub(crate) trait JobSql: Dialect {
    /// A JSON object as bound: TEXT in SQLite, JSONB in PostgreSQL.
    type Json: for<'q> Encode<'q, Self> + Type<Self> + Send + Sync + 'static;

    /// `value` as bound, `null` as `{}` (the columns hold objects).
    fn json_param(value: &serde_json::Value) -> Self::Json;

    /// Rows a statement changed (each backend's result has its own method).
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Inserts or updates a user from `(id, username, name, role, disabled,
    /// created_at)`, changing only the fields given, returning its columns.
    const UPSERT_USER: &'static str;
    /// The room with the direct key `(key)`.
    const ROOM_BY_DIRECT_KEY: &'static str;
    /// Adds or re-roles a member of a new room: `(room, user, role, now)`.
    const INSERT_MEMBER: &'static str;
    /// Renames a room and/or replaces its metadata: `(id, name, metadata)`.
    const UPDATE_ROOM: &'static str;
    /// Closes a room: `(id)`.
    const CLOSE_ROOM: &'static str;
    /// Adds or re-roles a member of an existing room, its marker at the
    /// room's last seq: `(room, user, role, now)`.
    const ADD_MEMBER: &'static str;
    /// Removes a member: `(room, user)`.
    const REMOVE_MEMBER: &'static str;
    /// Edits a live message: `(room, message, content, edited_at)`.
    const EDIT_MESSAGE: &'static str;
    /// Blanks and marks a message deleted: `(room, message)`.
    const DELETE_MESSAGE: &'static str;
    /// Drops every reaction to a message: `(message)`.
    const DELETE_REACTIONS: &'static str;
    /// A row if the message is in the room and not deleted: `(room, message)`.
    const MESSAGE_IS_LIVE: &'static str;
    /// Adds a reaction unless present: `(message, user, emoji, at)`.
    const INSERT_REACTION: &'static str;
    /// Removes a reaction: `(message, user, emoji)`.
    const DELETE_REACTION: &'static str;
    /// Stores an upload's record: its seven columns.
    const INSERT_ATTACHMENT: &'static str;
    /// Moves a read marker forward only, clamped to the room's last seq:
    /// `(room, user, up_to_seq)`, the new marker if it moved.
    const MARK_READ: &'static str;
}

/// The shared write jobs of the backend `DB`, as associated functions so
/// that their bounds are written once.
pub(crate) struct Jobs<DB>(PhantomData<DB>);

impl<DB> Jobs<DB>
where
    DB: JobSql,
    DB::Row: StoreRow,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<bool>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DB::Json>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
{
    /// Creates the user or changes the fields given.
    pub(crate) async fn upsert_user(
        conn: &mut DB::Connection,
        user: UserUpsert,
    ) -> StoreResult<UserRecord> {
        let row = sqlx::query(DB::UPSERT_USER)
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
    pub(crate) async fn direct_room(
        conn: &mut DB::Connection,
        key: &str,
    ) -> StoreResult<Option<RoomRecord>> {
        let row = sqlx::query(DB::ROOM_BY_DIRECT_KEY)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.as_ref().map(room_from_row).transpose()?)
    }

    /// Adds a new room's members. A new room has last_seq 0, so they start
    /// with nothing unread; a user listed twice keeps the last role given.
    pub(crate) async fn insert_members(
        conn: &mut DB::Connection,
        room: &NewRoom,
        now: i64,
    ) -> StoreResult<()> {
        for (user_id, role) in &room.members {
            sqlx::query(DB::INSERT_MEMBER)
                .bind(&room.id)
                .bind(user_id)
                .bind(role.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(on_constraint)?;
        }
        Ok(())
    }

    /// Renames the room and/or replaces its metadata.
    pub(crate) async fn update_room(
        conn: &mut DB::Connection,
        id: String,
        name: Option<String>,
        metadata: Option<serde_json::Value>,
    ) -> StoreResult<RoomRecord> {
        let row = sqlx::query(DB::UPDATE_ROOM)
            .bind(&id)
            .bind(&name)
            .bind(metadata.as_ref().map(DB::json_param))
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(room_from_row(&row)?)
    }

    /// Closes the room.
    pub(crate) async fn close_room(
        conn: &mut DB::Connection,
        id: String,
    ) -> StoreResult<RoomRecord> {
        let row = sqlx::query(DB::CLOSE_ROOM)
            .bind(&id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(room_from_row(&row)?)
    }

    /// Adds a member (or changes their role), nothing unread.
    pub(crate) async fn add_member(
        conn: &mut DB::Connection,
        room_id: String,
        user_id: String,
        role: RoomRole,
    ) -> StoreResult<MemberRecord> {
        // No row from the SELECT (missing room) inserts nothing and returns
        // nothing; a missing user fails the foreign key.
        let row = sqlx::query(DB::ADD_MEMBER)
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

    /// Removes a member; whether they were one.
    pub(crate) async fn remove_member(
        conn: &mut DB::Connection,
        room_id: String,
        user_id: String,
    ) -> StoreResult<bool> {
        let done = sqlx::query(DB::REMOVE_MEMBER)
            .bind(&room_id)
            .bind(&user_id)
            .execute(&mut *conn)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// Replaces a live message's content.
    pub(crate) async fn edit_message(
        conn: &mut DB::Connection,
        room_id: String,
        message_id: String,
        content: String,
        edited_at: Timestamp,
    ) -> StoreResult<MessageRecord> {
        let updated = sqlx::query(DB::EDIT_MESSAGE)
            .bind(&room_id)
            .bind(&message_id)
            .bind(&content)
            .bind(edited_at.millis())
            .execute(&mut *conn)
            .await?;
        if DB::rows_affected(&updated) == 0 {
            return Err(StoreError::NotFound);
        }
        Reads::<DB>::fetch_message(&mut *conn, &room_id, &message_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Blanks a message (its seq stays) and drops its reactions.
    pub(crate) async fn delete_message(
        conn: &mut DB::Connection,
        room_id: String,
        message_id: String,
    ) -> StoreResult<MessageRecord> {
        let updated = sqlx::query(DB::DELETE_MESSAGE)
            .bind(&room_id)
            .bind(&message_id)
            .execute(&mut *conn)
            .await?;
        if DB::rows_affected(&updated) == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(DB::DELETE_REACTIONS)
            .bind(&message_id)
            .execute(&mut *conn)
            .await?;
        Reads::<DB>::fetch_message(&mut *conn, &room_id, &message_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Adds or removes one user's reaction; the message's reactions after.
    pub(crate) async fn set_reaction(
        conn: &mut DB::Connection,
        change: ReactionChange,
    ) -> StoreResult<BTreeMap<String, Vec<String>>> {
        let live = sqlx::query(DB::MESSAGE_IS_LIVE)
            .bind(&change.room_id)
            .bind(&change.message_id)
            .fetch_optional(&mut *conn)
            .await?;
        if live.is_none() {
            return Err(StoreError::NotFound);
        }
        if change.present {
            sqlx::query(DB::INSERT_REACTION)
                .bind(&change.message_id)
                .bind(&change.user_id)
                .bind(&change.emoji)
                .bind(change.at.millis())
                .execute(&mut *conn)
                .await
                .map_err(on_constraint)?;
        } else {
            sqlx::query(DB::DELETE_REACTION)
                .bind(&change.message_id)
                .bind(&change.user_id)
                .bind(&change.emoji)
                .execute(&mut *conn)
                .await?;
        }
        Ok(Reads::<DB>::fetch_reactions(&mut *conn, &change.message_id).await?)
    }

    /// Stores an upload's record.
    pub(crate) async fn create_attachment(
        conn: &mut DB::Connection,
        attachment: AttachmentRecord,
    ) -> StoreResult<()> {
        sqlx::query(DB::INSERT_ATTACHMENT)
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

    /// Moves the read marker forward (never back); the marker after.
    pub(crate) async fn mark_read(
        conn: &mut DB::Connection,
        room_id: String,
        user_id: String,
        up_to_seq: i64,
    ) -> StoreResult<i64> {
        let moved: Option<i64> = sqlx::query_scalar(DB::MARK_READ)
            .bind(&room_id)
            .bind(&user_id)
            .bind(up_to_seq)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(marker) = moved {
            return Ok(marker);
        }
        let member = Reads::<DB>::fetch_member(&mut *conn, &room_id, &user_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(member.last_read_seq)
    }
}
