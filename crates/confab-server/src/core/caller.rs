//! Who is asking: a user from a verified token, a trusted back-end with the
//! server key (acting as itself or as a user named in `X-Confab-User`), or an
//! anonymous visitor when `auth.allow_anonymous` is on.

use super::{Chat, ChatError, ChatResult};
use crate::auth::{AuthError, Identity};
use crate::identity::{ANONYMOUS_PREFIX, SYSTEM_USER};
use crate::store::{GlobalRole, RoomRecord, RoomRole, UserRecord, UserUpsert};
use confab_protocol::Timestamp;
use std::net::IpAddr;

/// The room type anonymous visitors may use (protocol.md §1).
pub const ASSISTANT_ROOM: &str = "assistant";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The stored user (the system user for the bare server key).
    pub user: UserRecord,
    /// Authenticated with the server key: may do anything.
    pub server_key: bool,
    /// The token's expiry (seconds since the epoch); `None` for the server
    /// key and anonymous visitors.
    pub exp: Option<u64>,
    /// For an anonymous visitor, where it came from and whether it came
    /// back with a visitor token: the keys of its (stricter) limits. `None`
    /// for everyone who proved a user identity.
    pub anonymous: Option<Visitor>,
}

/// What the server knows of an anonymous visitor beyond its `anon-…` id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visitor {
    /// The client's address: the key of its connection cap, and of its
    /// message rate while it has no identity of its own.
    pub address: IpAddr,
    /// It presented a visitor token (protocol.md §3.4): its message rate
    /// is its own, keyed by its id, instead of its address's.
    pub returning: bool,
}

impl Caller {
    /// The user id.
    pub fn id(&self) -> &str {
        &self.user.id
    }

    /// Server key or global `admin`: passes room membership and role checks.
    pub fn is_admin(&self) -> bool {
        self.server_key || self.user.role == GlobalRole::Admin
    }

    /// Global `viewer`s are read-only everywhere.
    pub fn can_write(&self) -> bool {
        self.server_key || self.user.role != GlobalRole::Viewer
    }

    /// A fresh anonymous visitor from `address`. Nothing is stored until it
    /// starts a session on `/ws/assistant/` or a back-end makes it a room
    /// (acting as its id with the server key), so visitors who only look
    /// leave no rows behind.
    pub fn anonymous(address: IpAddr) -> Caller {
        let id = format!("{ANONYMOUS_PREFIX}{}", uuid::Uuid::now_v7().simple());
        Caller::visitor(id, address, false)
    }

    /// The anonymous visitor `id` (from a verified visitor token when
    /// `returning`), connected from `address`.
    pub fn visitor(id: String, address: IpAddr, returning: bool) -> Caller {
        let now = Timestamp::now();
        Caller {
            user: UserRecord {
                username: id.clone(),
                id,
                name: None,
                role: GlobalRole::Member,
                disabled: false,
                created_at: now,
            },
            server_key: false,
            exp: None,
            anonymous: Some(Visitor { address, returning }),
        }
    }

    /// Whether this caller may use `room` at all, before membership: an
    /// anonymous visitor only in `assistant` rooms it owns (protocol.md §1).
    pub fn may_use(&self, room: &RoomRecord, role: Option<RoomRole>) -> bool {
        self.may_use_kind(room.room_type == ASSISTANT_ROOM, role)
    }

    /// [`Caller::may_use`] knowing only whether the room is an assistant room.
    pub fn may_use_kind(&self, assistant: bool, role: Option<RoomRole>) -> bool {
        self.anonymous.is_none() || (assistant && role == Some(RoomRole::Owner))
    }
}

impl Chat {
    /// Resolves a bearer credential (a user JWT or the server key) into a
    /// caller, creating users on first sight from their claims. `act_as` is
    /// the `X-Confab-User` header, honoured only with the server key.
    pub async fn authenticate(&self, token: &str, act_as: Option<&str>) -> ChatResult<Caller> {
        if self.auth.is_server_key(token) {
            let user_id = act_as.unwrap_or(SYSTEM_USER);
            super::validate_id("X-Confab-User", user_id)?;
            let user = match self.store.get_user(user_id).await? {
                Some(user) => user,
                None => self.store.upsert_user(first_row(user_id)).await?,
            };
            return Ok(Caller {
                user,
                server_key: true,
                exp: None,
                anonymous: None,
            });
        }
        let identity = self.auth.verify(token)?;
        let exp = identity.exp;
        let (user, _) = self.user_from_identity(identity, false).await?;
        Ok(Caller {
            user,
            server_key: false,
            exp: Some(exp),
            anonymous: None,
        })
    }

    /// [`Chat::authenticate`] for a connection that is about to go live:
    /// also returns the ids of the user's rooms, read together with the
    /// user, for announcing it online ([`Chat::connect`]). `None` when not
    /// read (the server key), so that `connect` reads them itself.
    pub async fn sign_in(
        &self,
        token: &str,
        act_as: Option<&str>,
    ) -> ChatResult<(Caller, Option<Vec<String>>)> {
        if self.auth.is_server_key(token) {
            return Ok((self.authenticate(token, act_as).await?, None));
        }
        let identity = self.auth.verify(token)?;
        let exp = identity.exp;
        let (user, rooms) = self.user_from_identity(identity, true).await?;
        let caller = Caller {
            user,
            server_key: false,
            exp: Some(exp),
            anonymous: None,
        };
        Ok((caller, rooms))
    }

    /// Re-verifies a `refresh_token` for a live connection: it must be valid,
    /// name the same user, and not expire before the token it replaces (a
    /// refresh extends a connection's life, never shortens it). Returns the
    /// new expiry; on refusal the connection keeps its current one.
    pub fn refresh(&self, caller: &Caller, token: &str) -> ChatResult<u64> {
        let identity = self.auth.verify(token)?;
        if identity.user_id != caller.user.id {
            return Err(ChatError::Auth(AuthError::Invalid(
                "the new token names another user".into(),
            )));
        }
        if caller.exp.is_some_and(|current| identity.exp < current) {
            return Err(ChatError::Auth(AuthError::Invalid(
                "the new token expires before the current one".into(),
            )));
        }
        Ok(identity.exp)
    }

    /// The stored user for a verified token: created on first sight, updated
    /// when the token carries a changed name, handle or role, refused when
    /// disabled (or unknown with `auth.require_existing_users`). One read,
    /// and a write only for a new or changed user, each made together with
    /// those of concurrent sign-ins (`sign_ins`). With `with_rooms` the
    /// read also brings the ids of the user's rooms (a new user is a member
    /// of nothing yet: memberships need the user's row).
    pub(super) async fn user_from_identity(
        &self,
        identity: Identity,
        with_rooms: bool,
    ) -> ChatResult<(UserRecord, Option<Vec<String>>)> {
        let upsert = UserUpsert {
            id: identity.user_id,
            username: identity.username,
            name: identity.name,
            role: identity.role,
            disabled: None,
        };
        let found = if with_rooms {
            self.sign_ins
                .user_with_rooms(&upsert.id)
                .await?
                .map(|(user, rooms)| (user, Some(rooms)))
        } else {
            self.store
                .get_user(&upsert.id)
                .await?
                .map(|user| (user, None))
        };
        let (user, rooms) = match found {
            Some((user, rooms)) if upsert.changes_nothing(&user) => (user, rooms),
            Some((_, rooms)) => (self.sign_ins.put_user(upsert).await?, rooms),
            None if self.config.auth.require_existing_users => {
                return Err(ChatError::UserRefused);
            }
            None => (
                self.sign_ins.put_user(upsert).await?,
                with_rooms.then(Vec::new),
            ),
        };
        if user.disabled {
            return Err(ChatError::UserRefused);
        }
        Ok((user, rooms))
    }

    /// Makes sure users named by a back-end (room members) exist, creating bare
    /// rows unless `auth.require_existing_users` is on.
    pub async fn ensure_users(&self, ids: &[String]) -> ChatResult<()> {
        for id in ids {
            super::validate_id("user id", id)?;
            if self.store.get_user(id).await?.is_none() {
                if self.config.auth.require_existing_users {
                    return Err(ChatError::NotFound("user"));
                }
                self.store.upsert_user(first_row(id)).await?;
            }
        }
        Ok(())
    }
}

impl Chat {
    /// Makes sure the built-in `system` user has its row before the server
    /// stores something in its name (an app command's `post`), even if the
    /// server key was never used yet.
    pub(super) async fn ensure_system_user(&self) -> ChatResult<()> {
        if self.store.get_user(SYSTEM_USER).await?.is_none() {
            self.store.upsert_user(first_row(SYSTEM_USER)).await?;
        }
        Ok(())
    }
}

/// The row the server writes for a user id it meets first without a token
/// (the server key acting as it, or a member list naming it): the built-in
/// `system` user as the server's admin named "System", anyone else bare.
/// Tokens never name a built-in user ([`crate::identity::reserved_user`]),
/// so nothing from outside rewrites it later.
fn first_row(user_id: &str) -> UserUpsert {
    let is_system = user_id == SYSTEM_USER;
    UserUpsert {
        id: user_id.to_owned(),
        name: is_system.then(|| "System".to_owned()),
        role: is_system.then_some(GlobalRole::Admin),
        ..UserUpsert::default()
    }
}
