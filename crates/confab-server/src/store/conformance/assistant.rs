//! Conformance: what the assistant bot reads of the store.

use super::*;
use crate::identity::{ASSISTANT_USER, SYSTEM_USER};
use crate::store::UnansweredQuestion;

/// An open room of type `assistant` with `a` and the bot as members.
async fn assistant_room(store: &dyn Store, id: &str) {
    let room = NewRoom {
        room_type: "assistant".into(),
        ..new_room(id, &["a", ASSISTANT_USER])
    };
    store.create_room(room).await.unwrap();
}

/// Appends a message of `kind` stored at `when`.
async fn say(
    store: &dyn Store,
    room_id: &str,
    sender_id: &str,
    kind: MessageType,
    when: Timestamp,
) -> MessageRecord {
    let message = NewMessage {
        message_type: kind,
        created_at: when,
        missed_by: Vec::new(),
        ..msg(room_id, sender_id, "words")
    };
    match store.append_message(message, no_hook()).await.unwrap() {
        AppendOutcome::Stored(m) => m,
        other => panic!("expected a stored message, got {other:?}"),
    }
}

/// The rooms and seqs of the questions found.
fn found(questions: &[UnansweredQuestion]) -> Vec<(&str, i64)> {
    questions
        .iter()
        .map(|q| (q.room_id.as_str(), q.seq))
        .collect()
}

pub(crate) async fn unanswered_questions_are_the_newest_user_text_of_open_assistant_rooms<
    B: Backend,
>() {
    let (_backend, store) = B::fresh().await;
    let store = &*store;
    for id in ["a", "b", ASSISTANT_USER, SYSTEM_USER] {
        user(store, id).await;
    }
    // Times in seconds after `t`, a minute ago: all in the past.
    let t = Timestamp::now().millis() - 60_000;
    let at = |seconds: i64| Timestamp(t + seconds * 1000);
    let text = MessageType::Text;

    // Asked, answered, asked again: the second question is open.
    assistant_room(store, "asked").await;
    say(store, "asked", "a", text, at(10)).await;
    say(store, "asked", ASSISTANT_USER, text, at(11)).await;
    let asked = say(store, "asked", "a", text, at(12)).await;
    // Answered.
    assistant_room(store, "answered").await;
    say(store, "answered", "a", text, at(10)).await;
    say(store, "answered", ASSISTANT_USER, text, at(11)).await;
    // The oldest open question, and one from another member.
    assistant_room(store, "early").await;
    let early = say(store, "early", "a", text, at(5)).await;
    assistant_room(store, "other").await;
    store
        .add_member("other", "b", RoomRole::Member)
        .await
        .unwrap();
    say(store, "other", "b", text, at(20)).await;
    // After the question came a system notice, or the question was
    // deleted, or it is no text, or the room was closed: nothing to answer.
    assistant_room(store, "noticed").await;
    say(store, "noticed", "a", text, at(10)).await;
    say(store, "noticed", SYSTEM_USER, text, at(11)).await;
    assistant_room(store, "deleted").await;
    let gone = say(store, "deleted", "a", text, at(10)).await;
    store.delete_message("deleted", &gone.id).await.unwrap();
    assistant_room(store, "notice").await;
    say(store, "notice", "a", MessageType::System, at(10)).await;
    assistant_room(store, "closed").await;
    say(store, "closed", "a", text, at(10)).await;
    store.close_room("closed").await.unwrap();
    // Not an assistant room; an assistant room with nothing in it.
    room(store, "group", &["a"]).await;
    say(store, "group", "a", text, at(10)).await;
    assistant_room(store, "empty").await;
    // Outside the window: too old, too young.
    assistant_room(store, "old").await;
    say(store, "old", "a", text, at(-100)).await;
    assistant_room(store, "young").await;
    say(store, "young", "a", text, at(50)).await;

    let all = store
        .unanswered_questions(at(0), at(40), 100)
        .await
        .unwrap();
    assert_eq!(
        found(&all),
        [("early", 1), ("asked", 3), ("other", 1)],
        "oldest first"
    );
    assert_eq!(all[0].message_id, early.id);
    assert_eq!(all[0].created_at, at(5));
    assert_eq!(all[1].message_id, asked.id);

    // The limit takes the oldest; the window is [from, before).
    let first = store.unanswered_questions(at(0), at(40), 2).await.unwrap();
    assert_eq!(found(&first), [("early", 1), ("asked", 3)]);
    let edges = store
        .unanswered_questions(at(5), at(12), 100)
        .await
        .unwrap();
    assert_eq!(found(&edges), [("early", 1)]);
    let none = store
        .unanswered_questions(at(21), at(40), 100)
        .await
        .unwrap();
    assert_eq!(found(&none), []);

    // The bot answers: that room is no longer listed.
    say(store, "early", ASSISTANT_USER, text, at(30)).await;
    let after = store
        .unanswered_questions(at(0), at(40), 100)
        .await
        .unwrap();
    assert_eq!(found(&after), [("asked", 3), ("other", 1)]);
}
