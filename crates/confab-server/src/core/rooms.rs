//! Rooms, members, room lists, read markers and users.

use super::{Caller, Chat, ChatError, ChatResult, validate_id, validate_metadata, wire};
use crate::store::{
    CreateOutcome, GlobalRole, MemberRecord, NewRoom, ROLE_NAME_RULE, RoomListEntry, RoomRecord,
    RoomRole, UserRecord, UserUpsert,
};
use confab_protocol::{Member, Participant, RoomSummary, ServerFrame, Timestamp, User};
use serde_json::json;

/// What `POST /api/v1/rooms` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateRoom {
    /// An app's own id; generated when absent.
    pub id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// `direct`, `group` (default), `assistant`, or an app word.
    pub room_type: Option<String>,
    /// Member ids besides the creator.
    pub members: Vec<String>,
    /// Free-form JSON object.
    pub metadata: Option<serde_json::Value>,
    /// With the server key: who owns the room (else the acting user).
    pub owner: Option<String>,
}

/// What a room create answered.
#[derive(Debug, Clone)]
pub struct Created {
    /// The room as the caller sees it.
    pub room: RoomSummary,
    /// False when an existing direct room was returned.
    pub created: bool,
}

/// Where a reader's marker stands after [`Chat::mark_read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMarker {
    /// The highest seq read.
    pub marker: i64,
    /// Messages left unread in the room for the reader.
    pub unread: i64,
}

/// Default page of the room list.
const ROOM_LIST_DEFAULT: u32 = 50;
/// Largest page of the room list.
const ROOM_LIST_MAX: u32 = 100;

impl Chat {
    /// Creates a room with its members; a `direct` room between the same two
    /// users is returned instead of duplicated. Every member's live
    /// connections get `room_added`.
    pub async fn create_room(&self, caller: &Caller, request: CreateRoom) -> ChatResult<Created> {
        if !caller.can_write() {
            return Err(ChatError::Forbidden(
                "read-only users cannot create rooms".into(),
            ));
        }
        let id = match request.id {
            Some(id) => {
                validate_id("id", &id)?;
                id
            }
            None => uuid::Uuid::now_v7().to_string(),
        };
        let room_type = request.room_type.unwrap_or_else(|| "group".into());
        let type_ok = !room_type.is_empty()
            && room_type.len() <= 32
            && room_type
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !type_ok {
            return Err(ChatError::InvalidField(
                "room_type must be 1–32 of a-z, 0-9, '_' or '-'".into(),
            ));
        }
        let metadata = request.metadata.unwrap_or_else(|| json!({}));
        validate_metadata(&metadata, self.config.limits.max_metadata_bytes)?;
        if request
            .name
            .as_ref()
            .is_some_and(|n| n.chars().count() > 200)
        {
            return Err(ChatError::InvalidField(
                "name must be at most 200 characters".into(),
            ));
        }
        let owner = match (&request.owner, caller.server_key) {
            (Some(owner), true) => Some(owner.clone()),
            (Some(_), false) => {
                return Err(ChatError::Forbidden(
                    "only the server key may name an owner".into(),
                ));
            }
            // The bare server key creates rooms it does not join.
            (None, true) if caller.id() == crate::identity::SYSTEM_USER => None,
            (None, _) => Some(caller.id().to_owned()),
        };
        let mut members: Vec<(String, RoomRole)> = Vec::new();
        if let Some(owner) = &owner {
            members.push((owner.clone(), RoomRole::Owner));
        }
        for id in request.members {
            if !members.iter().any(|(m, _)| *m == id) {
                members.push((id, RoomRole::Member));
            }
        }
        // An assistant room has the bot as a member (protocol.md §6).
        let bot = crate::identity::ASSISTANT_USER;
        if room_type == super::caller::ASSISTANT_ROOM && !members.iter().any(|(m, _)| m == bot) {
            members.push((bot.to_owned(), RoomRole::Member));
        }
        if members.len() > 1000 {
            return Err(ChatError::InvalidField(
                "at most 1000 members at creation".into(),
            ));
        }
        let ids: Vec<String> = members.iter().map(|(id, _)| id.clone()).collect();
        self.ensure_users(&ids).await?;
        let direct_key = if room_type == "direct" {
            if members.len() != 2 {
                return Err(ChatError::InvalidField(
                    "a direct room has exactly two members".into(),
                ));
            }
            let mut pair = ids.clone();
            pair.sort();
            Some(pair.join("\n"))
        } else {
            None
        };
        let outcome = self
            .store
            .create_room(NewRoom {
                id,
                name: request.name,
                room_type,
                metadata,
                direct_key,
                members,
            })
            .await
            .map_err(|e| match e {
                crate::store::StoreError::AlreadyExists => {
                    ChatError::AlreadyExists("a room with this id")
                }
                other => ChatError::Store(other),
            })?;
        let (record, created) = match outcome {
            CreateOutcome::Created(room) => (room, true),
            CreateOutcome::ExistingDirect(room) => (room, false),
        };
        if created {
            for user in &ids {
                let room = self.summary_for(&record, user).await?;
                self.notify_users(
                    [user.as_str()],
                    &ServerFrame::RoomAdded {
                        timestamp: Timestamp::now(),
                        room_id: record.id.clone(),
                        room,
                    },
                );
            }
        }
        Ok(Created {
            room: self.summary_for(&record, caller.id()).await?,
            created,
        })
    }

    /// A room as the caller sees it.
    pub async fn get_room(&self, caller: &Caller, room_id: &str) -> ChatResult<RoomSummary> {
        let (room, _) = self.room_access(caller, room_id).await?;
        self.summary_for(&room, caller.id()).await
    }

    /// The room as `user_id` sees it (their unread count and role).
    pub(crate) async fn summary_for(
        &self,
        room: &RoomRecord,
        user_id: &str,
    ) -> ChatResult<RoomSummary> {
        let member = self.store.get_member(&room.id, user_id).await?;
        let unread_count = match member {
            Some(_) => self.store.unread_count(&room.id, user_id).await?,
            None => 0,
        };
        let last_message = match room.last_seq {
            0 => None,
            seq => self
                .store
                .history(&room.id, crate::store::HistoryPage::After(seq - 1), 1)
                .await?
                .0
                .pop(),
        };
        self.summary(RoomListEntry {
            room: room.clone(),
            member: member.unwrap_or(MemberRecord {
                room_id: room.id.clone(),
                user_id: user_id.to_owned(),
                role: RoomRole::Viewer,
                last_read_seq: room.last_seq,
                joined_at: room.created_at,
            }),
            last_message,
            unread_count,
        })
        .await
    }

    async fn summary(&self, entry: RoomListEntry) -> ChatResult<RoomSummary> {
        let participants: Vec<Participant> = self
            .store
            .list_members(&entry.room.id)
            .await?
            .into_iter()
            .map(|m| Participant {
                online: self.cluster.is_online(&m.member.user_id),
                id: m.member.user_id,
                name: m.name,
            })
            .collect();
        let is_member = participants_contains(&participants, &entry.member.user_id);
        let (last_message_content, last_message_time) = match entry.last_message {
            Some(m) if m.deleted => (Some(String::new()), Some(m.created_at)),
            Some(m) => (Some(m.content), Some(m.created_at)),
            None => (None, None),
        };
        Ok(RoomSummary {
            id: entry.room.id,
            name: entry.room.name,
            room_type: entry.room.room_type,
            metadata: entry.room.metadata,
            closed: entry.room.closed,
            last_seq: entry.room.last_seq,
            last_message_content,
            last_message_time,
            unread_count: entry.unread_count,
            role: is_member.then(|| entry.member.role.as_str().to_owned()),
            created_at: entry.room.created_at,
            participants,
        })
    }

    /// One page of the caller's rooms, newest activity first, and the cursor
    /// of the next page.
    pub async fn room_list(
        &self,
        caller: &Caller,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> ChatResult<(Vec<RoomSummary>, Option<String>)> {
        let limit = match limit {
            None => ROOM_LIST_DEFAULT,
            Some(0) => return Err(ChatError::InvalidField("limit must be ≥ 1".into())),
            Some(n) => n.min(ROOM_LIST_MAX),
        };
        let after = cursor.map(decode_cursor).transpose()?;
        let mut entries = self
            .store
            .list_user_rooms(caller.id(), limit + 1, after)
            .await?;
        let next = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries
                .last()
                .map(|e| format!("{}:{}", e.room.last_activity.millis(), e.room.id))
        } else {
            None
        };
        // An anonymous visitor sees only the rooms it may use; the cursor
        // still follows the unfiltered page, so paging stays consistent.
        entries.retain(|e| caller.may_use(&e.room, Some(e.member.role)));
        let mut rooms = Vec::with_capacity(entries.len());
        for entry in entries {
            rooms.push(self.summary(entry).await?);
        }
        Ok((rooms, next))
    }

    /// Renames a room and/or replaces its metadata; members get `room_updated`.
    pub async fn update_room(
        &self,
        caller: &Caller,
        room_id: &str,
        name: Option<String>,
        metadata: Option<serde_json::Value>,
    ) -> ChatResult<RoomSummary> {
        self.room_admin_access(caller, room_id).await?;
        if let Some(metadata) = &metadata {
            validate_metadata(metadata, self.config.limits.max_metadata_bytes)?;
        }
        if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            return Err(ChatError::InvalidField(
                "name must be at most 200 characters".into(),
            ));
        }
        let mut updates = serde_json::Map::new();
        if let Some(name) = &name {
            updates.insert("name".into(), json!(name));
        }
        if let Some(metadata) = &metadata {
            updates.insert("metadata".into(), metadata.clone());
        }
        let room = self.store.update_room(room_id, name, metadata).await?;
        if !updates.is_empty() {
            self.notify_members(
                room_id,
                &ServerFrame::RoomUpdated {
                    timestamp: Timestamp::now(),
                    room_id: room_id.to_owned(),
                    updates: serde_json::Value::Object(updates),
                },
            )
            .await?;
        }
        self.summary_for(&room, caller.id()).await
    }

    /// Closes a room: history stays readable, new messages are refused.
    pub async fn close_room(&self, caller: &Caller, room_id: &str) -> ChatResult<RoomSummary> {
        self.room_admin_access(caller, room_id).await?;
        let room = self.store.close_room(room_id).await?;
        self.cluster.forget_access(room_id);
        self.notify_members(
            room_id,
            &ServerFrame::RoomUpdated {
                timestamp: Timestamp::now(),
                room_id: room_id.to_owned(),
                updates: json!({"closed": true}),
            },
        )
        .await?;
        self.summary_for(&room, caller.id()).await
    }

    async fn notify_members(&self, room_id: &str, frame: &ServerFrame) -> ChatResult<()> {
        let members = self.store.list_members(room_id).await?;
        self.notify_users(members.iter().map(|m| m.member.user_id.as_str()), frame);
        Ok(())
    }

    /// The room's members with their roles and whether they are online.
    pub async fn members(&self, caller: &Caller, room_id: &str) -> ChatResult<Vec<Member>> {
        self.room_access(caller, room_id).await?;
        Ok(self
            .store
            .list_members(room_id)
            .await?
            .into_iter()
            .map(|m| self.member(m.member, m.name, &m.user_role))
            .collect())
    }

    /// Adds a member (or changes their role); they get `room_added`.
    pub async fn add_member(
        &self,
        caller: &Caller,
        room_id: &str,
        user_id: &str,
        role: Option<&str>,
    ) -> ChatResult<Member> {
        let (room, acting) = self.room_admin_access(caller, room_id).await?;
        let role = match role {
            None => RoomRole::Member,
            Some(name) => RoomRole::parse(name).ok_or_else(|| {
                ChatError::InvalidField("role must be owner, admin, member or viewer".into())
            })?,
        };
        let acting_is_owner = acting.as_ref().is_some_and(|m| m.role == RoomRole::Owner);
        if role == RoomRole::Owner && !caller.is_admin() && !acting_is_owner {
            return Err(ChatError::Forbidden("only an owner may add owners".into()));
        }
        self.enroll(&room, user_id, role).await
    }

    /// `/invite USER` (protocol.md §6.1): a member who may write adds USER
    /// as a plain member (who may invite was checked by the command); an
    /// existing member keeps their role.
    pub(super) async fn invite(&self, room: &RoomRecord, user_id: &str) -> ChatResult<Member> {
        if let Some(member) = self.store.get_member(&room.id, user_id).await? {
            return self.member_with_user(member).await;
        }
        self.enroll(room, user_id, RoomRole::Member).await
    }

    /// Makes `user_id` a member with `role` (created first if new); a new
    /// member's connections get `room_added`.
    async fn enroll(&self, room: &RoomRecord, user_id: &str, role: RoomRole) -> ChatResult<Member> {
        let room_id = room.id.as_str();
        self.ensure_users(&[user_id.to_owned()]).await?;
        let was_member = self.store.get_member(room_id, user_id).await?.is_some();
        let member = self.store.add_member(room_id, user_id, role).await?;
        self.cluster.forget_access(room_id);
        if !was_member {
            let summary = self.summary_for(room, user_id).await?;
            self.notify_users(
                [user_id],
                &ServerFrame::RoomAdded {
                    timestamp: Timestamp::now(),
                    room_id: room_id.to_owned(),
                    room: summary,
                },
            );
        }
        self.member_with_user(member).await
    }

    /// A membership as the API shows it, the user read for its name and
    /// global role.
    async fn member_with_user(&self, member: MemberRecord) -> ChatResult<Member> {
        let user = self.store.get_user(&member.user_id).await?;
        let (name, role) = user.map_or((None, GlobalRole::default()), |u| (u.name, u.role));
        Ok(self.member(member, name, &role))
    }

    /// A membership as the API shows it.
    fn member(&self, member: MemberRecord, name: Option<String>, global: &GlobalRole) -> Member {
        Member {
            online: self.cluster.is_online(&member.user_id),
            user_id: member.user_id,
            name,
            role: member.role.as_str().to_owned(),
            global_role: global.as_str().to_owned(),
            last_read_seq: member.last_read_seq,
        }
    }

    /// Removes a member (room admins, or the member themselves leaving). Their
    /// subscriptions end at once and they get `room_removed`.
    pub async fn remove_member(
        &self,
        caller: &Caller,
        room_id: &str,
        user_id: &str,
    ) -> ChatResult<()> {
        if caller.id() == user_id {
            self.room_access(caller, room_id).await?;
        } else {
            self.room_admin_access(caller, room_id).await?;
        }
        if !self.store.remove_member(room_id, user_id).await? {
            return Err(ChatError::NotFound("member"));
        }
        self.cluster.forget_access(room_id);
        for _ in 0..self.hub.drop_user_from_room(user_id, room_id) {
            self.cluster.release(room_id);
        }
        self.hub.clear_typing(room_id, user_id);
        self.notify_users(
            [user_id],
            &ServerFrame::RoomRemoved {
                timestamp: Timestamp::now(),
                room_id: room_id.to_owned(),
            },
        );
        Ok(())
    }

    /// Moves the caller's read marker (to `up_to_seq`, to the highest of
    /// `message_ids`, or to the end), tells the room with `message_read`, and
    /// the caller's own connections with `room_updated` carrying the new
    /// `unread_count`. Returns both.
    pub async fn mark_read(
        &self,
        caller: &Caller,
        room_id: &str,
        up_to_seq: Option<i64>,
        message_ids: Option<Vec<String>>,
    ) -> ChatResult<ReadMarker> {
        let (room, member) = self.room_access(caller, room_id).await?;
        if member.is_none() {
            return Err(ChatError::Forbidden("not a member of this room".into()));
        }
        let target = match (up_to_seq, &message_ids) {
            (Some(_), Some(_)) => {
                return Err(ChatError::InvalidField(
                    "give up_to_seq or message_ids, not both".into(),
                ));
            }
            (Some(seq), None) if seq < 0 => {
                return Err(ChatError::InvalidField("up_to_seq must be ≥ 0".into()));
            }
            (Some(seq), None) => seq,
            (None, Some(ids)) => {
                if ids.is_empty() || ids.len() > 100 {
                    return Err(ChatError::InvalidField(
                        "message_ids must list 1–100 ids".into(),
                    ));
                }
                let mut highest = None;
                for id in ids {
                    if let Some(message) = self.store.get_message(room_id, id).await? {
                        highest = highest.max(Some(message.seq));
                    }
                }
                highest.ok_or(ChatError::NotFound("message"))?
            }
            (None, None) => room.last_seq,
        };
        let marker = self.store.mark_read(room_id, caller.id(), target).await?;
        let unread = self.store.unread_count(room_id, caller.id()).await?;
        self.send_to_room(
            room_id,
            &ServerFrame::MessageRead {
                room_id: room_id.to_owned(),
                user_id: caller.id().to_owned(),
                up_to_seq: marker,
                message_ids,
                timestamp: Timestamp::now(),
            },
            None,
        );
        self.notify_users(
            [caller.id()],
            &ServerFrame::RoomUpdated {
                timestamp: Timestamp::now(),
                room_id: room_id.to_owned(),
                updates: json!({"unread_count": unread, "last_read_seq": marker}),
            },
        );
        Ok(ReadMarker { marker, unread })
    }

    /// `PUT /api/v1/users/{id}`: the server key creates or updates a user.
    /// Disabling closes the user's open connections with 4002.
    pub async fn put_user(
        &self,
        caller: &Caller,
        user_id: &str,
        name: Option<String>,
        role: Option<&str>,
        disabled: Option<bool>,
    ) -> ChatResult<User> {
        if !caller.server_key {
            return Err(ChatError::Forbidden(
                "only the server key may manage users".into(),
            ));
        }
        validate_id("user id", user_id)?;
        if crate::identity::is_built_in_user(user_id) {
            return Err(ChatError::Forbidden(format!(
                "`{user_id}` is one of the server's built-in users and cannot be changed"
            )));
        }
        let role = role
            .map(|r| {
                GlobalRole::parse(r).ok_or_else(|| {
                    ChatError::InvalidField(format!("bad role {r:?}: {ROLE_NAME_RULE}"))
                })
            })
            .transpose()?;
        let user: UserRecord = self
            .store
            .upsert_user(UserUpsert {
                id: user_id.to_owned(),
                username: None,
                name,
                role,
                disabled,
            })
            .await?;
        if user.disabled {
            self.cluster
                .close_user(user_id, confab_protocol::CloseCode::UserRefused);
        }
        Ok(wire::user(user))
    }
}

fn participants_contains(participants: &[Participant], user_id: &str) -> bool {
    participants.iter().any(|p| p.id == user_id)
}

fn decode_cursor(cursor: &str) -> ChatResult<(Timestamp, String)> {
    let bad = || ChatError::InvalidField("cursor is not one this server gave".into());
    let (millis, id) = cursor.split_once(':').ok_or_else(bad)?;
    let millis: i64 = millis.parse().map_err(|_| bad())?;
    Ok((Timestamp(millis), id.to_owned()))
}
