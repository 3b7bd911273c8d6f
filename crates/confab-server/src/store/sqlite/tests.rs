//! The SQLite backend's own tests (group commit, WAL, `query_only`, the
//! query plans), and the conformance suite run on it.

use super::rows::{
    HISTORY_AFTER, HISTORY_BEFORE, HISTORY_LATEST, LIST_USER_ROOMS, UNANSWERED_QUESTIONS,
    UNREAD_COUNT,
};
use super::writer::CHECKPOINT_PAUSE;
use super::*;
use crate::store::DynStore;
use crate::store::conformance::{
    Backend, answer_shape, conformance_tests, last_seq, mixed_appends, mixed_appends_setup, msg,
    no_hook, room, send, unread_counts_in_a_seeded_room, user,
};
use crate::store::{AppendOutcome, Store, UserUpsert};
use async_trait::async_trait;
use sqlx::{Executor, Row};
use std::collections::BTreeSet;
use tempfile::TempDir;

/// A SQLite file in its own temporary folder (removed with it).
struct SqliteFile {
    dir: TempDir,
}

impl SqliteFile {
    fn url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("confab.db").display())
    }
}

#[async_trait]
impl Backend for SqliteFile {
    async fn fresh() -> (Self, DynStore) {
        let file = SqliteFile {
            dir: tempfile::tempdir().unwrap(),
        };
        let store = file.open_again().await;
        (file, store)
    }

    async fn open_again(&self) -> DynStore {
        let store = SqliteStore::open(&self.url()).await.unwrap();
        store.migrate().await.unwrap();
        Arc::new(store)
    }
}

conformance_tests!(SqliteFile);

#[tokio::test]
async fn an_upsert_that_changes_nothing_skips_the_writer() {
    let (_dir, store, _) = fresh().await;
    let created = user(&store, "u1").await;
    let before = store.write_stats();
    let same = store
        .upsert_user(UserUpsert {
            id: "u1".into(),
            username: Some("u1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(same, created);
    assert_eq!(store.write_stats(), before);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits() {
    let (_dir, store, _) = fresh().await;
    for i in 0..8 {
        user(&store, &format!("u{i}")).await;
    }
    room(&store, "r", &[]).await;
    let store = Arc::new(store);
    let before = store.write_stats();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    send(&*store, "r", &format!("u{i}"), &format!("{i}:{n}")).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let after = store.write_stats();
    assert_eq!(after.jobs - before.jobs, 200);
    assert!(
        after.commits - before.commits < 200,
        "bursts share commits: {before:?} → {after:?}"
    );
    store.close().await;
}

/// A store on a fresh file in its own temporary folder (kept alive by the `TempDir`).
async fn fresh() -> (TempDir, SqliteStore, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("confab.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    (dir, store, url)
}

async fn message_count(store: &SqliteStore, room_id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE room_id = ?1")
        .bind(room_id)
        .fetch_one(&store.readers)
        .await
        .unwrap()
}

/// Holds the writer busy until the returned sender fires, so that jobs
/// queued meanwhile are drained into one batch. Returns once the writer
/// is held.
async fn block_writer(
    store: &Arc<SqliteStore>,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, wait) = oneshot::channel::<()>();
    let (held, started) = oneshot::channel::<()>();
    let store = store.clone();
    let blocker = tokio::spawn(async move {
        store
            .submit(Mode::Alone, move |_conn| {
                Box::pin(async move {
                    let _ = held.send(());
                    let _ = wait.await;
                    Ok(())
                })
            })
            .await
            .unwrap();
    });
    started.await.unwrap();
    (release, blocker)
}

/// Waits until `n` jobs sit in the writer's queue.
async fn queued(store: &SqliteStore, n: usize) {
    for _ in 0..1000 {
        if store.jobs.queued() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("jobs never queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_appends_is_one_commit_with_single_append_answers() {
    let (_dir, store, _) = fresh().await;
    let store = Arc::new(store);
    mixed_appends_setup(&*store).await;
    let (appends, expected) = mixed_appends();
    let count = appends.len();
    let (release, blocker) = block_writer(&store).await;
    let mut pending = Vec::new();
    for message in appends {
        pending.push(store.queue_append(message, no_hook()).await.unwrap());
    }
    queued(&store, count).await;
    let before = store.write_stats();
    release.send(()).unwrap();
    blocker.await.unwrap();
    for (n, (answer, want)) in pending.into_iter().zip(&expected).enumerate() {
        let want = want.map(|(room, seq, dup)| (room.to_owned(), seq, dup));
        assert_eq!(answer_shape(&answer.await), want, "append {n}");
    }
    let after = store.write_stats();
    assert_eq!(after.commits - before.commits, 1, "{before:?} → {after:?}");
    assert_eq!(after.jobs - before.jobs, count as u64);
    assert_eq!(message_count(&store, "r").await, 4);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_appends_of_new_keys_and_a_repeat_of_a_stored_one_answer_like_single_ones() {
    let (_dir, store, _) = fresh().await;
    let store = Arc::new(store);
    user(&*store, "a").await;
    room(&*store, "r", &["a"]).await;
    let keyed = |key: &str| {
        let mut m = msg("r", "a", key);
        m.client_msg_id = Some(key.to_owned());
        m
    };
    let AppendOutcome::Stored(stored) = store.append_message(keyed("k0"), no_hook()).await.unwrap()
    else {
        panic!("k0 is new");
    };
    // New keys only, then new keys with a retry of k0 and a repeat within
    // the batch: one commit each, every answer as if appended alone.
    for (batch, want) in [
        (
            vec!["k1", "k2", "k3"],
            vec![(2, false), (3, false), (4, false)],
        ),
        (
            vec!["k4", "k0", "k5", "k4"],
            vec![(5, false), (1, true), (6, false), (5, true)],
        ),
    ] {
        let (release, blocker) = block_writer(&store).await;
        let mut pending = Vec::new();
        for key in &batch {
            pending.push(store.queue_append(keyed(key), no_hook()).await.unwrap());
        }
        queued(&store, batch.len()).await;
        let before = store.write_stats();
        release.send(()).unwrap();
        blocker.await.unwrap();
        let mut shapes = Vec::new();
        for (key, answer) in batch.iter().zip(pending) {
            let answer = answer.await;
            if let (&"k0", Ok(AppendOutcome::Duplicate(original))) = (key, &answer) {
                assert_eq!(original.id, stored.id, "the original itself");
            }
            shapes.push(answer_shape(&answer).unwrap());
        }
        let want: Vec<_> = want
            .into_iter()
            .map(|(seq, dup)| ("r".to_owned(), seq, dup))
            .collect();
        assert_eq!(shapes, want, "{batch:?}");
        let after = store.write_stats();
        assert_eq!(after.commits - before.commits, 1, "{batch:?}: one commit");
    }
    assert_eq!(last_seq(&*store, "r").await, 6);
    assert_eq!(message_count(&store, "r").await, 6, "nothing stored twice");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_be_inserted_whole_is_appended_one_by_one() {
    let (_dir, store, _) = fresh().await;
    let store = Arc::new(store);
    user(&*store, "a").await;
    room(&*store, "r", &["a"]).await;
    let taken = send(&*store, "r", "a", "first").await;
    let mut clash = msg("r", "a", "clash");
    clash.id = taken.id.clone();
    let appends = vec![msg("r", "a", "1"), clash, msg("r", "a", "2")];
    let (release, blocker) = block_writer(&store).await;
    let mut pending = Vec::new();
    for message in appends {
        pending.push(store.queue_append(message, no_hook()).await.unwrap());
    }
    queued(&store, 3).await;
    release.send(()).unwrap();
    blocker.await.unwrap();
    let mut shapes = Vec::new();
    for answer in pending {
        shapes.push(answer_shape(&answer.await));
    }
    // The multi-row insert failed on the taken id; one by one, only the
    // clash fails, and the others keep their queue order without a gap.
    assert_eq!(
        shapes,
        vec![
            Ok(("r".to_owned(), 2, false)),
            Err("AlreadyExists"),
            Ok(("r".to_owned(), 3, false)),
        ]
    );
    assert_eq!(last_seq(&*store, "r").await, 3);
    assert_eq!(message_count(&store, "r").await, 3);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_copies_commits_into_the_file_and_close_folds_the_wal() {
    let (dir, store, _) = fresh().await;
    let file = dir.path().join("confab.db");
    let wal = dir.path().join("confab.db-wal");
    user(&store, "a").await;
    room(&store, "r", &["a"]).await;
    // Let the checkpoint after the set-up happen, then measure the file.
    tokio::time::sleep(CHECKPOINT_PAUSE * 3).await;
    let before = std::fs::metadata(&file).unwrap().len();
    let mut pending = Vec::new();
    for n in 0..400 {
        let mut message = msg("r", "a", &format!("message {n} {}", "x".repeat(200)));
        message.id = format!("m{n}");
        pending.push(store.queue_append(message, no_hook()).await.unwrap());
    }
    for answer in pending {
        answer.await.unwrap();
    }
    // Far fewer pages than the writer's own autocheckpoint: only the
    // checkpointer can have copied them into the file.
    let mut grown = false;
    for _ in 0..100 {
        if std::fs::metadata(&file).unwrap().len() > before {
            grown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(grown, "the database file stayed at {before} bytes");
    store.close().await;
    let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(left, 0, "a clean close folds the WAL back");
    let reopened = SqliteStore::open(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    assert_eq!(message_count(&reopened, "r").await, 400);
    reopened.close().await;
}

#[tokio::test]
async fn migrations_are_idempotent_and_folders_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/confab.db");
    // Both URL forms name the same file.
    for url in [
        format!("sqlite://{}", path.display()),
        format!("sqlite:{}", path.display()),
    ] {
        let store = SqliteStore::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        store.close().await;
    }
    assert!(path.exists());

    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&store.readers)
        .await
        .unwrap();
    assert_eq!(applied, MIGRATOR.iter().count() as i64);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.readers)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let write = sqlx::query("DELETE FROM users")
        .execute(&store.readers)
        .await;
    assert!(write.is_err(), "readers are query_only");
    store.close().await;
}

#[tokio::test]
async fn bad_urls_are_refused() {
    for url in [
        "postgres://localhost/confab",
        "sqlite::memory:",
        "sqlite://",
        "sqlite://?mode=memory",
    ] {
        let err = SqliteStore::open(url).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Database(sqlx::Error::Configuration(_))),
            "{url}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_finishes_queued_writes() {
    let (_dir, store, _) = fresh().await;
    user(&store, "a").await;
    room(&store, "r", &["a"]).await;
    let store = Arc::new(store);
    let (release, blocker) = block_writer(&store).await;
    let sends: Vec<_> = (0..20)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_message(msg("r", "a", &format!("{n}")), no_hook())
                    .await
            })
        })
        .collect();
    queued(&store, 20).await;

    let closing = {
        let store = store.clone();
        tokio::spawn(async move { store.close().await })
    };
    // close() refuses new work at once, yet waits for the queue.
    for _ in 0..100 {
        if store.jobs.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(
        store.append_message(msg("r", "a", "late"), no_hook()).await,
        Err(StoreError::Closed)
    ));
    release.send(()).unwrap();
    blocker.await.unwrap();
    for send in sends {
        assert!(matches!(send.await.unwrap(), Ok(AppendOutcome::Stored(_))));
    }
    closing.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_does_not_roll_back_its_batch() {
    let (_dir, store, _) = fresh().await;
    user(&store, "a").await;
    room(&store, "r", &["a"]).await;
    let store = Arc::new(store);

    // Hold the writer, queue 40 appends of which every fourth goes to a
    // missing room, then let go: they are drained into one transaction.
    let (release, blocker) = block_writer(&store).await;
    let before = store.write_stats();
    let mut tasks = Vec::new();
    for n in 0..40 {
        let sender = store.clone();
        let room_id = if n % 4 == 0 { "missing" } else { "r" };
        tasks.push(tokio::spawn(async move {
            sender
                .append_message(msg(room_id, "a", &format!("{n}")), no_hook())
                .await
        }));
        // Queue in order, so the failures sit between the successes.
        queued(&store, n + 1).await;
    }
    release.send(()).unwrap();
    blocker.await.unwrap();

    let mut seqs = BTreeSet::new();
    for (n, task) in tasks.into_iter().enumerate() {
        match (n % 4, task.await.unwrap()) {
            (0, Err(StoreError::NotFound)) => {}
            (0, other) => panic!("append {n} to a missing room: {other:?}"),
            (_, Ok(AppendOutcome::Stored(m))) => assert!(seqs.insert(m.seq)),
            (_, other) => panic!("append {n}: {other:?}"),
        }
    }
    assert_eq!(seqs, (1..=30).collect());
    assert_eq!(message_count(&store, "r").await, 30);
    assert_eq!(last_seq(&*store, "r").await, 30);
    let after = store.write_stats();
    assert_eq!(
        after.commits - before.commits,
        1,
        "one transaction for the batch"
    );
    assert_eq!(after.jobs - before.jobs, 40);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_every_job_of_the_batch() {
    let (_dir, store, _) = fresh().await;
    user(&store, "a").await;
    room(&store, "r", &["a"]).await;
    let store = Arc::new(store);

    let (release, blocker) = block_writer(&store).await;
    let good = {
        let store = store.clone();
        tokio::spawn(async move { store.append_message(msg("r", "a", "lost"), no_hook()).await })
    };
    queued(&store, 1).await;
    // A job that succeeds itself but makes COMMIT fail: a deferred
    // foreign-key violation is only checked at commit.
    let poison = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .submit(Mode::Batched, |conn| {
                    Box::pin(async move {
                        conn.execute("PRAGMA defer_foreign_keys = ON").await?;
                        conn.execute(
                            "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
                             VALUES ('r', 'ghost', 'member', 0, 0)",
                        )
                        .await?;
                        Ok(())
                    })
                })
                .await
        })
    };
    queued(&store, 2).await;
    release.send(()).unwrap();
    blocker.await.unwrap();

    assert!(matches!(good.await.unwrap(), Err(StoreError::Database(_))));
    assert!(matches!(
        poison.await.unwrap(),
        Err(StoreError::Database(_))
    ));
    assert_eq!(
        last_seq(&*store, "r").await,
        0,
        "nothing of the batch is stored"
    );
    assert_eq!(message_count(&store, "r").await, 0);
    assert_eq!(store.get_member("r", "ghost").await.unwrap(), None);

    // The writer goes on.
    assert_eq!(send(&*store, "r", "a", "after").await.seq, 1);
    store.close().await;
}

#[tokio::test]
async fn a_panicking_job_fails_alone() {
    let (_dir, store, _) = fresh().await;
    user(&store, "a").await;
    room(&store, "r", &["a"]).await;
    let result: StoreResult<()> = store
        .submit(Mode::Batched, |conn| {
            Box::pin(async move {
                sqlx::query("UPDATE rooms SET last_seq = 99")
                    .execute(&mut *conn)
                    .await?;
                panic!("job bug");
            })
        })
        .await;
    assert!(matches!(result, Err(StoreError::Database(_))));
    assert_eq!(
        last_seq(&store, "r").await,
        0,
        "its savepoint was rolled back"
    );
    assert_eq!(send(&store, "r", "a", "still writing").await.seq, 1);
    store.ping().await.unwrap();
    store.close().await;
}

/// The hot queries are index searches, never scans of `messages`.
#[tokio::test]
async fn hot_queries_use_indexes() {
    let (_dir, store, _) = fresh().await;
    let plan = |sql: &'static str, binds: usize| {
        let readers = store.readers.clone();
        async move {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query = sqlx::query(&explain);
            for _ in 0..binds {
                query = query.bind(1_i64);
            }
            query
                .fetch_all(&readers)
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<String, _>("detail"))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    for (name, sql, binds) in [
        ("unread", UNREAD_COUNT, 2),
        ("latest", HISTORY_LATEST, 2),
        ("before", HISTORY_BEFORE, 3),
        ("after", HISTORY_AFTER, 3),
        ("room list", LIST_USER_ROOMS, 4),
        ("questions", UNANSWERED_QUESTIONS, 5),
        (
            "idle sessions",
            <sqlx::Sqlite as crate::store::rows::Dialect>::IDLE_SESSIONS,
            2,
        ),
        (
            "open session",
            <sqlx::Sqlite as crate::store::rows::Dialect>::OPEN_SESSION,
            1,
        ),
    ] {
        let plan = plan(sql, binds).await;
        for alias in ["m", "own", "del", "lm"] {
            assert!(
                !plan.contains(&format!("SCAN {alias} "))
                    && !plan.ends_with(&format!("SCAN {alias}")),
                "{name} scans messages:\n{plan}"
            );
        }
        assert!(
            !plan.contains("SCAN r") && !plan.contains("SCAN mb"),
            "{name}:\n{plan}"
        );
        eprintln!("{name}:\n{plan}\n");
        match name {
            // The user's memberships are sorted as bare keys; the page's
            // rows are read after, by key.
            "room list" => assert!(
                plan.contains("SEARCH mb USING COVERING INDEX members_by_user (user_id=?)")
                    && plan.contains("SCAN keys"),
                "{name}:\n{plan}"
            ),
            // Only open assistant rooms idle since the cutoff, by the index
            // the look for questions uses.
            "idle sessions" => assert!(
                plan.contains("SEARCH rooms USING INDEX rooms_open_assistant (last_activity<?)"),
                "{name}:\n{plan}"
            ),
            // The user's memberships, then each room by its key.
            "open session" => assert!(
                plan.contains("SEARCH mb USING INDEX members_by_user (user_id=?)")
                    && plan.contains("SEARCH r USING INDEX sqlite_autoindex_rooms_1 (id=?)"),
                "{name}:\n{plan}"
            ),
            // Only open assistant rooms active in the window, by their own
            // index, then each one's newest message.
            "questions" => assert!(
                plan.contains("SEARCH r USING INDEX rooms_open_assistant (last_activity>?)")
                    && plan.contains("(room_id=? AND seq=?)"),
                "{name}:\n{plan}"
            ),
            // The page is read in index order, never sorted whole (the
            // reactions subquery sorts only one message's reactions).
            "latest" => assert!(
                plan.contains("(room_id=?)") && !plan.contains("USE TEMP B-TREE FOR ORDER BY"),
                "{name}:\n{plan}"
            ),
            // Only the reader's own messages and the room's deleted ones
            // are visited, by their own indexes.
            "unread" => assert!(
                plan.contains("SEARCH own USING COVERING INDEX messages_by_sender (room_id=? AND sender_id=? AND seq>?)")
                    && plan.contains("SEARCH del USING INDEX messages_deleted (room_id=? AND seq>?)"),
                "{name}:\n{plan}"
            ),
            _ => assert!(
                plan.contains("(room_id=? AND seq"),
                "{name} reads a seq range:\n{plan}"
            ),
        }
    }
    store.close().await;
}

/// Issue 4: the unread count of a 100k-message room is one query that
/// visits only the reader's own and the deleted messages above the marker
/// (plan checked above); here its answer is checked at that size, with own,
/// deleted and read messages mixed in, for one member and in the room list.
#[tokio::test]
async fn unread_count_of_a_100k_message_room() {
    const SEEDED: i64 = 100_000;
    let (_dir, store, _) = fresh().await;
    for id in ["a", "b"] {
        user(&store, id).await;
    }
    room(&store, "big", &["a", "b"]).await;
    // 100k messages from a, written the way the writer would: consecutive
    // seqs and the room's last_seq in one transaction.
    store
        .submit(Mode::Batched, |conn| {
            Box::pin(async move {
                sqlx::query(
                    "WITH RECURSIVE n(seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM n WHERE seq < ?1) \
                     INSERT INTO messages (id, room_id, seq, sender_id, content, message_type, created_at) \
                     SELECT 'seed-' || seq, 'big', seq, 'a', 'hello ' || seq, 'text', seq FROM n",
                )
                .bind(SEEDED)
                .execute(&mut *conn)
                .await?;
                sqlx::query("UPDATE rooms SET last_seq = ?1 WHERE id = 'big'")
                    .bind(SEEDED)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .await
        .unwrap();
    unread_counts_in_a_seeded_room(&store, SEEDED).await;
    store.close().await;
}
