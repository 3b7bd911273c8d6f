//! What both backends' batched appends decide the same way: which appends
//! of a run repeat a `client_msg_id` (stored before the run, or earlier in
//! it), and how the decisions become the answers the callers get. Each
//! backend looks up and writes in its own SQL (`sqlite::batch_append`,
//! `postgres::batch_append`); the answers must be exactly those of
//! appending the messages one by one in queue order.

use crate::store::rows::stored_record;
use crate::store::{AppendOutcome, MessageRecord, NewMessage, StoreError, StoreResult};
use std::collections::HashMap;

/// What makes two sends the same message: (room, sender, `client_msg_id`).
pub(crate) type Key<'r> = (&'r str, &'r str, &'r str);

/// The key of a send that carries a `client_msg_id`.
pub(crate) fn key(message: &NewMessage) -> Option<Key<'_>> {
    message
        .client_msg_id
        .as_deref()
        .map(|id| (message.room_id.as_str(), message.sender_id.as_str(), id))
}

/// The key of `run` that `original`, found in the database, answers
/// (`None` if the run asked for no such key).
pub(crate) fn asked_key<'r>(run: &[&'r NewMessage], original: &MessageRecord) -> Option<Key<'r>> {
    let wanted = (
        original.room_id.as_str(),
        original.sender_id.as_str(),
        original.client_msg_id.as_deref()?,
    );
    run.iter()
        .filter_map(|m| key(m))
        .find(|found| *found == wanted)
}

/// What was decided for one append of the run.
pub(crate) enum Slot {
    /// Inserted with this seq, by this sender (username, display name).
    Stored(i64, String, Option<String>),
    /// Its `client_msg_id` was stored before the run: the original.
    Duplicate(Box<MessageRecord>),
    /// Its `client_msg_id` is stored earlier in this run, by this append.
    DuplicateOf(usize),
    /// Refused; nothing of it is written.
    Failed(StoreError),
}

/// For each append of `run`, in order: the slot of a repeat (of an
/// `original` stored before, or of an earlier append of the run), or `None`
/// for a new message, which the backend then stores or refuses.
pub(crate) fn repeats<'r>(
    run: &[&'r NewMessage],
    originals: &HashMap<Key<'r>, MessageRecord>,
) -> Vec<Option<Slot>> {
    let mut first_of: HashMap<Key<'r>, usize> = HashMap::new();
    run.iter()
        .enumerate()
        .map(|(i, m)| {
            let key = key(m)?;
            if let Some(original) = originals.get(&key) {
                return Some(Slot::Duplicate(Box::new(original.clone())));
            }
            if let Some(&first) = first_of.get(&key) {
                return Some(Slot::DuplicateOf(first));
            }
            first_of.insert(key, i);
            None
        })
        .collect()
}

/// The answers of a run, in order. A repeat of an append that failed fails
/// the same way (not found: the same room and sender): it is what appending
/// them one by one would have answered.
pub(crate) fn outcomes(
    messages: impl IntoIterator<Item = NewMessage>,
    slots: Vec<Slot>,
) -> Vec<StoreResult<AppendOutcome>> {
    // The records that a later append of the run repeats, kept for it.
    let repeated: Vec<usize> = slots
        .iter()
        .filter_map(|slot| match slot {
            Slot::DuplicateOf(first) => Some(*first),
            _ => None,
        })
        .collect();
    let mut records: Vec<Option<MessageRecord>> = Vec::with_capacity(slots.len());
    let mut answers = Vec::with_capacity(slots.len());
    for (i, (message, slot)) in messages.into_iter().zip(slots).enumerate() {
        let (answer, record) = match slot {
            Slot::Stored(seq, username, name) => {
                let record = stored_record(message, seq, username, name);
                let kept = repeated.contains(&i).then(|| record.clone());
                (Ok(AppendOutcome::Stored(record)), kept)
            }
            Slot::Duplicate(original) => (Ok(AppendOutcome::Duplicate(*original)), None),
            Slot::DuplicateOf(first) => match records.get(first).cloned().flatten() {
                Some(original) => (Ok(AppendOutcome::Duplicate(original)), None),
                None => (Err(StoreError::NotFound), None),
            },
            Slot::Failed(error) => (Err(error), None),
        };
        records.push(record);
        answers.push(answer);
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MessageType;
    use confab_protocol::Timestamp;

    fn send(id: &str, room: &str, sender: &str, key: Option<&str>) -> NewMessage {
        NewMessage {
            id: id.to_owned(),
            room_id: room.to_owned(),
            sender_id: sender.to_owned(),
            content: format!("content of {id}"),
            message_type: MessageType::Text,
            reply_to: None,
            metadata: serde_json::Value::Null,
            attachment: None,
            location: None,
            client_msg_id: key.map(str::to_owned),
            created_at: Timestamp(1),
            missed_by: Vec::new(),
        }
    }

    #[test]
    fn a_key_repeated_in_the_run_is_a_duplicate_of_its_first_and_others_are_new() {
        let run = [
            send("m1", "r1", "alice", Some("k1")),
            send("m2", "r1", "alice", Some("k1")),
            // Same key, other sender or other room: a different message.
            send("m3", "r1", "bob", Some("k1")),
            send("m4", "r2", "alice", Some("k1")),
            send("m5", "r1", "alice", None),
            send("m6", "r1", "alice", None),
        ];
        let refs: Vec<&NewMessage> = run.iter().collect();
        let slots = repeats(&refs, &HashMap::new());
        let firsts: Vec<Option<usize>> = slots
            .iter()
            .map(|slot| match slot {
                Some(Slot::DuplicateOf(first)) => Some(*first),
                Some(_) => Some(usize::MAX),
                None => None,
            })
            .collect();
        assert_eq!(firsts, [None, Some(0), None, None, None, None]);
    }

    #[test]
    fn a_key_stored_before_the_run_answers_with_the_original_every_time() {
        let run = [
            send("m1", "r1", "alice", Some("k1")),
            send("m2", "r1", "alice", Some("k1")),
        ];
        let refs: Vec<&NewMessage> = run.iter().collect();
        let original = stored_record(
            send("m0", "r1", "alice", Some("k1")),
            7,
            "alice".into(),
            None,
        );
        let originals = HashMap::from([(("r1", "alice", "k1"), original)]);
        let slots: Vec<Slot> = repeats(&refs, &originals)
            .into_iter()
            .map(|slot| slot.unwrap_or(Slot::Failed(StoreError::Closed)))
            .collect();
        for answer in outcomes(run.clone(), slots) {
            match answer {
                Ok(AppendOutcome::Duplicate(record)) => {
                    assert_eq!((record.id.as_str(), record.seq), ("m0", 7))
                }
                other => panic!("expected the original, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_repeat_gets_its_first_record_or_its_first_failure() {
        let run = [
            send("m1", "r1", "alice", Some("k1")),
            send("m2", "r1", "alice", Some("k1")),
            send("m3", "gone", "alice", Some("k2")),
            send("m4", "gone", "alice", Some("k2")),
        ];
        let slots = vec![
            Slot::Stored(1, "alice".into(), Some("Alice".into())),
            Slot::DuplicateOf(0),
            Slot::Failed(StoreError::NotFound),
            Slot::DuplicateOf(2),
        ];
        let answers = outcomes(run, slots);
        let Ok(AppendOutcome::Stored(first)) = &answers[0] else {
            panic!("the first is stored: {:?}", answers[0]);
        };
        let Ok(AppendOutcome::Duplicate(repeat)) = &answers[1] else {
            panic!("the second repeats it: {:?}", answers[1]);
        };
        assert_eq!(first, repeat);
        assert_eq!(first.sender_name.as_deref(), Some("Alice"));
        assert!(matches!(answers[2], Err(StoreError::NotFound)));
        assert!(matches!(answers[3], Err(StoreError::NotFound)));
    }
}
