//! Conformance: the webhook outbox. Events are written with the changes
//! they report (and not for changes that fail or change nothing), claimed
//! once per attempt, retried, failed, trimmed and put back in line.

use super::*;
use crate::store::{Attempt, EventKind, EventSet, OutboxEvent};

/// Every event due by now and for the next 10 s, claimed.
async fn claim_all(store: &dyn Store) -> Vec<OutboxEvent> {
    let now = Timestamp::now();
    store
        .claim_events(now, Timestamp(now.millis() + 10_000), 1000)
        .await
        .unwrap()
}

/// `(kind, user)` of each event, in order.
fn kinds(events: &[OutboxEvent]) -> Vec<(&'static str, Option<&str>)> {
    events
        .iter()
        .map(|e| (e.kind.as_str(), e.user_id.as_deref()))
        .collect()
}

pub(crate) async fn changes_write_their_events_and_failures_write_none<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    for id in ["a", "b", "c"] {
        user(&*store, id).await;
    }
    // Nothing is written until the store is told to.
    room(&*store, "quiet", &["a"]).await;
    assert!(claim_all(&*store).await.is_empty());

    store.record_events(EventSet::all());
    room(&*store, "r", &["a", "b"]).await;
    let mut message = msg("r", "a", "hi");
    message.missed_by = vec!["b".into()];
    let id = message.id.clone();
    store.append_message(message, no_hook()).await.unwrap();
    // A repeated client_msg_id stores nothing and reports nothing.
    let mut keyed = msg("r", "a", "keyed");
    keyed.client_msg_id = Some("k".into());
    store
        .append_message(keyed.clone(), no_hook())
        .await
        .unwrap();
    keyed.id = uuid::Uuid::now_v7().to_string();
    let again = store.append_message(keyed, no_hook()).await.unwrap();
    assert!(matches!(again, AppendOutcome::Duplicate(_)));
    // Failed writes report nothing.
    assert!(
        store
            .append_message(msg("nowhere", "a", "x"), no_hook())
            .await
            .is_err()
    );
    assert!(
        store
            .edit_message("r", "missing", "x".into(), Timestamp::now())
            .await
            .is_err()
    );
    assert!(
        store
            .add_member("r", "nobody", RoomRole::Member)
            .await
            .is_err()
    );

    store
        .edit_message("r", &id, "edited".into(), Timestamp::now())
        .await
        .unwrap();
    store.delete_message("r", &id).await.unwrap();
    store.delete_message("r", &id).await.unwrap();
    store
        .update_room("r", Some("R".into()), None)
        .await
        .unwrap();
    store.add_member("r", "c", RoomRole::Admin).await.unwrap();
    store.add_member("r", "c", RoomRole::Admin).await.unwrap();
    store.remove_member("r", "c").await.unwrap();
    store.remove_member("r", "c").await.unwrap();
    store.close_room("r").await.unwrap();
    store.close_room("r").await.unwrap();

    let events = claim_all(&*store).await;
    assert_eq!(
        kinds(&events),
        [
            ("room.created", None),
            ("member.added", Some("a")),
            ("member.added", Some("b")),
            ("message.created", None),
            ("message.missed", Some("b")),
            ("message.created", None),
            ("message.updated", None),
            ("message.deleted", None),
            ("room.updated", None),
            ("member.added", Some("c")),
            ("member.removed", Some("c")),
            ("room.closed", None),
        ],
        "once each, and nothing for what changed nothing"
    );
    assert!(events.iter().all(|e| e.room_id == "r" && e.attempts == 1));
    assert!(events.iter().all(|e| e.id.starts_with("evt_")));
    let deleted = &events[7];
    assert_eq!(deleted.message_id.as_deref(), Some(id.as_str()));
    assert_eq!(deleted.seq, Some(1));
    assert_eq!(
        events[10].role.as_deref(),
        Some("admin"),
        "the removed member's role"
    );

    // Only the kinds asked for.
    store.record_events(EventSet::of([EventKind::MessageMissed]));
    let mut message = msg("quiet", "a", "hello");
    message.missed_by = vec!["a".into()];
    store.append_message(message, no_hook()).await.unwrap();
    store
        .update_room("quiet", Some("Q".into()), None)
        .await
        .unwrap();
    assert_eq!(
        kinds(&claim_all(&*store).await),
        [("message.missed", Some("a"))]
    );
}

pub(crate) async fn claimed_events_are_retried_failed_trimmed_and_put_back<B: Backend>() {
    let (backend, store) = B::fresh().await;
    user(&*store, "a").await;
    store.record_events(EventSet::all());
    room(&*store, "r", &["a"]).await;
    let events = claim_all(&*store).await;
    assert_eq!(events.len(), 2);
    // Claimed: no other claim, on this node or another, gets them meanwhile.
    let other = backend.open_again().await;
    assert!(claim_all(&*other).await.is_empty());
    assert!(claim_all(&*store).await.is_empty());
    let state = store.outbox_state().await.unwrap();
    assert_eq!(state.pending, 2);
    assert!(state.oldest.is_some());

    let (delivered, retried) = (&events[0], &events[1]);
    store
        .finish_event(&delivered.id, Attempt::Delivered)
        .await
        .unwrap();
    let past = Timestamp(Timestamp::now().millis() - 1);
    store
        .finish_event(
            &retried.id,
            Attempt::Retry {
                at: past,
                error: "HTTP 503".into(),
            },
        )
        .await
        .unwrap();
    let again = claim_all(&*other).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, retried.id, "the same event, the same id");
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 503"));
    other
        .finish_event(
            &retried.id,
            Attempt::Failed {
                error: "HTTP 500".into(),
            },
        )
        .await
        .unwrap();
    assert!(
        claim_all(&*store).await.is_empty(),
        "failed events are not due"
    );
    assert_eq!(store.outbox_state().await.unwrap().pending, 0);
    let failed = store.failed_events(10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, retried.id);
    assert!(failed[0].failed_at.is_some());
    assert_eq!(failed[0].last_error.as_deref(), Some("HTTP 500"));

    // Put back in line: due now, with fresh attempts.
    let now = Timestamp::now();
    assert_eq!(
        store
            .retry_failed_events(Some(vec!["evt_none".into()]), now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.retry_failed_events(None, now).await.unwrap(), 1);
    assert!(store.failed_events(10).await.unwrap().is_empty());
    let back = claim_all(&*store).await;
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].id.as_str(), back[0].attempts),
        (retried.id.as_str(), 1)
    );

    // Trimming: the oldest beyond the cap, then everything older than a time.
    for i in 0..4 {
        store
            .update_room("r", Some(format!("n{i}")), None)
            .await
            .unwrap();
    }
    let trimmed = store.trim_outbox(Timestamp(0), 2).await.unwrap();
    assert_eq!((trimmed.by_age, trimmed.by_cap), (0, 3), "5 events, 2 kept");
    let kept = claim_all(&*store).await;
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|e| e.kind == EventKind::RoomUpdated));
    let trimmed = store
        .trim_outbox(Timestamp(Timestamp::now().millis() + 1), 100)
        .await
        .unwrap();
    assert_eq!((trimmed.by_age, trimmed.by_cap), (2, 0));
    assert_eq!(store.outbox_state().await.unwrap().pending, 0);
}
