//! The assistant bot of `assistant` rooms (protocol.md §6).
//!
//! A user's text message in an `assistant` room, once stored, becomes a
//! question ([`Asker::ask`], from the message's commit hook). [`run`]
//! answers the questions of one room one after another, in the order they
//! were stored, and different rooms side by side. For each it sends the
//! room's latest messages (up to `assistant.max_history_messages` before
//! the question, plus `assistant.system_prompt` first) to an
//! OpenAI-compatible Chat Completions endpoint with `stream: true`, shows
//! the bot typing, relays each streamed piece as `assistant_delta`, and
//! stores the whole reply as an ordinary message from the bot, with the id
//! the deltas announced and `reply_to` the question. A provider that fails,
//! answers nothing or takes longer than `assistant.timeout_s` gets the
//! configured fallback stored instead, with `metadata.fallback: true`: the
//! user is never left without an answer.

use super::live::publish_typing;
use super::{Caller, Chat, ChatError};
use crate::store::{GlobalRole, NewMessage, UserRecord};
use confab_protocol::{MessageType, ServerFrame, Timestamp};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::identity::ASSISTANT_USER;
use crate::tasks::Background;

/// A stored user message that wants an answer.
#[derive(Debug)]
struct Question {
    /// The assistant room.
    room_id: String,
    /// The user's message, which the reply answers (`reply_to`).
    message_id: String,
}

/// Where commit hooks leave questions for [`run`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Asker {
    questions: mpsc::UnboundedSender<Question>,
}

/// The other end of an [`Asker`], consumed by [`run`].
#[derive(Debug)]
pub struct Questions(mpsc::UnboundedReceiver<Question>);

/// A new pair of [`Asker`] and [`Questions`]. Unbounded because a commit
/// hook must not wait; what bounds it is the senders' message rate limit.
pub fn channel() -> (Asker, Questions) {
    let (questions, receiver) = mpsc::unbounded_channel();
    (Asker { questions }, Questions(receiver))
}

impl Asker {
    /// Asks the bot to answer `message_id` in `room_id` (after its commit).
    pub fn ask(&self, room_id: &str, message_id: &str) {
        // Gone only when the server is shutting down.
        let _ = self.questions.send(Question {
            room_id: room_id.to_owned(),
            message_id: message_id.to_owned(),
        });
    }
}

/// Answers questions until the server stops `tasks` (or every [`Asker`] is
/// gone): one room's questions in turn, different rooms at once, each
/// answer a task of `tasks`.
pub async fn run(chat: Arc<Chat>, mut questions: Questions, tasks: Background) {
    let stop = tasks.stopping();
    // Fails only when TLS cannot be set up (no usable root certificates):
    // then every question gets the fallback, and the log says why.
    let client = match reqwest::Client::builder().build() {
        Ok(client) => Some(client),
        Err(error) => {
            tracing::error!(%error, "the assistant's HTTP client could not be built");
            None
        }
    };
    // Each room's latest answer; the next one of that room waits for it.
    let mut answering: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        let question = tokio::select! {
            question = questions.0.recv() => match question {
                Some(question) => question,
                None => return,
            },
            () = stop.cancelled() => return,
        };
        answering.retain(|_, task| !task.is_finished());
        let before = answering.remove(&question.room_id);
        let room_id = question.room_id.clone();
        let (chat, client) = (chat.clone(), client.clone());
        let task = tasks.spawn(async move {
            if let Some(before) = before {
                // Its outcome is its own; only its end matters here.
                let _ = before.await;
            }
            answer(&chat, client.as_ref(), question).await;
        });
        answering.insert(room_id, task);
    }
}

/// The bot as a caller: acts with the server key (it reads the room's
/// context and posts without membership checks or rate limits).
fn bot() -> Caller {
    Caller {
        user: UserRecord {
            id: ASSISTANT_USER.to_owned(),
            username: ASSISTANT_USER.to_owned(),
            name: None,
            role: GlobalRole::Member,
            disabled: false,
            created_at: Timestamp::now(),
        },
        server_key: true,
        exp: None,
        anonymous: None,
    }
}

/// Why the provider gave no reply.
#[derive(Debug, thiserror::Error)]
enum ProviderError {
    /// No `assistant.base_url`.
    #[error("no provider configured (assistant.base_url)")]
    NotConfigured,
    /// The HTTP client could not be built (see [`run`]).
    #[error("no HTTP client")]
    NoClient,
    /// The room's context could not be read.
    #[error("context: {0}")]
    Context(#[from] ChatError),
    /// Unreachable, refused (non-2xx) or cut off.
    #[error("request: {0}")]
    Http(#[from] reqwest::Error),
    /// A streamed event or the body was not the JSON expected.
    #[error("unreadable answer: {0}")]
    Json(#[from] serde_json::Error),
    /// The answer had no text.
    #[error("empty answer")]
    Empty,
    /// Over `assistant.timeout_s`.
    #[error("timed out")]
    Timeout,
}

impl ProviderError {
    /// The `metadata.reason` of a fallback reply.
    fn reason(&self) -> &'static str {
        match self {
            ProviderError::NotConfigured => "not_configured",
            ProviderError::Timeout => "timeout",
            _ => "error",
        }
    }
}

/// Answers one question: typing on, the provider's reply (or the
/// fallback) stored, typing off.
async fn answer(chat: &Chat, client: Option<&reqwest::Client>, question: Question) {
    let config = &chat.config.assistant;
    let metrics = &chat.metrics.assistant;
    let bot = bot();
    let reply_id = uuid::Uuid::now_v7().to_string();
    publish_typing(&chat.cluster, &question.room_id, &bot, true);

    let reply = if config.base_url.is_empty() {
        Err(ProviderError::NotConfigured)
    } else if let Some(client) = client {
        let limit = Duration::from_secs(config.timeout_s);
        let asked = ask_provider(chat, client, &bot, &question, &reply_id);
        let reply = match tokio::time::timeout(limit, asked).await {
            Ok(reply) => reply,
            Err(_) => Err(ProviderError::Timeout),
        };
        match &reply {
            Ok(_) => metrics.ok.inc(),
            Err(ProviderError::Timeout) => metrics.timeout.inc(),
            Err(_) => metrics.error.inc(),
        };
        reply
    } else {
        metrics.error.inc();
        Err(ProviderError::NoClient)
    };
    let (content, metadata) = match reply {
        Ok(text) => (text, json!({})),
        Err(error) => {
            tracing::warn!(room_id = %question.room_id, %error, "assistant reply replaced by the fallback");
            metrics.fallbacks.inc();
            (
                config.fallback_reply.clone(),
                json!({"fallback": true, "reason": error.reason()}),
            )
        }
    };
    if let Err(error) = store_reply(chat, &bot, &question, reply_id, content, metadata).await {
        tracing::error!(room_id = %question.room_id, %error, "assistant reply not stored");
    }
    publish_typing(&chat.cluster, &question.room_id, &bot, false);
}

/// Stores the bot's reply as an ordinary message (fanned out like any).
async fn store_reply(
    chat: &Chat,
    bot: &Caller,
    question: &Question,
    reply_id: String,
    content: String,
    metadata: Value,
) -> Result<(), ChatError> {
    // Rooms made before the bot joined them at creation, or a bot user
    // deleted by hand: the reply still needs a sender row.
    chat.ensure_users(&[ASSISTANT_USER.to_owned()]).await?;
    let max = chat.config.limits.max_message_length;
    let content = match content.char_indices().nth(max) {
        Some((cut, _)) => content[..cut].to_owned(),
        None => content,
    };
    let message = NewMessage {
        id: reply_id,
        room_id: question.room_id.clone(),
        sender_id: ASSISTANT_USER.to_owned(),
        content,
        message_type: MessageType::Text,
        reply_to: Some(question.message_id.clone()),
        metadata,
        attachment: None,
        location: None,
        client_msg_id: None,
        created_at: Timestamp::now(),
    };
    chat.queue_checked(message, bot.clone(), |_| {}, None)
        .await?
        .stored()
        .await
}

/// The provider's reply to `question`, relaying each streamed piece to the
/// room as it comes. Accepts a plain (non-streamed) completion too.
async fn ask_provider(
    chat: &Chat,
    client: &reqwest::Client,
    bot: &Caller,
    question: &Question,
    reply_id: &str,
) -> Result<String, ProviderError> {
    let config = &chat.config.assistant;
    // The question is the newest message (or nearly: others may have come
    // since), and up to `max_history_messages` before it.
    let context = chat
        .context(
            bot,
            &question.room_id,
            Some(config.max_history_messages + 1),
        )
        .await?;
    let mut messages = Vec::with_capacity(context.len() + 1);
    if !config.system_prompt.is_empty() {
        messages.push(json!({"role": "system", "content": config.system_prompt}));
    }
    for entry in context {
        messages.push(json!({"role": entry.role, "content": entry.content}));
    }
    let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
    let mut request = client
        .post(url)
        .json(&json!({"model": config.model, "messages": messages, "stream": true}));
    if !config.api_key.is_empty() {
        request = request.bearer_auth(&config.api_key);
    }
    let mut response = request.send().await?.error_for_status()?;
    let relay = |delta: &str| {
        chat.send_to_room(
            &question.room_id,
            &ServerFrame::AssistantDelta {
                timestamp: Timestamp::now(),
                room_id: question.room_id.clone(),
                reply_id: reply_id.to_owned(),
                delta: delta.to_owned(),
            },
            None,
        );
    };

    let streamed = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    if !streamed {
        let completion: Value = response.json().await?;
        let text = completion["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if text.is_empty() {
            return Err(ProviderError::Empty);
        }
        relay(&text);
        return Ok(text);
    }

    // Server-sent events: `data: {json}` lines, `data: [DONE]` at the end.
    let mut text = String::new();
    let mut unread: Vec<u8> = Vec::new();
    'stream: while let Some(chunk) = response.chunk().await? {
        unread.extend_from_slice(&chunk);
        while let Some(end) = unread.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = unread.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                break 'stream;
            }
            let event: Value = serde_json::from_str(data)?;
            if let Some(delta) = event["choices"][0]["delta"]["content"].as_str()
                && !delta.is_empty()
            {
                text.push_str(delta);
                relay(delta);
            }
        }
    }
    if text.trim().is_empty() {
        return Err(ProviderError::Empty);
    }
    Ok(text)
}
