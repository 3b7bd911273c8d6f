//! The one implementation of [`Store`], for every backend.
//!
//! Both backends read through a pool and write through one writer that
//! groups jobs into transactions; what a method runs is the same SQL but for
//! spelling (`store::queries`). So [`Store`] is implemented once, for any
//! [`StoreBackend`], and a backend supplies only what it does its own way:
//! its pool, how a write job reaches its writer, how it creates a room and
//! queues an append, and how it shuts down.

use crate::metrics::StoreHistograms;
use crate::store::outbox::{NewEvent, RecordedEvents};
use crate::store::queries::{JobSql, Sql};
use crate::store::rows::{Dialect, StoreRow};
use crate::store::{
    AttachmentRecord, Attempt, CommitHook, CreateOutcome, EventKind, EventSet, HistoryPage,
    MemberRecord, MemberWithUser, MessageRecord, NewMessage, NewRoom, OutboxEvent, OutboxState,
    PendingAppend, RatingRecord, ReactionChange, RoomListEntry, RoomRecord, RoomRole, Store,
    StoreError, StoreResult, Trimmed, UnansweredQuestion, UserRecord, UserUpsert,
};
use async_trait::async_trait;
use confab_protocol::Timestamp;
use futures_util::future::BoxFuture;
use sqlx::{ColumnIndex, Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use std::collections::BTreeMap;

/// The connection a backend's write jobs run on.
pub(crate) type Connection<B> = <<B as StoreBackend>::Db as Database>::Connection;

/// A write job's work on the writer's connection `C`, inside the job's
/// savepoint. PostgreSQL runs it again from scratch when it retries the
/// batch, so it borrows what it needs and clones what it gives away.
pub(crate) type Work<C, T> =
    Box<dyn for<'c> Fn(&'c mut C) -> BoxFuture<'c, StoreResult<T>> + Send + Sync>;

/// What a storage backend supplies so that [`Store`] is implemented for it
/// once: everything else is the shared statements of [`Sql`].
pub(crate) trait StoreBackend: Send + Sync + 'static {
    /// The sqlx database, with its spelling of the shared SQL.
    type Db: JobSql;

    /// The pool reads run on (they never wait for the writer).
    fn readers(&self) -> &Pool<Self::Db>;

    /// Queues `work` on the writer and waits for its answer, which comes
    /// only after the transaction it ran in committed. `rooms` are the rooms
    /// whose rows it writes: PostgreSQL locks them in id order before the
    /// batch runs, so that nodes writing the same rooms queue instead of
    /// deadlocking; SQLite's single writer needs no lock. `work` may run more
    /// than once (PostgreSQL retries a batch that met a deadlock), so it
    /// clones what it gives away.
    fn write<T: Send + 'static>(
        &self,
        rooms: Vec<String>,
        work: Work<Connection<Self>, T>,
    ) -> impl Future<Output = StoreResult<T>> + Send;

    /// The write job of [`Store::create_room`]: deduplicating a direct room
    /// takes a look first on SQLite's single writer, a unique index and a
    /// second look on PostgreSQL's several nodes.
    fn create_room_job(
        conn: &mut Connection<Self>,
        room: NewRoom,
    ) -> BoxFuture<'_, StoreResult<CreateOutcome>>;

    /// [`Store::users_with_rooms`]: each backend binds the list of ids its
    /// own way (a JSON array on SQLite, an array on PostgreSQL).
    fn users_with_rooms_read(
        &self,
        ids: &[String],
    ) -> impl Future<Output = StoreResult<Vec<(UserRecord, Vec<String>)>>> + Send;

    /// The write job of [`Store::put_users`]: one statement, its users bound
    /// the backend's way.
    fn put_users_job(
        conn: &mut Connection<Self>,
        users: Vec<UserUpsert>,
        now: i64,
    ) -> BoxFuture<'_, StoreResult<Vec<UserRecord>>>;

    /// [`Store::queue_append`]: each backend's writer runs appends its own
    /// way (SQLite writes consecutive ones together, PostgreSQL bumps the
    /// seq under the room's lock).
    fn enqueue_append(
        &self,
        message: NewMessage,
        on_commit: CommitHook,
    ) -> impl Future<Output = StoreResult<PendingAppend>> + Send;

    /// The webhook events its jobs write (see [`Store::record_events`]);
    /// its appends read it as they are queued.
    fn recorded_events(&self) -> &RecordedEvents;

    /// Whether the writer still takes jobs (a closed one fails `ping`).
    fn writer_open(&self) -> bool;

    /// [`Store::commit_histograms`]: the writer's.
    fn histograms(&self) -> StoreHistograms;

    /// [`Store::close`]: stops taking writes, commits the queued ones and
    /// closes the connections.
    fn shut_down(&self) -> impl Future<Output = ()> + Send;
}

// The bounds are those of `Sql`'s statements (what sqlx needs to bind, run
// and decode on the backend's database): Rust does not imply them from a
// trait, so they are written out here again.
#[async_trait]
impl<B> Store for B
where
    B: StoreBackend,
    <B::Db as Database>::Row: StoreRow,
    for<'c> &'c mut Connection<B>: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<bool>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<<B::Db as JobSql>::Json>: Encode<'q, B::Db> + Type<B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (i64, i64): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <B::Db as Database>::Row>,
{
    // ---- users ----

    async fn put_user(&self, user: UserUpsert) -> StoreResult<UserRecord> {
        self.write(
            Vec::new(),
            Box::new(move |conn| Box::pin(Sql::<B::Db>::upsert_user(conn, user.clone()))),
        )
        .await
    }

    async fn put_users(&self, users: Vec<UserUpsert>) -> StoreResult<Vec<UserRecord>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let users = merge_repeats(users);
        let now = Timestamp::now().millis();
        self.write(
            Vec::new(),
            Box::new(move |conn| B::put_users_job(conn, users.clone(), now)),
        )
        .await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        Sql::<B::Db>::fetch_user(self.readers(), id)
            .await
            .map_err(B::Db::read_error)
    }

    async fn user_with_rooms(&self, id: &str) -> StoreResult<Option<(UserRecord, Vec<String>)>> {
        Sql::<B::Db>::user_with_rooms(self.readers(), id).await
    }

    async fn users_with_rooms(
        &self,
        ids: &[String],
    ) -> StoreResult<Vec<(UserRecord, Vec<String>)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.users_with_rooms_read(ids).await
    }

    // ---- rooms ----

    async fn create_room(&self, room: NewRoom) -> StoreResult<CreateOutcome> {
        let events = self.recorded_events().get();
        self.write(
            Vec::new(),
            Box::new(move |conn| {
                let room = room.clone();
                Box::pin(async move {
                    let members = room.members.clone();
                    let outcome = B::create_room_job(&mut *conn, room).await?;
                    if let CreateOutcome::Created(record) = &outcome {
                        let id = &record.id;
                        // A user listed twice is one member, with the last role given.
                        let mut added: Vec<(String, RoomRole)> = Vec::new();
                        for (user, role) in members.into_iter().rev() {
                            if !added.iter().any(|(seen, _)| *seen == user) {
                                added.push((user, role));
                            }
                        }
                        let new = std::iter::once(NewEvent::room(EventKind::RoomCreated, id))
                            .chain(added.iter().rev().map(|(user, role)| {
                                NewEvent::member(EventKind::MemberAdded, id, user, role.as_str())
                            }));
                        write_events::<B>(conn, events, new).await?;
                    }
                    Ok(outcome)
                })
            }),
        )
        .await
    }

    async fn get_room(&self, id: &str) -> StoreResult<Option<RoomRecord>> {
        Sql::<B::Db>::fetch_room(self.readers(), id)
            .await
            .map_err(B::Db::read_error)
    }

    async fn update_room(
        &self,
        id: &str,
        name: Option<String>,
        metadata: Option<serde_json::Value>,
    ) -> StoreResult<RoomRecord> {
        let id = id.to_owned();
        let events = self.recorded_events().get();
        self.write(
            vec![id.clone()],
            Box::new(move |conn| {
                let (id, name, metadata) = (id.clone(), name.clone(), metadata.clone());
                Box::pin(async move {
                    let room = Sql::<B::Db>::update_room(&mut *conn, id, name, metadata).await?;
                    let event = NewEvent::room(EventKind::RoomUpdated, &room.id);
                    write_events::<B>(conn, events, [event]).await?;
                    Ok(room)
                })
            }),
        )
        .await
    }

    async fn close_room(&self, id: &str) -> StoreResult<RoomRecord> {
        let id = id.to_owned();
        let events = self.recorded_events().get();
        self.write(
            vec![id.clone()],
            Box::new(move |conn| {
                let id = id.clone();
                Box::pin(async move {
                    // Closing a closed room is no event: look first, when it matters.
                    let was_open = match events.is_empty() {
                        true => false,
                        false => Sql::<B::Db>::fetch_room(&mut *conn, &id)
                            .await?
                            .is_some_and(|room| !room.closed),
                    };
                    let room = Sql::<B::Db>::close_room(&mut *conn, id).await?;
                    if was_open {
                        write_events::<B>(conn, events, closed_events(&room)).await?;
                    }
                    Ok(room)
                })
            }),
        )
        .await
    }

    async fn list_user_rooms(
        &self,
        user_id: &str,
        limit: u32,
        after: Option<(Timestamp, String)>,
    ) -> StoreResult<Vec<RoomListEntry>> {
        Sql::<B::Db>::list_user_rooms(self.readers(), user_id, limit, after).await
    }

    // ---- members ----

    async fn get_member(&self, room_id: &str, user_id: &str) -> StoreResult<Option<MemberRecord>> {
        Sql::<B::Db>::fetch_member(self.readers(), room_id, user_id)
            .await
            .map_err(B::Db::read_error)
    }

    async fn user_room_ids(&self, user_id: &str) -> StoreResult<Vec<String>> {
        Sql::<B::Db>::user_room_ids(self.readers(), user_id).await
    }

    async fn list_members(&self, room_id: &str) -> StoreResult<Vec<MemberWithUser>> {
        Sql::<B::Db>::list_members(self.readers(), room_id).await
    }

    async fn add_member(
        &self,
        room_id: &str,
        user_id: &str,
        role: RoomRole,
    ) -> StoreResult<MemberRecord> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        let events = self.recorded_events().get();
        self.write(
            vec![room_id.clone()],
            Box::new(move |conn| {
                let (room_id, user_id) = (room_id.clone(), user_id.clone());
                Box::pin(async move {
                    // A member given the role they have is no event.
                    let before = match events.contains(EventKind::MemberAdded) {
                        true => Sql::<B::Db>::fetch_member(&mut *conn, &room_id, &user_id)
                            .await?
                            .map(|m| m.role),
                        false => None,
                    };
                    let member =
                        Sql::<B::Db>::add_member(&mut *conn, room_id, user_id, role).await?;
                    if before != Some(member.role) {
                        let event = NewEvent::member(
                            EventKind::MemberAdded,
                            &member.room_id,
                            &member.user_id,
                            member.role.as_str(),
                        );
                        write_events::<B>(conn, events, [event]).await?;
                    }
                    Ok(member)
                })
            }),
        )
        .await
    }

    async fn remove_member(&self, room_id: &str, user_id: &str) -> StoreResult<bool> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        let events = self.recorded_events().get();
        self.write(
            vec![room_id.clone()],
            Box::new(move |conn| {
                let (room_id, user_id) = (room_id.clone(), user_id.clone());
                Box::pin(async move {
                    // The event says what role the member had: read it before it goes.
                    let before = match events.contains(EventKind::MemberRemoved) {
                        true => Sql::<B::Db>::fetch_member(&mut *conn, &room_id, &user_id).await?,
                        false => None,
                    };
                    let removed =
                        Sql::<B::Db>::remove_member(&mut *conn, room_id.clone(), user_id.clone())
                            .await?;
                    if let Some(member) = before.filter(|_| removed) {
                        let event = NewEvent::member(
                            EventKind::MemberRemoved,
                            &room_id,
                            &user_id,
                            member.role.as_str(),
                        );
                        write_events::<B>(conn, events, [event]).await?;
                    }
                    Ok(removed)
                })
            }),
        )
        .await
    }

    // ---- messages ----

    async fn queue_append(
        &self,
        message: NewMessage,
        on_commit: CommitHook,
    ) -> StoreResult<PendingAppend> {
        self.enqueue_append(message, on_commit).await
    }

    async fn edit_message(
        &self,
        room_id: &str,
        message_id: &str,
        content: String,
        edited_at: Timestamp,
    ) -> StoreResult<MessageRecord> {
        let (room_id, message_id) = (room_id.to_owned(), message_id.to_owned());
        let events = self.recorded_events().get();
        self.write(
            vec![room_id.clone()],
            Box::new(move |conn| {
                let (room_id, message_id) = (room_id.clone(), message_id.clone());
                let content = content.clone();
                Box::pin(async move {
                    let message = Sql::<B::Db>::edit_message(
                        &mut *conn, room_id, message_id, content, edited_at,
                    )
                    .await?;
                    let event =
                        NewEvent::message(EventKind::MessageUpdated, &message.room_id, &message.id);
                    write_events::<B>(conn, events, [event]).await?;
                    Ok(message)
                })
            }),
        )
        .await
    }

    async fn delete_message(&self, room_id: &str, message_id: &str) -> StoreResult<MessageRecord> {
        let (room_id, message_id) = (room_id.to_owned(), message_id.to_owned());
        let events = self.recorded_events().get();
        self.write(
            vec![room_id.clone()],
            Box::new(move |conn| {
                let (room_id, message_id) = (room_id.clone(), message_id.clone());
                Box::pin(async move {
                    // Deleting a deleted message again is no event.
                    let was_live = match events.contains(EventKind::MessageDeleted) {
                        true => Sql::<B::Db>::fetch_message(&mut *conn, &room_id, &message_id)
                            .await?
                            .is_some_and(|m| !m.deleted),
                        false => false,
                    };
                    let message =
                        Sql::<B::Db>::delete_message(&mut *conn, room_id, message_id).await?;
                    if was_live {
                        let mut event = NewEvent::message(
                            EventKind::MessageDeleted,
                            &message.room_id,
                            &message.id,
                        );
                        event.seq = Some(message.seq);
                        write_events::<B>(conn, events, [event]).await?;
                    }
                    Ok(message)
                })
            }),
        )
        .await
    }

    async fn set_reaction(
        &self,
        change: ReactionChange,
    ) -> StoreResult<BTreeMap<String, Vec<String>>> {
        self.write(
            vec![change.room_id.clone()],
            Box::new(move |conn| Box::pin(Sql::<B::Db>::set_reaction(conn, change.clone()))),
        )
        .await
    }

    async fn get_message(
        &self,
        room_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<MessageRecord>> {
        Sql::<B::Db>::fetch_message(self.readers(), room_id, message_id)
            .await
            .map_err(B::Db::read_error)
    }

    async fn history(
        &self,
        room_id: &str,
        page: HistoryPage,
        limit: u32,
    ) -> StoreResult<(Vec<MessageRecord>, bool)> {
        Sql::<B::Db>::history(self.readers(), room_id, page, limit).await
    }

    // ---- attachments ----

    async fn create_attachment(&self, attachment: AttachmentRecord) -> StoreResult<()> {
        self.write(
            Vec::new(),
            Box::new(move |conn| {
                Box::pin(Sql::<B::Db>::create_attachment(conn, attachment.clone()))
            }),
        )
        .await
    }

    async fn get_attachment(&self, id: &str) -> StoreResult<Option<AttachmentRecord>> {
        Sql::<B::Db>::get_attachment(self.readers(), id).await
    }

    async fn attachment_shared_with(&self, id: &str, user_id: &str) -> StoreResult<bool> {
        Sql::<B::Db>::attachment_shared_with(self.readers(), id, user_id).await
    }

    // ---- read state ----

    async fn mark_read(&self, room_id: &str, user_id: &str, up_to_seq: i64) -> StoreResult<i64> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(
            vec![room_id.clone()],
            Box::new(move |conn| {
                Box::pin(Sql::<B::Db>::mark_read(
                    conn,
                    room_id.clone(),
                    user_id.clone(),
                    up_to_seq,
                ))
            }),
        )
        .await
    }

    /// [`StoreError::NotFound`] if the user is not a member.
    async fn unread_count(&self, room_id: &str, user_id: &str) -> StoreResult<i64> {
        Sql::<B::Db>::unread_count(self.readers(), room_id, user_id).await
    }

    // ---- assistant sessions ----

    async fn open_session(&self, user_id: &str) -> StoreResult<Option<RoomRecord>> {
        Sql::<B::Db>::open_session(self.readers(), user_id).await
    }

    async fn idle_sessions(&self, idle_before: Timestamp, limit: u32) -> StoreResult<Vec<String>> {
        Sql::<B::Db>::idle_sessions(self.readers(), idle_before, limit).await
    }

    async fn expire_session(
        &self,
        id: &str,
        idle_before: Timestamp,
    ) -> StoreResult<Option<RoomRecord>> {
        let id = id.to_owned();
        let events = self.recorded_events().get();
        self.write(
            vec![id.clone()],
            Box::new(move |conn| {
                let id = id.clone();
                Box::pin(async move {
                    let closed = Sql::<B::Db>::expire_session(&mut *conn, id, idle_before).await?;
                    if let Some(room) = &closed {
                        write_events::<B>(conn, events, closed_events(room)).await?;
                    }
                    Ok(closed)
                })
            }),
        )
        .await
    }

    async fn take_lease(&self, name: &str, holder: &str, until: Timestamp) -> StoreResult<bool> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(
            Vec::new(),
            Box::new(move |conn| {
                Box::pin(Sql::<B::Db>::take_lease(
                    conn,
                    name.clone(),
                    holder.clone(),
                    until,
                ))
            }),
        )
        .await
    }

    // ---- health ----

    async fn counts(&self) -> StoreResult<(i64, i64)> {
        Sql::<B::Db>::counts(self.readers()).await
    }

    async fn ping(&self) -> StoreResult<()> {
        if !self.writer_open() {
            return Err(StoreError::Closed);
        }
        Sql::<B::Db>::ping(self.readers()).await
    }

    async fn close(&self) {
        self.shut_down().await;
    }

    fn commit_histograms(&self) -> StoreHistograms {
        self.histograms()
    }

    // ---- session ratings ----

    async fn rate_session(&self, rating: RatingRecord) -> StoreResult<RatingRecord> {
        self.write(
            vec![rating.room_id.clone()],
            Box::new(move |conn| Box::pin(Sql::<B::Db>::rate_session(conn, rating.clone()))),
        )
        .await
    }

    async fn get_rating(&self, room_id: &str) -> StoreResult<Option<RatingRecord>> {
        Sql::<B::Db>::get_rating(self.readers(), room_id).await
    }

    async fn rating_summary(&self) -> StoreResult<(i64, Option<f64>)> {
        Sql::<B::Db>::rating_summary(self.readers()).await
    }

    // ---- assistant ----

    async fn unanswered_questions(
        &self,
        asked_from: Timestamp,
        asked_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<UnansweredQuestion>> {
        Sql::<B::Db>::unanswered_questions(self.readers(), asked_from, asked_before, limit).await
    }

    // ---- webhook outbox ----

    fn record_events(&self, events: EventSet) {
        self.recorded_events().set(events);
    }

    async fn claim_events(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEvent>> {
        self.write(
            Vec::new(),
            Box::new(move |conn| Box::pin(Sql::<B::Db>::claim_events(conn, now, until, limit))),
        )
        .await
    }

    async fn finish_event(&self, id: &str, attempt: Attempt) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(
            Vec::new(),
            Box::new(move |conn| {
                Box::pin(Sql::<B::Db>::finish_event(
                    conn,
                    id.clone(),
                    attempt.clone(),
                ))
            }),
        )
        .await
    }

    async fn outbox_state(&self) -> StoreResult<OutboxState> {
        Sql::<B::Db>::outbox_state(self.readers()).await
    }

    async fn trim_outbox(&self, before: Timestamp, keep: i64) -> StoreResult<Trimmed> {
        self.write(
            Vec::new(),
            Box::new(move |conn| Box::pin(Sql::<B::Db>::trim_outbox(conn, before, keep))),
        )
        .await
    }

    async fn failed_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        Sql::<B::Db>::failed_events(self.readers(), limit).await
    }

    async fn retry_failed_events(
        &self,
        ids: Option<Vec<String>>,
        now: Timestamp,
    ) -> StoreResult<u64> {
        self.write(
            Vec::new(),
            Box::new(move |conn| {
                Box::pin(Sql::<B::Db>::retry_failed_events(conn, ids.clone(), now))
            }),
        )
        .await
    }
}

/// Writes those of `new` that `events` has, in the job's transaction.
async fn write_events<B>(
    conn: &mut Connection<B>,
    events: EventSet,
    new: impl IntoIterator<Item = NewEvent>,
) -> StoreResult<()>
where
    B: StoreBackend,
    <B::Db as Database>::Row: StoreRow,
    for<'c> &'c mut Connection<B>: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db> + Type<B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <B::Db as Database>::Row>,
{
    if events.is_empty() {
        return Ok(());
    }
    Sql::<B::Db>::record_events(conn, &events.keep(new)).await
}

/// What closing `room` reports: `room.closed`, and `session.closed` for an
/// assistant session.
fn closed_events(room: &RoomRecord) -> Vec<NewEvent> {
    let mut events = vec![NewEvent::room(EventKind::RoomClosed, &room.id)];
    // The type of assistant sessions, as the SQL of the session jobs spells it.
    if room.room_type == "assistant" {
        events.push(NewEvent::room(EventKind::SessionClosed, &room.id));
    }
    events
}

/// One upsert per user, as applying them in order would leave it (a later
/// field overrides, an absent one keeps): one statement may not write a
/// row twice (PostgreSQL refuses, SQLite would pick either).
fn merge_repeats(users: Vec<UserUpsert>) -> Vec<UserUpsert> {
    let mut merged: Vec<UserUpsert> = Vec::with_capacity(users.len());
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for user in users {
        match at.get(&user.id).and_then(|&i| merged.get_mut(i)) {
            Some(kept) => {
                kept.username = user.username.or(kept.username.take());
                kept.name = user.name.or(kept.name.take());
                kept.role = user.role.or(kept.role.take());
                kept.disabled = user.disabled.or(kept.disabled);
            }
            None => {
                at.insert(user.id.clone(), merged.len());
                merged.push(user);
            }
        }
    }
    merged
}
