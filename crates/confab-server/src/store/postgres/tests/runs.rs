//! Runs of appends written together (`batch_append.rs`): held behind a
//! job that waits for another program's lock, so that they form one batch,
//! they answer as single appends would.

use super::*;

/// Queues `appends` (and, after the first `upsert_after` of them, an upsert
/// of a new user) behind a job that waits for another program's lock, so
/// that they form one batch. Returns their answers, in order, and the
/// commits they took.
async fn in_one_batch(
    db: &TestDatabase,
    store: &Arc<PgStore>,
    appends: Vec<NewMessage>,
    upsert_after: Option<usize>,
) -> (Vec<Result<(String, i64, bool), &'static str>>, u64) {
    if store.get_room("held").await.unwrap().is_none() {
        room(&**store, "held", &["a"]).await;
    }
    let mut holder = holding_room(db, "held").await;
    let waiting = append_held_up(db, store, "held").await;
    let before = store.write_stats();
    let mut pending = Vec::new();
    let mut upsert = None;
    for (n, message) in appends.into_iter().enumerate() {
        if upsert_after == Some(n) {
            let upserter = store.clone();
            upsert = Some(tokio::spawn(async move { user(&*upserter, "c").await }));
            queued(store, n + 1).await;
        }
        pending.push(store.queue_append(message, no_hook()).await.unwrap());
    }
    holder.execute("COMMIT").await.unwrap();
    waiting.await.unwrap();
    let mut answers = Vec::new();
    for answer in pending {
        answers.push(answer_shape(&answer.await));
    }
    if let Some(upsert) = upsert {
        assert_eq!(upsert.await.unwrap().id, "c");
    }
    (answers, store.write_stats().commits - before.commits)
}

/// The answers [`mixed_appends`] expects, in [`answer_shape`]'s form.
fn owned(expected: &[Expected]) -> Vec<Result<(String, i64, bool), &'static str>> {
    expected
        .iter()
        .map(|want| want.map(|(room, seq, dup)| (room.to_owned(), seq, dup)))
        .collect()
}

/// A batch of appends is written as one run (with a job of another kind
/// between two runs, each run in its own savepoint), and answers exactly as
/// single appends would: seqs in queue order, repeats of a key stored
/// before or earlier in the batch, nothing for an unknown room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_appends_answers_like_single_appends() {
    for upsert_after in [None, Some(3)] {
        let db = TestDatabase::create().await;
        let store = Arc::new(open_one_lane(&db).await);
        mixed_appends_setup(&*store).await;
        let (mut appends, mut expected) = mixed_appends();
        // The unknown sender is the next test's: it fails the run.
        appends.remove(4);
        let _ = expected.remove(4);
        let (answers, commits) = in_one_batch(&db, &store, appends, upsert_after).await;
        assert_eq!(answers, owned(&expected), "upsert after {upsert_after:?}");
        assert_eq!(commits, 2, "the waiting job, then one batch");
        assert_eq!(stored_seqs(&*store, "r").await, vec![1, 2, 3, 4]);
        assert_eq!(last_seq(&*store, "r2").await, 1);
        let webhook_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events")
            .fetch_one(&mut outsider(&db).await)
            .await
            .unwrap();
        assert_eq!(webhook_rows, 0, "no webhook events were asked for");
        store.close().await;
    }
}

/// A run that fails on one append (an unknown sender, a taken message id)
/// is rolled back and appended one by one: only the offender fails, and
/// the others keep their queue order without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_fails_on_one_append_is_appended_one_by_one() {
    let db = TestDatabase::create().await;
    let store = Arc::new(open_one_lane(&db).await);
    mixed_appends_setup(&*store).await;
    let (appends, expected) = mixed_appends();
    let (answers, commits) = in_one_batch(&db, &store, appends, None).await;
    assert_eq!(answers, owned(&expected));
    assert_eq!(commits, 2, "the waiting job, then one batch");
    assert_eq!(stored_seqs(&*store, "r").await, vec![1, 2, 3, 4]);

    let taken = send(&*store, "r", "a", "taken").await;
    let mut clash = msg("r", "a", "clash");
    clash.id = taken.id.clone();
    let appends = vec![msg("r", "a", "1"), clash, msg("r", "b", "2")];
    let (answers, _) = in_one_batch(&db, &store, appends, None).await;
    let ok = |seq| Ok(("r".to_owned(), seq, false));
    assert_eq!(answers, vec![ok(6), Err("AlreadyExists"), ok(7)]);
    assert_eq!(stored_seqs(&*store, "r").await, (1..=7).collect::<Vec<_>>());
    store.close().await;
}

/// With webhooks on, each stored message of a run gets its events, written
/// in the same statement; a repeat and a refused append get none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_writes_the_events_of_what_it_stored() {
    let db = TestDatabase::create().await;
    let store = Arc::new(open_one_lane(&db).await);
    store.record_events(EventSet::all());
    mixed_appends_setup(&*store).await;
    let (mut appends, mut expected) = mixed_appends();
    appends.remove(4);
    let _ = expected.remove(4);
    appends[1].missed_by = vec!["a".to_owned()];
    let stored: Vec<String> = appends
        .iter()
        .zip(&expected)
        .filter(|(_, want)| matches!(want, Ok((_, _, false))))
        .map(|(m, _)| m.id.clone())
        .collect();
    let (answers, _) = in_one_batch(&db, &store, appends, None).await;
    assert_eq!(answers, owned(&expected));
    let events: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT kind, message_id, user_id FROM webhook_events \
         WHERE kind LIKE 'message.%' AND message_id = ANY($1) ORDER BY id",
    )
    .bind(&stored)
    .fetch_all(&mut outsider(&db).await)
    .await
    .unwrap();
    let mut want: Vec<(String, String, Option<String>)> = stored
        .iter()
        .map(|id| ("message.created".to_owned(), id.clone(), None))
        .collect();
    want.insert(
        2,
        (
            "message.missed".to_owned(),
            stored[1].clone(),
            Some("a".to_owned()),
        ),
    );
    let sorted = |mut v: Vec<(String, String, Option<String>)>| {
        v.sort();
        v
    };
    assert_eq!(sorted(events), sorted(want));
    store.close().await;
}
