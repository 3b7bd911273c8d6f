//! Conformance: appends and their seqs, history, read state, edits,
//! reactions and attachments.

use super::*;

/// Commit hooks are where core fans out; they must see a room's seqs in
/// order however the senders race.
pub(crate) async fn commit_hooks_run_in_seq_order_under_concurrent_appends<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    for i in 0..8 {
        user(&*store, &format!("u{i}")).await;
    }
    room(&*store, "r", &[]).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, seen) = (store.clone(), seen.clone());
            tokio::spawn(async move {
                for n in 0..40 {
                    let seen = seen.clone();
                    let hook: CommitHook = Box::new(move |outcome| {
                        if let AppendOutcome::Stored(m) = outcome {
                            seen.lock().unwrap().push(m.seq);
                        }
                    });
                    store
                        .append_message(msg("r", &format!("u{i}"), &format!("{i}:{n}")), hook)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), (1..=320).collect::<Vec<_>>());
    // A failed append runs no hook.
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    let hook: CommitHook = Box::new(move |_| flag.store(true, Ordering::SeqCst));
    assert!(
        store
            .append_message(msg("missing", "u0", "x"), hook)
            .await
            .is_err()
    );
    assert!(!ran.load(Ordering::SeqCst));
}

pub(crate) async fn concurrent_appends_get_every_seq_exactly_once<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    for i in 0..8 {
        user(&*store, &format!("u{i}")).await;
    }
    room(&*store, "r", &[]).await;

    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for n in 0..50 {
                    let m = send(&*store, "r", &format!("u{i}"), &format!("{i}:{n}")).await;
                    seqs.push(m.seq);
                }
                seqs
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "one sender's seqs increase"
        );
        seqs.extend(mine);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
    assert_eq!(last_seq(&*store, "r").await, 400);

    assert_eq!(
        stored_seqs(&*store, "r").await,
        (1..=400).collect::<Vec<_>>()
    );
    store.close().await;
}

pub(crate) async fn repeated_client_msg_id_returns_the_original_and_uses_no_seq<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    user(&*store, "a").await;
    user(&*store, "b").await;
    room(&*store, "r", &["a", "b"]).await;
    room(&*store, "r2", &["a"]).await;

    let mut first = msg("r", "a", "hello");
    first.client_msg_id = Some("c1".into());
    first.metadata = serde_json::json!({ "x": 1 });
    first.location = Some(Location {
        lat: 1.5,
        lng: -2.25,
    });
    let AppendOutcome::Stored(original) = store
        .append_message(first.clone(), no_hook())
        .await
        .unwrap()
    else {
        panic!("first send must store");
    };
    assert_eq!(original.seq, 1);

    // Same key, new id and text (a retry after a lost ack): the original comes back.
    let mut retry = msg("r", "a", "hello again");
    retry.client_msg_id = Some("c1".into());
    let again = store.append_message(retry, no_hook()).await.unwrap();
    assert_eq!(again, AppendOutcome::Duplicate(original.clone()));
    assert_eq!(last_seq(&*store, "r").await, 1);
    assert_eq!(message_count(&*store, "r").await, 1);

    // The key is per sender and per room.
    let mut other_sender = msg("r", "b", "mine");
    other_sender.client_msg_id = Some("c1".into());
    assert!(
        matches!(store.append_message(other_sender, no_hook()).await.unwrap(), AppendOutcome::Stored(m) if m.seq == 2)
    );
    let mut other_room = msg("r2", "a", "there");
    other_room.client_msg_id = Some("c1".into());
    assert!(
        matches!(store.append_message(other_room, no_hook()).await.unwrap(), AppendOutcome::Stored(m) if m.seq == 1)
    );

    // What was acked is what is read back.
    assert_eq!(
        store.get_message("r", &original.id).await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(store.get_message("r2", &original.id).await.unwrap(), None);
    store.close().await;
}

pub(crate) async fn failed_appends_store_nothing_and_use_no_seq<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    user(&*store, "a").await;
    room(&*store, "r", &["a"]).await;
    send(&*store, "r", "a", "one").await;

    let err = store
        .append_message(msg("missing", "a", "x"), no_hook())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err}");
    let err = store
        .append_message(msg("r", "ghost", "x"), no_hook())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err}");

    // A taken message id fails the insert after the seq was bumped: the
    // savepoint takes the bump back.
    let first = send(&*store, "r", "a", "two").await;
    let mut clash = msg("r", "a", "x");
    clash.id = first.id.clone();
    let err = store.append_message(clash, no_hook()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err}");

    assert_eq!(last_seq(&*store, "r").await, 2);
    assert_eq!(send(&*store, "r", "a", "three").await.seq, 3);
    assert_eq!(message_count(&*store, "r").await, 3);
    store.close().await;
}

/// What an append must answer: `Ok((room, seq, duplicate))` or the error's name.
pub(crate) type Expected = Result<(&'static str, i64, bool), &'static str>;

/// The appends of [`queued_appends_answer_in_order_like_single_ones`], queued
/// in this order after `r` holds one message with `client_msg_id` `old`:
/// fresh, fresh, repeat of the first, unknown room, unknown sender, repeat of
/// `old`, another room, fresh. Returns what each must answer: `Ok((room,
/// seq, duplicate))` or the error's name.
pub(crate) fn mixed_appends() -> (Vec<NewMessage>, Vec<Expected>) {
    let keyed = |room: &str, sender: &str, key: &str| {
        let mut m = msg(room, sender, key);
        m.client_msg_id = Some(key.to_owned());
        m
    };
    let appends = vec![
        keyed("r", "a", "k1"),
        msg("r", "b", "plain"),
        keyed("r", "a", "k1"),
        msg("missing", "a", "x"),
        msg("r", "ghost", "x"),
        keyed("r", "a", "old"),
        msg("r2", "b", "elsewhere"),
        keyed("r", "b", "k1"),
    ];
    let expected = vec![
        Ok(("r", 2, false)),
        Ok(("r", 3, false)),
        Ok(("r", 2, true)),
        Err("NotFound"),
        Err("NotFound"),
        Ok(("r", 1, true)),
        Ok(("r2", 1, false)),
        Ok(("r", 4, false)),
    ];
    (appends, expected)
}

/// What an append answered, in the shape of [`mixed_appends`]' expectations.
pub(crate) fn answer_shape(
    answer: &Result<AppendOutcome, StoreError>,
) -> Result<(String, i64, bool), &'static str> {
    match answer {
        Ok(AppendOutcome::Stored(m)) => Ok((m.room_id.clone(), m.seq, false)),
        Ok(AppendOutcome::Duplicate(m)) => Ok((m.room_id.clone(), m.seq, true)),
        Err(StoreError::NotFound) => Err("NotFound"),
        Err(StoreError::AlreadyExists) => Err("AlreadyExists"),
        Err(_) => Err("other"),
    }
}

/// Sets up the users and rooms [`mixed_appends`] expects.
pub(crate) async fn mixed_appends_setup(store: &dyn Store) {
    user(store, "a").await;
    user(store, "b").await;
    room(store, "r", &["a", "b"]).await;
    room(store, "r2", &["b"]).await;
    let mut old = msg("r", "a", "old");
    old.client_msg_id = Some("old".into());
    store.append_message(old, no_hook()).await.unwrap();
}

pub(crate) async fn queued_appends_answer_in_order_like_single_ones<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    mixed_appends_setup(&*store).await;
    let (appends, expected) = mixed_appends();
    let hooked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut pending = Vec::new();
    for (n, message) in appends.into_iter().enumerate() {
        let hooked = hooked.clone();
        let hook: CommitHook = Box::new(move |_| hooked.lock().unwrap().push(n));
        // Queued one after another, none awaited: they may share commits.
        pending.push(store.queue_append(message, hook).await.unwrap());
    }
    let mut answers = Vec::new();
    for answer in pending {
        answers.push(answer.await);
    }
    for (n, (answer, want)) in answers.iter().zip(&expected).enumerate() {
        let want = want.map(|(room, seq, dup)| (room.to_owned(), seq, dup));
        assert_eq!(answer_shape(answer), want, "append {n}");
    }
    // Hooks run for every successful append, in queue order within each
    // room (rooms may be written side by side: PostgreSQL's writer lanes).
    let hooked = hooked.lock().unwrap().clone();
    let of_room = |room: &str| -> Vec<usize> {
        let in_room = |n: &&usize| expected[**n].is_ok_and(|(r, ..)| r == room);
        hooked.iter().filter(in_room).copied().collect()
    };
    assert_eq!(of_room("r"), vec![0, 1, 2, 5, 7]);
    assert_eq!(of_room("r2"), vec![6]);
    assert_eq!(
        hooked.len(),
        6,
        "one hook per successful append: {hooked:?}"
    );
    assert_eq!(stored_seqs(&*store, "r").await, vec![1, 2, 3, 4]);
    assert_eq!(last_seq(&*store, "r").await, 4);
    assert_eq!(last_seq(&*store, "r2").await, 1);
    // The one stored in a batch reads back exactly as answered.
    let Ok(AppendOutcome::Stored(fresh)) = &answers[1] else {
        panic!("append 1 was stored");
    };
    let read = store.get_message("r", &fresh.id).await.unwrap();
    assert_eq!(read.as_ref(), Some(fresh));
    store.close().await;
}

pub(crate) async fn history_pages_in_all_three_directions<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    user(&*store, "a").await;
    room(&*store, "r", &["a"]).await;
    room(&*store, "empty", &["a"]).await;
    for n in 1..=10 {
        send(&*store, "r", "a", &format!("m{n}")).await;
    }
    let seqs = |page: &[MessageRecord]| page.iter().map(|m| m.seq).collect::<Vec<_>>();

    let (page, more) = store.history("r", HistoryPage::Latest, 4).await.unwrap();
    assert_eq!((seqs(&page), more), (vec![7, 8, 9, 10], true));
    assert_eq!(page[3].content, "m10");
    assert_eq!(page[3].sender_username, "a");

    let (page, more) = store.history("r", HistoryPage::Before(7), 4).await.unwrap();
    assert_eq!((seqs(&page), more), (vec![3, 4, 5, 6], true));
    let (page, more) = store.history("r", HistoryPage::Before(3), 4).await.unwrap();
    assert_eq!((seqs(&page), more), (vec![1, 2], false));
    let (page, more) = store.history("r", HistoryPage::Before(5), 4).await.unwrap();
    assert_eq!(
        (seqs(&page), more),
        (vec![1, 2, 3, 4], false),
        "exactly the rest"
    );

    let (page, more) = store.history("r", HistoryPage::After(0), 4).await.unwrap();
    assert_eq!((seqs(&page), more), (vec![1, 2, 3, 4], true));
    let (page, more) = store.history("r", HistoryPage::After(6), 4).await.unwrap();
    assert_eq!((seqs(&page), more), (vec![7, 8, 9, 10], false));
    let (page, more) = store.history("r", HistoryPage::After(10), 4).await.unwrap();
    assert_eq!((seqs(&page), more), (vec![], false));

    let (page, more) = store.history("r", HistoryPage::Latest, 100).await.unwrap();
    assert_eq!((seqs(&page), more), ((1..=10).collect(), false));
    let (page, more) = store
        .history("empty", HistoryPage::Latest, 4)
        .await
        .unwrap();
    assert_eq!((page.len(), more), (0, false));
    let (page, more) = store.history("r", HistoryPage::Latest, 0).await.unwrap();
    assert_eq!((page.len(), more), (0, true));
    store.close().await;
}

pub(crate) async fn mark_read_moves_forward_only_and_clamps<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    user(&*store, "a").await;
    user(&*store, "b").await;
    room(&*store, "r", &["a", "b"]).await;
    for n in 0..5 {
        send(&*store, "r", "a", &format!("m{n}")).await;
    }
    assert_eq!(store.unread_count("r", "b").await.unwrap(), 5);
    assert_eq!(store.mark_read("r", "b", 3).await.unwrap(), 3);
    assert_eq!(store.unread_count("r", "b").await.unwrap(), 2);
    assert_eq!(
        store.mark_read("r", "b", 1).await.unwrap(),
        3,
        "never backward"
    );
    assert_eq!(store.mark_read("r", "b", -7).await.unwrap(), 3);
    assert_eq!(store.mark_read("r", "b", 3).await.unwrap(), 3);
    assert_eq!(
        store.mark_read("r", "b", 99).await.unwrap(),
        5,
        "clamped to last_seq"
    );
    assert_eq!(
        store
            .get_member("r", "b")
            .await
            .unwrap()
            .unwrap()
            .last_read_seq,
        5
    );
    assert_eq!(store.unread_count("r", "b").await.unwrap(), 0);

    assert!(matches!(
        store.mark_read("r", "ghost", 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.mark_read("nope", "b", 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.unread_count("r", "ghost").await,
        Err(StoreError::NotFound)
    ));
    store.close().await;
}

pub(crate) async fn unread_count_skips_own_and_deleted_messages<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    user(&*store, "a").await;
    user(&*store, "b").await;
    room(&*store, "r", &["a", "b"]).await;
    send(&*store, "r", "a", "from a").await;
    let gone = send(&*store, "r", "a", "deleted").await;
    send(&*store, "r", "b", "from b").await;
    send(&*store, "r", "a", "from a again").await;

    store.delete_message("r", &gone.id).await.unwrap();

    assert_eq!(
        store.unread_count("r", "b").await.unwrap(),
        2,
        "a's two live messages"
    );
    assert_eq!(store.unread_count("r", "a").await.unwrap(), 1, "b's one");
    let deleted = store.get_message("r", &gone.id).await.unwrap().unwrap();
    assert!(deleted.deleted);
    assert_eq!(deleted.seq, gone.seq, "a deleted message keeps its seq");
    store.close().await;
}

pub(crate) async fn room_list_is_newest_first_with_a_keyset_cursor<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    user(&*store, "me").await;
    user(&*store, "you").await;
    // Created in this order; activity set so that two rooms tie.
    for id in ["r1", "r2", "r3", "r4", "r5"] {
        room(&*store, id, &["me", "you"]).await;
    }
    room(&*store, "not-mine", &["you"]).await;
    let at = |room: &str, millis: i64, sender: &str| {
        let mut m = msg(room, sender, &format!("last in {room}"));
        m.created_at = Timestamp(millis);
        m
    };
    // Activity is the max of creation and message times, so use far-future times.
    let t = Timestamp::now().millis() + 1_000_000;
    store
        .append_message(at("r3", t + 30, "you"), no_hook())
        .await
        .unwrap();
    store
        .append_message(at("r1", t + 20, "you"), no_hook())
        .await
        .unwrap();
    store
        .append_message(at("r1", t + 20, "me"), no_hook())
        .await
        .unwrap();
    store
        .append_message(at("r4", t + 20, "you"), no_hook())
        .await
        .unwrap();
    store
        .append_message(at("r5", t + 10, "me"), no_hook())
        .await
        .unwrap();

    let all = store.list_user_rooms("me", 100, None).await.unwrap();
    let ids: Vec<_> = all.iter().map(|e| e.room.id.as_str()).collect();
    assert_eq!(
        ids,
        ["r3", "r1", "r4", "r5", "r2"],
        "by activity, ties by id"
    );

    let r1 = &all[1];
    assert_eq!(r1.member.user_id, "me");
    assert_eq!(r1.member.room_id, "r1");
    assert_eq!(r1.unread_count, 1, "your message, not mine");
    let last = r1.last_message.as_ref().unwrap();
    assert_eq!((last.seq, last.sender_id.as_str()), (2, "me"));
    assert_eq!(all[0].unread_count, 1);
    assert_eq!(all[3].unread_count, 0);
    assert_eq!(all[4].last_message, None);
    assert_eq!(all[4].unread_count, 0);

    // Page by two, each page starting after the previous page's last entry.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_user_rooms("me", 2, after.clone()).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        let last = page.last().unwrap();
        after = Some((last.room.last_activity, last.room.id.clone()));
        paged.extend(page.into_iter().map(|e| e.room.id));
    }
    assert_eq!(paged, ids);
    assert!(
        store
            .list_user_rooms("nobody", 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
}

pub(crate) async fn data_survives_close_and_reopen<B: Backend>() {
    let (backend, store) = B::fresh().await;
    user(&*store, "a").await;
    room(&*store, "r", &["a"]).await;
    let sent = send(&*store, "r", "a", "kept").await;
    store.mark_read("r", "a", 1).await.unwrap();
    store.close().await;

    let err = store
        .append_message(msg("r", "a", "late"), no_hook())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err}");
    assert!(matches!(store.get_room("r").await, Err(StoreError::Closed)));
    assert!(matches!(store.ping().await, Err(StoreError::Closed)));
    store.close().await; // twice is harmless

    let store = backend.open_again().await;
    assert_eq!(store.get_message("r", &sent.id).await.unwrap(), Some(sent));
    assert_eq!(last_seq(&*store, "r").await, 1);
    assert_eq!(
        store
            .get_member("r", "a")
            .await
            .unwrap()
            .unwrap()
            .last_read_seq,
        1
    );
    assert_eq!(send(&*store, "r", "a", "next").await.seq, 2);
    store.close().await;
}

pub(crate) async fn edits_deletes_and_reactions<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    for id in ["a", "b", "c"] {
        user(&*store, id).await;
    }
    room(&*store, "r", &["a", "b", "c"]).await;
    room(&*store, "other", &["a"]).await;
    let first = send(&*store, "r", "a", "first").await;

    let at = Timestamp(first.created_at.millis() + 5);
    let edited = store
        .edit_message("r", &first.id, "first, edited".into(), at)
        .await
        .unwrap();
    assert_eq!(edited.content, "first, edited");
    assert_eq!(edited.edited_at, Some(at));
    assert_eq!(edited.seq, first.seq);
    assert!(matches!(
        store.edit_message("other", &first.id, "x".into(), at).await,
        Err(StoreError::NotFound)
    ));

    let react = |user: &str, emoji: &str, present: bool, millis: i64| ReactionChange {
        room_id: "r".into(),
        message_id: first.id.clone(),
        user_id: user.into(),
        emoji: emoji.into(),
        present,
        at: Timestamp(millis),
    };
    store
        .set_reaction(react("c", "👍", true, 10))
        .await
        .unwrap();
    store
        .set_reaction(react("a", "👍", true, 20))
        .await
        .unwrap();
    store
        .set_reaction(react("a", "👍", true, 30))
        .await
        .unwrap();
    let map = store
        .set_reaction(react("b", "🎉", true, 40))
        .await
        .unwrap();
    let expected: std::collections::BTreeMap<String, Vec<String>> = [
        ("👍".to_owned(), vec!["c".to_owned(), "a".to_owned()]),
        ("🎉".to_owned(), vec!["b".to_owned()]),
    ]
    .into();
    assert_eq!(
        map, expected,
        "users in reaction order, adding twice is a no-op"
    );
    let read = store.get_message("r", &first.id).await.unwrap().unwrap();
    assert_eq!(read.reactions, expected);
    let (page, _) = store.history("r", HistoryPage::Latest, 10).await.unwrap();
    assert_eq!(page[0].reactions, expected);

    let map = store
        .set_reaction(react("b", "🎉", false, 50))
        .await
        .unwrap();
    assert_eq!(map.len(), 1);
    let map = store
        .set_reaction(react("b", "🎉", false, 60))
        .await
        .unwrap();
    assert_eq!(map.len(), 1, "removing twice is a no-op");

    let deleted = store.delete_message("r", &first.id).await.unwrap();
    assert!(deleted.deleted);
    assert_eq!(deleted.content, "");
    assert!(
        deleted.reactions.is_empty(),
        "reactions go with the message"
    );
    assert_eq!(deleted.seq, first.seq);
    assert!(
        store.delete_message("r", &first.id).await.unwrap().deleted,
        "idempotent"
    );
    assert!(matches!(
        store.edit_message("r", &first.id, "x".into(), at).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.set_reaction(react("a", "👍", true, 70)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_message("r", "no-such-id").await,
        Err(StoreError::NotFound)
    ));
    store.close().await;
}

pub(crate) async fn attachments_are_shared_with_room_members<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    for id in ["a", "b", "c"] {
        user(&*store, id).await;
    }
    room(&*store, "r", &["a", "b"]).await;
    let upload = crate::store::AttachmentRecord {
        id: "att-1".into(),
        uploader_id: "a".into(),
        sha256: "ab".repeat(32),
        content_type: "image/png".into(),
        size: 1234,
        name: "cat.png".into(),
        created_at: Timestamp(1_700_000_000_000),
    };
    store.create_attachment(upload.clone()).await.unwrap();
    assert!(matches!(
        store.create_attachment(upload.clone()).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(
        store.get_attachment("att-1").await.unwrap(),
        Some(upload.clone())
    );
    assert_eq!(store.get_attachment("nope").await.unwrap(), None);
    assert!(!store.attachment_shared_with("att-1", "b").await.unwrap());

    let mut image = msg("r", "a", "");
    image.message_type = MessageType::Image;
    image.attachment = Some(upload.clone());
    let AppendOutcome::Stored(stored) = store.append_message(image, no_hook()).await.unwrap()
    else {
        panic!("the image message must store");
    };
    assert_eq!(
        store
            .get_message("r", &stored.id)
            .await
            .unwrap()
            .unwrap()
            .attachment,
        Some(upload)
    );
    assert!(store.attachment_shared_with("att-1", "b").await.unwrap());
    assert!(!store.attachment_shared_with("att-1", "c").await.unwrap());
    store.close().await;
}
