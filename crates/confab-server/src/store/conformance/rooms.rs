//! Conformance: users, rooms and members.

use super::*;

pub(crate) async fn upsert_user_creates_then_changes_only_given_fields<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    let created = user(&*store, "u1").await;
    assert_eq!(created.username, "u1", "the handle defaults to the id");
    assert_eq!(created.name, None);
    assert_eq!(created.role, GlobalRole::Member);
    assert!(!created.disabled);

    let changed = store
        .upsert_user(UserUpsert {
            id: "u1".into(),
            name: Some("Ada".into()),
            role: Some(GlobalRole::Admin),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(changed.username, "u1");
    assert_eq!(changed.name.as_deref(), Some("Ada"));
    assert_eq!(changed.role, GlobalRole::Admin);
    assert_eq!(
        changed.created_at, created.created_at,
        "creation time is kept"
    );

    let changed = store
        .upsert_user(UserUpsert {
            id: "u1".into(),
            username: Some("ada".into()),
            disabled: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(changed.username, "ada");
    assert_eq!(changed.name.as_deref(), Some("Ada"), "None leaves the name");
    assert_eq!(changed.role, GlobalRole::Admin, "None leaves the role");
    assert!(changed.disabled);

    // Nothing to change: the row as it is.
    let same = store
        .upsert_user(UserUpsert {
            id: "u1".into(),
            username: Some("ada".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(same, changed);

    assert_eq!(store.get_user("u1").await.unwrap(), Some(changed));
    assert_eq!(store.get_user("nobody").await.unwrap(), None);
    store.close().await;
}

pub(crate) async fn user_with_rooms_reads_the_user_and_its_rooms_at_once<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    assert_eq!(store.user_with_rooms("u1").await.unwrap(), None);
    let created = store
        .put_user(UserUpsert {
            id: "u1".into(),
            name: Some("Ada".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store.user_with_rooms("u1").await.unwrap(),
        Some((created.clone(), Vec::new()))
    );
    user(&*store, "u2").await;
    room(&*store, "r-b", &["u1", "u2"]).await;
    room(&*store, "r-a", &["u1"]).await;
    room(&*store, "r-c", &["u2"]).await;
    let (found, rooms) = store.user_with_rooms("u1").await.unwrap().unwrap();
    assert_eq!(found, created);
    assert_eq!(rooms, ["r-a", "r-b"], "its rooms only, ascending");
    // put_user writes without looking: an existing user is updated.
    let renamed = store
        .put_user(UserUpsert {
            id: "u1".into(),
            username: Some("ada".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(renamed.username, "ada");
    assert_eq!(renamed.name.as_deref(), Some("Ada"));
    assert_eq!(renamed.created_at, created.created_at);
    store.close().await;
}

pub(crate) async fn users_are_read_and_written_many_at_once<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    assert_eq!(store.users_with_rooms(&[]).await.unwrap(), []);
    assert_eq!(store.put_users(Vec::new()).await.unwrap(), []);
    let ada = store
        .put_user(UserUpsert {
            id: "ada".into(),
            username: Some("ada_l".into()),
            name: Some("Ada".into()),
            role: Some(GlobalRole::Admin),
            ..Default::default()
        })
        .await
        .unwrap();
    room(&*store, "r-2", &["ada"]).await;
    room(&*store, "r-1", &["ada"]).await;

    // New users get the defaults; an existing one changes only what is
    // given (None keeps the stored value, as with put_user).
    let mut stored = store
        .put_users(vec![
            UserUpsert {
                id: "ada".into(),
                name: Some("Ada L.".into()),
                ..Default::default()
            },
            UserUpsert {
                id: "bob".into(),
                ..Default::default()
            },
            UserUpsert {
                id: "cy".into(),
                username: Some("cyrus".into()),
                name: Some("Cy".into()),
                role: GlobalRole::parse("analyst"),
                disabled: Some(true),
            },
        ])
        .await
        .unwrap();
    stored.sort_by(|a, b| a.id.cmp(&b.id));
    let [ada2, bob, cy] = &stored[..] else {
        panic!("three rows, got {stored:?}");
    };
    assert_eq!(ada2.username, "ada_l", "None keeps the handle");
    assert_eq!(ada2.name.as_deref(), Some("Ada L."));
    assert_eq!(ada2.role, GlobalRole::Admin, "None keeps the role");
    assert!(!ada2.disabled, "None keeps the flag");
    assert_eq!(ada2.created_at, ada.created_at, "creation time is kept");
    assert_eq!(bob.username, "bob", "the handle defaults to the id");
    assert_eq!(
        (bob.name.as_deref(), &bob.role),
        (None, &GlobalRole::Member)
    );
    assert!(!bob.disabled);
    assert_eq!(cy.username, "cyrus");
    assert_eq!(cy.role.as_str(), "analyst");
    assert!(cy.disabled);

    // One read: each stored user with its rooms, ascending; unknown ids
    // are left out, an id asked twice comes once.
    let ids = ["cy", "nobody", "ada", "bob", "ada"].map(String::from);
    let mut found = store.users_with_rooms(&ids).await.unwrap();
    found.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    assert_eq!(
        found,
        [
            (ada2.clone(), vec!["r-1".to_owned(), "r-2".to_owned()]),
            (bob.clone(), Vec::new()),
            (cy.clone(), Vec::new()),
        ]
    );
    // What the one-user read says, too.
    assert_eq!(
        store.user_with_rooms("ada").await.unwrap(),
        Some(found[0].clone())
    );

    // A user named twice in one call: both upserts, in order.
    let twice = store
        .put_users(vec![
            UserUpsert {
                id: "dee".into(),
                name: Some("Dee".into()),
                role: Some(GlobalRole::Admin),
                ..Default::default()
            },
            UserUpsert {
                id: "dee".into(),
                name: Some("D.".into()),
                ..Default::default()
            },
        ])
        .await
        .unwrap();
    assert_eq!(twice.len(), 1, "one row: {twice:?}");
    assert_eq!(twice[0].name.as_deref(), Some("D."), "the later name");
    assert_eq!(twice[0].role, GlobalRole::Admin, "the earlier role kept");

    // Ids are bound, never spliced: quotes, backslashes, JSON and SQL.
    let odd = ["o'd\"d\\ü", "[\"x\"]", "x') OR 1=1 --", "\u{1F600}"].map(String::from);
    let users = odd.iter().map(|id| UserUpsert {
        id: id.clone(),
        ..Default::default()
    });
    let stored = store.put_users(users.collect()).await.unwrap();
    assert_eq!(stored.len(), odd.len());
    for user in &stored {
        assert!(
            odd.contains(&user.id) && user.username == user.id,
            "{user:?}"
        );
    }
    let found = store.users_with_rooms(&odd).await.unwrap();
    assert_eq!(found.len(), odd.len(), "each read back, nothing else");
    store.close().await;
}

pub(crate) async fn rooms_create_update_close_and_refuse_taken_ids<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    user(&*store, "a").await;
    user(&*store, "b").await;
    let created = room(&*store, "r1", &["a", "b"]).await;
    assert_eq!(created.last_seq, 0);
    assert_eq!(created.last_activity, created.created_at);
    assert_eq!(created.metadata, serde_json::json!({ "topic": "r1" }));
    assert!(!created.closed);
    assert_eq!(store.get_room("r1").await.unwrap(), Some(created.clone()));

    let err = store.create_room(new_room("r1", &["a"])).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err}");

    // A member who is no user: nothing is stored, not even the room.
    let err = store
        .create_room(new_room("r2", &["a", "ghost"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err}");
    assert_eq!(store.get_room("r2").await.unwrap(), None);
    assert_eq!(store.get_member("r2", "a").await.unwrap(), None);

    let renamed = store
        .update_room("r1", Some("New".into()), None)
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("New"));
    assert_eq!(renamed.metadata, created.metadata);
    let remeta = store
        .update_room("r1", None, Some(serde_json::json!({ "k": [1, 2] })))
        .await
        .unwrap();
    assert_eq!(remeta.name.as_deref(), Some("New"));
    assert_eq!(remeta.metadata, serde_json::json!({ "k": [1, 2] }));
    assert!(matches!(
        store.update_room("nope", None, None).await,
        Err(StoreError::NotFound)
    ));

    assert!(store.close_room("r1").await.unwrap().closed);
    assert!(store.close_room("r1").await.unwrap().closed, "idempotent");
    assert!(matches!(
        store.close_room("nope").await,
        Err(StoreError::NotFound)
    ));
    store.close().await;
}

pub(crate) async fn direct_rooms_are_deduplicated_even_when_created_at_once<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    user(&*store, "a").await;
    user(&*store, "b").await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let room = direct_ab(&format!("dm-{i}"));
            tokio::spawn(async move { store.create_room(room).await.unwrap() })
        })
        .collect();
    let (created, existing) = created_and_existing(tasks).await;
    assert_eq!(created.len(), 1);
    assert_eq!(existing.len(), 7);
    assert!(existing.iter().all(|room| *room == created[0]));

    // Later, with an id that is also taken: still the existing room.
    let again = store.create_room(direct_ab(&created[0].id)).await.unwrap();
    assert_eq!(again, CreateOutcome::ExistingDirect(created[0].clone()));
    assert_eq!(store.counts().await.unwrap(), (1, 0), "one room stored");
    store.close().await;
}

pub(crate) async fn members_are_added_changed_and_removed<B: Backend>() {
    let (_backend, store) = B::fresh().await;
    for id in ["a", "b", "c"] {
        user(&*store, id).await;
    }
    store
        .upsert_user(UserUpsert {
            id: "b".into(),
            name: Some("Bea".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    room(&*store, "r", &["a"]).await;
    send(&*store, "r", "a", "one").await;
    send(&*store, "r", "a", "two").await;

    let b = store.add_member("r", "b", RoomRole::Admin).await.unwrap();
    assert_eq!(b.role, RoomRole::Admin);
    assert_eq!(b.last_read_seq, 2, "a new member has read what came before");
    assert_eq!(store.unread_count("r", "b").await.unwrap(), 0);

    // Adding again changes the role only.
    let b2 = store.add_member("r", "b", RoomRole::Viewer).await.unwrap();
    assert_eq!(b2.role, RoomRole::Viewer);
    assert_eq!(b2.joined_at, b.joined_at);
    assert_eq!(store.get_member("r", "b").await.unwrap(), Some(b2.clone()));

    let members = store.list_members("r").await.unwrap();
    let ids: Vec<_> = members.iter().map(|m| m.member.user_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(members[1].name.as_deref(), Some("Bea"));
    assert_eq!(members[1].username, "b");

    assert!(matches!(
        store.add_member("r", "ghost", RoomRole::Member).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.add_member("nope", "c", RoomRole::Member).await,
        Err(StoreError::NotFound)
    ));

    assert!(store.remove_member("r", "b").await.unwrap());
    assert!(!store.remove_member("r", "b").await.unwrap());
    assert_eq!(store.get_member("r", "b").await.unwrap(), None);
    assert_eq!(store.list_members("r").await.unwrap().len(), 1);
    store.close().await;
}
