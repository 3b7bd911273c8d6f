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
//!
//! Nor when the node that stored a question stops (shutdown, crash) before
//! its reply is stored: the question only lived in that node's memory, but
//! it is also the newest message of its room. Every node looks for such
//! questions at start-up and every `assistant.recovery_interval_s`
//! ([`recover`]); one older than `assistant.recovery_grace_s` is answered
//! like any other. The grace is what keeps nodes from answering questions
//! their own node is still answering; when it is not enough (a node far
//! behind, a recovery racing an answer), the reply is stored once all the
//! same: it carries the idempotency key `reply:{question id}`
//! ([`reply_key`]), so a second reply to the same question is a duplicate
//! and is neither stored nor fanned out.

use super::live::publish_typing;
use super::{Caller, Chat, ChatError};
use crate::store::{GlobalRole, NewMessage, UnansweredQuestion, UserRecord};
use confab_protocol::{MessageType, ServerFrame, Timestamp};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sse_stream::SseByteStream;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::identity::ASSISTANT_USER;
use crate::tasks::Background;

/// A stored user message that wants an answer.
#[derive(Debug)]
struct Question {
    /// The assistant room.
    room_id: String,
    /// The user's message, which the reply answers (`reply_to`).
    message_id: String,
    /// Set when [`recover`] found the question left unanswered: its seq,
    /// which must still be the room's newest when its turn comes (else it
    /// was answered meanwhile, or its user asked again).
    recovered: Option<i64>,
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
            recovered: None,
        });
    }

    /// Asks the bot to answer a question [`recover`] found unanswered.
    fn ask_again(&self, question: UnansweredQuestion) {
        // Gone only when the server is shutting down.
        let _ = self.questions.send(Question {
            room_id: question.room_id,
            message_id: question.message_id,
            recovered: Some(question.seq),
        });
    }
}

/// The questions this node has queued or is answering, by message id, so
/// that one found again by [`recover`] is not queued twice. Cheap to clone.
#[derive(Debug, Clone, Default)]
struct Pending(Arc<Mutex<HashSet<String>>>);

impl Pending {
    /// Claims the question `message_id` for this node, or `None` when it is
    /// claimed already. The claim lasts until it is dropped: when its
    /// answer is done, or cancelled by a shutdown.
    fn claim(&self, message_id: &str) -> Option<Claim> {
        let fresh = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(message_id.to_owned());
        fresh.then(|| Claim {
            pending: self.clone(),
            message_id: message_id.to_owned(),
        })
    }
}

/// A question of [`Pending`], released when dropped.
#[derive(Debug)]
struct Claim {
    /// Where it is listed.
    pending: Pending,
    /// The question.
    message_id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.pending
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.message_id);
    }
}

/// Answers questions until the server stops `tasks` (or every [`Asker`] is
/// gone): one room's questions in turn, different rooms at once, each
/// answer a task of `tasks`. Also starts [`recover`] beside it, which asks
/// again the questions other nodes (or this one, before a restart) left.
///
/// On shutdown the answers in progress are dropped where they are (a slow
/// provider does not hold the server up): nothing is stored for them, the
/// bot stops typing, and their questions, still the newest messages of
/// their rooms, are answered by [`recover`] on whichever node looks next.
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
    // Provider requests in flight on this node; the rest wait their turn
    // (none is dropped: a waiting question keeps its place in its room).
    let slots = Arc::new(Semaphore::new(chat.config.assistant.max_concurrent.max(1)));
    let pending = Pending::default();
    tasks.spawn(recover(chat.clone()));
    loop {
        let question = tokio::select! {
            question = questions.0.recv() => match question {
                Some(question) => question,
                None => return,
            },
            () = stop.cancelled() => return,
        };
        let Some(claim) = pending.claim(&question.message_id) else {
            // Queued or being answered here already: found again by a look.
            continue;
        };
        answering.retain(|_, task| !task.is_finished());
        let before = answering.remove(&question.room_id);
        let room_id = question.room_id.clone();
        let (chat, client, slots) = (chat.clone(), client.clone(), slots.clone());
        let task = tasks.spawn(async move {
            let _claim = claim;
            if let Some(before) = before {
                // Its outcome is its own; only its end matters here.
                let _ = before.await;
            }
            // Closed only with the task tracker's own shutdown.
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            answer(&chat, client.as_ref(), question).await;
        });
        answering.insert(room_id, task);
    }
}

/// Questions one look of [`recover`] reads at most: the oldest. The others
/// wait for a later look, once those are answered.
const RECOVERY_BATCH: u32 = 100;

/// Looks for questions nobody answered, at start-up and then every
/// `assistant.recovery_interval_s`, and asks them again of this node's bot:
/// those stored within `assistant.session_ttl` and at least
/// `assistant.recovery_grace_s` ago (by then the node that stored one would
/// have answered it, had it not stopped). A look that fails (the database
/// out of reach) is logged; the next one finds the same questions.
async fn recover(chat: Arc<Chat>) {
    let config = &chat.config.assistant;
    let mut looks = tokio::time::interval(Duration::from_secs(config.recovery_interval_s.max(1)));
    looks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let millis = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    loop {
        looks.tick().await;
        let now = Timestamp::now().millis();
        let from = Timestamp(now.saturating_sub(millis(config.session_ttl)));
        let before = Timestamp(now.saturating_sub(millis(config.recovery_grace_s)));
        match chat
            .store
            .unanswered_questions(from, before, RECOVERY_BATCH)
            .await
        {
            Ok(found) => {
                for question in found {
                    chat.assistant.ask_again(question);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not look for unanswered assistant questions");
            }
        }
    }
}

/// Whether a question [`recover`] found still wants its answer now that its
/// turn came: its room is open and it is still the newest message there.
/// Any other question does.
async fn still_unanswered(chat: &Chat, question: &Question) -> bool {
    let Some(seq) = question.recovered else {
        return true;
    };
    match chat.store.get_room(&question.room_id).await {
        Ok(Some(room)) => !room.closed && room.last_seq == seq,
        Ok(None) => false,
        Err(error) => {
            // The next look finds it again.
            tracing::warn!(room_id = %question.room_id, %error, "unanswered question not checked");
            false
        }
    }
}

/// The idempotency key (`client_msg_id`) of the bot's reply to the question
/// `message_id`: however many nodes answer it, one reply is stored.
fn reply_key(message_id: &str) -> String {
    format!("reply:{message_id}")
}

/// The bot typing in a room, from its creation until it is dropped: when
/// the reply is stored, or when the answer is cancelled (shutdown).
struct Typing<'a> {
    /// Where it is announced.
    chat: &'a Chat,
    /// The room.
    room_id: &'a str,
    /// The bot.
    bot: &'a Caller,
}

impl<'a> Typing<'a> {
    /// Announces the bot typing in `room_id`.
    fn start(chat: &'a Chat, room_id: &'a str, bot: &'a Caller) -> Typing<'a> {
        publish_typing(&chat.cluster, room_id, bot, true);
        Typing { chat, room_id, bot }
    }
}

impl Drop for Typing<'_> {
    fn drop(&mut self) {
        publish_typing(&self.chat.cluster, self.room_id, self.bot, false);
    }
}

/// The bot as a caller: acts with the server key (it reads the room's
/// context and posts without membership checks or rate limits).
pub(super) fn bot() -> Caller {
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
    /// The event stream broke off or was not server-sent events.
    #[error("event stream: {0}")]
    Stream(#[from] sse_stream::Error),
    /// A streamed event was not the JSON expected.
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
    /// The `metadata.reason` of a fallback reply: what an app's back-end
    /// or dashboard tells apart (protocol.md §6.2).
    fn reason(&self) -> &'static str {
        match self {
            ProviderError::NotConfigured => "not_configured",
            ProviderError::Timeout => "timeout",
            ProviderError::Http(error) => match error.status() {
                Some(reqwest::StatusCode::TOO_MANY_REQUESTS) => "rate_limited",
                Some(_) => "http_error",
                None if error.is_decode() => "malformed",
                // Not reached, refused, or cut off mid-answer.
                None => "unreachable",
            },
            ProviderError::Stream(_) | ProviderError::Json(_) => "malformed",
            ProviderError::Empty => "empty",
            ProviderError::NoClient | ProviderError::Context(_) => "error",
        }
    }

    /// The provider's HTTP status, when it answered with an error one.
    fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Http(error) => error.status().map(|status| status.as_u16()),
            _ => None,
        }
    }
}

/// Answers one question: typing on, the provider's reply (or the
/// fallback) stored, typing off. A question [`recover`] found is answered
/// only if it still wants it ([`still_unanswered`]); its reply says
/// `metadata.recovered: true`.
async fn answer(chat: &Chat, client: Option<&reqwest::Client>, question: Question) {
    let config = &chat.config.assistant;
    let metrics = &chat.metrics.assistant;
    if !still_unanswered(chat, &question).await {
        return;
    }
    if question.recovered.is_some() {
        tracing::info!(room_id = %question.room_id, message_id = %question.message_id,
            "answering a question left unanswered");
        metrics.recovered.inc();
    }
    let bot = bot();
    let reply_id = uuid::Uuid::now_v7().to_string();
    let started = Instant::now();
    let typing = Typing::start(chat, &question.room_id, &bot);

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
    // From the question's turn to its reply being ready: what the user
    // waited for, as the app's dashboards read it.
    let processing_time_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (content, mut metadata) = match reply {
        Ok(text) => (text, json!({"processing_time_ms": processing_time_ms})),
        Err(error) => {
            tracing::warn!(room_id = %question.room_id, %error, "assistant reply replaced by the fallback");
            metrics.fallbacks.inc();
            let mut metadata = json!({
                "fallback": true,
                "reason": error.reason(),
                "processing_time_ms": processing_time_ms,
            });
            if let Some(status) = error.status() {
                metadata["status"] = json!(status);
            }
            (config.fallback_reply.clone(), metadata)
        }
    };
    if question.recovered.is_some() {
        metadata["recovered"] = json!(true);
    }
    if let Err(error) = store_reply(chat, &bot, &question, reply_id, content, metadata).await {
        tracing::error!(room_id = %question.room_id, %error, "assistant reply not stored");
    }
    drop(typing);
}

/// Stores the bot's reply as an ordinary message (fanned out like any),
/// unless the question has a reply already ([`reply_key`]): then nothing
/// is stored or fanned out.
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
        client_msg_id: Some(reply_key(&question.message_id)),
        created_at: Timestamp::now(),
        missed_by: Vec::new(),
    };
    let sent = chat
        .queue_checked(message, bot.clone(), |_| {}, None)
        .await?
        .sent()
        .await?;
    if sent.duplicate {
        tracing::info!(room_id = %question.room_id, message_id = %question.message_id,
            "the question had a reply already; this one was not stored");
    }
    Ok(())
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
    let response = request.send().await?.error_for_status()?;
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
        let completion: Completion = response.json().await?;
        let text = completion.into_text();
        if text.is_empty() {
            return Err(ProviderError::Empty);
        }
        relay(&text);
        return Ok(text);
    }

    // Server-sent events: one `chat.completion.chunk` per event's data,
    // `[DONE]` at the end.
    let mut text = String::new();
    let mut events = SseByteStream::new(response.bytes_stream());
    while let Some(event) = events.next().await {
        let Some(data) = event?.data else {
            continue;
        };
        let data = data.trim();
        if data == DONE {
            break;
        }
        if data.is_empty() {
            continue;
        }
        let chunk: Chunk = serde_json::from_str(data)?;
        let Some(choice) = chunk.into_first_choice() else {
            continue;
        };
        if let Some(delta) = choice.text() {
            text.push_str(delta);
            relay(delta);
        }
        if let Some(reason) = choice.finish_reason
            && reason != "stop"
        {
            // `length`, `content_filter`…: the reply is what came so far.
            tracing::debug!(room_id = %question.room_id, %reason, "assistant reply cut short");
        }
    }
    if text.trim().is_empty() {
        return Err(ProviderError::Empty);
    }
    Ok(text)
}

/// The data of the event that ends a stream.
const DONE: &str = "[DONE]";

/// A plain (non-streamed) completion: only what the bot reads of it.
#[derive(Debug, Deserialize)]
struct Completion {
    /// The answers; the bot takes the first.
    choices: Option<Vec<CompletionChoice>>,
}

impl Completion {
    /// The first answer's text, empty when there is none.
    fn into_text(self) -> String {
        self.choices
            .into_iter()
            .flatten()
            .next()
            .and_then(|choice| choice.message)
            .and_then(|message| message.content)
            .unwrap_or_default()
    }
}

/// One answer of a [`Completion`].
#[derive(Debug, Deserialize)]
struct CompletionChoice {
    /// The answer's message.
    message: Option<Delta>,
}

/// One streamed `chat.completion.chunk`: only what the bot reads of it.
/// Other fields are ignored, and a chunk without choices (a usage report,
/// say) is no piece of text.
#[derive(Debug, Deserialize)]
struct Chunk {
    /// The pieces; the bot takes the first (it asks for one answer).
    choices: Option<Vec<ChunkChoice>>,
}

impl Chunk {
    /// The first choice, if the chunk has any.
    fn into_first_choice(self) -> Option<ChunkChoice> {
        self.choices.into_iter().flatten().next()
    }
}

/// One choice of a [`Chunk`].
#[derive(Debug, Deserialize)]
struct ChunkChoice {
    /// What this chunk adds to the answer.
    delta: Option<Delta>,
    /// Set on the last chunk of the answer: `stop`, `length`, …
    finish_reason: Option<String>,
}

impl ChunkChoice {
    /// The piece of text this chunk adds, if any.
    fn text(&self) -> Option<&str> {
        self.delta
            .as_ref()
            .and_then(|delta| delta.content.as_deref())
            .filter(|text| !text.is_empty())
    }
}

/// The text of a streamed delta or of a whole message (`null` or absent
/// in chunks that only carry the role or a tool call).
#[derive(Debug, Deserialize)]
struct Delta {
    /// The text.
    content: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::{Chunk, Completion, Pending, reply_key};

    /// The first choice's piece of text and finish reason of a chunk.
    fn read(data: &str) -> (Option<String>, Option<String>) {
        let chunk: Chunk = serde_json::from_str(data).expect("a chunk");
        match chunk.into_first_choice() {
            Some(choice) => (choice.text().map(str::to_owned), choice.finish_reason),
            None => (None, None),
        }
    }

    #[test]
    fn a_question_is_claimed_once_until_its_claim_ends() {
        let pending = Pending::default();
        let claim = pending.claim("q1").expect("a first claim");
        assert!(pending.claim("q1").is_none(), "queued or in flight already");
        assert!(pending.claim("q2").is_some());
        drop(claim);
        assert!(
            pending.claim("q1").is_some(),
            "answered: it may be asked again"
        );
    }

    #[test]
    fn a_reply_key_fits_a_client_msg_id() {
        // Message ids are UUIDs; a `client_msg_id` has at most 128 characters.
        let key = reply_key("0193a6e2-7c1d-7b3a-9f00-1234567890ab");
        assert_eq!(key, "reply:0193a6e2-7c1d-7b3a-9f00-1234567890ab");
        assert!(key.len() <= 128);
    }

    #[test]
    fn chunks_give_their_first_choices_text() {
        let chunk = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
            "system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant",
            "content":"Hel","refusal":null},"logprobs":null,"finish_reason":null}]}"#;
        assert_eq!(read(chunk), (Some("Hel".into()), None));
        let last = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#;
        assert_eq!(read(last), (None, Some("length".into())));
    }

    #[test]
    fn chunks_without_text_are_nothing() {
        // A usage report, a role-only start, a tool call, an error object.
        for data in [
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"delta":{"content":null,"tool_calls":[]}}]}"#,
            r#"{"choices":[{"delta":null}]}"#,
            r#"{"error":{"message":"overloaded"}}"#,
        ] {
            assert_eq!(read(data), (None, None), "{data}");
        }
    }

    #[test]
    fn malformed_chunks_are_errors() {
        assert!(serde_json::from_str::<Chunk>("[DONE").is_err());
        assert!(serde_json::from_str::<Chunk>(r#"{"choices":[{"delta":{"content":7}}]}"#).is_err());
    }

    #[test]
    fn plain_completions_give_their_first_answer() {
        let completion: Completion = serde_json::from_str(
            r#"{"id":"c","object":"chat.completion","choices":[{"index":0,
            "message":{"role":"assistant","content":"Hi."},"finish_reason":"stop"}],"usage":{}}"#,
        )
        .expect("a completion");
        assert_eq!(completion.into_text(), "Hi.");
        let empty: Completion = serde_json::from_str(r#"{"choices":[]}"#).expect("a completion");
        assert_eq!(empty.into_text(), "");
    }
}
