//! The PostgreSQL backend's own tests (lock ordering across nodes,
//! retries, outages), and the conformance suite run on it; `runs.rs` has
//! those of runs of appends written together.

#[path = "../../../../tests/common/postgres.rs"]
mod test_database;

use super::rows::{
    HISTORY_AFTER, HISTORY_BEFORE, HISTORY_LATEST, LIST_USER_ROOMS, UNANSWERED_QUESTIONS,
    UNREAD_COUNT,
};
use super::*;
use crate::store::DynStore;
use crate::store::conformance::{
    Backend, Expected, answer_shape, conformance_tests, created_and_existing, direct_ab, last_seq,
    mixed_appends, mixed_appends_setup, msg, no_hook, room, send, stored_seqs,
    unread_counts_in_a_seeded_room, user,
};
use crate::store::{AppendOutcome, EventSet, PendingAppend, Store, UserUpsert};
use async_trait::async_trait;
use sqlx::{Connection, Executor, PgConnection};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use test_database::TestDatabase;

mod runs;

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

/// Rooms whose writes go to different writer lanes run side by side: one
/// held by another program's lock does not hold up the other, and each
/// room's seqs stay gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_lanes_write_rooms_side_by_side() {
    let db = TestDatabase::create().await;
    let store = Arc::new(open(&db).await);
    let lane = |room: &str| store.writer.lane_index(Some(room));
    let held = "held";
    let free = (0..100)
        .map(|n| format!("free-{n}"))
        .find(|room| lane(room) != lane(held))
        .expect("some room on another lane");
    user(&*store, "a").await;
    room(&*store, held, &["a"]).await;
    room(&*store, &free, &["a"]).await;

    let mut holder = holding_room(&db, held).await;
    let waiting = append_held_up(&db, &store, held).await;
    // The other lane goes on while the first waits.
    for n in 1..=3 {
        let stored = tokio::time::timeout(
            Duration::from_secs(10),
            send(&*store, &free, "a", &format!("{n}")),
        )
        .await
        .expect("the other lane is not held up");
        assert_eq!(stored.seq, n);
    }
    holder.execute("COMMIT").await.unwrap();
    match waiting.await {
        Ok(AppendOutcome::Stored(m)) => assert_eq!((m.room_id.as_str(), m.seq), (held, 1)),
        other => panic!("the held room's append: {other:?}"),
    }
    assert_eq!(send(&*store, held, "a", "next").await.seq, 2);
    store.close().await;
}

/// A migrated store on `db`: one node.
async fn open(db: &TestDatabase) -> PgStore {
    open_with(db, PgPoolSettings::default()).await
}

/// A node whose writer has a single lane (two connections leave room for
/// no more): the tests that hold the writer with a locked room and queue
/// jobs of other rooms behind it, to watch one batch form.
async fn open_one_lane(db: &TestDatabase) -> PgStore {
    let settings = PgPoolSettings {
        max_connections: 2,
        ..PgPoolSettings::default()
    };
    open_with(db, settings).await
}

async fn open_with(db: &TestDatabase, settings: PgPoolSettings) -> PgStore {
    let store = PgStore::open(db.url(), settings).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A plain connection to `db`, as another program would have.
async fn outsider(db: &TestDatabase) -> PgConnection {
    PgConnection::connect(db.url()).await.unwrap()
}

/// Another program's transaction holding `room`'s row lock until it is
/// committed: the writer's next batch on that room waits for it.
async fn holding_room(db: &TestDatabase, room: &str) -> PgConnection {
    let mut holder = outsider(db).await;
    holder.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT id FROM rooms WHERE id = $1 FOR UPDATE")
        .bind(room)
        .execute(&mut holder)
        .await
        .unwrap();
    holder
}

/// Queues an append by `a` to the room `holder` holds and waits until the
/// writer's batch blocks on it: what is queued next waits behind it.
async fn append_held_up(db: &TestDatabase, store: &PgStore, room: &str) -> PendingAppend {
    let waiting = store
        .queue_append(msg(room, "a", "waits"), no_hook())
        .await
        .unwrap();
    lock_waiters(db, 1).await;
    waiting
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
            let room = direct_ab(&format!("dm-{i}"));
            tokio::spawn(async move { node.create_room(room).await.unwrap() })
        })
        .collect();
    let (created, existing) = created_and_existing(tasks).await;
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
    let store = Arc::new(open_one_lane(&db).await);
    user(&*store, "a").await;
    room(&*store, "r", &["a"]).await;

    let mut holder = holding_room(&db, "r").await;
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
    let store = Arc::new(open_one_lane(&db).await);
    user(&*store, "u1").await;
    user(&*store, "u2").await;
    room(&*store, "hold", &[]).await;

    // One outsider keeps the writer busy on a room, so that the two
    // upserts queue into one batch; another holds u2.
    let mut room_holder = holding_room(&db, "hold").await;
    let mut user_holder = outsider(&db).await;
    // The writer must be the side PostgreSQL aborts: it checks for a
    // deadlock after its own `deadlock_timeout` (1 s), the outsider only
    // after 30, however late a loaded machine runs the writer's check.
    user_holder
        .execute("SET deadlock_timeout = '30s'")
        .await
        .unwrap();
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

    let mut admin = PgConnection::connect(&test_database::admin_url())
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

    unread_counts_in_a_seeded_room(&store, SEEDED).await;

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

/// Looking for unanswered assistant questions reads the open assistant
/// rooms through their partial index, whatever the number of other rooms,
/// and each one's newest message by its seq, never a scan of `messages`.
#[tokio::test]
async fn unanswered_questions_read_only_open_assistant_rooms() {
    let db = TestDatabase::create().await;
    let store = open(&db).await;
    user(&store, "a").await;
    let mut conn = outsider(&db).await;
    // Many rooms of other kinds (and closed assistant rooms), few open
    // assistant ones, each with a message.
    sqlx::query(
        "INSERT INTO rooms (id, room_type, closed, last_seq, last_activity, created_at) \
         SELECT 'r' || g, CASE WHEN g % 1000 = 0 THEN 'assistant' ELSE 'group' END, \
                g % 2000 = 0, 1, g, g \
         FROM generate_series(1, 20000) g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO messages (id, room_id, seq, sender_id, content, message_type, created_at) \
         SELECT 'm' || g, 'r' || g, 1, 'a', 'hello', 'text', g FROM generate_series(1, 20000) g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.execute("ANALYZE").await.unwrap();

    let found = store
        .unanswered_questions(
            confab_protocol::Timestamp(0),
            confab_protocol::Timestamp(1_000_000),
            100,
        )
        .await
        .unwrap();
    let rooms: Vec<&str> = found.iter().map(|q| q.room_id.as_str()).collect();
    let expected: Vec<String> = (1..=20)
        .filter(|n| n % 2 == 1)
        .map(|n| format!("r{}", n * 1000))
        .collect();
    assert_eq!(rooms, expected, "the open assistant rooms, oldest first");

    let plan = sqlx::query_scalar::<_, String>(&format!("EXPLAIN {UNANSWERED_QUESTIONS}"))
        .bind(0_i64)
        .bind(1_000_000_i64)
        .bind("assistant")
        .bind("system")
        .bind(100_i64)
        .fetch_all(&store.pool)
        .await
        .unwrap()
        .join("\n");
    assert!(
        plan.contains("rooms_open_assistant") && !plan.contains("Seq Scan"),
        "{plan}"
    );
    store.close().await;
}

/// confab's connections never JIT-compile (a cost estimate that grows with
/// the data would otherwise buy a compile on every call), unless the URL's
/// `options` say otherwise.
#[tokio::test]
async fn statements_run_without_jit_unless_the_url_asks_for_it() {
    let db = TestDatabase::create().await;
    let jit = |store: PgStore| async move {
        let jit: String = sqlx::query_scalar("SHOW jit")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        store.close().await;
        jit
    };
    assert_eq!(jit(open(&db).await).await, "off");
    let separator = if db.url().contains('?') { '&' } else { '?' };
    let asked = format!("{}{separator}options=-c%20jit%3Don", db.url());
    let store = PgStore::open(&asked, PgPoolSettings::default())
        .await
        .unwrap();
    assert_eq!(jit(store).await, "on");
}
