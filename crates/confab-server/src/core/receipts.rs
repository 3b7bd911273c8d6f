//! Who has read what: the `is_read` of message objects (protocol.md §7).
//!
//! A room's read markers are loaded once per answer (a history page, a
//! catch-up, an edit) and every message of it is judged against them, so a
//! page of 100 messages costs one read of the markers, not 100.

use super::{Chat, ChatResult};
use confab_protocol::Message;

/// Whose point of view `is_read` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRule {
    /// The unified protocol's (§7): for someone else's message, whether the
    /// viewer's own marker covers it; for the viewer's own, whether any
    /// other member's does.
    Viewer,
    /// The job-conversations dialect's: whether any member other than the
    /// sender has read it, whoever looks.
    AnyoneButSender,
}

/// A room's read markers, as far as `is_read` needs them: the viewer's own
/// and the two highest (so that "the highest but the sender's" is known for
/// any sender without keeping every marker).
#[derive(Debug, Clone, Default)]
pub struct Receipts {
    viewer: String,
    viewer_marker: i64,
    /// The highest marker and whose it is.
    first: Option<(String, i64)>,
    /// The highest marker of anyone other than `first`'s owner.
    second: i64,
}

impl Receipts {
    /// The markers of `members` (user id, read marker) as `viewer` sees them.
    pub fn new<'a>(viewer: &str, members: impl IntoIterator<Item = (&'a str, i64)>) -> Self {
        let mut receipts = Receipts {
            viewer: viewer.to_owned(),
            ..Receipts::default()
        };
        for (user, marker) in members {
            if user == viewer {
                receipts.viewer_marker = marker;
            }
            match &receipts.first {
                Some((_, best)) if marker <= *best => receipts.second = receipts.second.max(marker),
                _ => {
                    if let Some((_, best)) = receipts.first.take() {
                        receipts.second = receipts.second.max(best);
                    }
                    receipts.first = Some((user.to_owned(), marker));
                }
            }
        }
        receipts
    }

    /// The highest read marker of any member other than `user`.
    fn highest_but(&self, user: &str) -> i64 {
        match &self.first {
            Some((owner, _)) if owner == user => self.second,
            Some((_, best)) => *best,
            None => 0,
        }
    }

    /// Whether the message at `seq` from `sender` counts as read under `rule`.
    pub fn is_read(&self, rule: ReadRule, sender: &str, seq: i64) -> bool {
        match rule {
            ReadRule::Viewer if sender != self.viewer => self.viewer_marker >= seq,
            ReadRule::Viewer | ReadRule::AnyoneButSender => self.highest_but(sender) >= seq,
        }
    }

    /// Sets `is_read` on a message object.
    pub fn mark(&self, rule: ReadRule, message: &mut Message) {
        message.is_read = self.is_read(rule, &message.sender.id, message.seq);
    }
}

impl Chat {
    /// The room's read markers as `viewer` sees them (one read of the
    /// member list).
    pub async fn receipts(&self, room_id: &str, viewer: &str) -> ChatResult<Receipts> {
        let members = self.store.list_members(room_id).await?;
        Ok(Receipts::new(
            viewer,
            members
                .iter()
                .map(|m| (m.member.user_id.as_str(), m.member.last_read_seq)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipts(viewer: &str) -> Receipts {
        Receipts::new(viewer, [("ann", 7), ("bob", 3), ("cat", 5)])
    }

    #[test]
    fn the_viewer_sees_others_messages_by_their_own_marker() {
        let bob = receipts("bob");
        assert!(bob.is_read(ReadRule::Viewer, "ann", 3));
        assert!(!bob.is_read(ReadRule::Viewer, "ann", 4));
        // Under the other rule, anyone but ann counts: cat read up to 5.
        assert!(bob.is_read(ReadRule::AnyoneButSender, "ann", 5));
        assert!(!bob.is_read(ReadRule::AnyoneButSender, "ann", 6));
    }

    #[test]
    fn own_messages_count_as_read_once_anyone_else_read_them() {
        // ann holds the highest marker; for her own messages the next one counts.
        let ann = receipts("ann");
        assert!(ann.is_read(ReadRule::Viewer, "ann", 5));
        assert!(!ann.is_read(ReadRule::Viewer, "ann", 6));
        let bob = receipts("bob");
        assert!(bob.is_read(ReadRule::Viewer, "bob", 7));
        assert!(!bob.is_read(ReadRule::Viewer, "bob", 8));
    }

    #[test]
    fn a_room_alone_or_empty_reads_nothing() {
        let alone = Receipts::new("ann", [("ann", 9)]);
        assert!(!alone.is_read(ReadRule::Viewer, "ann", 1));
        let empty = Receipts::new("ann", []);
        assert!(!empty.is_read(ReadRule::AnyoneButSender, "bob", 1));
        // Ties keep both holders: either one's messages see the other's marker.
        let tie = Receipts::new("ann", [("ann", 4), ("bob", 4)]);
        assert!(tie.is_read(ReadRule::Viewer, "ann", 4));
        assert!(tie.is_read(ReadRule::AnyoneButSender, "bob", 4));
    }
}
