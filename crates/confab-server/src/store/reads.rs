//! The reads both backends run the same way, written once: generic over
//! the backend's database, taking their SQL from its [`Dialect`]. Each is
//! monomorphized per backend, so it costs what the backend's own copy did.
//! What a backend reads its own way (`user_with_rooms`) stays with it.

use crate::store::rows::{
    Dialect, StoreRow, attachment_record, member_from_row, message_from_row, room_from_row,
    room_list_entry_from_row, user_from_row,
};
use crate::store::{
    AttachmentRecord, HistoryPage, MemberRecord, MemberWithUser, MessageRecord, RoomListEntry,
    RoomRecord, StoreError, StoreResult, UserRecord,
};
use confab_protocol::Timestamp;
use sqlx::{ColumnIndex, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// The reads of the backend `DB`, as associated functions so that their
/// bounds (what sqlx needs to bind, run and decode on `DB`) are written once.
pub(crate) struct Reads<DB>(PhantomData<DB>);

impl<DB> Reads<DB>
where
    DB: Dialect,
    DB::Row: StoreRow,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
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
        sqlx::query(DB::USER_BY_ID)
            .bind(id)
            .fetch_optional(ex)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    /// The room, if stored.
    pub(crate) async fn fetch_room<'e>(
        ex: impl Executor<'e, Database = DB>,
        id: &str,
    ) -> sqlx::Result<Option<RoomRecord>> {
        sqlx::query(DB::ROOM_BY_ID)
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
        sqlx::query(DB::MEMBER_BY_IDS)
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
        sqlx::query_scalar(DB::USER_ROOM_IDS)
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
        let rows = sqlx::query(DB::LIST_MEMBERS)
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
        sqlx::query(DB::ATTACHMENT_BY_ID)
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

    /// Whether a read reaches the database.
    pub(crate) async fn ping(pool: &Pool<DB>) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map_err(DB::read_error)?;
        Ok(())
    }
}
