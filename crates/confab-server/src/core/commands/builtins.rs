//! The built-in commands (protocol.md §6.1): each one a core call the
//! transports already offer in another form, answered as a
//! [`CommandResult`].

use super::{BuiltIn, CommandCall, Place, Standing};
use crate::core::{Caller, Chat, ChatError, ChatResult};
use crate::identity::SYSTEM_USER;
use crate::store::NewMessage;
use confab_protocol::client::SendMessage;
use confab_protocol::{CommandResult, MessageType, Timestamp};
use serde_json::{Value, json};
use std::fmt::Write;

/// The rooms `/rooms` lists.
const ROOMS_LISTED: u32 = 50;
/// The longest topic.
const MAX_TOPIC_CHARS: usize = 500;

impl Chat {
    /// Whether `caller` may run `built_in` here (what `/help` lists).
    pub(super) fn built_in_allowed(
        &self,
        built_in: BuiltIn,
        caller: &Caller,
        standing: &Standing,
    ) -> bool {
        match built_in {
            BuiltIn::Help | BuiltIn::Status | BuiltIn::Rooms | BuiltIn::Topic => true,
            BuiltIn::Stats => caller.is_admin(),
            BuiltIn::Invite => {
                standing.writes(caller)
                    && caller.anonymous.is_none()
                    && standing.room.room_type != "direct"
            }
            BuiltIn::Kick => standing.manages(caller),
            BuiltIn::Clear => standing.is_assistant() && standing.manages(caller),
            BuiltIn::Me => standing.writes(caller),
        }
    }

    /// Runs one built-in; a refusal is a [`ChatError`] the caller turns
    /// into a failed result.
    pub(super) async fn run_built_in(
        &self,
        built_in: BuiltIn,
        caller: &Caller,
        call: &CommandCall,
        standing: &Standing,
        place: &Place,
    ) -> ChatResult<CommandResult> {
        if !self.built_in_allowed(built_in, caller, standing) {
            return Err(refusal(built_in, standing));
        }
        let word = call.word.as_str();
        let room_id = call.room_id.as_str();
        match built_in {
            BuiltIn::Help => Ok(self.help(word, caller, standing)),
            BuiltIn::Status => self.status(word, caller, room_id, place).await,
            BuiltIn::Rooms => {
                let (rooms, _) = self.room_list(caller, Some(ROOMS_LISTED), None).await?;
                let mut text = String::new();
                for room in &rooms {
                    let name = room.name.as_deref().unwrap_or(&room.id);
                    let _ = writeln!(text, "{name} ({}) — {} unread", room.id, room.unread_count);
                }
                if rooms.is_empty() {
                    text.push_str("no rooms");
                }
                Ok(CommandResult::ok(
                    word,
                    text.trim_end(),
                    json!({"rooms": rooms}),
                ))
            }
            BuiltIn::Stats => {
                let stats = self.stats(caller).await?;
                let text = format!(
                    "{} connections, {} users online, {} rooms, {} messages ({:.1}/s over the last minute)",
                    stats.connections,
                    stats.users_online,
                    stats.rooms,
                    stats.messages_stored,
                    stats.messages_per_second
                );
                Ok(CommandResult::ok(word, text, json!(stats)))
            }
            BuiltIn::Topic => self.topic(word, caller, &call.args, standing).await,
            BuiltIn::Invite => {
                let user_id = one_user(&call.args, "invite")?;
                let member = self.invite(&standing.room, user_id).await?;
                let text = format!("{user_id} is a member of this room");
                Ok(CommandResult::ok(word, text, json!({"member": member})))
            }
            BuiltIn::Kick => {
                let user_id = one_user(&call.args, "kick")?;
                self.remove_member(caller, room_id, user_id).await?;
                let text = format!("{user_id} was removed from this room");
                Ok(CommandResult::ok(word, text, json!({"user_id": user_id})))
            }
            BuiltIn::Clear => {
                self.end_session(caller, room_id).await?;
                let text = "the session has ended";
                Ok(CommandResult::ok(
                    word,
                    text,
                    json!({"session_id": room_id}),
                ))
            }
            BuiltIn::Me => {
                let request = SendMessage {
                    room_id: room_id.to_owned(),
                    content: Some(call.args.clone()),
                    metadata: Some(json!({"action": true})),
                    ..SendMessage::default()
                };
                let sent = self.send_message(caller, request, |_| {}).await?;
                Ok(CommandResult::ok(
                    word,
                    "",
                    json!({"message": sent.message}),
                ))
            }
        }
    }

    fn help(&self, word: &str, caller: &Caller, standing: &Standing) -> CommandResult {
        let mut listed = Vec::new();
        for built_in in BuiltIn::ALL {
            if self.built_in_allowed(built_in, caller, standing) {
                listed.push((built_in.name(), built_in.description(), "builtin"));
            }
        }
        for command in &self.config.commands {
            if self.app_command_listed(command, caller, standing) {
                // An alias without a description of its own says what its
                // built-in does.
                let alias = command.alias.as_deref().and_then(BuiltIn::named);
                let description = match alias {
                    Some(built_in) if command.description.is_empty() => built_in.description(),
                    _ => command.description.as_str(),
                };
                listed.push((command.name.as_str(), description, "app"));
            }
        }
        let mut text = String::new();
        for (name, description, _) in &listed {
            let _ = writeln!(text, "/{name} — {description}");
        }
        let commands: Vec<Value> = listed
            .iter()
            .map(|(name, description, source)| {
                json!({"name": name, "description": description, "source": source})
            })
            .collect();
        CommandResult::ok(word, text.trim_end(), json!({"commands": commands}))
    }

    async fn status(
        &self,
        word: &str,
        caller: &Caller,
        room_id: &str,
        place: &Place,
    ) -> ChatResult<CommandResult> {
        let room = self.get_room(caller, room_id).await?;
        let online = room.participants.iter().filter(|p| p.online).count();
        let role = caller.user.role.as_str();
        let mut text = format!("you are {} ({role})", caller.id());
        if let Some((id, endpoint)) = &place.connection {
            let _ = write!(text, " on {endpoint}, connection {id}");
        }
        let _ = write!(
            text,
            "; {}: {} members ({online} online), {} messages, {} unread{}",
            room.name.as_deref().unwrap_or(&room.id),
            room.participants.len(),
            room.last_seq,
            room.unread_count,
            if room.closed { ", closed" } else { "" }
        );
        let data = json!({
            "user": {"id": caller.id(), "name": caller.user.name, "role": role},
            "connection": place.connection.as_ref().map(|(id, endpoint)| json!({"id": id, "endpoint": endpoint})),
            "room": {
                "id": room.id,
                "name": room.name,
                "type": room.room_type,
                "role": room.role,
                "last_seq": room.last_seq,
                "unread_count": room.unread_count,
                "members": room.participants.len(),
                "online": online,
                "closed": room.closed,
            },
        });
        Ok(CommandResult::ok(word, text, data))
    }

    /// `/topic` shows `metadata.topic`; `/topic TEXT` (room admins) sets
    /// it, keeping the metadata's other keys, and members get `room_updated`.
    async fn topic(
        &self,
        word: &str,
        caller: &Caller,
        text: &str,
        standing: &Standing,
    ) -> ChatResult<CommandResult> {
        let room = &standing.room;
        if text.is_empty() {
            let topic = room.metadata.get("topic").and_then(Value::as_str);
            let shown = topic.map_or_else(|| "no topic".to_owned(), |t| format!("topic: {t}"));
            return Ok(CommandResult::ok(word, shown, json!({"topic": topic})));
        }
        if !standing.manages(caller) {
            return Err(ChatError::Forbidden(
                "only a room owner or admin may set the topic".into(),
            ));
        }
        if text.chars().count() > MAX_TOPIC_CHARS {
            return Err(ChatError::InvalidField(format!(
                "a topic is at most {MAX_TOPIC_CHARS} characters"
            )));
        }
        let mut metadata = match &room.metadata {
            Value::Object(object) => object.clone(),
            _ => serde_json::Map::new(),
        };
        metadata.insert("topic".into(), json!(text));
        self.update_room(caller, &room.id, None, Some(Value::Object(metadata)))
            .await?;
        Ok(CommandResult::ok(
            word,
            format!("topic: {text}"),
            json!({"topic": text}),
        ))
    }

    /// Stores an app command's `post` in the room as a system message from
    /// the server (the usual events follow).
    pub(super) async fn post_for_command(
        &self,
        room: &Standing,
        post: &str,
        word: &str,
        caller: &Caller,
    ) -> ChatResult<()> {
        if room.room.closed {
            return Err(ChatError::Forbidden("the room is closed".into()));
        }
        self.validate_content(post, false)?;
        self.ensure_system_user().await?;
        let new = NewMessage {
            id: uuid::Uuid::now_v7().to_string(),
            room_id: room.room.id.clone(),
            sender_id: SYSTEM_USER.to_owned(),
            content: post.to_owned(),
            message_type: MessageType::System,
            reply_to: None,
            metadata: json!({"command": word, "user_id": caller.id()}),
            attachment: None,
            location: None,
            client_msg_id: None,
            created_at: Timestamp::now(),
            missed_by: Vec::new(),
        };
        self.queue_checked(new, caller.clone(), |_| {}, None)
            .await?
            .stored()
            .await
    }
}

/// Why `built_in` is not for `caller` here.
fn refusal(built_in: BuiltIn, standing: &Standing) -> ChatError {
    match built_in {
        BuiltIn::Clear if !standing.is_assistant() => {
            ChatError::InvalidField("/clear ends an assistant session; this room is not one".into())
        }
        BuiltIn::Clear => {
            ChatError::Forbidden("only the session's owner or an admin may end it".into())
        }
        BuiltIn::Stats => ChatError::Forbidden("stats are for admins".into()),
        BuiltIn::Invite if standing.room.room_type == "direct" => {
            ChatError::Forbidden("a direct room has exactly two members".into())
        }
        BuiltIn::Kick => {
            ChatError::Forbidden("only a room owner or admin may remove members".into())
        }
        BuiltIn::Me | BuiltIn::Invite => ChatError::Forbidden(
            if standing.room.closed {
                "the room is closed"
            } else {
                "read-only users cannot do this"
            }
            .into(),
        ),
        BuiltIn::Help | BuiltIn::Status | BuiltIn::Rooms | BuiltIn::Topic => {
            ChatError::Forbidden("not allowed".into())
        }
    }
}

/// The one user id `/invite` and `/kick` take; never one of the server's
/// own identities.
fn one_user<'a>(args: &'a str, command: &str) -> ChatResult<&'a str> {
    let mut words = args.split_whitespace();
    let (Some(user_id), None) = (words.next(), words.next()) else {
        return Err(ChatError::InvalidField(format!(
            "/{command} takes one user id: /{command} USER"
        )));
    };
    crate::core::validate_id("user id", user_id)?;
    if let Some(reason) = crate::identity::reserved_user(user_id) {
        return Err(ChatError::InvalidField(reason));
    }
    Ok(user_id)
}
