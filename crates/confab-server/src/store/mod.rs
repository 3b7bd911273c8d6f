//! Storage: the room log and everything persisted beside it.
//!
//! One trait, [`Store`], and two backends: [`sqlite`] (embedded, one node)
//! and [`postgres`] (shared by several nodes). Core talks only to the
//! trait, so the backend is picked once at start-up from `database_url`.
//! The trait is implemented once, in `backend.rs`, over what each backend
//! supplies (its pool, its writer, the few jobs it runs its own way); the
//! SQL both run is written once too (`queries.rs`), each backend spelling
//! only what differs.
//!
//! The contract every implementation keeps:
//! - a message's `seq` is assigned in the same transaction as its insert, so a
//!   room's seqs are 1, 2, 3 … with no gap and no repeat, even under concurrent
//!   senders; an append that fails stores nothing and uses no seq;
//! - `append_message` returns only after the transaction committed (protocol.md §5.1),
//!   and appends queued in turn with `queue_append` are stored in that order;
//! - a repeated `(sender, room, client_msg_id)` stores nothing and returns the
//!   original message as [`AppendOutcome::Duplicate`] (protocol.md §5.4);
//! - unread counts come from per-member read markers, never from per-message
//!   per-user rows.
//!
//! - a write that changes what a webhook event reports writes the event
//!   (those of [`Store::record_events`]) to the outbox in its own
//!   transaction (protocol.md §8.1).
//!
//! Methods are listed in this order: users, rooms, members, messages,
//! attachments, read state, health, assistant sessions, session ratings,
//! assistant, webhook outbox.

mod append_plan;
mod backend;
mod outbox;
pub mod postgres;
mod queries;
mod roles;
mod rows;
pub mod sqlite;
mod statements;
mod writer;

#[cfg(test)]
mod conformance;

pub use outbox::{Attempt, EventKind, EventSet, OutboxEvent, OutboxState, Trimmed};
pub use roles::{GlobalRole, ROLE_NAME_RULE, RoleName, RoomRole, is_role_name};

use async_trait::async_trait;
use confab_protocol::{Location, MessageType, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a storage call failed. Core maps these to contract error codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The room, user or message does not exist.
    #[error("not found")]
    NotFound,
    /// A row with this id already exists (e.g. `POST /rooms` with a taken `id`).
    #[error("already exists")]
    AlreadyExists,
    /// The database cannot be reached: no connection within the pool's
    /// acquire timeout, connections refused or lost. Nothing was stored;
    /// trying again later may work (REST answers 503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The backend failed (I/O, constraint we did not expect, lost connection).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The writer task is gone (the store is shutting down).
    #[error("store closed")]
    Closed,
}

impl StoreError {
    /// This error again, for each caller of a batch that failed as a whole
    /// (sqlx's errors are not `Clone`): the kind is kept, a database error's
    /// detail becomes its message.
    pub(crate) fn for_each_caller(&self) -> StoreError {
        match self {
            StoreError::NotFound => StoreError::NotFound,
            StoreError::AlreadyExists => StoreError::AlreadyExists,
            StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
            StoreError::Closed => StoreError::Closed,
            StoreError::Database(sqlx::Error::Io(io)) => StoreError::Database(sqlx::Error::Io(
                std::io::Error::new(io.kind(), io.to_string()),
            )),
            StoreError::Database(other) => {
                StoreError::Database(sqlx::Error::Protocol(other.to_string()))
            }
            StoreError::Migrate(e) => StoreError::Database(sqlx::Error::Protocol(e.to_string())),
        }
    }
}

/// Result of every storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A shared handle to whichever backend is configured.
pub type DynStore = Arc<dyn Store>;

/// A stored user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// The JWT `sub`.
    pub id: String,
    /// The handle (defaults to the id).
    pub username: String,
    /// The display name.
    pub name: Option<String>,
    /// Global role.
    pub role: GlobalRole,
    /// Disabled users are refused (close 4002).
    pub disabled: bool,
    /// First seen.
    pub created_at: Timestamp,
}

/// What to create or change about a user. `None` fields are left as they are
/// (or take their default when the user is new).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserUpsert {
    /// The user id.
    pub id: String,
    /// New handle.
    pub username: Option<String>,
    /// New display name.
    pub name: Option<String>,
    /// New global role.
    pub role: Option<GlobalRole>,
    /// New disabled flag.
    pub disabled: Option<bool>,
}

impl UserUpsert {
    /// Whether applying this to `existing` would change nothing, so the
    /// writer can be left alone (users are upserted on every connect).
    pub fn changes_nothing(&self, existing: &UserRecord) -> bool {
        self.username
            .as_ref()
            .is_none_or(|v| *v == existing.username)
            && self
                .name
                .as_ref()
                .is_none_or(|v| Some(v) == existing.name.as_ref())
            && self.role.as_ref().is_none_or(|v| *v == existing.role)
            && self.disabled.is_none_or(|v| v == existing.disabled)
    }
}

/// A stored room.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomRecord {
    /// The room id.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// `direct`, `group`, `assistant`, or an app word.
    pub room_type: String,
    /// Free-form JSON object.
    pub metadata: serde_json::Value,
    /// Closed rooms accept no messages.
    pub closed: bool,
    /// The newest message's seq (0 when empty).
    pub last_seq: i64,
    /// Time of the newest message, or creation.
    pub last_activity: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// For `direct` rooms: the two member ids sorted and joined by `\n`, unique
    /// among direct rooms so that creating one twice yields the same room.
    pub direct_key: Option<String>,
}

/// A room to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRoom {
    /// The room id (generated by core when the caller gave none).
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Room type.
    pub room_type: String,
    /// Free-form JSON object.
    pub metadata: serde_json::Value,
    /// Set for `direct` rooms (see [`RoomRecord::direct_key`]).
    pub direct_key: Option<String>,
    /// Initial members and their roles. Every user must already exist.
    pub members: Vec<(String, RoomRole)>,
}

/// What happened on `create_room`.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// A new room was stored.
    Created(RoomRecord),
    /// A `direct` room with the same `direct_key` already existed; nothing was stored.
    ExistingDirect(RoomRecord),
}

/// A user's membership in a room.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRecord {
    /// The room.
    pub room_id: String,
    /// The member.
    pub user_id: String,
    /// Room role.
    pub role: RoomRole,
    /// Every message with `seq <=` this is read by the member.
    pub last_read_seq: i64,
    /// When they joined.
    pub joined_at: Timestamp,
}

/// A member with their user's display fields, for member lists and participants.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberWithUser {
    /// The membership.
    pub member: MemberRecord,
    /// The user's handle.
    pub username: String,
    /// The user's display name.
    pub name: Option<String>,
    /// The user's global role.
    pub user_role: GlobalRole,
}

/// A stored message (the sender's display fields joined in).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    /// Globally unique id (UUIDv7 text).
    pub id: String,
    /// The room.
    pub room_id: String,
    /// Position in the room.
    pub seq: i64,
    /// Sender's user id.
    pub sender_id: String,
    /// Sender's handle at read time.
    pub sender_username: String,
    /// Sender's display name at read time.
    pub sender_name: Option<String>,
    /// Text (empty once deleted).
    pub content: String,
    /// Kind.
    pub message_type: MessageType,
    /// Id of the message this answers.
    pub reply_to: Option<String>,
    /// Free-form JSON object.
    pub metadata: serde_json::Value,
    /// The upload of an image/file message.
    pub attachment: Option<AttachmentRecord>,
    /// Point for location messages.
    pub location: Option<Location>,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// When stored.
    pub created_at: Timestamp,
    /// When last edited.
    pub edited_at: Option<Timestamp>,
    /// Deleted messages keep their seq.
    pub deleted: bool,
    /// Emoji → ids of the users who reacted, in reaction order (empty where a
    /// query does not read reactions, e.g. a room list's last message).
    pub reactions: BTreeMap<String, Vec<String>>,
}

/// An uploaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentRecord {
    /// The upload id.
    pub id: String,
    /// Who uploaded it.
    pub uploader_id: String,
    /// Hex SHA-256 of the bytes: their file name under `DATA_DIR/attachments/`.
    pub sha256: String,
    /// The MIME type (checked against the bytes for images).
    pub content_type: String,
    /// Size in bytes.
    pub size: i64,
    /// The original file name.
    pub name: String,
    /// When it was uploaded.
    pub created_at: Timestamp,
}

/// A reaction to add or remove.
#[derive(Debug, Clone, PartialEq)]
pub struct ReactionChange {
    /// The room of the message.
    pub room_id: String,
    /// The message; must exist in the room and not be deleted.
    pub message_id: String,
    /// Who reacts.
    pub user_id: String,
    /// The emoji (validated by core).
    pub emoji: String,
    /// Add (`true`, idempotent) or remove (`false`, idempotent).
    pub present: bool,
    /// When, for the order of users under one emoji.
    pub at: Timestamp,
}

/// A message to append. Core has validated it (length, type, permissions).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Generated by core (UUIDv7), so the id is known before the commit.
    pub id: String,
    /// The room; must exist and be open.
    pub room_id: String,
    /// Sender's user id; must exist.
    pub sender_id: String,
    /// Text.
    pub content: String,
    /// Kind.
    pub message_type: MessageType,
    /// Id of a message in the same room.
    pub reply_to: Option<String>,
    /// Free-form JSON object.
    pub metadata: serde_json::Value,
    /// The upload (core checked it exists and may be used by the sender).
    pub attachment: Option<AttachmentRecord>,
    /// Point.
    pub location: Option<Location>,
    /// Idempotency key, unique per (sender, room).
    pub client_msg_id: Option<String>,
    /// Storage time, chosen by core.
    pub created_at: Timestamp,
    /// Members with no open connection on any node as the message is sent:
    /// each gets a `message.missed` event when the store writes those
    /// (protocol.md §8.1). Core fills it only then.
    pub missed_by: Vec<String>,
}

/// What happened on `append_message`.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// Stored with a fresh seq.
    Stored(MessageRecord),
    /// The `client_msg_id` was already stored: this is the original message.
    Duplicate(MessageRecord),
}

/// Work that runs right after an append committed (see [`Store::append_message`]).
pub type CommitHook = Box<dyn FnOnce(&AppendOutcome) + Send>;

/// An append on the writer's queue (see [`Store::queue_append`]): resolves
/// with the outcome once it is committed, or with the error that stopped it.
pub type PendingAppend = futures_util::future::BoxFuture<'static, StoreResult<AppendOutcome>>;

/// Which page of history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPage {
    /// The newest `limit` messages.
    Latest,
    /// The newest `limit` messages with `seq < n`.
    Before(i64),
    /// The oldest `limit` messages with `seq > n`.
    After(i64),
}

/// One page of a user's room list.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomListEntry {
    /// The room.
    pub room: RoomRecord,
    /// The caller's membership.
    pub member: MemberRecord,
    /// The message with `seq == room.last_seq`, if any.
    pub last_message: Option<MessageRecord>,
    /// The caller's unread count.
    pub unread_count: i64,
}

/// The satisfaction rating of one assistant session (a room of type
/// `assistant`): one per room, a later rating replacing it.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingRecord {
    /// The rated room.
    pub room_id: String,
    /// Who rated it (must exist: a member, or the server key's user).
    pub user_id: String,
    /// 1 to 5 (core checks the range; the schema refuses anything else).
    pub rating: i64,
    /// What the rater wrote, if anything.
    pub feedback: Option<String>,
    /// When, chosen by core.
    pub rated_at: Timestamp,
}

/// A user's text message that is still the newest message of its open
/// `assistant` room: a question the bot has not answered (nothing came after
/// it), found by [`Store::unanswered_questions`].
#[derive(Debug, Clone, PartialEq)]
pub struct UnansweredQuestion {
    /// The assistant room.
    pub room_id: String,
    /// The question's message id.
    pub message_id: String,
    /// The question's seq: the room's `last_seq` when it was read.
    pub seq: i64,
    /// When the question was stored.
    pub created_at: Timestamp,
}

/// The storage interface core uses. See the module docs for the guarantees.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- users ----

    /// Creates the user if new, else applies the `Some` fields. Returns the
    /// row. Looks first and writes only when something changes.
    async fn upsert_user(&self, user: UserUpsert) -> StoreResult<UserRecord> {
        if let Some(existing) = self.get_user(&user.id).await?
            && user.changes_nothing(&existing)
        {
            return Ok(existing);
        }
        self.put_user(user).await
    }

    /// [`Store::upsert_user`]'s write alone, for a caller that has just read
    /// the user itself.
    async fn put_user(&self, user: UserUpsert) -> StoreResult<UserRecord>;

    /// [`Store::put_user`] for many users in one statement of one write
    /// job: the sign-ins of concurrent handshakes (`core::sign_ins`). A user
    /// named twice gets both upserts in order. Answers one stored row per
    /// user, in no particular order.
    async fn put_users(&self, users: Vec<UserUpsert>) -> StoreResult<Vec<UserRecord>>;

    /// The user, if stored.
    async fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>>;

    /// The user and the ids of its rooms (ascending), in one read: what a
    /// connecting user needs (its record, and where to say it is online).
    async fn user_with_rooms(&self, id: &str) -> StoreResult<Option<(UserRecord, Vec<String>)>>;

    /// [`Store::user_with_rooms`] for many users in one read: those stored,
    /// in no particular order.
    async fn users_with_rooms(&self, ids: &[String])
    -> StoreResult<Vec<(UserRecord, Vec<String>)>>;

    // ---- rooms ----

    /// Stores a room and its initial members in one transaction. A taken id is
    /// [`StoreError::AlreadyExists`]; a `direct_key` already used returns the
    /// existing room as [`CreateOutcome::ExistingDirect`] (race-free).
    async fn create_room(&self, room: NewRoom) -> StoreResult<CreateOutcome>;

    /// The room, if stored.
    async fn get_room(&self, id: &str) -> StoreResult<Option<RoomRecord>>;

    /// Renames and/or replaces the metadata. [`StoreError::NotFound`] if absent.
    async fn update_room(
        &self,
        id: &str,
        name: Option<String>,
        metadata: Option<serde_json::Value>,
    ) -> StoreResult<RoomRecord>;

    /// Marks the room closed (idempotent). [`StoreError::NotFound`] if absent.
    async fn close_room(&self, id: &str) -> StoreResult<RoomRecord>;

    /// The caller's rooms, newest `last_activity` first (ties by id), at most
    /// `limit`, starting after `after` = `(last_activity, room_id)` of the
    /// previous page's last entry.
    async fn list_user_rooms(
        &self,
        user_id: &str,
        limit: u32,
        after: Option<(Timestamp, String)>,
    ) -> StoreResult<Vec<RoomListEntry>>;

    // ---- members ----

    /// The membership, if the user is a member.
    async fn get_member(&self, room_id: &str, user_id: &str) -> StoreResult<Option<MemberRecord>>;

    /// Ids of every room the user is a member of (for presence fan-out).
    async fn user_room_ids(&self, user_id: &str) -> StoreResult<Vec<String>>;

    /// All members with their display fields, by join time.
    async fn list_members(&self, room_id: &str) -> StoreResult<Vec<MemberWithUser>>;

    /// Adds the member, or changes the role of an existing one. The user must
    /// exist. A new member starts with everything before now read
    /// (`last_read_seq = room.last_seq`).
    async fn add_member(
        &self,
        room_id: &str,
        user_id: &str,
        role: RoomRole,
    ) -> StoreResult<MemberRecord>;

    /// Removes the member. Returns whether they were one.
    async fn remove_member(&self, room_id: &str, user_id: &str) -> StoreResult<bool>;

    // ---- messages ----

    /// Appends a message with the room's next seq, or returns the original on a
    /// repeated `client_msg_id`. Returns after commit.
    ///
    /// `on_commit` runs once the outcome is durable, in commit order across
    /// all appends to the same room, and even if the caller stopped waiting:
    /// core acks and fans out there, so subscribers receive a room's messages
    /// in seq order. It must be quick and must not block (it runs on the
    /// writer, or on the thread that answers for it). It does not run when the append fails.
    async fn append_message(
        &self,
        message: NewMessage,
        on_commit: CommitHook,
    ) -> StoreResult<AppendOutcome> {
        self.queue_append(message, on_commit).await?.await
    }

    /// Like [`Store::append_message`], but returns as soon as the append is
    /// queued on the writer, with a future of its committed outcome.
    ///
    /// Appends queued one after another (each `queue_append` awaited before
    /// the next starts) are stored in that order, so a connection can keep
    /// many sends in flight and still see its messages in the order it sent
    /// them, while the writer commits them together.
    async fn queue_append(
        &self,
        message: NewMessage,
        on_commit: CommitHook,
    ) -> StoreResult<PendingAppend>;

    /// Replaces the content and sets `edited_at`. [`StoreError::NotFound`] if
    /// the message is not in the room or was deleted.
    async fn edit_message(
        &self,
        room_id: &str,
        message_id: &str,
        content: String,
        edited_at: Timestamp,
    ) -> StoreResult<MessageRecord>;

    /// Marks the message deleted: content emptied, reactions dropped, seq kept.
    /// Idempotent. [`StoreError::NotFound`] if the message is not in the room.
    async fn delete_message(&self, room_id: &str, message_id: &str) -> StoreResult<MessageRecord>;

    /// Adds or removes one user's reaction; returns the message's whole
    /// reaction map after the change. [`StoreError::NotFound`] if the message
    /// is not in the room or was deleted.
    async fn set_reaction(
        &self,
        change: ReactionChange,
    ) -> StoreResult<BTreeMap<String, Vec<String>>>;

    /// The message, if it is in this room.
    async fn get_message(
        &self,
        room_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<MessageRecord>>;

    /// A page of messages in ascending seq, and whether more exist beyond it in
    /// the direction of the page (older for `Latest`/`Before`, newer for `After`).
    async fn history(
        &self,
        room_id: &str,
        page: HistoryPage,
        limit: u32,
    ) -> StoreResult<(Vec<MessageRecord>, bool)>;

    // ---- attachments ----

    /// Stores an upload's record (the bytes are already on disk).
    async fn create_attachment(&self, attachment: AttachmentRecord) -> StoreResult<()>;

    /// The upload, if stored.
    async fn get_attachment(&self, id: &str) -> StoreResult<Option<AttachmentRecord>>;

    /// Whether `user_id` is a member of a room with a message referencing the upload.
    async fn attachment_shared_with(&self, id: &str, user_id: &str) -> StoreResult<bool>;

    // ---- read state ----

    /// Moves the member's read marker forward to `min(up_to_seq, last_seq)`
    /// (never backward). Returns the marker after the call.
    /// [`StoreError::NotFound`] if not a member.
    async fn mark_read(&self, room_id: &str, user_id: &str, up_to_seq: i64) -> StoreResult<i64>;

    /// Messages with seq above the member's marker, not sent by them, not deleted.
    async fn unread_count(&self, room_id: &str, user_id: &str) -> StoreResult<i64>;

    // ---- assistant sessions ----

    /// The user's newest open session: the open `assistant` room they own
    /// with the latest activity (what `/ws/assistant/` resumes).
    async fn open_session(&self, user_id: &str) -> StoreResult<Option<RoomRecord>>;

    /// Ids of open `assistant` rooms with no message since before
    /// `idle_before`, the longest idle first, at most `limit`.
    async fn idle_sessions(&self, idle_before: Timestamp, limit: u32) -> StoreResult<Vec<String>>;

    /// Closes the session if it is still open and still idle since before
    /// `idle_before` (a message may have come since it was listed).
    /// Returns the room when this call closed it, so that of several
    /// nodes sweeping at once exactly one announces it.
    async fn expire_session(
        &self,
        id: &str,
        idle_before: Timestamp,
    ) -> StoreResult<Option<RoomRecord>>;

    /// Takes the lease `name` for `holder` until `until`, or renews it,
    /// unless another holder's lease has not run out yet. Returns whether
    /// `holder` has it: how one node at a time does a cluster-wide chore.
    async fn take_lease(&self, name: &str, holder: &str, until: Timestamp) -> StoreResult<bool>;

    // ---- health ----

    /// Rooms stored and messages stored (the sum of every room's `last_seq`,
    /// deleted messages included), for `/api/v1/stats`.
    async fn counts(&self) -> StoreResult<(i64, i64)>;

    /// Cheap round trip, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Finishes pending writes and closes the backend (shutdown).
    async fn close(&self);

    /// The writer's batch latency and size histograms, which the server
    /// registers for `/metrics` (the store observes them on every commit).
    fn commit_histograms(&self) -> crate::metrics::StoreHistograms;

    // ---- session ratings ----

    /// Stores the room's rating, replacing an earlier one whoever gave it
    /// (the latest wins), and returns it as stored. The room and the user
    /// must exist ([`StoreError::NotFound`] otherwise); the room's type is
    /// core's to check.
    async fn rate_session(&self, rating: RatingRecord) -> StoreResult<RatingRecord>;

    /// The room's rating, if it was rated.
    async fn get_rating(&self, room_id: &str) -> StoreResult<Option<RatingRecord>>;

    /// Rated sessions and their mean rating (`None` when there is none),
    /// for `/api/v1/stats`.
    async fn rating_summary(&self) -> StoreResult<(i64, Option<f64>)>;

    // ---- assistant ----

    /// Questions to the assistant bot that nobody answered: in open rooms of
    /// type `assistant`, the newest message (`seq = last_seq`) when it is a
    /// live `text` message from someone other than the bot
    /// ([`crate::identity::ASSISTANT_USER`]) and the system user
    /// ([`crate::identity::SYSTEM_USER`]), stored at or after `asked_from`
    /// and before `asked_before`. Oldest first, at most `limit`. What a node
    /// that stopped mid-answer left behind, for another node (or itself,
    /// restarted) to answer.
    async fn unanswered_questions(
        &self,
        asked_from: Timestamp,
        asked_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<UnansweredQuestion>>;

    // ---- webhook outbox ----

    /// From now on, write these events with the changes they report (none
    /// by default): set once at start-up from `webhook.events`.
    fn record_events(&self, events: EventSet);

    /// Claims up to `limit` events due at `now` for one attempt each,
    /// oldest first: each is not due again before `until` (the attempt's
    /// deadline, after which a node that died mid-attempt lets it go), and
    /// no other claim, on any node, gets it meanwhile.
    async fn claim_events(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEvent>>;

    /// Records how an attempt at the event `id` ended.
    async fn finish_event(&self, id: &str, attempt: Attempt) -> StoreResult<()>;

    /// How many events wait, since when, and when the next falls due.
    async fn outbox_state(&self) -> StoreResult<OutboxState>;

    /// Deletes the events stored before `before`, then the oldest beyond
    /// `keep` (failed or not): what keeps the outbox bounded.
    async fn trim_outbox(&self, before: Timestamp, keep: i64) -> StoreResult<Trimmed>;

    /// The newest `limit` events that ran out of attempts.
    async fn failed_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>>;

    /// Puts failed events (those of `ids`, or all) back in line with fresh
    /// attempts, due at `now`; returns how many.
    async fn retry_failed_events(
        &self,
        ids: Option<Vec<String>>,
        now: Timestamp,
    ) -> StoreResult<u64>;
}
