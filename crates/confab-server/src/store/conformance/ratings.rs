//! Conformance: session ratings.

use super::*;

/// A rating of `room_id` by `user_id`, at a fixed time so that records compare whole.
fn rating(room_id: &str, user_id: &str, value: i64, feedback: Option<&str>) -> RatingRecord {
    RatingRecord {
        room_id: room_id.to_owned(),
        user_id: user_id.to_owned(),
        rating: value,
        feedback: feedback.map(str::to_owned),
        rated_at: Timestamp(1_700_000_000_000 + value),
    }
}

pub(crate) async fn session_ratings_are_replaced_read_and_summarised<B: Backend>() {
    let (backend, store) = B::fresh().await;
    user(&*store, "a").await;
    user(&*store, "b").await;
    for id in ["s1", "s2"] {
        let session = NewRoom {
            room_type: "assistant".into(),
            ..new_room(id, &["a", "b"])
        };
        store.create_room(session).await.unwrap();
    }
    assert_eq!(store.get_rating("s1").await.unwrap(), None);
    assert_eq!(store.rating_summary().await.unwrap(), (0, None));

    let first = rating("s1", "a", 4, Some("quick and right"));
    assert_eq!(store.rate_session(first.clone()).await.unwrap(), first);
    assert_eq!(store.get_rating("s1").await.unwrap(), Some(first));

    // The latest rating wins, whoever gives it; no feedback is stored as none.
    let second = rating("s1", "b", 2, None);
    assert_eq!(store.rate_session(second.clone()).await.unwrap(), second);
    assert_eq!(store.get_rating("s1").await.unwrap(), Some(second.clone()));
    assert_eq!(store.rating_summary().await.unwrap(), (1, Some(2.0)));

    store
        .rate_session(rating("s2", "a", 5, None))
        .await
        .unwrap();
    assert_eq!(store.rating_summary().await.unwrap(), (2, Some(3.5)));
    assert_eq!(store.get_rating("nowhere").await.unwrap(), None);

    // The room and the rater must exist; the schema keeps ratings to 1–5.
    let err = store
        .rate_session(rating("nowhere", "a", 3, None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err}");
    let err = store
        .rate_session(rating("s1", "nobody", 3, None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err}");
    for out_of_range in [0, 6] {
        assert!(
            store
                .rate_session(rating("s1", "a", out_of_range, None))
                .await
                .is_err(),
            "{out_of_range} was stored"
        );
    }
    assert_eq!(store.get_rating("s1").await.unwrap(), Some(second.clone()));
    store.close().await;

    let reopened = backend.open_again().await;
    assert_eq!(reopened.get_rating("s1").await.unwrap(), Some(second));
    assert_eq!(reopened.rating_summary().await.unwrap(), (2, Some(3.5)));
    reopened.close().await;
}
