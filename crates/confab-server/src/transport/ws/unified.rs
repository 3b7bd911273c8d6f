//! The unified protocol (protocol.md §2), spoken on `/ws` and `/ws/chat/`: the
//! first dialect of the session engine. One connection carries every room;
//! each client frame decodes into one [`ClientFrame`] and one core call.

use super::dialect::{AsQueued, Dialect, WithoutToken, error_frame};
use super::session::Session;
use crate::config::Config;
use crate::core::commands::Prepared;
use crate::core::live::Join;
use crate::core::receipts::ReadRule;
use crate::core::{Caller, ChatError};
use crate::hub::ConnId;
use axum::extract::ws::Utf8Bytes;
use confab_protocol::{
    ClientFrame, DecodeError, ErrorCode, Limits, PROTOCOL_VERSION, ReqId, ServerFrame, Timestamp,
    decode_client_frame_limited,
};

/// A unified-protocol connection.
#[derive(Debug)]
pub struct Unified {
    /// The path it connected to, for `/metrics`.
    endpoint: &'static str,
    /// No frame handled yet: an anonymous connection may still send `auth`.
    fresh: bool,
}

impl Unified {
    /// A connection on `endpoint` (`/ws`, `/ws/chat`, `/ws/chat/`).
    pub fn new(endpoint: &'static str) -> Self {
        Unified {
            endpoint,
            fresh: true,
        }
    }

    /// `connection_established`: who the connection is and the limits it
    /// lives under.
    fn established(config: &Config, caller: &Caller, conn: ConnId) -> Utf8Bytes {
        crate::core::encode(&ServerFrame::ConnectionEstablished {
            user_id: caller.user.id.clone(),
            username: caller.user.username.clone(),
            connection_id: conn.to_string(),
            protocol: PROTOCOL_VERSION,
            heartbeat_ms: config.server.heartbeat_ms,
            limits: Limits {
                max_message_length: config.limits.max_message_length,
                messages_per_minute: if caller.anonymous.is_some() {
                    config.rate_limit.anonymous_messages_per_minute
                } else {
                    config.rate_limit.messages_per_minute
                },
                max_frame_bytes: config.limits.max_frame_bytes,
            },
            timestamp: Timestamp::now(),
        })
    }
}

impl Dialect for Unified {
    type Render = AsQueued;

    fn endpoint(&self) -> &'static str {
        self.endpoint
    }

    fn shows_notifications(&self) -> bool {
        true
    }

    fn without_token(&self, config: &Config) -> WithoutToken {
        if config.auth.allow_anonymous {
            WithoutToken::Anonymous
        } else {
            WithoutToken::AwaitFirstFrame
        }
    }

    fn first_frame_token(&self, text: &str, config: &Config) -> Option<String> {
        match decode_client_frame_limited(text, config.limits.max_json_depth) {
            Ok(envelope) => match envelope.frame {
                ClientFrame::Auth { token } => Some(token),
                _ => None,
            },
            Err(_) => None,
        }
    }

    fn greeting(&self, config: &Config, caller: &Caller, conn: ConnId) -> Option<Utf8Bytes> {
        Some(Unified::established(config, caller, conn))
    }

    async fn on_text(&mut self, session: &mut Session, text: &str) {
        let max_depth = session.chat().config().limits.max_json_depth;
        let decoded = decode_client_frame_limited(text, max_depth);
        let fresh = std::mem::replace(&mut self.fresh, false);
        if let Ok(envelope) = &decoded
            && let ClientFrame::Auth { token } = &envelope.frame
            && fresh
            && session.caller().anonymous.is_some()
        {
            session.identify(token, Unified::established).await;
            return;
        }
        match decoded {
            Err(DecodeError {
                code,
                message,
                req_id,
                room_id,
            }) => {
                tracing::debug!(%code, %message, "bad frame");
                reply_error(session, code, message, req_id, room_id, None);
            }
            Ok(envelope) => {
                // Sends may overtake nothing but sends: anything else sees
                // every earlier send of this connection committed first.
                if !matches!(envelope.frame, ClientFrame::SendMessage(_)) {
                    session.settle_in_flight().await;
                }
                let room_id = envelope.frame.room_id().map(str::to_owned);
                let req_id = envelope.req_id;
                if let Err(error) =
                    dispatch(session, self.endpoint, envelope.frame, req_id.clone()).await
                {
                    session.outbox().send(&error_frame(&error, req_id, room_id));
                }
            }
        }
    }

    fn on_binary(&mut self, session: &mut Session) {
        reply_error(
            session,
            ErrorCode::InvalidJson,
            "binary frames are not supported; send JSON text".into(),
            None,
            None,
            None,
        );
    }

    fn render(&self) -> AsQueued {
        AsQueued
    }
}

fn reply_error(
    session: &Session,
    code: ErrorCode,
    message: String,
    req_id: Option<ReqId>,
    room_id: Option<String>,
    retry_after_ms: Option<u64>,
) {
    session.outbox().send(&ServerFrame::Error {
        timestamp: Timestamp::now(),
        code,
        message,
        room_id,
        req_id,
        retry_after_ms,
    });
}

/// Requests whose answer goes to the whole room get an `ack` of their own
/// only when they carried a `req_id` to match it with.
fn ack_if_asked(session: &Session, req_id: Option<ReqId>) -> Result<(), ChatError> {
    if req_id.is_some() {
        session.outbox().send(&ServerFrame::Ack {
            req_id,
            timestamp: Timestamp::now(),
        });
    }
    Ok(())
}

/// One request → one core call → its direct answer.
async fn dispatch(
    session: &mut Session,
    endpoint: &'static str,
    frame: ClientFrame,
    req_id: Option<ReqId>,
) -> Result<(), ChatError> {
    let reply = match frame {
        ClientFrame::Auth { .. } => {
            return Err(ChatError::InvalidField(
                "already authenticated; use refresh_token to replace the token".into(),
            ));
        }
        ClientFrame::RefreshToken { token } => {
            session.refresh(&token)?;
            ServerFrame::Ack {
                req_id,
                timestamp: Timestamp::now(),
            }
        }
        ClientFrame::SubscribeRoom { room_id, since_seq } => {
            let (chat, caller) = (session.chat(), session.caller());
            return chat
                .subscribe(
                    caller,
                    session.conn(),
                    session.outbox(),
                    &room_id,
                    Join {
                        replay: since_seq.into(),
                        reads: ReadRule::Viewer,
                        req_id,
                    },
                )
                .await;
        }
        ClientFrame::UnsubscribeRoom { room_id } => {
            session
                .chat()
                .unsubscribe(session.caller(), session.conn(), &room_id)?;
            ServerFrame::Unsubscribed {
                room_id,
                req_id,
                timestamp: Timestamp::now(),
            }
        }
        ClientFrame::SendMessage(request) => {
            let request = match session.chat().prepare_send(request, req_id.as_ref()) {
                Prepared::Message(request) | Prepared::Me(request) => request,
                Prepared::Command(call) => {
                    session.run_command(call, endpoint).await;
                    return Ok(());
                }
            };
            let outbox = session.outbox().clone();
            let room_id = request.room_id.clone();
            let ack_req_id = req_id.clone();
            let pending = session
                .chat()
                .queue_message(session.caller(), request, move |sent| {
                    outbox.send(&ServerFrame::MessageAck {
                        room_id: sent.message.room_id.clone(),
                        client_msg_id: sent.client_msg_id.clone(),
                        message_id: sent.message.id.clone(),
                        seq: sent.message.seq,
                        timestamp: sent.message.timestamp,
                        duplicate: sent.duplicate,
                        req_id: ack_req_id,
                    });
                })
                .await?;
            // The ack comes from the commit; only a refusal is answered here.
            session.keep_in_flight(Box::pin(async move {
                let error = pending.stored().await.err()?;
                Some(crate::core::encode(&error_frame(
                    &error,
                    req_id,
                    Some(room_id),
                )))
            }));
            return Ok(());
        }
        ClientFrame::EditMessage {
            room_id,
            message_id,
            content,
        } => {
            session
                .chat()
                .edit_message(session.caller(), &room_id, &message_id, content)
                .await?;
            return ack_if_asked(session, req_id);
        }
        ClientFrame::DeleteMessage {
            room_id,
            message_id,
        } => {
            session
                .chat()
                .delete_message(session.caller(), &room_id, &message_id)
                .await?;
            return ack_if_asked(session, req_id);
        }
        ClientFrame::AddReaction {
            room_id,
            message_id,
            emoji,
        } => {
            session
                .chat()
                .react(session.caller(), &room_id, &message_id, emoji, true)
                .await?;
            return ack_if_asked(session, req_id);
        }
        ClientFrame::RemoveReaction {
            room_id,
            message_id,
            emoji,
        } => {
            session
                .chat()
                .react(session.caller(), &room_id, &message_id, emoji, false)
                .await?;
            return ack_if_asked(session, req_id);
        }
        ClientFrame::MarkRead {
            room_id,
            up_to_seq,
            message_ids,
        } => {
            session
                .chat()
                .mark_read(session.caller(), &room_id, up_to_seq, message_ids)
                .await?;
            return ack_if_asked(session, req_id);
        }
        ClientFrame::Typing { room_id, is_typing } => {
            return session.chat().typing(
                session.caller(),
                session.conn(),
                &room_id,
                is_typing.unwrap_or(true),
            );
        }
        ClientFrame::StopTyping { room_id } => {
            return session
                .chat()
                .typing(session.caller(), session.conn(), &room_id, false);
        }
        ClientFrame::GetRoomList { limit, cursor } => {
            let (rooms, next_cursor) = session
                .chat()
                .room_list(session.caller(), limit, cursor.as_deref())
                .await?;
            ServerFrame::RoomList {
                timestamp: Timestamp::now(),
                rooms,
                next_cursor,
                req_id,
            }
        }
        ClientFrame::GetHistory {
            room_id,
            before_seq,
            after_seq,
            limit,
        } => {
            let (messages, has_more) = session
                .chat()
                .history(session.caller(), &room_id, before_seq, after_seq, limit)
                .await?;
            ServerFrame::History {
                timestamp: Timestamp::now(),
                room_id,
                messages,
                has_more,
                req_id,
            }
        }
        ClientFrame::GetPresence { room_id } => {
            let online = session.chat().presence(session.caller(), &room_id).await?;
            ServerFrame::Presence {
                timestamp: Timestamp::now(),
                room_id,
                online,
                req_id,
            }
        }
        ClientFrame::Ping {} => ServerFrame::Pong {
            timestamp: Timestamp::now(),
            req_id,
        },
    };
    session.outbox().send(&reply);
    Ok(())
}
