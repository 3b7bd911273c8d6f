//! Messages: history, send, edit, delete, the AI back-end's context, read markers.

use crate::core::Caller;
use crate::core::messages::ContextEntry;
use crate::transport::error::{ApiError, ApiResult, ErrorBody};
use crate::transport::extract::{Body, Ids, Params};
use crate::transport::openapi::{BadJsonBody, InvalidField, NotFound, Refusals};
use crate::transport::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use confab_protocol::client::SendMessage;
use confab_protocol::ids::de_id_list;
use confab_protocol::{ErrorCode, Message};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Query of `GET /api/v1/rooms/{id}/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only messages with a smaller `seq` (the newest `limit` of them).
    before_seq: Option<i64>,
    /// Only messages with a greater `seq` (the oldest `limit` of them).
    after_seq: Option<i64>,
    /// Page size (default 50, max 100).
    limit: Option<u32>,
}

/// Answer of `GET /api/v1/rooms/{id}/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    /// The room.
    pub room_id: String,
    /// The page, ascending `seq`.
    pub messages: Vec<Message>,
    /// More messages lie beyond this page in the direction asked.
    pub has_more: bool,
}

/// `GET /api/v1/rooms/{id}/messages`: a page of history, ascending seq.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{id}/messages",
    tag = "messages",
    params(("id" = String, Path, description = "The room id"), HistoryQuery),
    responses(
        (status = 200, description = "A page of history", body = HistoryPage),
        Refusals, NotFound, InvalidField,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
    Params(query): Params<HistoryQuery>,
) -> ApiResult<Json<HistoryPage>> {
    let (messages, has_more) = state
        .chat
        .history(
            &caller,
            &room_id,
            query.before_seq,
            query.after_seq,
            query.limit,
        )
        .await?;
    Ok(Json(HistoryPage {
        room_id,
        messages,
        has_more,
    }))
}

/// Answer of `POST /api/v1/rooms/{id}/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentMessage {
    /// The stored message.
    pub message: Message,
    /// The `client_msg_id` was already stored: this is the original message.
    pub duplicate: bool,
}

/// `POST /api/v1/rooms/{id}/messages`: store and fan out; 201 with
/// `{"message", "duplicate"}`.
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{id}/messages",
    tag = "messages",
    params(("id" = String, Path, description = "The room id")),
    request_body = SendMessage,
    responses(
        (status = 201, description = "Stored (or, with `duplicate: true`, stored before)", body = SentMessage),
        Refusals, NotFound, BadJsonBody,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
    Body(mut body): Body<SendMessage>,
) -> ApiResult<impl IntoResponse> {
    body.room_id = room_id;
    let sent = state.chat.send_message(&caller, body, |_| {}).await?;
    Ok((
        StatusCode::CREATED,
        Json(SentMessage {
            message: sent.message,
            duplicate: sent.duplicate,
        }),
    ))
}

/// Body of `PATCH /api/v1/rooms/{id}/messages/{message_id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EditBody {
    /// The new text.
    content: String,
}

/// Answer of an edit or a delete: the message as it now is.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageAnswer {
    /// The message after the change.
    pub message: Message,
}

/// `PATCH /api/v1/rooms/{id}/messages/{message_id}`: edit (its sender or a
/// room admin); `{"message"}`.
#[utoipa::path(
    patch,
    path = "/api/v1/rooms/{id}/messages/{message_id}",
    tag = "messages",
    params(
        ("id" = String, Path, description = "The room id"),
        ("message_id" = String, Path, description = "The message id"),
    ),
    request_body = EditBody,
    responses(
        (status = 200, description = "The edited message", body = MessageAnswer),
        Refusals, NotFound, BadJsonBody,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn edit_message(
    State(state): State<AppState>,
    caller: Caller,
    Ids((room_id, message_id)): Ids<(String, String)>,
    Body(body): Body<EditBody>,
) -> ApiResult<Json<MessageAnswer>> {
    let message = state
        .chat
        .edit_message(&caller, &room_id, &message_id, body.content)
        .await?;
    Ok(Json(MessageAnswer { message }))
}

/// `DELETE /api/v1/rooms/{id}/messages/{message_id}`: delete (its sender or
/// a room admin; the seq stays); `{"message"}`.
#[utoipa::path(
    delete,
    path = "/api/v1/rooms/{id}/messages/{message_id}",
    tag = "messages",
    params(
        ("id" = String, Path, description = "The room id"),
        ("message_id" = String, Path, description = "The message id"),
    ),
    responses(
        (status = 200, description = "The deleted message", body = MessageAnswer),
        Refusals, NotFound,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn delete_message(
    State(state): State<AppState>,
    caller: Caller,
    Ids((room_id, message_id)): Ids<(String, String)>,
) -> ApiResult<Json<MessageAnswer>> {
    let message = state
        .chat
        .delete_message(&caller, &room_id, &message_id)
        .await?;
    Ok(Json(MessageAnswer { message }))
}

/// Query of `GET /api/v1/rooms/{id}/context`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContextQuery {
    /// How many recent messages (default `assistant.max_history_messages`).
    max_messages: Option<u32>,
}

/// Answer of `GET /api/v1/rooms/{id}/context`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomContext {
    /// The room.
    pub room_id: String,
    /// Recent messages, oldest first.
    pub messages: Vec<ContextEntry>,
}

/// `GET /api/v1/rooms/{id}/context`: recent messages for an AI back-end,
/// `{"room_id", "messages": [{role, name, content, timestamp}]}`.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{id}/context",
    tag = "messages",
    params(("id" = String, Path, description = "The room id"), ContextQuery),
    responses(
        (status = 200, description = "Recent messages", body = RoomContext),
        Refusals, NotFound, InvalidField,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn context(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
    Params(query): Params<ContextQuery>,
) -> ApiResult<Json<RoomContext>> {
    let messages = state
        .chat
        .context(&caller, &room_id, query.max_messages)
        .await?;
    Ok(Json(RoomContext { room_id, messages }))
}

/// Body of `POST /api/v1/rooms/{id}/read` (optional: no body = everything).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReadBody {
    /// Everything up to and including this `seq` is read.
    up_to_seq: Option<i64>,
    /// These messages are read (the marker moves to the highest of them).
    #[serde(default, deserialize_with = "de_id_list")]
    message_ids: Option<Vec<String>>,
}

/// Answer of `POST /api/v1/rooms/{id}/read`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadState {
    /// The room.
    pub room_id: String,
    /// The caller's read marker after the call.
    pub last_read_seq: i64,
    /// Messages still unread for the caller.
    pub unread_count: i64,
}

/// `POST /api/v1/rooms/{id}/read`: move the caller's read marker (no body:
/// everything is read).
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{id}/read",
    tag = "messages",
    params(("id" = String, Path, description = "The room id")),
    request_body(content = Option<ReadBody>, description = "Optional; an empty body marks everything read"),
    responses(
        (status = 200, description = "The read marker", body = ReadState),
        (status = 400, description = "`invalid_json`: the body is not JSON", body = ErrorBody),
        (status = 413, description = "`invalid_json`: the body is larger than the request limit", body = ErrorBody),
        Refusals, NotFound, InvalidField,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
    body: Bytes,
) -> ApiResult<Json<ReadState>> {
    let body: ReadBody = optional_json(&body)?;
    let read = state
        .chat
        .mark_read(&caller, &room_id, body.up_to_seq, body.message_ids)
        .await?;
    Ok(Json(ReadState {
        room_id,
        last_read_seq: read.marker,
        unread_count: read.unread,
    }))
}

/// Parses a JSON body that may be absent (empty means `T::default()`).
fn optional_json<T: Default + for<'de> Deserialize<'de>>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() {
            ErrorCode::InvalidField
        } else {
            ErrorCode::InvalidJson
        };
        let status = if e.is_data() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, code, e.to_string())
    })
}
