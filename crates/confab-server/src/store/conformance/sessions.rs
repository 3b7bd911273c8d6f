//! Conformance: assistant sessions (the rooms `/ws/assistant/` resumes and
//! the sweeper closes) and the leases that keep a chore on one node.

use super::*;

/// An `assistant` room owned by `owner`, with the bot as a member.
async fn session(store: &dyn Store, id: &str, owner: &str) -> RoomRecord {
    let mut room = new_room(id, &[]);
    room.room_type = "assistant".into();
    room.members = vec![
        (owner.to_owned(), RoomRole::Owner),
        ("bot".to_owned(), RoomRole::Member),
    ];
    match store.create_room(room).await.unwrap() {
        CreateOutcome::Created(room) => room,
        other => panic!("expected a new room, got {other:?}"),
    }
}

/// A time `ms` milliseconds from now.
fn in_ms(ms: i64) -> Timestamp {
    Timestamp(Timestamp::now().millis() + ms)
}

pub(crate) async fn open_sessions_are_found_resumed_and_expired_once<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    for id in ["v1", "v2", "bot"] {
        user(&*store, id).await;
    }
    assert_eq!(store.open_session("v1").await.unwrap(), None);
    let older = session(&*store, "s-old", "v1").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let newer = session(&*store, "s-new", "v1").await;
    // Not a session of v1's: a group room it owns, a session it is only a
    // member of.
    let mut group = new_room("g", &[]);
    group.members = vec![("v1".into(), RoomRole::Owner)];
    store.create_room(group).await.unwrap();
    let mut other = new_room("s-other", &[]);
    other.room_type = "assistant".into();
    other.members = vec![
        ("v2".into(), RoomRole::Owner),
        ("v1".into(), RoomRole::Member),
    ];
    store.create_room(other).await.unwrap();

    let found = store.open_session("v1").await.unwrap().unwrap();
    assert_eq!(found.id, newer.id, "the newest activity wins");
    // A message makes the older one the newest.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    send(&*store, &older.id, "v1", "still there?").await;
    let found = store.open_session("v1").await.unwrap().unwrap();
    assert_eq!(found.id, older.id);

    // Idle: nothing is idle since before a minute ago; all three sessions
    // are idle since before a minute from now, the longest idle first.
    assert!(
        store
            .idle_sessions(in_ms(-60_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let idle = store.idle_sessions(in_ms(60_000), 10).await.unwrap();
    assert_eq!(idle.len(), 3, "{idle:?}");
    assert_eq!(idle.last().map(String::as_str), Some("s-old"), "{idle:?}");
    assert_eq!(
        store.idle_sessions(in_ms(60_000), 1).await.unwrap().len(),
        1
    );

    // A session busy since the cutoff is not closed; an idle one is, once.
    assert_eq!(
        store.expire_session("s-old", in_ms(-60_000)).await.unwrap(),
        None
    );
    let closed = store.expire_session("s-old", in_ms(60_000)).await.unwrap();
    assert!(closed.is_some_and(|room| room.closed));
    assert_eq!(
        store.expire_session("s-old", in_ms(60_000)).await.unwrap(),
        None,
        "closed already: nobody announces it twice"
    );
    assert_eq!(
        store.expire_session("g", in_ms(60_000)).await.unwrap(),
        None
    );
    assert_eq!(
        store.expire_session("nope", in_ms(60_000)).await.unwrap(),
        None
    );
    assert!(!store.get_room("g").await.unwrap().unwrap().closed);
    let found = store.open_session("v1").await.unwrap().unwrap();
    assert_eq!(found.id, "s-new", "closed sessions are not resumed");
    store.close_room("s-new").await.unwrap();
    assert_eq!(store.open_session("v1").await.unwrap(), None);
    let idle = store.idle_sessions(in_ms(60_000), 10).await.unwrap();
    assert_eq!(idle, vec!["s-other".to_owned()]);
    store.close().await;
}

pub(crate) async fn a_lease_has_one_holder_until_it_runs_out<B: Backend>() {
    let (backend, store) = B::fresh().await;
    let other_node = backend.open_again().await;
    assert!(
        store
            .take_lease("sweep", "n1", in_ms(60_000))
            .await
            .unwrap()
    );
    assert!(
        !other_node
            .take_lease("sweep", "n2", in_ms(60_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_lease("sweep", "n1", in_ms(60_000))
            .await
            .unwrap(),
        "the holder renews"
    );
    assert!(
        other_node
            .take_lease("other", "n2", in_ms(60_000))
            .await
            .unwrap(),
        "leases are per name"
    );
    // n1 lets it run out (renewed into the past); n2 takes it.
    assert!(
        store
            .take_lease("sweep", "n1", in_ms(-1_000))
            .await
            .unwrap()
    );
    assert!(
        other_node
            .take_lease("sweep", "n2", in_ms(60_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_lease("sweep", "n1", in_ms(60_000))
            .await
            .unwrap()
    );
    other_node.close().await;
    store.close().await;
}
