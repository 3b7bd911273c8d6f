//! Sending messages and reading history.

use super::assistant::Asker;
use super::live::publish_typing;
use super::receipts::ReadRule;
use super::{Caller, Chat, ChatError, ChatResult, encode, validate_metadata, wire};
use crate::hub::RoomEvent;
use crate::identity::ASSISTANT_USER;
use crate::store::{
    AppendOutcome, HistoryPage, MessageRecord, NewMessage, PendingAppend, ReactionChange,
    RoomRecord, RoomRole, StoreError,
};
use confab_protocol::client::SendMessage;
use confab_protocol::{Message, MessageType, ServerFrame, Timestamp};
use std::collections::BTreeMap;

/// Default and largest page of history.
pub const HISTORY_DEFAULT_LIMIT: u32 = 50;
/// See [`HISTORY_DEFAULT_LIMIT`].
pub const HISTORY_MAX_LIMIT: u32 = 100;

/// A stored message and whether it was stored by an earlier send.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The stored message.
    pub message: Message,
    /// The sender's idempotency key, echoed in `message_ack`.
    pub client_msg_id: Option<String>,
    /// The `client_msg_id` was already stored; nothing new was.
    pub duplicate: bool,
}

/// A send queued on the store's writer (see [`Chat::queue_message`]).
pub struct PendingSend(PendingAppend);

impl PendingSend {
    /// The stored message, once committed.
    pub async fn sent(self) -> ChatResult<Sent> {
        Ok(Sent::from(self.0.await?))
    }

    /// Only whether storing succeeded, once committed: for a WebSocket
    /// session, whose ack the commit hook already queued.
    pub async fn stored(self) -> ChatResult<()> {
        self.0.await?;
        Ok(())
    }
}

/// One message of `GET /rooms/{id}/context`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ContextEntry {
    /// `user`, `assistant` or `system`.
    #[schema(value_type = String)]
    pub role: &'static str,
    /// The sender's display name (or handle).
    pub name: String,
    /// The text.
    pub content: String,
    /// When it was stored.
    pub timestamp: Timestamp,
}

impl From<AppendOutcome> for Sent {
    fn from(outcome: AppendOutcome) -> Self {
        let (record, duplicate) = match outcome {
            AppendOutcome::Stored(record) => (record, false),
            AppendOutcome::Duplicate(record) => (record, true),
        };
        Sent {
            client_msg_id: record.client_msg_id.clone(),
            message: wire::message(record),
            duplicate,
        }
    }
}

fn outcome_seq(outcome: &AppendOutcome) -> i64 {
    match outcome {
        AppendOutcome::Stored(record) | AppendOutcome::Duplicate(record) => record.seq,
    }
}

impl Chat {
    /// Validates, stores and fans out a message.
    ///
    /// The ack and the fan-out run in the store's commit hook, right after the commit,
    /// in commit order: subscribers get a room's messages in seq order even
    /// when many senders race, and a message is fanned out even if the caller
    /// stopped waiting (a REST client that hung up). `on_stored` runs there
    /// first — the WebSocket session queues its `message_ack` — so the
    /// sender's connection sees the ack before its own `new_message` (protocol.md
    /// §7). A duplicate send is answered but not fanned out again.
    pub async fn send_message(
        &self,
        caller: &Caller,
        request: SendMessage,
        on_stored: impl FnOnce(&Sent) + Send + 'static,
    ) -> ChatResult<Sent> {
        self.queue_message(caller, request, on_stored)
            .await?
            .sent()
            .await
    }

    /// [`Chat::send_message`] in two steps: checks the send and queues it on
    /// the store's writer, then returns the future of its stored outcome
    /// without waiting for the commit. Sends queued in turn are stored in
    /// turn, so a WebSocket session keeps many of its sends in flight (they
    /// share commits) and still sees them numbered in the order it sent them.
    /// Refusals found before storing (access, validation, rate) come from
    /// this call; the future carries only what storing itself answered.
    pub async fn queue_message(
        &self,
        caller: &Caller,
        request: SendMessage,
        on_stored: impl FnOnce(&Sent) + Send + 'static,
    ) -> ChatResult<PendingSend> {
        if request.room_id.is_empty() {
            return Err(ChatError::InvalidField(
                "send_message: missing field `room_id`".into(),
            ));
        }
        let access = self.send_access(caller, &request.room_id).await?;
        if !caller.can_write() || access.role == Some(RoomRole::Viewer) {
            return Err(ChatError::Forbidden("read-only users cannot send".into()));
        }
        if access.closed {
            return Err(ChatError::Forbidden(if access.assistant {
                "the session has ended; start a new one".into()
            } else {
                "the room is closed".into()
            }));
        }
        let new = self.validate_send(caller, request).await?;
        // Last check before storing: a refused send has stored nothing, and a
        // send refused for another reason has not used up the allowance.
        self.check_message_rate(caller)?;
        // In an assistant room a user's text asks the bot for a reply (protocol.md §6).
        let asks = access.assistant
            && caller.id() != ASSISTANT_USER
            && new.message_type == MessageType::Text;
        let asker = asks.then(|| self.assistant.clone());
        self.queue_checked(new, caller.clone(), on_stored, asker)
            .await
    }

    /// Queues a message that passed every check on the store's writer; after
    /// its commit (in the commit hook): `on_stored`, the `new_message`
    /// fan-out, the end of `typist`'s typing indicator, and the question to
    /// `asker` if given. For the assistant bot's own replies too.
    pub(super) async fn queue_checked(
        &self,
        mut new: NewMessage,
        typist: Caller,
        on_stored: impl FnOnce(&Sent) + Send + 'static,
        asker: Option<Asker>,
    ) -> ChatResult<PendingSend> {
        let cluster = self.cluster.clone();
        let rate = self.sent_rate.clone();
        let metrics = self.metrics.clone();
        let hub = self.hub.clone();
        let on_commit = Box::new(move |outcome: &AppendOutcome| {
            // The hook runs on the store right after the commit, in commit order.
            let committed = std::time::Instant::now();
            let seq = outcome_seq(outcome);
            let sent = Sent::from(outcome.clone());
            on_stored(&sent);
            if !sent.duplicate {
                metrics.messages_stored.inc();
                rate.record();
                let room_id = sent.message.room_id.clone();
                let question = asker.map(|asker| (asker, sent.message.id.clone()));
                let frame = ServerFrame::NewMessage {
                    room_id: room_id.clone(),
                    message: sent.message,
                    timestamp: Timestamp::now(),
                };
                cluster.fan_out(
                    &room_id,
                    RoomEvent {
                        seq: Some(seq),
                        bytes: encode(&frame),
                        except_user: None,
                    },
                );
                metrics
                    .fanout_seconds
                    .observe(committed.elapsed().as_secs_f64());
                // After the question's own fan-out: the bot's first frames
                // must not overtake it.
                if let Some((asker, message_id)) = question {
                    asker.ask(&room_id, &message_id);
                }
                // Sending ends the sender's typing indicator, after the message.
                if hub.clear_typing(&room_id, typist.id()) {
                    publish_typing(&cluster, &room_id, &typist, false);
                }
            }
        });
        new.missed_by = self.missed_by(&new.room_id, &new.sender_id).await?;
        let pending = self.store.queue_append(new, on_commit).await?;
        Ok(PendingSend(pending))
    }

    /// Turns a request into a storable message, or says what is wrong with it.
    async fn validate_send(&self, caller: &Caller, request: SendMessage) -> ChatResult<NewMessage> {
        let limits = &self.config.limits;
        let message_type = request.message_type.unwrap_or_default();
        if message_type == MessageType::System && !caller.server_key {
            return Err(ChatError::Forbidden(
                "system messages can only be sent with the server key".into(),
            ));
        }
        let content_optional = matches!(
            message_type,
            MessageType::Location | MessageType::Image | MessageType::File
        );
        // A text or system message without `content` is a missing field, not
        // an empty message (protocol.md §2.3 lists `content` as required).
        let content = match request.content {
            Some(content) => content,
            None if content_optional => String::new(),
            None => {
                return Err(ChatError::InvalidField(
                    "send_message: missing field `content`".into(),
                ));
            }
        };
        self.validate_content(&content, content_optional)?;
        let location = match (message_type, request.location) {
            (MessageType::Location, Some(loc)) => {
                let valid =
                    (-90.0..=90.0).contains(&loc.lat) && (-180.0..=180.0).contains(&loc.lng);
                if !valid {
                    return Err(ChatError::InvalidField(
                        "location needs lat in −90..90 and lng in −180..180".into(),
                    ));
                }
                Some(loc)
            }
            (MessageType::Location, None) => {
                return Err(ChatError::InvalidField(
                    "a location message needs `location`".into(),
                ));
            }
            (_, Some(_)) => {
                return Err(ChatError::InvalidField(
                    "`location` is only for message_type location".into(),
                ));
            }
            (_, None) => None,
        };
        let attachment = match message_type {
            MessageType::Image | MessageType::File => Some(
                self.usable_attachment(caller, request.attachment_id.as_deref(), message_type)
                    .await?,
            ),
            _ if request.attachment_id.is_some() => {
                return Err(ChatError::InvalidField(
                    "`attachment_id` is only for image and file messages".into(),
                ));
            }
            _ => None,
        };
        let metadata = request.metadata.unwrap_or_else(|| serde_json::json!({}));
        validate_metadata(&metadata, limits.max_metadata_bytes)?;
        if let Some(id) = &request.client_msg_id
            && (id.is_empty() || id.len() > 128)
        {
            return Err(ChatError::InvalidField(
                "client_msg_id must be 1–128 characters".into(),
            ));
        }
        if let Some(reply_to) = &request.reply_to
            && self
                .store
                .get_message(&request.room_id, reply_to)
                .await?
                .is_none()
        {
            return Err(ChatError::InvalidField(
                "reply_to must name a message of the same room".into(),
            ));
        }
        Ok(NewMessage {
            id: uuid::Uuid::now_v7().to_string(),
            room_id: request.room_id,
            sender_id: caller.id().to_owned(),
            content,
            message_type,
            reply_to: request.reply_to,
            metadata,
            attachment,
            location,
            client_msg_id: request.client_msg_id,
            created_at: Timestamp::now(),
            missed_by: Vec::new(),
        })
    }

    /// Checks content against emptiness and `limits.max_message_length`.
    pub(super) fn validate_content(&self, content: &str, may_be_empty: bool) -> ChatResult<()> {
        if content.trim().is_empty() && !may_be_empty {
            return Err(ChatError::EmptyMessage);
        }
        let max = self.config.limits.max_message_length;
        if content.chars().count() > max {
            return Err(ChatError::MessageTooLong { max });
        }
        Ok(())
    }

    /// Loads a message the caller may change: their own, or any in a room
    /// they administer. `forbidden` for read-only callers and others'
    /// messages, `not_found` for a message not in the room.
    async fn message_to_change(
        &self,
        caller: &Caller,
        room_id: &str,
        message_id: &str,
    ) -> ChatResult<(RoomRecord, MessageRecord)> {
        let (room, member) = self.room_access(caller, room_id).await?;
        if !caller.can_write() {
            return Err(ChatError::Forbidden(
                "read-only users cannot change messages".into(),
            ));
        }
        let message = self
            .store
            .get_message(room_id, message_id)
            .await?
            .ok_or(ChatError::NotFound("message"))?;
        let moderates =
            caller.is_admin() || member.as_ref().is_some_and(|m| m.role >= RoomRole::Admin);
        if message.sender_id != caller.id() && !moderates {
            return Err(ChatError::Forbidden(
                "only the sender or a room admin may change a message".into(),
            ));
        }
        Ok((room, message))
    }

    /// Replaces a message's content; the room gets `message_updated`.
    pub async fn edit_message(
        &self,
        caller: &Caller,
        room_id: &str,
        message_id: &str,
        content: String,
    ) -> ChatResult<Message> {
        let (room, message) = self.message_to_change(caller, room_id, message_id).await?;
        if room.closed {
            return Err(ChatError::Forbidden("the room is closed".into()));
        }
        if message.deleted {
            return Err(ChatError::NotFound("message"));
        }
        let content_optional = !matches!(
            message.message_type,
            MessageType::Text | MessageType::System
        );
        self.validate_content(&content, content_optional)?;
        // Read before the write, so that a failed read changes nothing.
        let receipts = self.receipts(room_id, caller.id()).await?;
        let record = self
            .store
            .edit_message(room_id, message_id, content, Timestamp::now())
            .await?;
        let mut message = wire::message(record);
        // One frame for the whole room: the sender's view (protocol.md §7).
        receipts.mark(ReadRule::AnyoneButSender, &mut message);
        self.send_to_room(
            room_id,
            &ServerFrame::MessageUpdated {
                timestamp: Timestamp::now(),
                room_id: room_id.to_owned(),
                message: message.clone(),
            },
            None,
        );
        Ok(message)
    }

    /// Deletes a message (its seq stays, content and reactions go); the room
    /// gets `message_deleted`. Deleting twice is not an error.
    pub async fn delete_message(
        &self,
        caller: &Caller,
        room_id: &str,
        message_id: &str,
    ) -> ChatResult<Message> {
        self.message_to_change(caller, room_id, message_id).await?;
        let receipts = self.receipts(room_id, caller.id()).await?;
        let mut message = wire::message(self.store.delete_message(room_id, message_id).await?);
        receipts.mark(ReadRule::AnyoneButSender, &mut message);
        self.send_to_room(
            room_id,
            &ServerFrame::MessageDeleted {
                timestamp: Timestamp::now(),
                room_id: room_id.to_owned(),
                message: message.clone(),
            },
            None,
        );
        Ok(message)
    }

    /// Adds or removes the caller's reaction; the room gets `reaction_updated`
    /// with the whole map. Both are idempotent.
    pub async fn react(
        &self,
        caller: &Caller,
        room_id: &str,
        message_id: &str,
        emoji: String,
        present: bool,
    ) -> ChatResult<BTreeMap<String, Vec<String>>> {
        let (room, member) = self.room_access(caller, room_id).await?;
        if !caller.can_write() || member.as_ref().is_some_and(|m| m.role == RoomRole::Viewer) {
            return Err(ChatError::Forbidden("read-only users cannot react".into()));
        }
        if room.closed {
            return Err(ChatError::Forbidden("the room is closed".into()));
        }
        let valid = !emoji.is_empty()
            && emoji.chars().count() <= 32
            && !emoji.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            return Err(ChatError::InvalidField(
                "emoji must be 1–32 characters without spaces".into(),
            ));
        }
        self.check_rate(&self.limits.reactions, caller)?;
        let reactions = self
            .store
            .set_reaction(ReactionChange {
                room_id: room_id.to_owned(),
                message_id: message_id.to_owned(),
                user_id: caller.id().to_owned(),
                emoji,
                present,
                at: Timestamp::now(),
            })
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ChatError::NotFound("message"),
                other => other.into(),
            })?;
        self.send_to_room(
            room_id,
            &ServerFrame::ReactionUpdated {
                timestamp: Timestamp::now(),
                room_id: room_id.to_owned(),
                message_id: message_id.to_owned(),
                reactions: reactions.clone(),
            },
            None,
        );
        Ok(reactions)
    }

    /// The newest `max_messages` (default `assistant.max_history_messages`,
    /// at most 100) live messages of a
    /// room as an AI back-end wants them: oldest first, each with the role
    /// an OpenAI-style chat API expects (`system` for system messages,
    /// `assistant` for the server's own bot, `user` otherwise). Deleted
    /// messages are left out.
    pub async fn context(
        &self,
        caller: &Caller,
        room_id: &str,
        max_messages: Option<u32>,
    ) -> ChatResult<Vec<ContextEntry>> {
        self.room_access(caller, room_id).await?;
        let default = self.config.assistant.max_history_messages.max(1);
        let limit = page_limit(Some(max_messages.unwrap_or(default)))?;
        let (records, _) = self
            .store
            .history(room_id, HistoryPage::Latest, limit)
            .await?;
        Ok(records
            .into_iter()
            .filter(|m| !m.deleted)
            .map(|m| ContextEntry {
                role: match m.message_type {
                    MessageType::System => "system",
                    _ if m.sender_id == ASSISTANT_USER => "assistant",
                    _ => "user",
                },
                name: m.sender_name.unwrap_or(m.sender_username),
                content: m.content,
                timestamp: m.created_at,
            })
            .collect())
    }

    /// A page of a room's history, ascending `seq`, and whether there is more.
    pub async fn history(
        &self,
        caller: &Caller,
        room_id: &str,
        before_seq: Option<i64>,
        after_seq: Option<i64>,
        limit: Option<u32>,
    ) -> ChatResult<(Vec<Message>, bool)> {
        self.room_access(caller, room_id).await?;
        let page = match (before_seq, after_seq) {
            (Some(_), Some(_)) => {
                return Err(ChatError::InvalidField(
                    "give before_seq or after_seq, not both".into(),
                ));
            }
            (Some(n), None) if n < 0 => {
                return Err(ChatError::InvalidField("before_seq must be ≥ 0".into()));
            }
            (None, Some(n)) if n < 0 => {
                return Err(ChatError::InvalidField("after_seq must be ≥ 0".into()));
            }
            (Some(n), None) => HistoryPage::Before(n),
            (None, Some(n)) => HistoryPage::After(n),
            (None, None) => HistoryPage::Latest,
        };
        let limit = page_limit(limit)?;
        let (records, has_more) = self.store.history(room_id, page, limit).await?;
        let receipts = self.receipts(room_id, caller.id()).await?;
        let messages = records
            .into_iter()
            .map(|record| {
                let mut message = wire::message(record);
                receipts.mark(ReadRule::Viewer, &mut message);
                message
            })
            .collect();
        Ok((messages, has_more))
    }
}

/// Applies the default page size and caps it at [`HISTORY_MAX_LIMIT`].
pub fn page_limit(limit: Option<u32>) -> ChatResult<u32> {
    match limit {
        None => Ok(HISTORY_DEFAULT_LIMIT),
        Some(0) => Err(ChatError::InvalidField("limit must be ≥ 1".into())),
        Some(n) => Ok(n.min(HISTORY_MAX_LIMIT)),
    }
}
