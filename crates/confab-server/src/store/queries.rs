//! The statements both backends run alike, written once: the reads, and
//! the write jobs (what a writing [`Store`](crate::store::Store) method does
//! inside its savepoint on the writer's connection). They are generic over
//! the backend's database and take their SQL from here when only the
//! placeholders differ ([`super::statements`]), else from the backend's [`Dialect`]
//! and [`JobSql`]; each is monomorphized per backend, so it costs what the
//! backend's own copy did. Jobs start from their inputs and keep no state
//! between runs, so PostgreSQL may run one again when its batch is retried.
//! What a backend does its own way (creating a room, PostgreSQL's appends,
//! SQLite's batched appends) stays with it.

use crate::store::rows::{
    Dialect, StoreRow, attachment_record, member_from_row, message_from_row, on_constraint,
    rating_from_row, room_from_row, room_list_entry_from_row, unanswered_question_from_row,
    user_from_row, user_with_rooms_from_row,
};
use crate::store::statements::{
    ATTACHMENT_BY_ID, DELETE_REACTION, DELETE_REACTIONS, INSERT_ATTACHMENT, INSERT_REACTION,
    LIST_MEMBERS, MEMBER_BY_IDS, RATING_BY_ROOM, RATING_SUMMARY, REMOVE_MEMBER, ROOM_BY_DIRECT_KEY,
    ROOM_BY_ID, TAKE_LEASE, UPSERT_RATING, USER_BY_ID, USER_ROOM_IDS,
};
use crate::store::{
    AttachmentRecord, GlobalRole, HistoryPage, MemberRecord, MemberWithUser, MessageRecord,
    NewRoom, RatingRecord, ReactionChange, RoomListEntry, RoomRecord, RoomRole, StoreError,
    StoreResult, UnansweredQuestion, UserRecord, UserUpsert,
};
use confab_protocol::Timestamp;
use sqlx::{ColumnIndex, Encode, Executor, FromRow, IntoArguments, Pool, Type};
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
    /// Inserts a room, closed no, last seq 0, active now: `(id, name,
    /// room_type, metadata, now, direct_key)`, returning its columns (no
    /// row where PostgreSQL met a taken key).
    const INSERT_ROOM: &'static str;
    /// Adds or re-roles a member of a new room: `(room, user, role, now)`.
    const INSERT_MEMBER: &'static str;
    /// Renames a room and/or replaces its metadata: `(id, name, metadata)`.
    const UPDATE_ROOM: &'static str;
    /// Closes an open `assistant` room idle since before a time, returning
    /// its columns (no row when it is closed, busy or no session):
    /// `(id, idle_before)`.
    const EXPIRE_SESSION: &'static str;
    /// Closes a room: `(id)`.
    const CLOSE_ROOM: &'static str;
    /// Adds or re-roles a member of an existing room, its marker at the
    /// room's last seq: `(room, user, role, now)`.
    const ADD_MEMBER: &'static str;
    /// Edits a live message: `(room, message, content, edited_at)`.
    const EDIT_MESSAGE: &'static str;
    /// Blanks and marks a message deleted: `(room, message)`.
    const DELETE_MESSAGE: &'static str;
    /// A row if the message is in the room and not deleted: `(room, message)`.
    const MESSAGE_IS_LIVE: &'static str;
    /// Moves a read marker forward only, clamped to the room's last seq:
    /// `(room, user, up_to_seq)`, the new marker if it moved.
    const MARK_READ: &'static str;
}

/// The shared statements of the backend `DB`, as associated functions so
/// that their bounds (what sqlx needs to bind, run and decode on `DB`) are
/// written once.
pub(crate) struct Sql<DB>(PhantomData<DB>);

impl<DB> Sql<DB>
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
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<bool>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DB::Json>: Encode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
{
    /// The user, if stored.
    pub(crate) async fn fetch_user<'e>(
        ex: impl Executor<'e, Database = DB>,
        id: &str,
    ) -> sqlx::Result<Option<UserRecord>> {
        sqlx::query(DB::spell(&USER_BY_ID))
            .bind(id)
            .fetch_optional(ex)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    /// The user and the ids of its rooms in id order, in one read.
    pub(crate) async fn user_with_rooms(
        pool: &Pool<DB>,
        id: &str,
    ) -> StoreResult<Option<(UserRecord, Vec<String>)>> {
        let row = sqlx::query(DB::USER_WITH_ROOMS)
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(DB::read_error)?;
        Ok(row
            .as_ref()
            .map(user_with_rooms_from_row::<DB>)
            .transpose()?)
    }

    /// The room, if stored.
    pub(crate) async fn fetch_room<'e>(
        ex: impl Executor<'e, Database = DB>,
        id: &str,
    ) -> sqlx::Result<Option<RoomRecord>> {
        sqlx::query(DB::spell(&ROOM_BY_ID))
            .bind(id)
            .fetch_optional(ex)
            .await?
            .as_ref()
            .map(room_from_row)
            .transpose()
    }

    /// The membership, if the user is a member.
    pub(crate) async fn fetch_member<'e>(
        ex: impl Executor<'e, Database = DB>,
        room_id: &str,
        user_id: &str,
    ) -> sqlx::Result<Option<MemberRecord>> {
        sqlx::query(DB::spell(&MEMBER_BY_IDS))
            .bind(room_id)
            .bind(user_id)
            .fetch_optional(ex)
            .await?
            .as_ref()
            .map(member_from_row)
            .transpose()
    }

    /// The message, if it is in this room.
    pub(crate) async fn fetch_message<'e>(
        ex: impl Executor<'e, Database = DB>,
        room_id: &str,
        message_id: &str,
    ) -> sqlx::Result<Option<MessageRecord>> {
        sqlx::query(DB::MESSAGE_BY_IDS)
            .bind(message_id)
            .bind(room_id)
            .fetch_optional(ex)
            .await?
            .as_ref()
            .map(|row| message_from_row(row, ""))
            .transpose()
    }

    /// The reaction map of one message, in the same order history shows it.
    pub(crate) async fn fetch_reactions<'e>(
        ex: impl Executor<'e, Database = DB>,
        message_id: &str,
    ) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
        let row = sqlx::query(DB::REACTIONS_OF)
            .bind(message_id)
            .fetch_one(ex)
            .await?;
        DB::reactions(&row, 0_usize)
    }

    /// A page of the user's rooms, newest activity first, after the
    /// `(last_activity, id)` cursor if given.
    pub(crate) async fn list_user_rooms(
        pool: &Pool<DB>,
        user_id: &str,
        limit: u32,
        after: Option<(Timestamp, String)>,
    ) -> StoreResult<Vec<RoomListEntry>> {
        let (after_activity, after_id) = match after {
            Some((activity, id)) => (Some(activity.millis()), Some(id)),
            None => (None, None),
        };
        let rows = sqlx::query(DB::LIST_USER_ROOMS)
            .bind(user_id)
            .bind(after_activity)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(DB::read_error)?;
        Ok(rows
            .iter()
            .map(room_list_entry_from_row)
            .collect::<sqlx::Result<_>>()?)
    }

    /// The ids of the user's rooms, in id order.
    pub(crate) async fn user_room_ids(pool: &Pool<DB>, user_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(DB::spell(&USER_ROOM_IDS))
            .bind(user_id)
            .fetch_all(pool)
            .await
            .map_err(DB::read_error)
    }

    /// The room's members with their users' display fields, in join order.
    pub(crate) async fn list_members(
        pool: &Pool<DB>,
        room_id: &str,
    ) -> StoreResult<Vec<MemberWithUser>> {
        let rows = sqlx::query(DB::spell(&LIST_MEMBERS))
            .bind(room_id)
            .fetch_all(pool)
            .await
            .map_err(DB::read_error)?;
        let members = rows
            .iter()
            .map(|row| {
                Ok(MemberWithUser {
                    member: member_from_row(row)?,
                    username: row.text("username")?,
                    name: row.text_opt("name")?,
                    user_role: row
                        .text_opt("user_role")?
                        .as_deref()
                        .and_then(GlobalRole::parse)
                        .unwrap_or_default(),
                })
            })
            .collect::<sqlx::Result<_>>()?;
        Ok(members)
    }

    /// A page of the room's history in seq order, and whether there is more
    /// beyond it.
    pub(crate) async fn history(
        pool: &Pool<DB>,
        room_id: &str,
        page: HistoryPage,
        limit: u32,
    ) -> StoreResult<(Vec<MessageRecord>, bool)> {
        let (sql, bound, newest_first) = match page {
            HistoryPage::Latest => (DB::HISTORY_LATEST, None, true),
            HistoryPage::Before(seq) => (DB::HISTORY_BEFORE, Some(seq), true),
            HistoryPage::After(seq) => (DB::HISTORY_AFTER, Some(seq), false),
        };
        // One more than asked tells whether the page has a next one.
        let mut query = sqlx::query(sql).bind(room_id).bind(i64::from(limit) + 1);
        if let Some(seq) = bound {
            query = query.bind(seq);
        }
        let rows = query.fetch_all(pool).await.map_err(DB::read_error)?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        let mut messages = rows
            .iter()
            .take(limit)
            .map(|row| message_from_row(row, ""))
            .collect::<sqlx::Result<Vec<_>>>()?;
        if newest_first {
            messages.reverse();
        }
        Ok((messages, has_more))
    }

    /// The upload, if stored.
    pub(crate) async fn get_attachment(
        pool: &Pool<DB>,
        id: &str,
    ) -> StoreResult<Option<AttachmentRecord>> {
        sqlx::query(DB::spell(&ATTACHMENT_BY_ID))
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(DB::read_error)?
            .as_ref()
            .map(attachment_record)
            .transpose()
            .map_err(DB::read_error)
    }

    /// Whether a message in one of the user's rooms carries the upload.
    pub(crate) async fn attachment_shared_with(
        pool: &Pool<DB>,
        id: &str,
        user_id: &str,
    ) -> StoreResult<bool> {
        let shared = sqlx::query(DB::ATTACHMENT_SHARED_WITH)
            .bind(id)
            .bind(user_id)
            .fetch_optional(pool)
            .await
            .map_err(DB::read_error)?;
        Ok(shared.is_some())
    }

    /// One member's unread count; [`StoreError::NotFound`] if the user is not
    /// a member.
    pub(crate) async fn unread_count(
        pool: &Pool<DB>,
        room_id: &str,
        user_id: &str,
    ) -> StoreResult<i64> {
        sqlx::query_scalar(DB::UNREAD_COUNT)
            .bind(room_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await
            .map_err(DB::read_error)?
            .ok_or(StoreError::NotFound)
    }

    /// Rooms and stored messages.
    pub(crate) async fn counts(pool: &Pool<DB>) -> StoreResult<(i64, i64)> {
        let (rooms, messages): (i64, i64) = sqlx::query_as(DB::COUNTS)
            .fetch_one(pool)
            .await
            .map_err(DB::read_error)?;
        Ok((rooms, messages))
    }

    /// The user's newest open session (an open `assistant` room they own).
    pub(crate) async fn open_session(
        pool: &Pool<DB>,
        user_id: &str,
    ) -> StoreResult<Option<RoomRecord>> {
        let row = sqlx::query(DB::OPEN_SESSION)
            .bind(user_id)
            .fetch_optional(pool)
            .await
            .map_err(DB::read_error)?;
        Ok(row.as_ref().map(room_from_row).transpose()?)
    }

    /// Ids of the open sessions idle since before `idle_before`.
    pub(crate) async fn idle_sessions(
        pool: &Pool<DB>,
        idle_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(DB::IDLE_SESSIONS)
            .bind(idle_before.millis())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(DB::read_error)
    }

    /// Questions to the assistant bot nobody answered, stored in
    /// `[asked_from, asked_before)`, oldest first.
    pub(crate) async fn unanswered_questions(
        pool: &Pool<DB>,
        asked_from: Timestamp,
        asked_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<UnansweredQuestion>> {
        let rows = sqlx::query(DB::UNANSWERED_QUESTIONS)
            .bind(asked_from.millis())
            .bind(asked_before.millis())
            .bind(crate::identity::ASSISTANT_USER)
            .bind(crate::identity::SYSTEM_USER)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(DB::read_error)?;
        Ok(rows
            .iter()
            .map(unanswered_question_from_row)
            .collect::<sqlx::Result<_>>()?)
    }

    /// Whether a read reaches the database.
    pub(crate) async fn ping(pool: &Pool<DB>) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map_err(DB::read_error)?;
        Ok(())
    }

    /// The room's rating, if it was rated.
    pub(crate) async fn get_rating(
        pool: &Pool<DB>,
        room_id: &str,
    ) -> StoreResult<Option<RatingRecord>> {
        sqlx::query(DB::spell(&RATING_BY_ROOM))
            .bind(room_id)
            .fetch_optional(pool)
            .await
            .map_err(DB::read_error)?
            .as_ref()
            .map(rating_from_row)
            .transpose()
            .map_err(DB::read_error)
    }

    /// Rated sessions and their mean rating.
    pub(crate) async fn rating_summary(pool: &Pool<DB>) -> StoreResult<(i64, Option<f64>)> {
        let row = sqlx::query(DB::spell(&RATING_SUMMARY))
            .fetch_one(pool)
            .await
            .map_err(DB::read_error)?;
        Ok((row.int("count")?, row.float_opt("average")?))
    }

    /// Creates the user or changes the fields given.
    pub(crate) async fn upsert_user(
        conn: &mut DB::Connection,
        user: UserUpsert,
    ) -> StoreResult<UserRecord> {
        let row = sqlx::query(DB::UPSERT_USER)
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.name)
            .bind(user.role.as_ref().map(GlobalRole::as_str))
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
        let row = sqlx::query(DB::spell(&ROOM_BY_DIRECT_KEY))
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.as_ref().map(room_from_row).transpose()?)
    }

    /// Inserts a new room; `None` if the backend's statement skipped it (a
    /// taken key, on PostgreSQL).
    pub(crate) async fn insert_room(
        conn: &mut DB::Connection,
        room: &NewRoom,
        now: i64,
    ) -> StoreResult<Option<RoomRecord>> {
        let row = sqlx::query(DB::INSERT_ROOM)
            .bind(&room.id)
            .bind(&room.name)
            .bind(&room.room_type)
            .bind(DB::json_param(&room.metadata))
            .bind(now)
            .bind(&room.direct_key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(on_constraint)?;
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

    /// Closes the session if it is still open and idle since before
    /// `idle_before`; the room if this call closed it.
    pub(crate) async fn expire_session(
        conn: &mut DB::Connection,
        id: String,
        idle_before: Timestamp,
    ) -> StoreResult<Option<RoomRecord>> {
        let row = sqlx::query(DB::EXPIRE_SESSION)
            .bind(&id)
            .bind(idle_before.millis())
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.as_ref().map(room_from_row).transpose()?)
    }

    /// Takes or renews a lease; whether `holder` has it now.
    pub(crate) async fn take_lease(
        conn: &mut DB::Connection,
        name: String,
        holder: String,
        until: Timestamp,
    ) -> StoreResult<bool> {
        let row = sqlx::query(DB::spell(&TAKE_LEASE))
            .bind(&name)
            .bind(&holder)
            .bind(until.millis())
            .bind(Timestamp::now().millis())
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.is_some())
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
        let done = sqlx::query(DB::spell(&REMOVE_MEMBER))
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
        Self::fetch_message(&mut *conn, &room_id, &message_id)
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
        sqlx::query(DB::spell(&DELETE_REACTIONS))
            .bind(&message_id)
            .execute(&mut *conn)
            .await?;
        Self::fetch_message(&mut *conn, &room_id, &message_id)
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
            sqlx::query(DB::spell(&INSERT_REACTION))
                .bind(&change.message_id)
                .bind(&change.user_id)
                .bind(&change.emoji)
                .bind(change.at.millis())
                .execute(&mut *conn)
                .await
                .map_err(on_constraint)?;
        } else {
            sqlx::query(DB::spell(&DELETE_REACTION))
                .bind(&change.message_id)
                .bind(&change.user_id)
                .bind(&change.emoji)
                .execute(&mut *conn)
                .await?;
        }
        Ok(Self::fetch_reactions(&mut *conn, &change.message_id).await?)
    }

    /// Stores an upload's record.
    pub(crate) async fn create_attachment(
        conn: &mut DB::Connection,
        attachment: AttachmentRecord,
    ) -> StoreResult<()> {
        sqlx::query(DB::spell(&INSERT_ATTACHMENT))
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
        let member = Self::fetch_member(&mut *conn, &room_id, &user_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(member.last_read_seq)
    }

    /// Stores the room's rating in place of any earlier one; the row as stored.
    pub(crate) async fn rate_session(
        conn: &mut DB::Connection,
        rating: RatingRecord,
    ) -> StoreResult<RatingRecord> {
        let row = sqlx::query(DB::spell(&UPSERT_RATING))
            .bind(&rating.room_id)
            .bind(&rating.user_id)
            .bind(rating.rating)
            .bind(&rating.feedback)
            .bind(rating.rated_at.millis())
            .fetch_one(&mut *conn)
            .await
            .map_err(on_constraint)?;
        Ok(rating_from_row(&row)?)
    }
}
