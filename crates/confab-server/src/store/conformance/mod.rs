//! Store semantics every backend keeps, written once and run against each:
//! `sqlite::tests` and `postgres::tests` implement [`Backend`] and expand
//! [`conformance_tests!`], which makes one `#[tokio::test]` per function
//! here. Backend-specific behaviour (group commit, WAL, `query_only`, lock
//! ordering across nodes) is tested beside its backend.

use super::{
    AppendOutcome, CommitHook, CreateOutcome, DynStore, GlobalRole, HistoryPage, MessageRecord,
    NewMessage, NewRoom, RatingRecord, ReactionChange, RoomRecord, RoomRole, Store, StoreError,
    UserRecord, UserUpsert,
};
use async_trait::async_trait;
use confab_protocol::{Location, MessageType, Timestamp};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A backend under test.
#[async_trait]
pub(crate) trait Backend: Send + Sync + Sized + 'static {
    /// A store on a fresh, migrated, empty database, and what keeps that
    /// database alive (dropped at the end of the test).
    async fn fresh() -> (Self, DynStore);

    /// Another store on the same database (after a restart, or a second node).
    async fn open_again(&self) -> DynStore;
}

/// One `#[tokio::test]` per conformance test, run against `$backend`.
macro_rules! conformance_tests {
    ($backend:ty) => {
        $crate::store::conformance::conformance_tests!(@each $backend:
            upsert_user_creates_then_changes_only_given_fields,
            user_with_rooms_reads_the_user_and_its_rooms_at_once,
            users_are_read_and_written_many_at_once,
            rooms_create_update_close_and_refuse_taken_ids,
            direct_rooms_are_deduplicated_even_when_created_at_once,
            members_are_added_changed_and_removed,
            commit_hooks_run_in_seq_order_under_concurrent_appends,
            concurrent_appends_get_every_seq_exactly_once,
            repeated_client_msg_id_returns_the_original_and_uses_no_seq,
            failed_appends_store_nothing_and_use_no_seq,
            queued_appends_answer_in_order_like_single_ones,
            history_pages_in_all_three_directions,
            mark_read_moves_forward_only_and_clamps,
            unread_count_skips_own_and_deleted_messages,
            room_list_is_newest_first_with_a_keyset_cursor,
            data_survives_close_and_reopen,
            edits_deletes_and_reactions,
            attachments_are_shared_with_room_members,
            open_sessions_are_found_resumed_and_expired_once,
            a_lease_has_one_holder_until_it_runs_out,
            session_ratings_are_replaced_read_and_summarised,
            unanswered_questions_are_the_newest_user_text_of_open_assistant_rooms,
            changes_write_their_events_and_failures_write_none,
            claimed_events_are_retried_failed_trimmed_and_put_back,
        );
    };
    (@each $backend:ty: $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::store::conformance::$name::<$backend>().await;
            }
        )*
    };
}
pub(crate) use conformance_tests;

mod assistant;
mod messages;
mod outbox;
mod ratings;
mod rooms;
mod sessions;

pub(crate) use assistant::*;
pub(crate) use messages::*;
pub(crate) use outbox::*;
pub(crate) use ratings::*;
pub(crate) use rooms::*;
pub(crate) use sessions::*;

pub(crate) fn no_hook() -> CommitHook {
    Box::new(|_| {})
}

pub(crate) async fn user(store: &dyn Store, id: &str) -> UserRecord {
    store
        .upsert_user(UserUpsert {
            id: id.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
}

pub(crate) fn new_room(id: &str, members: &[&str]) -> NewRoom {
    NewRoom {
        id: id.to_owned(),
        name: Some(format!("Room {id}")),
        room_type: "group".to_owned(),
        metadata: serde_json::json!({ "topic": id }),
        direct_key: None,
        members: members
            .iter()
            .map(|m| (m.to_string(), RoomRole::Member))
            .collect(),
    }
}

/// The direct room between users `a` and `b`, asked for under `id`.
pub(crate) fn direct_ab(id: &str) -> NewRoom {
    NewRoom {
        room_type: "direct".into(),
        direct_key: Some("a\nb".into()),
        members: vec![
            ("a".into(), RoomRole::Member),
            ("b".into(), RoomRole::Member),
        ],
        ..new_room(id, &[])
    }
}

/// Awaits concurrent `create_room` calls; returns the rooms they created
/// and the existing direct rooms they were given instead.
pub(crate) async fn created_and_existing(
    tasks: Vec<tokio::task::JoinHandle<CreateOutcome>>,
) -> (Vec<RoomRecord>, Vec<RoomRecord>) {
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            CreateOutcome::Created(room) => created.push(room),
            CreateOutcome::ExistingDirect(room) => existing.push(room),
        }
    }
    (created, existing)
}

pub(crate) async fn room(store: &dyn Store, id: &str, members: &[&str]) -> RoomRecord {
    match store.create_room(new_room(id, members)).await.unwrap() {
        CreateOutcome::Created(room) => room,
        other => panic!("expected a new room, got {other:?}"),
    }
}

pub(crate) fn msg(room_id: &str, sender_id: &str, content: &str) -> NewMessage {
    NewMessage {
        id: uuid::Uuid::now_v7().to_string(),
        room_id: room_id.to_owned(),
        sender_id: sender_id.to_owned(),
        content: content.to_owned(),
        message_type: MessageType::Text,
        reply_to: None,
        metadata: serde_json::json!({}),
        attachment: None,
        location: None,
        client_msg_id: None,
        created_at: Timestamp::now(),
        missed_by: Vec::new(),
    }
}

pub(crate) async fn send(
    store: &dyn Store,
    room_id: &str,
    sender_id: &str,
    content: &str,
) -> MessageRecord {
    match store
        .append_message(msg(room_id, sender_id, content), no_hook())
        .await
        .unwrap()
    {
        AppendOutcome::Stored(m) => m,
        other => panic!("expected a stored message, got {other:?}"),
    }
}

pub(crate) async fn last_seq(store: &dyn Store, room_id: &str) -> i64 {
    store.get_room(room_id).await.unwrap().unwrap().last_seq
}

/// The seqs of every stored message of the room, ascending, read page by page.
pub(crate) async fn stored_seqs(store: &dyn Store, room_id: &str) -> Vec<i64> {
    let mut seqs = Vec::new();
    loop {
        let after = seqs.last().copied().unwrap_or(0);
        let (page, more) = store
            .history(room_id, HistoryPage::After(after), 500)
            .await
            .unwrap();
        seqs.extend(page.iter().map(|m| m.seq));
        if !more {
            return seqs;
        }
    }
}

pub(crate) async fn message_count(store: &dyn Store, room_id: &str) -> i64 {
    stored_seqs(store, room_id).await.len() as i64
}

/// Issue 4's unread counts in the room `big` of members `a` and `b`, which a
/// backend seeded with `seeded` messages from `a` (ids `seed-N`, seqs 1…):
/// then, through the real paths, b writes 3, a deletes 2 of theirs and b
/// reads half the room; checked for one member and in the room list.
pub(crate) async fn unread_counts_in_a_seeded_room(store: &dyn Store, seeded: i64) {
    assert_eq!(store.unread_count("big", "b").await.unwrap(), seeded);
    assert_eq!(
        store.unread_count("big", "a").await.unwrap(),
        0,
        "all a's own"
    );
    for i in 0..3 {
        send(store, "big", "b", &format!("b{i}")).await;
    }
    for seq in [10, seeded] {
        store
            .delete_message("big", &format!("seed-{seq}"))
            .await
            .unwrap();
    }
    assert_eq!(store.unread_count("big", "b").await.unwrap(), seeded - 2);
    assert_eq!(
        store.unread_count("big", "a").await.unwrap(),
        3,
        "b's three"
    );
    store.mark_read("big", "b", seeded / 2).await.unwrap();
    let expected_b = seeded / 2 - 1; // the last seq is deleted
    assert_eq!(store.unread_count("big", "b").await.unwrap(), expected_b);
    let list = store.list_user_rooms("b", 10, None).await.unwrap();
    assert_eq!(list[0].unread_count, expected_b);
}
