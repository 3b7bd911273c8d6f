//! Who is online on the other nodes of a cluster, as last heard on the
//! broker. Each node announces its users' first connection and last
//! departure at once, and repeats the list of its online users every third
//! of `broker_presence_ttl_ms`; an entry not heard of within the TTL lapses,
//! so the users of a node that died go offline within a bounded time.
//!
//! This is only the bookkeeping (no I/O), so that the rules can be tested on
//! their own; [`super::cluster::Cluster`] does the publishing and announcing.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// The users other nodes said are online, per node, with their deadlines.
pub struct RemotePresence {
    ttl: Duration,
    users: Mutex<HashMap<String, HashMap<String, Instant>>>,
}

impl RemotePresence {
    /// Entries lapse `ttl` after they were last heard of.
    pub fn new(ttl: Duration) -> Self {
        RemotePresence {
            ttl,
            users: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, Instant>>> {
        // Plain maps updated in whole steps: a poisoned lock is still consistent.
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `node` says these users are online (now, or still). Returns those
    /// that no other node had online before: they just came online.
    pub fn seen(&self, node: &str, users: &[String], now: Instant) -> Vec<String> {
        let mut map = self.lock();
        let mut arrived = Vec::new();
        for user in users {
            let nodes = map.entry(user.clone()).or_default();
            nodes.retain(|_, until| *until > now);
            if nodes.is_empty() {
                arrived.push(user.clone());
            }
            nodes.insert(node.to_owned(), now + self.ttl);
        }
        arrived
    }

    /// `node` says these users left it. Returns those now online nowhere
    /// else that this node has heard of.
    pub fn gone(&self, node: &str, users: &[String], now: Instant) -> Vec<String> {
        let mut map = self.lock();
        let mut left = Vec::new();
        for user in users {
            let Some(nodes) = map.get_mut(user) else {
                continue;
            };
            if nodes.remove(node).is_none() {
                continue;
            }
            nodes.retain(|_, until| *until > now);
            if nodes.is_empty() {
                map.remove(user);
                left.push(user.clone());
            }
        }
        left
    }

    /// Whether some other node has `user` online.
    pub fn is_online(&self, user: &str, now: Instant) -> bool {
        self.lock()
            .get(user)
            .is_some_and(|nodes| nodes.values().any(|until| *until > now))
    }

    /// Drops lapsed entries; returns the users that lapsed everywhere (their
    /// node stopped repeating them: it died or lost the broker).
    pub fn sweep(&self, now: Instant) -> Vec<String> {
        let mut map = self.lock();
        let mut lapsed = Vec::new();
        map.retain(|user, nodes| {
            nodes.retain(|_, until| *until > now);
            if nodes.is_empty() {
                lapsed.push(user.clone());
                false
            } else {
                true
            }
        });
        lapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn online_until_every_node_is_gone() {
        let p = RemotePresence::new(Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(p.seen("n1", &ids(&["bob"]), now), ids(&["bob"]));
        assert!(
            p.seen("n2", &ids(&["bob"]), now).is_empty(),
            "already online"
        );
        assert!(p.seen("n1", &ids(&["bob"]), now).is_empty(), "a repeat");
        assert!(p.gone("n1", &ids(&["bob"]), now).is_empty(), "still on n2");
        assert!(p.is_online("bob", now));
        assert_eq!(p.gone("n2", &ids(&["bob"]), now), ids(&["bob"]));
        assert!(!p.is_online("bob", now));
        assert!(p.gone("n2", &ids(&["bob"]), now).is_empty(), "only once");
    }

    #[test]
    fn entries_lapse_after_the_ttl_unless_repeated() {
        let p = RemotePresence::new(Duration::from_secs(10));
        let start = Instant::now();
        p.seen("n1", &ids(&["a", "b"]), start);
        let later = start + Duration::from_secs(6);
        p.seen("n1", &ids(&["a"]), later);
        let end = start + Duration::from_secs(11);
        assert_eq!(p.sweep(end), ids(&["b"]));
        assert!(p.is_online("a", end));
        assert!(!p.is_online("b", end));
        assert_eq!(p.sweep(end + Duration::from_secs(6)), ids(&["a"]));
        assert!(p.sweep(end + Duration::from_secs(60)).is_empty());
    }
}
