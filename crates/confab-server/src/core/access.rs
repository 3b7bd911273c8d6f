//! What a member may do in a room, remembered between sends.
//!
//! Every `send_message` needs the room (open? assistant?) and the sender's
//! membership (a viewer?). Reading both from the store costs two queries
//! per message, more than the append itself once appends are batched
//! (docs/performance.md). A member's standing changes rarely and only
//! through core (`add_member`, `remove_member`, `close_room`), so this node
//! remembers it and forgets a room's entries whenever one of those runs,
//! here or, through the broker, on another node.
//!
//! Two safety nets bound what a lost invalidation could cost (a broker that
//! was down when another node removed a member): entries expire after
//! [`ENTRY_TTL`], and the whole cache is dropped past [`MAX_ENTRIES`]. Only
//! standing that lets a member send is remembered: refusals (unknown room,
//! not a member) are read again every time, so a room or membership created
//! on another node is seen at once.

use super::caller::Caller;
use crate::store::RoomRole;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// How long a remembered standing is trusted without reading it again.
pub const ENTRY_TTL: Duration = Duration::from_secs(5);

/// Entries kept at most; past this the cache starts over.
pub const MAX_ENTRIES: usize = 100_000;

/// A member's standing in a room, as far as sending is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The room accepts no messages.
    pub closed: bool,
    /// The room is an `assistant` room (anonymous visitors may use those).
    pub assistant: bool,
    /// The member's role in the room.
    pub role: RoomRole,
}

/// This node's remembered standings: room → user → standing.
#[derive(Debug, Default)]
pub struct AccessCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    rooms: HashMap<String, HashMap<String, (Standing, Instant)>>,
    entries: usize,
}

impl AccessCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The remembered standing of `caller` in the room, if fresh.
    pub fn get(&self, room_id: &str, caller: &Caller) -> Option<Standing> {
        self.get_at(room_id, caller, Instant::now())
    }

    fn get_at(&self, room_id: &str, caller: &Caller, now: Instant) -> Option<Standing> {
        let state = self.lock();
        let (standing, expires) = state.rooms.get(room_id)?.get(caller.id())?;
        (*expires > now).then_some(*standing)
    }

    /// Remembers a standing just read from the store.
    pub fn put(&self, room_id: &str, caller: &Caller, standing: Standing) {
        let mut state = self.lock();
        if state.entries >= MAX_ENTRIES {
            state.rooms.clear();
            state.entries = 0;
        }
        let expires = Instant::now() + ENTRY_TTL;
        let users = state.rooms.entry(room_id.to_owned()).or_default();
        let added = users
            .insert(caller.id().to_owned(), (standing, expires))
            .is_none();
        if added {
            state.entries += 1;
        }
    }

    /// Forgets every standing in the room (its membership or state changed).
    pub fn forget_room(&self, room_id: &str) {
        let mut state = self.lock();
        if let Some(users) = state.rooms.remove(room_id) {
            state.entries -= users.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{GlobalRole, UserRecord};
    use confab_protocol::Timestamp;

    fn caller(id: &str) -> Caller {
        Caller {
            user: UserRecord {
                id: id.into(),
                username: id.into(),
                name: None,
                role: GlobalRole::Member,
                disabled: false,
                created_at: Timestamp(0),
            },
            server_key: false,
            exp: None,
            anonymous: None,
        }
    }

    const MEMBER: Standing = Standing {
        closed: false,
        assistant: false,
        role: RoomRole::Member,
    };

    #[test]
    fn entries_expire_and_rooms_are_forgotten() {
        let cache = AccessCache::default();
        let (a, b) = (caller("a"), caller("b"));
        cache.put("r", &a, MEMBER);
        cache.put("r", &b, MEMBER);
        cache.put("s", &a, MEMBER);
        assert_eq!(cache.get("r", &a), Some(MEMBER));
        assert_eq!(cache.get("x", &a), None);

        cache.forget_room("r");
        assert_eq!(cache.get("r", &a), None);
        assert_eq!(cache.get("r", &b), None);
        assert_eq!(cache.get("s", &a), Some(MEMBER));
        assert_eq!(cache.lock().entries, 1);

        let later = Instant::now() + ENTRY_TTL;
        assert_eq!(cache.get_at("s", &a, later), None, "expired");
    }
}
