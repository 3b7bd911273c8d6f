//! The PostgreSQL backend: one pool, one writer task per node, reads through
//! the pool. Several confab nodes may share one database.
//!
//! # How writes work
//! As in the SQLite backend, every write is a job queued to one writer task
//! per node. The writer takes the first job and whatever else is already
//! queued (up to 256) and runs them in one transaction on a pooled
//! connection, each job inside its own `SAVEPOINT` (one job's failure — a
//! missing room, a constraint — is rolled back alone), commits once, and only
//! after the commit answers each job and runs its commit hook, in queue
//! order. So a burst costs one commit (group commit), an ack never precedes
//! durability, and commit hooks — where core acks and fans out — run in
//! commit order per room on this node.
//!
//! # Seqs across nodes
//! The seq is assigned in the job's savepoint with
//! `UPDATE rooms SET last_seq = last_seq + 1 … RETURNING last_seq`: the row
//! lock serialises writers of a room on every node until their commit, and a
//! rollback gives the seq back, so a room's seqs stay 1, 2, 3 … with no gap
//! and no repeat however many nodes write. `client_msg_id` dedupe looks
//! before inserting under that same lock; `direct_key` dedupe relies on the
//! unique index with `ON CONFLICT DO NOTHING` and a second look.
//!
//! # Lock ordering and retries
//! A batch holds its row locks until it commits, and two nodes' batches may
//! name the same rooms in a different order. So each batch first locks every
//! room its jobs write, in id order (`SELECT … ORDER BY id FOR NO KEY
//! UPDATE`), before any job runs: batches over common rooms queue behind one
//! another instead of deadlocking, and every lock a job takes later on a
//! room's rows (seq bump, members, messages, reactions) is behind the room's.
//! What the ordering cannot cover (users upserted in opposite orders, two
//! direct rooms created crosswise) can still deadlock; PostgreSQL then aborts
//! one side (40P01). A deadlock, a serialization failure (40001) or a
//! connection lost before `COMMIT` makes the writer roll the batch back and
//! run it again from scratch (jobs are re-runnable), at most 5 times with a
//! growing, jittered pause. Nothing is answered and no hook runs before the
//! final commit, so a retry is invisible to callers. A connection lost
//! *during* `COMMIT` is not retried: whether it committed is unknown, so the
//! jobs fail (`internal`) rather than risk storing twice; a client's
//! `client_msg_id` retry then finds the original if it did commit.
//!
//! # How reads work
//! Reads run on the pool in autocommit (READ COMMITTED), so they see what
//! committed before they started, from any node. The pool is bounded
//! (`[database] max_connections`); a caller waits at most `acquire_timeout_s`
//! for a connection and then fails (`internal`, `/readyz` 503).

mod jobs;
mod rows;
mod writer;

pub use writer::WriteStats;

use super::{
    AttachmentRecord, CommitHook, CreateOutcome, HistoryPage, MemberRecord, MemberWithUser,
    MessageRecord, NewMessage, NewRoom, PendingAppend, ReactionChange, RoomListEntry, RoomRecord,
    RoomRole, Store, StoreError, StoreResult, UserRecord, UserUpsert,
};
use async_trait::async_trait;
use confab_protocol::Timestamp;
use rows::{
    HISTORY_AFTER, HISTORY_BEFORE, HISTORY_LATEST, LIST_USER_ROOMS, UNREAD_COUNT, USER_COLUMNS,
    attachment_record, fetch_member, fetch_message, fetch_room, fetch_user, member_from_row,
    message_from_row, read_error, room_list_entry_from_row, user_from_row,
};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;
use writer::{Work, Writer};

/// The schema, embedded in the binary so that it needs no files beside it.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Pool settings (`[database]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgPoolSettings {
    /// Most connections this node opens (the writer uses one at a time).
    pub max_connections: u32,
    /// How long a caller waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

impl Default for PgPoolSettings {
    fn default() -> Self {
        PgPoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The PostgreSQL implementation of [`Store`].
///
/// Open it with [`PgStore::open`], apply the schema with
/// [`PgStore::migrate`], share it as a [`super::DynStore`], and call
/// [`Store::close`] on shutdown so that queued writes are committed.
pub struct PgStore {
    /// The node's writer task.
    writer: Writer,
    /// Every connection, the writer's included.
    pool: PgPool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database named by a `postgres://` or `postgresql://`
    /// URL (opening one connection, so a wrong URL fails here) and starts the
    /// writer task. Must be called inside a tokio runtime.
    pub async fn open(database_url: &str, settings: PgPoolSettings) -> StoreResult<PgStore> {
        if !is_postgres_url(database_url) {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                format!("not a PostgreSQL URL (expected postgres://…): {database_url}").into(),
            )));
        }
        let mut options = PgConnectOptions::from_str(database_url)?;
        // Named in pg_stat_activity, unless the URL names it otherwise.
        if options.get_application_name().is_none() {
            options = options.application_name("confab");
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(2))
            .min_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(PgStore {
            writer: Writer::start(pool.clone()),
            pool,
        })
    }

    /// Applies the embedded migrations that are not applied yet (idempotent;
    /// sqlx holds an advisory lock, so nodes starting together migrate once).
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// What the writer has done so far, to see group commit and retries at
    /// work (`jobs / commits` is the mean batch size).
    pub fn write_stats(&self) -> WriteStats {
        self.writer.stats()
    }

    /// Queues a write of `rooms`' rows and waits for its committed answer.
    async fn write<T: Send + 'static>(&self, rooms: Vec<String>, work: Work<T>) -> StoreResult<T> {
        self.writer.submit(rooms, work, None).await
    }
}

/// Whether `url` names a PostgreSQL database (what selects this backend).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[async_trait]
impl Store for PgStore {
    // ---- users ----

    async fn put_user(&self, user: UserUpsert) -> StoreResult<UserRecord> {
        self.write(
            Vec::new(),
            Box::new(move |conn| Box::pin(jobs::upsert_user(conn, user.clone()))),
        )
        .await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        fetch_user(&self.pool, id).await.map_err(read_error)
    }

    async fn user_with_rooms(&self, id: &str) -> StoreResult<Option<(UserRecord, Vec<String>)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, \
                 ARRAY(SELECT room_id FROM members WHERE user_id = $1 ORDER BY room_id) AS rooms \
             FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(read_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let rooms: Vec<String> = row.try_get("rooms")?;
        Ok(Some((user_from_row(&row)?, rooms)))
    }

    // ---- rooms ----

    async fn create_room(&self, room: NewRoom) -> StoreResult<CreateOutcome> {
        self.write(
            Vec::new(),
            Box::new(move |conn| Box::pin(jobs::create_room(conn, room.clone()))),
        )
        .await
    }

    async fn get_room(&self, id: &str) -> StoreResult<Option<RoomRecord>> {
        fetch_room(&self.pool, id).await.map_err(read_error)
    }

    async fn update_room(
        &self,
        id: &str,
        name: Option<String>,
        metadata: Option<serde_json::Value>,
    ) -> StoreResult<RoomRecord> {
        let id = id.to_owned();
        self.write(
            vec![id.clone()],
            Box::new(move |conn| {
                Box::pin(jobs::update_room(
                    conn,
                    id.clone(),
                    name.clone(),
                    metadata.clone(),
                ))
            }),
        )
        .await
    }

    async fn close_room(&self, id: &str) -> StoreResult<RoomRecord> {
        let id = id.to_owned();
        self.write(
            vec![id.clone()],
            Box::new(move |conn| Box::pin(jobs::close_room(conn, id.clone()))),
        )
        .await
    }

    async fn list_user_rooms(
        &self,
        user_id: &str,
        limit: u32,
        after: Option<(Timestamp, String)>,
    ) -> StoreResult<Vec<RoomListEntry>> {
        let (after_activity, after_id) = match after {
            Some((activity, id)) => (Some(activity.millis()), Some(id)),
            None => (None, None),
        };
        let rows = sqlx::query(LIST_USER_ROOMS)
            .bind(user_id)
            .bind(after_activity)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(read_error)?;
        Ok(rows
            .iter()
            .map(room_list_entry_from_row)
            .collect::<sqlx::Result<_>>()?)
    }

    // ---- members ----

    async fn get_member(&self, room_id: &str, user_id: &str) -> StoreResult<Option<MemberRecord>> {
        fetch_member(&self.pool, room_id, user_id)
            .await
            .map_err(read_error)
    }

    async fn user_room_ids(&self, user_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT room_id FROM members WHERE user_id = $1 ORDER BY room_id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(read_error)
    }

    async fn list_members(&self, room_id: &str) -> StoreResult<Vec<MemberWithUser>> {
        let rows = sqlx::query(
            "SELECT mb.room_id, mb.user_id, mb.role, mb.last_read_seq, mb.joined_at, \
                    COALESCE(u.username, mb.user_id) AS username, u.name \
             FROM members mb LEFT JOIN users u ON u.id = mb.user_id \
             WHERE mb.room_id = $1 ORDER BY mb.joined_at, mb.user_id",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await
        .map_err(read_error)?;
        let members = rows
            .iter()
            .map(|row| {
                Ok(MemberWithUser {
                    member: member_from_row(row)?,
                    username: row.try_get("username")?,
                    name: row.try_get("name")?,
                })
            })
            .collect::<sqlx::Result<_>>()?;
        Ok(members)
    }

    async fn add_member(
        &self,
        room_id: &str,
        user_id: &str,
        role: RoomRole,
    ) -> StoreResult<MemberRecord> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(
            vec![room_id.clone()],
            Box::new(move |conn| {
                Box::pin(jobs::add_member(
                    conn,
                    room_id.clone(),
                    user_id.clone(),
                    role,
                ))
            }),
        )
        .await
    }

    async fn remove_member(&self, room_id: &str, user_id: &str) -> StoreResult<bool> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(
            vec![room_id.clone()],
            Box::new(move |conn| {
                Box::pin(jobs::remove_member(conn, room_id.clone(), user_id.clone()))
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
        let answer = self
            .writer
            .queue(
                vec![message.room_id.clone()],
                Box::new(move |conn| Box::pin(jobs::append_message(conn, message.clone()))),
                Some(on_commit),
            )
            .await?;
        Ok(Box::pin(answer))
    }

    async fn edit_message(
        &self,
        room_id: &str,
        message_id: &str,
        content: String,
        edited_at: Timestamp,
    ) -> StoreResult<MessageRecord> {
        let (room_id, message_id) = (room_id.to_owned(), message_id.to_owned());
        self.write(
            vec![room_id.clone()],
            Box::new(move |conn| {
                Box::pin(jobs::edit_message(
                    conn,
                    room_id.clone(),
                    message_id.clone(),
                    content.clone(),
                    edited_at,
                ))
            }),
        )
        .await
    }

    async fn delete_message(&self, room_id: &str, message_id: &str) -> StoreResult<MessageRecord> {
        let (room_id, message_id) = (room_id.to_owned(), message_id.to_owned());
        self.write(
            vec![room_id.clone()],
            Box::new(move |conn| {
                Box::pin(jobs::delete_message(
                    conn,
                    room_id.clone(),
                    message_id.clone(),
                ))
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
            Box::new(move |conn| Box::pin(jobs::set_reaction(conn, change.clone()))),
        )
        .await
    }

    async fn get_message(
        &self,
        room_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<MessageRecord>> {
        fetch_message(&self.pool, room_id, message_id)
            .await
            .map_err(read_error)
    }

    async fn history(
        &self,
        room_id: &str,
        page: HistoryPage,
        limit: u32,
    ) -> StoreResult<(Vec<MessageRecord>, bool)> {
        let (sql, bound, newest_first) = match page {
            HistoryPage::Latest => (HISTORY_LATEST, None, true),
            HistoryPage::Before(seq) => (HISTORY_BEFORE, Some(seq), true),
            HistoryPage::After(seq) => (HISTORY_AFTER, Some(seq), false),
        };
        // One more than asked tells whether the page has a next one.
        let mut query = sqlx::query(sql).bind(room_id).bind(i64::from(limit) + 1);
        if let Some(seq) = bound {
            query = query.bind(seq);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(read_error)?;
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

    // ---- attachments ----

    async fn create_attachment(&self, attachment: AttachmentRecord) -> StoreResult<()> {
        self.write(
            Vec::new(),
            Box::new(move |conn| Box::pin(jobs::create_attachment(conn, attachment.clone()))),
        )
        .await
    }

    async fn get_attachment(&self, id: &str) -> StoreResult<Option<AttachmentRecord>> {
        sqlx::query("SELECT * FROM attachments WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(read_error)?
            .as_ref()
            .map(attachment_record)
            .transpose()
            .map_err(read_error)
    }

    async fn attachment_shared_with(&self, id: &str, user_id: &str) -> StoreResult<bool> {
        let shared: Option<bool> = sqlx::query_scalar(
            "SELECT TRUE FROM messages m JOIN members mb ON mb.room_id = m.room_id AND mb.user_id = $2 \
             WHERE m.attachment_id = $1 LIMIT 1",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(read_error)?;
        Ok(shared.is_some())
    }

    // ---- read state ----

    async fn mark_read(&self, room_id: &str, user_id: &str, up_to_seq: i64) -> StoreResult<i64> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(
            vec![room_id.clone()],
            Box::new(move |conn| {
                Box::pin(jobs::mark_read(
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
        sqlx::query_scalar(UNREAD_COUNT)
            .bind(room_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(read_error)?
            .ok_or(StoreError::NotFound)
    }

    // ---- health ----

    async fn counts(&self) -> StoreResult<(i64, i64)> {
        let (rooms, messages): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(last_seq), 0)::BIGINT FROM rooms")
                .fetch_one(&self.pool)
                .await
                .map_err(read_error)?;
        Ok((rooms, messages))
    }

    async fn ping(&self) -> StoreResult<()> {
        if !self.writer.is_open() {
            return Err(StoreError::Closed);
        }
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(read_error)?;
        Ok(())
    }

    fn commit_histograms(&self) -> crate::metrics::StoreHistograms {
        self.writer.histograms()
    }

    async fn close(&self) {
        // New writes are refused from here; queued ones still run.
        self.writer.close().await;
        self.pool.close().await;
    }
}

#[cfg(test)]
#[path = "../../../tests/common/postgres.rs"]
mod test_database;

#[cfg(test)]
mod tests {
    use super::test_database::TestDatabase;
    use super::*;
    use crate::store::AppendOutcome;
    use crate::store::DynStore;
    use crate::store::conformance::{
        Backend, conformance_tests, last_seq, msg, no_hook, room, send, stored_seqs, user,
    };
    use sqlx::{Connection, Executor, PgConnection};
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A fresh database, dropped at the end of the test.
    struct PgDatabase {
        db: TestDatabase,
    }

    #[async_trait]
    impl Backend for PgDatabase {
        async fn fresh() -> (Self, DynStore) {
            let backend = PgDatabase {
                db: TestDatabase::create().await,
            };
            let store = backend.open_again().await;
            (backend, store)
        }

        async fn open_again(&self) -> DynStore {
            Arc::new(open(&self.db).await)
        }
    }

    conformance_tests!(PgDatabase);

    /// A migrated store on `db`: one node.
    async fn open(db: &TestDatabase) -> PgStore {
        let store = PgStore::open(db.url(), PgPoolSettings::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// A plain connection to `db`, as another program would have.
    async fn outsider(db: &TestDatabase) -> PgConnection {
        PgConnection::connect(db.url()).await.unwrap()
    }

    /// Waits until `n` backends of `db` wait for a lock.
    async fn lock_waiters(db: &TestDatabase, n: i64) {
        let mut conn = outsider(db).await;
        for _ in 0..1000 {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            if waiting >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{n} lock waiters never appeared");
    }

    /// Waits until `n` jobs sit in the writer's queue.
    async fn queued(store: &PgStore, n: usize) {
        for _ in 0..1000 {
            if store.writer.queued() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("jobs never queued");
    }

    #[tokio::test]
    async fn migrations_are_idempotent_and_urls_are_checked() {
        let db = TestDatabase::create().await;
        let store = open(&db).await;
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(applied, MIGRATOR.iter().count() as i64);
        store.close().await;

        // Both schemes select this backend.
        let other = db.url().replacen("postgres://", "postgresql://", 1);
        let store = PgStore::open(&other, PgPoolSettings::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store.close().await;

        for url in ["sqlite://confab.db", "mysql://localhost/confab"] {
            let err = PgStore::open(url, PgPoolSettings::default())
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::Database(sqlx::Error::Configuration(_))),
                "{url}: {err}"
            );
        }
    }

    /// Two nodes (two stores, two pools, one database) append to the same
    /// rooms at once: each room's seqs are exactly 1..=N, every acked message
    /// is stored once, and each node's hooks saw its own seqs in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_appending_to_the_same_rooms_keep_seqs_consecutive() {
        let db = TestDatabase::create().await;
        let node_a = Arc::new(open(&db).await);
        let node_b = Arc::new(open(&db).await);
        let rooms = ["r1", "r2", "r3"];
        for i in 0..4 {
            user(&*node_a, &format!("u{i}")).await;
        }
        for id in rooms {
            room(&*node_a, id, &[]).await;
        }

        let hooks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (n, node) in [node_a.clone(), node_b.clone()].into_iter().enumerate() {
            for sender in 0..4 {
                let (node, hooks) = (node.clone(), hooks.clone());
                tasks.push(tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for k in 0..30 {
                        // Each sender crosses rooms in its own order, so that
                        // batches name common rooms in different orders.
                        let room_id = rooms[(k + sender) % rooms.len()];
                        let hooks = hooks.clone();
                        let hook: CommitHook = Box::new(move |outcome| {
                            if let AppendOutcome::Stored(m) = outcome {
                                hooks.lock().unwrap().push((n, m.room_id.clone(), m.seq));
                            }
                        });
                        let sent = node
                            .append_message(msg(room_id, &format!("u{sender}"), "hi"), hook)
                            .await
                            .unwrap();
                        let AppendOutcome::Stored(m) = sent else {
                            panic!("no client_msg_id, no duplicate");
                        };
                        acked.push((m.room_id, m.seq, m.id));
                    }
                    acked
                }));
            }
        }
        let mut acked = Vec::new();
        for task in tasks {
            acked.extend(task.await.unwrap());
        }
        assert_eq!(acked.len(), 240);

        for id in rooms {
            let mut seqs: Vec<i64> = acked
                .iter()
                .filter(|(room, _, _)| room == id)
                .map(|(_, seq, _)| *seq)
                .collect();
            seqs.sort_unstable();
            let n = seqs.len() as i64;
            assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "acked seqs of {id}");
            assert_eq!(stored_seqs(&*node_b, id).await, seqs, "stored seqs of {id}");
            assert_eq!(last_seq(&*node_a, id).await, n);
        }
        // Every acked id is stored once, at its acked seq.
        for (room_id, seq, id) in &acked {
            let stored = node_b.get_message(room_id, id).await.unwrap().unwrap();
            assert_eq!(stored.seq, *seq);
        }
        let ids: BTreeSet<_> = acked.iter().map(|(_, _, id)| id.clone()).collect();
        assert_eq!(ids.len(), 240);

        // Per node and room, hooks ran in seq order.
        let hooks = hooks.lock().unwrap().clone();
        assert_eq!(hooks.len(), 240);
        for node in 0..2 {
            for id in rooms {
                let seen: Vec<i64> = hooks
                    .iter()
                    .filter(|(n, room, _)| *n == node && room == id)
                    .map(|(_, _, seq)| *seq)
                    .collect();
                assert!(
                    seen.windows(2).all(|w| w[0] < w[1]),
                    "node {node}, {id}: {seen:?}"
                );
            }
        }
        node_a.close().await;
        node_b.close().await;
    }

    /// Two nodes creating the same direct room at once store it once: the
    /// losers wait on the unique `direct_key`, then get the winner's room.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_creating_one_direct_room_store_it_once() {
        let db = TestDatabase::create().await;
        let nodes = [Arc::new(open(&db).await), Arc::new(open(&db).await)];
        user(&*nodes[0], "a").await;
        user(&*nodes[0], "b").await;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let node = nodes[i % 2].clone();
                tokio::spawn(async move {
                    node.create_room(NewRoom {
                        room_type: "direct".into(),
                        direct_key: Some("a\nb".into()),
                        members: vec![
                            ("a".into(), RoomRole::Member),
                            ("b".into(), RoomRole::Member),
                        ],
                        ..crate::store::conformance::new_room(&format!("dm-{i}"), &[])
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut created = Vec::new();
        let mut existing = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                CreateOutcome::Created(room) => created.push(room),
                CreateOutcome::ExistingDirect(room) => existing.push(room),
            }
        }
        assert_eq!(created.len(), 1, "{created:?}");
        assert!(existing.iter().all(|room| *room == created[0]));
        assert_eq!(nodes[1].counts().await.unwrap(), (1, 0));
        assert_eq!(
            nodes[1].list_members(&created[0].id).await.unwrap().len(),
            2
        );
        for node in nodes {
            node.close().await;
        }
    }

    /// While another program holds the room, the writer waits; the jobs
    /// queued meanwhile form one batch, whose failing jobs roll back alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_does_not_roll_back_its_batch() {
        let db = TestDatabase::create().await;
        let store = Arc::new(open(&db).await);
        user(&*store, "a").await;
        room(&*store, "r", &["a"]).await;

        let mut holder = outsider(&db).await;
        holder.execute("BEGIN").await.unwrap();
        holder
            .execute("SELECT id FROM rooms WHERE id = 'r' FOR UPDATE")
            .await
            .unwrap();
        let before = store.write_stats();
        let mut tasks = Vec::new();
        for n in 0..41 {
            let sender = store.clone();
            let room_id = if n % 4 == 1 { "missing" } else { "r" };
            tasks.push(tokio::spawn(async move {
                sender
                    .append_message(msg(room_id, "a", &format!("{n}")), no_hook())
                    .await
            }));
            if n == 0 {
                // The first batch (this one job) waits for the room.
                lock_waiters(&db, 1).await;
            } else {
                queued(&store, n).await;
            }
        }
        holder.execute("COMMIT").await.unwrap();

        let mut seqs = BTreeSet::new();
        for (n, task) in tasks.into_iter().enumerate() {
            match (n % 4, task.await.unwrap()) {
                (1, Err(StoreError::NotFound)) => {}
                (1, other) => panic!("append {n} to a missing room: {other:?}"),
                (_, Ok(AppendOutcome::Stored(m))) => assert!(seqs.insert(m.seq)),
                (_, other) => panic!("append {n}: {other:?}"),
            }
        }
        assert_eq!(seqs, (1..=31).collect());
        assert_eq!(
            stored_seqs(&*store, "r").await,
            (1..=31).collect::<Vec<_>>()
        );
        let after = store.write_stats();
        assert_eq!(
            after.commits - before.commits,
            2,
            "the waiting job, then one batch"
        );
        assert_eq!(after.jobs - before.jobs, 41);
        store.close().await;
    }

    /// A deadlock with another program aborts the writer's transaction; the
    /// writer runs the batch again and every job succeeds, answered once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadlocked_batch_is_tried_again() {
        let db = TestDatabase::create().await;
        let store = Arc::new(open(&db).await);
        user(&*store, "u1").await;
        user(&*store, "u2").await;
        room(&*store, "hold", &[]).await;

        // One outsider keeps the writer busy on a room, so that the two
        // upserts queue into one batch; another holds u2.
        let mut room_holder = outsider(&db).await;
        room_holder.execute("BEGIN").await.unwrap();
        room_holder
            .execute("SELECT id FROM rooms WHERE id = 'hold' FOR UPDATE")
            .await
            .unwrap();
        let mut user_holder = outsider(&db).await;
        user_holder.execute("BEGIN").await.unwrap();
        user_holder
            .execute("SELECT id FROM users WHERE id = 'u2' FOR UPDATE")
            .await
            .unwrap();

        let held = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_message(msg("hold", "u1", "x"), no_hook())
                    .await
            })
        };
        lock_waiters(&db, 1).await;
        let rename = |id: &'static str| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .upsert_user(UserUpsert {
                        id: id.into(),
                        name: Some("by the store".into()),
                        ..Default::default()
                    })
                    .await
            })
        };
        let u1 = rename("u1");
        queued(&store, 1).await;
        let u2 = rename("u2");
        queued(&store, 2).await;
        let retries_before = store.write_stats().retries;

        // The writer's batch locks u1, then waits for u2 …
        room_holder.execute("COMMIT").await.unwrap();
        assert!(matches!(held.await.unwrap(), Ok(AppendOutcome::Stored(_))));
        lock_waiters(&db, 1).await;
        // … and the outsider now waits for u1: a deadlock. The writer waited
        // first, so its check runs first and PostgreSQL aborts its side.
        user_holder
            .execute("UPDATE users SET name = 'by the outsider' WHERE id = 'u1'")
            .await
            .unwrap();
        user_holder.execute("COMMIT").await.unwrap();

        let u1 = u1.await.unwrap().unwrap();
        let u2 = u2.await.unwrap().unwrap();
        assert_eq!(
            u1.name.as_deref(),
            Some("by the store"),
            "the retry ran last"
        );
        assert_eq!(u2.name.as_deref(), Some("by the store"));
        assert!(store.write_stats().retries > retries_before);
        assert_eq!(store.get_user("u1").await.unwrap(), Some(u1));
        store.close().await;
    }

    /// The database going away (here: dropped, its connections cut) fails
    /// `ping`, reads and writes as unavailable, and runs no hook.
    #[tokio::test]
    async fn an_unavailable_database_fails_reads_writes_and_ping() {
        let db = TestDatabase::create().await;
        let store = open(&db).await;
        user(&store, "a").await;
        room(&store, "r", &["a"]).await;
        send(&store, "r", "a", "before").await;

        let mut admin = PgConnection::connect(&super::test_database::admin_url())
            .await
            .unwrap();
        admin
            .execute(&*format!("DROP DATABASE {} WITH (FORCE)", db.name()))
            .await
            .unwrap();

        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let hook: CommitHook = Box::new(move |_| flag.store(true, Ordering::SeqCst));
        let err = store
            .append_message(msg("r", "a", "lost"), hook)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(!ran.load(Ordering::SeqCst), "no hook without a commit");
        assert!(matches!(
            store.get_room("r").await,
            Err(StoreError::Unavailable(_))
        ));
        store.close().await;
    }

    /// Connections the server cuts (a failover, an idle timeout) are
    /// replaced: the next write and read succeed.
    #[tokio::test]
    async fn cut_connections_are_replaced() {
        let db = TestDatabase::create().await;
        let store = open(&db).await;
        user(&store, "a").await;
        room(&store, "r", &["a"]).await;
        send(&store, "r", "a", "one").await;

        let mut admin = outsider(&db).await;
        let cut: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert!(cut >= 1);

        assert_eq!(send(&store, "r", "a", "two").await.seq, 2);
        assert_eq!(stored_seqs(&store, "r").await, [1, 2]);
        store.ping().await.unwrap();
        store.close().await;
    }

    /// A 100k-message room (seeded in one statement, then analysed, as a
    /// real one would be): the hot queries' plans read `messages` only
    /// through its indexes — the unread count through `messages_by_sender`
    /// and `messages_deleted`, never the room's history — and the unread
    /// counts are right, for one member and in the room list.
    #[tokio::test]
    async fn a_100k_message_room_is_read_through_indexes() {
        const SEEDED: i64 = 100_000;
        let db = TestDatabase::create().await;
        let store = open(&db).await;
        user(&store, "a").await;
        user(&store, "b").await;
        room(&store, "big", &["a", "b"]).await;
        let mut conn = outsider(&db).await;
        sqlx::query(
            "INSERT INTO messages (id, room_id, seq, sender_id, content, message_type, created_at) \
             SELECT 'seed-' || g, 'big', g, 'a', 'hello ' || g, 'text', g \
             FROM generate_series(1, $1::BIGINT) g",
        )
        .bind(SEEDED)
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query("UPDATE rooms SET last_seq = $1 WHERE id = 'big'")
            .bind(SEEDED)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.execute("ANALYZE").await.unwrap();

        assert_eq!(store.unread_count("big", "b").await.unwrap(), SEEDED);
        assert_eq!(store.unread_count("big", "a").await.unwrap(), 0);
        for i in 0..3 {
            send(&store, "big", "b", &format!("b{i}")).await;
        }
        for seq in [10, SEEDED] {
            store
                .delete_message("big", &format!("seed-{seq}"))
                .await
                .unwrap();
        }
        assert_eq!(store.unread_count("big", "b").await.unwrap(), SEEDED - 2);
        assert_eq!(
            store.unread_count("big", "a").await.unwrap(),
            3,
            "b's three"
        );
        store.mark_read("big", "b", SEEDED / 2).await.unwrap();
        let expected_b = SEEDED / 2 - 1; // seq 100000 is deleted
        assert_eq!(store.unread_count("big", "b").await.unwrap(), expected_b);
        let list = store.list_user_rooms("b", 10, None).await.unwrap();
        assert_eq!(list[0].unread_count, expected_b);

        let mut plans = Vec::new();
        for (name, sql) in [
            ("unread", UNREAD_COUNT),
            ("latest", HISTORY_LATEST),
            ("before", HISTORY_BEFORE),
            ("after", HISTORY_AFTER),
            ("room list", LIST_USER_ROOMS),
        ] {
            let explain = format!("EXPLAIN {sql}");
            let query = sqlx::query_scalar::<_, String>(&explain);
            let query = match name {
                "unread" => query.bind("big").bind("b"),
                "latest" => query.bind("big").bind(50_i64),
                "before" | "after" => query.bind("big").bind(50_i64).bind(SEEDED / 2),
                _ => query
                    .bind("b")
                    .bind(None::<i64>)
                    .bind(None::<String>)
                    .bind(10_i64),
            };
            let plan = query.fetch_all(&store.pool).await.unwrap().join("\n");
            assert!(
                !plan.contains("Seq Scan on messages"),
                "{name} scans messages:\n{plan}"
            );
            plans.push((name, plan));
        }
        let unread = &plans[0].1;
        assert!(
            unread.contains("messages_by_sender") && unread.contains("messages_deleted"),
            "unread:\n{unread}"
        );
        store.close().await;
    }
}
