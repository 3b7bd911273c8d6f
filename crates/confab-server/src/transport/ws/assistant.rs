//! The AI help-desk dialect of `/ws/assistant/` (protocol.md §3.4).
//!
//! A connection is in one assistant session at a time ([`crate::core::sessions`]):
//! chosen when it opens (the session its visitor token names, else the
//! caller's newest open one, else a new one) and again on each
//! `session_init`. It gets `session_started` first, then the session's
//! history (a resumed session) or the welcome (a new one, stored with the
//! visitor's first message). Messages go through core exactly as on `/ws`:
//! stored, rate-limited, answered by the bot, fanned out across nodes.
//!
//! What the client reads is rendered on its writer from the unified frames:
//! the session's messages with their `sender_type`, the bot's typing,
//! `assistant_delta` as it is, the session's close as `session_closed`, and
//! errors with `retry_after` in seconds. Frames of other rooms (a
//! session left for another, a signed-in user's other rooms) are not shown.

use super::dialect::{Dialect, Render, Rendered, WithoutToken, error_frame};
use super::session::Session;
use crate::config::Config;
use crate::core::commands::{BuiltIn, Prepared};
use crate::core::live::{Join, Replay};
use crate::core::ratings::{MAX_RATING, MIN_RATING};
use crate::core::receipts::ReadRule;
use crate::core::sessions::{SessionChoice, Welcome, is_taken};
use crate::core::{Caller, Chat, ChatError, ChatResult, encode};
use crate::hub::ConnId;
use crate::identity::{ASSISTANT_USER, SYSTEM_USER};
use axum::extract::ws::Utf8Bytes;
use confab_protocol::client::SendMessage;
use confab_protocol::dialect::ScopedFrame;
use confab_protocol::dialect::assistant::{
    self, AssistantEnvelope, AssistantFrame, ErrorFrame, MessageFrame, SenderType, SessionClosed,
    SessionMessage, SessionStarted, TypingFrame, retry_after_secs,
};
use confab_protocol::dialect::events::{
    ErrorEvent, NewMessageEvent, RoomEvent, RoomRemovedEvent, RoomUpdatedEvent, TypingEvent,
    frame_type,
};
use confab_protocol::{
    DecodeError, ErrorCode, Message, MessageType, ReqId, ServerFrame, Timestamp,
};
use serde::Serialize;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The endpoint's path.
pub const PATH: &str = "/ws/assistant/";

/// Where the connection is.
#[derive(Debug, Clone)]
enum Current {
    /// Not in a session yet (before `opened`).
    Nowhere,
    /// A new session, shown but not stored until its first message.
    New {
        /// Its id.
        id: String,
        /// The welcome shown, stored first.
        welcome: Option<Welcome>,
    },
    /// A stored session this connection has joined.
    Open(String),
    /// A session that ended while this connection was in it.
    Ended {
        /// Its id.
        id: String,
        /// Whether it was ever stored (a new session ended before its
        /// first message was not, and has nothing to rate).
        stored: bool,
    },
}

impl Current {
    /// The session id, if in one.
    fn id(&self) -> Option<&str> {
        match self {
            Current::Nowhere => None,
            Current::New { id, .. } | Current::Open(id) | Current::Ended { id, .. } => Some(id),
        }
    }
}

/// What the writer needs to know of the connection to render its frames:
/// which session is shown, and who the connection is. Shared between the
/// session (which moves it) and the writer (which reads it per frame).
#[derive(Debug, Default)]
struct Shown {
    session: Option<String>,
    user: String,
}

/// A connection of `/ws/assistant/`.
#[derive(Debug)]
pub struct AssistantSession {
    /// The session a visitor token named at sign-in.
    named: Option<String>,
    current: Current,
    shown: Arc<Mutex<Shown>>,
}

impl Default for AssistantSession {
    fn default() -> Self {
        Self::new()
    }
}

impl AssistantSession {
    /// A connection not yet in a session.
    pub fn new() -> Self {
        AssistantSession {
            named: None,
            current: Current::Nowhere,
            shown: Arc::default(),
        }
    }

    /// Shows `session` to the writer, for `user`.
    fn show(&self, session: Option<&str>, user: &str) {
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        shown.session = session.map(str::to_owned);
        user.clone_into(&mut shown.user);
    }

    /// Answers a refused or failed frame; the connection stays open.
    fn refuse(session: &mut Session, error: &ChatError, req_id: Option<ReqId>) {
        session.outbox().send(&error_frame(error, req_id, None));
    }

    /// Enters the session `named` (or the caller's own, or a new one), as
    /// on connect and on `session_init`: `session_started`, then the
    /// history or the welcome. Staying in the current session only
    /// answers `session_started` again.
    async fn enter(
        &mut self,
        session: &mut Session,
        named: Option<&str>,
        trusted: bool,
    ) -> ChatResult<()> {
        let choice = session
            .chat()
            .choose_session(session.caller(), named, trusted)
            .await?;
        let staying = self.current.id() == Some(choice.id())
            && matches!(self.current, Current::New { .. } | Current::Open(_));
        if staying {
            self.started(
                session,
                choice.id(),
                matches!(choice, SessionChoice::Resume(_)),
            );
            return Ok(());
        }
        if let Current::Open(id) = &self.current {
            // Leaving for another session: its frames stop here. Not
            // subscribed any more (a switch of identity) is as good.
            let _ = session
                .chat()
                .unsubscribe(session.caller(), session.conn(), id);
        }
        self.show(Some(choice.id()), session.caller().id());
        match choice {
            SessionChoice::Resume(id) => {
                self.started(session, &id, true);
                let replay = Replay::Latest(session.chat().config().limits.max_catch_up);
                self.join(session, &id, replay).await?;
                self.current = Current::Open(id);
            }
            SessionChoice::Start(id) => {
                self.started(session, &id, false);
                let welcome = Welcome::now(session.chat());
                if let Some(welcome) = &welcome {
                    let message = welcome_message(&id, welcome);
                    let frame =
                        MessageFrame::from(SessionMessage::new(&message, SenderType::Assistant));
                    session.outbox().push(to_text(&frame));
                }
                self.current = Current::New { id, welcome };
            }
        }
        Ok(())
    }

    /// Queues `session_started` for `id` (with a fresh visitor token for
    /// an anonymous visitor).
    fn started(&self, session: &mut Session, id: &str, resumed: bool) {
        let token = session.chat().visitor_token(session.caller(), id);
        let frame = SessionStarted {
            kind: "session_started",
            session_id: id,
            room_id: id,
            visitor_token: token.as_deref(),
            resumed,
            timestamp: Timestamp::now(),
        };
        session.outbox().push(to_text(&frame));
    }

    /// Subscribes the connection to its session's room.
    async fn join(&self, session: &mut Session, id: &str, replay: Replay) -> ChatResult<()> {
        let join = Join {
            replay,
            reads: ReadRule::Viewer,
            req_id: None,
        };
        session
            .chat()
            .subscribe(session.caller(), session.conn(), session.outbox(), id, join)
            .await
    }

    /// The open session a message goes to: a new session is stored first
    /// (with its welcome) and joined.
    async fn open(&mut self, session: &mut Session) -> ChatResult<String> {
        let (id, welcome) = match &self.current {
            Current::Open(id) => return Ok(id.clone()),
            Current::Ended { .. } | Current::Nowhere => {
                return Err(ChatError::Forbidden(
                    "the session has ended; send session_init to start a new one".into(),
                ));
            }
            Current::New { id, welcome } => (id.clone(), welcome.clone()),
        };
        let started = session
            .chat()
            .start_session(session.caller(), &id, welcome.as_ref())
            .await;
        let (id, seen) = match started {
            Ok(seen) => (id, seen),
            // The id was taken meanwhile (a back-end made a room with it):
            // the session moves to a fresh one, which the client is told.
            Err(error) if is_taken(&error) => {
                let id = uuid::Uuid::now_v7().to_string();
                self.show(Some(&id), session.caller().id());
                self.started(session, &id, false);
                let seen = session
                    .chat()
                    .start_session(session.caller(), &id, welcome.as_ref())
                    .await?;
                (id, seen)
            }
            Err(error) => return Err(error),
        };
        self.join(session, &id, Replay::Since(seen)).await?;
        self.current = Current::Open(id.clone());
        Ok(id)
    }

    /// A message from the client: `/clear` ends the session, another
    /// command runs in it, anything else is sent in it.
    async fn message(
        &mut self,
        session: &mut Session,
        request: SendMessage,
        req_id: Option<ReqId>,
    ) {
        let mut request = match session.chat().prepare_send(request, req_id.as_ref()) {
            Prepared::Message(request) | Prepared::Me(request) => request,
            // The dialect's own: whatever the state, the client hears
            // `session_closed`.
            Prepared::Command(call) if call.word == BuiltIn::Clear.name() => {
                session.settle_in_flight().await;
                if let Err(error) = self.end(session).await {
                    Self::refuse(session, &error, req_id);
                }
                return;
            }
            Prepared::Command(mut call) => {
                match self.open(session).await {
                    Ok(id) => call.room_id = id,
                    Err(error) => return Self::refuse(session, &error, req_id),
                }
                session.run_command(call, PATH).await;
                return;
            }
        };
        let room_id = match self.open(session).await {
            Ok(id) => id,
            Err(error) => return Self::refuse(session, &error, req_id),
        };
        request.room_id.clone_from(&room_id);
        // The client reads its own message from the session like every
        // other: no ack; only a refusal is answered.
        let queued = session
            .chat()
            .queue_message(session.caller(), request, |_| {})
            .await;
        match queued {
            Ok(pending) => session.keep_in_flight(Box::pin(async move {
                let error = pending.stored().await.err()?;
                Some(encode(&error_frame(&error, req_id, None)))
            })),
            Err(error) => Self::refuse(session, &error, req_id),
        }
    }

    /// Ends the current session (`session_close`, `/clear`). A stored one
    /// is closed, and its connections are told by its `room_updated`; a
    /// new one was never stored and ends here.
    async fn end(&mut self, session: &mut Session) -> ChatResult<()> {
        match self.current.clone() {
            Current::Open(id) => {
                session.chat().end_session(session.caller(), &id).await?;
                self.current = Current::Ended { id, stored: true };
            }
            Current::New { id, .. } => {
                session.outbox().push(to_text(&closed_frame(&id)));
                self.current = Current::Ended { id, stored: false };
            }
            Current::Ended { id, .. } => {
                session.outbox().push(to_text(&closed_frame(&id)));
            }
            Current::Nowhere => {}
        }
        Ok(())
    }

    /// `session_close`: the rating (if any) first, so that a bad one
    /// leaves the session open; then the end.
    async fn close(
        &mut self,
        session: &mut Session,
        rating: Option<i64>,
        feedback: Option<String>,
    ) -> ChatResult<()> {
        session.settle_in_flight().await;
        match (rating, &self.current) {
            (Some(rating), Current::Open(id) | Current::Ended { id, stored: true }) => {
                let id = id.clone();
                session
                    .chat()
                    .rate_session(session.caller(), &id, rating, feedback)
                    .await?;
            }
            // A new session was never stored: nothing to rate, but a bad
            // rating is refused all the same.
            (Some(rating), _) if !(MIN_RATING..=MAX_RATING).contains(&rating) => {
                return Err(ChatError::InvalidField(format!(
                    "rating must be an integer from {MIN_RATING} to {MAX_RATING}"
                )));
            }
            _ => {}
        }
        self.end(session).await
    }

    /// `session_init`: a visitor token makes an anonymous connection that
    /// visitor (resuming its session); then the named session (or the
    /// caller's own, or a new one) is entered.
    async fn init(
        &mut self,
        session: &mut Session,
        session_id: Option<String>,
        visitor_token: Option<String>,
    ) -> ChatResult<()> {
        session.settle_in_flight().await;
        let mut named = session_id;
        let mut trusted = false;
        // Signed-in users resume their own sessions; a visitor token is a
        // visitor's (and ignored when anonymous access is off).
        if let (Some(token), Some(visitor)) = (visitor_token, session.caller().anonymous) {
            if let Some(signed_in) = session
                .chat()
                .visitor_sign_in(&token, visitor.address)
                .await?
            {
                if signed_in.caller.id() != session.caller().id() {
                    if let Current::Open(id) = &self.current {
                        let _ = session
                            .chat()
                            .unsubscribe(session.caller(), session.conn(), id);
                    }
                    self.current = Current::Nowhere;
                    session
                        .switch_to(signed_in.caller, signed_in.rooms, |_, _, _| None)
                        .await?;
                }
                if named.is_none() {
                    trusted = signed_in.session.is_some();
                    named = signed_in.session;
                }
            } else {
                return Err(ChatError::InvalidField(
                    "visitor_token: not a visitor token".into(),
                ));
            }
        }
        self.enter(session, named.as_deref(), trusted).await
    }

    /// One decoded frame → core calls.
    async fn dispatch(&mut self, session: &mut Session, envelope: AssistantEnvelope) {
        let AssistantEnvelope { req_id, frame } = envelope;
        let done = match frame {
            AssistantFrame::Room(ScopedFrame::Send(request)) => {
                return self.message(session, request, req_id).await;
            }
            AssistantFrame::Init {
                session_id,
                visitor_token,
            } => self.init(session, session_id, visitor_token).await,
            AssistantFrame::Close { rating, feedback } => {
                self.close(session, rating, feedback).await
            }
            AssistantFrame::Room(ScopedFrame::Typing { is_typing }) => match &self.current {
                Current::Open(id) => {
                    session.settle_in_flight().await;
                    session
                        .chat()
                        .typing(session.caller(), session.conn(), id, is_typing)
                }
                // Nobody else is in a session not stored, or ended.
                _ => Ok(()),
            },
            AssistantFrame::Room(ScopedFrame::MarkRead { up_to_seq }) => match &self.current {
                Current::Open(id) => {
                    session.settle_in_flight().await;
                    let id = id.clone();
                    session
                        .chat()
                        .mark_read(session.caller(), &id, up_to_seq, None)
                        .await
                        .map(drop)
                }
                _ => Ok(()),
            },
            AssistantFrame::Room(ScopedFrame::Ping) => {
                session.settle_in_flight().await;
                session.outbox().send(&ServerFrame::Pong {
                    timestamp: Timestamp::now(),
                    req_id,
                });
                return;
            }
        };
        if let Err(error) = done {
            Self::refuse(session, &error, req_id);
        }
    }
}

/// The welcome as the message it will be stored as.
fn welcome_message(session_id: &str, welcome: &Welcome) -> Message {
    Message {
        id: welcome.id.clone(),
        room_id: session_id.to_owned(),
        seq: 0,
        sender: confab_protocol::Sender {
            id: ASSISTANT_USER.to_owned(),
            username: ASSISTANT_USER.to_owned(),
            name: None,
            first_name: None,
        },
        content: welcome.content.clone(),
        message_type: MessageType::Text,
        reply_to: None,
        metadata: Welcome::metadata(),
        attachment: None,
        location: None,
        reactions: Default::default(),
        timestamp: welcome.at,
        edited_at: None,
        deleted: false,
        is_read: false,
    }
}

/// `session_closed` for `id`.
fn closed_frame(id: &str) -> SessionClosed<'_> {
    SessionClosed {
        kind: "session_closed",
        session_id: id,
        timestamp: Timestamp::now(),
    }
}

/// Serializes a frame the server built itself (it cannot fail: string keys,
/// infallible fields; an empty object would be the fallback).
fn to_text(frame: &impl Serialize) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_else(|_| "{}".into()))
}

impl Dialect for AssistantSession {
    type Render = AssistantRender;

    fn endpoint(&self) -> &'static str {
        PATH
    }

    /// Anonymous visitors when `auth.allow_anonymous` is on, else 4001.
    fn without_token(&self, config: &Config) -> WithoutToken {
        if config.auth.allow_anonymous {
            WithoutToken::Anonymous
        } else {
            WithoutToken::Refuse
        }
    }

    /// A visitor token, a user token or the server key.
    async fn sign_in(
        &mut self,
        chat: &Chat,
        token: &str,
        act_as: Option<&str>,
        peer: IpAddr,
    ) -> ChatResult<(Caller, Option<Vec<String>>)> {
        let signed_in = chat.assistant_sign_in(token, act_as, peer).await?;
        self.named = signed_in.session;
        Ok((signed_in.caller, signed_in.rooms))
    }

    /// `session_started` is the greeting, sent by [`Dialect::opened`].
    fn greeting(&self, _config: &Config, _caller: &Caller, _conn: ConnId) -> Option<Utf8Bytes> {
        None
    }

    /// Enters the caller's session.
    async fn opened(&mut self, session: &mut Session) -> ChatResult<()> {
        let named = self.named.take();
        let trusted = named.is_some();
        self.enter(session, named.as_deref(), trusted).await
    }

    async fn on_text(&mut self, session: &mut Session, text: &str) {
        let max_depth = session.chat().config().limits.max_json_depth;
        match assistant::decode(text, max_depth) {
            Err(DecodeError {
                code,
                message,
                req_id,
                ..
            }) => {
                tracing::debug!(%code, %message, "bad frame");
                session.outbox().send(&ServerFrame::Error {
                    code,
                    message,
                    timestamp: Timestamp::now(),
                    room_id: None,
                    req_id,
                    retry_after_ms: None,
                });
            }
            Ok(envelope) => self.dispatch(session, envelope).await,
        }
    }

    fn on_binary(&mut self, session: &mut Session) {
        session.outbox().send(&ServerFrame::Error {
            code: ErrorCode::InvalidJson,
            message: "binary frames are not supported; send JSON text".into(),
            timestamp: Timestamp::now(),
            room_id: None,
            req_id: None,
            retry_after_ms: None,
        });
    }

    fn render(&self) -> AssistantRender {
        AssistantRender {
            shown: self.shown.clone(),
        }
    }
}

/// Renders the frames queued for a `/ws/assistant/` connection.
#[derive(Debug)]
pub struct AssistantRender {
    shown: Arc<Mutex<Shown>>,
}

impl AssistantRender {
    /// A frame this dialect shows, read back from the shared bytes.
    fn parse<'a, T: serde::Deserialize<'a>>(frame: &'a str) -> Option<T> {
        serde_json::from_str(frame)
            .inspect_err(|error| tracing::warn!(%error, "a queued frame did not parse"))
            .ok()
    }

    /// Whether `room_id` is the session shown (and, for typing, the
    /// typist is someone else).
    fn shown(&self, room_id: &str, typist: Option<&str>) -> bool {
        let shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        shown.session.as_deref() == Some(room_id) && typist.is_none_or(|user| user != shown.user)
    }
}

/// Who wrote `message`, as the help-desk front-end tells them apart.
fn sender_type(message: &Message) -> SenderType {
    if message.sender.id == ASSISTANT_USER {
        SenderType::Assistant
    } else if message.message_type == MessageType::System || message.sender.id == SYSTEM_USER {
        SenderType::System
    } else {
        SenderType::User
    }
}

impl Render for AssistantRender {
    fn render(&mut self, frame: Utf8Bytes) -> Rendered {
        match frame_type(&frame) {
            Some("new_message") => match Self::parse::<NewMessageEvent>(&frame) {
                Some(event) if self.shown(&event.room_id, None) => {
                    let message = SessionMessage::new(&event.message, sender_type(&event.message));
                    Rendered::Send(to_text(&MessageFrame::from(message)))
                }
                _ => Rendered::Skip,
            },
            Some("typing") => match Self::parse::<TypingEvent>(&frame) {
                Some(event) if self.shown(&event.room_id, Some(&event.user_id)) => {
                    let sender_type = if event.user_id == ASSISTANT_USER {
                        SenderType::Assistant
                    } else {
                        SenderType::User
                    };
                    Rendered::Send(to_text(&TypingFrame {
                        kind: "typing",
                        sender_type,
                        is_typing: event.is_typing,
                        timestamp: Timestamp::now(),
                    }))
                }
                _ => Rendered::Skip,
            },
            Some("assistant_delta") => match Self::parse::<RoomEvent>(&frame) {
                Some(event) if self.shown(&event.room_id, None) => Rendered::Send(frame),
                _ => Rendered::Skip,
            },
            Some("room_updated") => match Self::parse::<RoomUpdatedEvent>(&frame) {
                Some(event) if event.closed() && self.shown(&event.room_id, None) => {
                    Rendered::Send(to_text(&closed_frame(&event.room_id)))
                }
                _ => Rendered::Skip,
            },
            Some("room_removed") => match Self::parse::<RoomRemovedEvent>(&frame) {
                Some(event) if self.shown(&event.room_id, None) => {
                    Rendered::Send(to_text(&closed_frame(&event.room_id)))
                }
                _ => Rendered::Skip,
            },
            Some("error") => match Self::parse::<ErrorEvent>(&frame) {
                Some(event) => Rendered::Send(to_text(&ErrorFrame {
                    kind: "error",
                    code: event.code,
                    message: &event.message,
                    retry_after: event.retry_after_ms.map(retry_after_secs),
                    req_id: event.req_id.as_ref(),
                    timestamp: Timestamp::now(),
                })),
                None => Rendered::Skip,
            },
            // The dialect's own frames, and pongs: as they are.
            Some("session_started" | "session_closed" | "message" | "pong" | "command_result") => {
                Rendered::Send(frame)
            }
            _ => Rendered::Skip,
        }
    }
}
