//! REST handlers under `/api/v1` (protocol.md §4). Each one parses, calls core once,
//! and shapes the answer; rules live in core.
//!
//! Every handler carries a `#[utoipa::path]` and every body a `ToSchema`
//! derive: the OpenAPI document ([`super::openapi`]) is generated from them,
//! and the router registers handlers through the same attribute.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Ids, Params};
use super::openapi::{BadJsonBody, FileBytes, InvalidField, NotFound, Refusals, UploadForm};
use crate::core::Caller;
use crate::core::attachments::Upload;
use crate::core::messages::ContextEntry;
use crate::core::rooms::CreateRoom;
use crate::core::stats::Stats;
use crate::transport::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use confab_protocol::client::SendMessage;
use confab_protocol::ids::{de_id, de_id_list, de_opt_id};
use confab_protocol::{Attachment, ErrorCode, Member, Message, RoomSummary, User};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// `GET /api/v1/me`: the caller.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "users",
    responses((status = 200, description = "The caller's user record", body = User), Refusals),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn me(caller: Caller) -> Json<User> {
    Json(crate::core::wire::user(caller.user))
}

/// Body of `PUT /api/v1/users/{id}`; absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PutUser {
    /// The display name.
    name: Option<String>,
    /// Global role: `admin`, `member` or `viewer`.
    role: Option<String>,
    /// `true` refuses the user's connections (open ones are closed with 4002).
    disabled: Option<bool>,
}

/// `PUT /api/v1/users/{id}` (server key): create or update a user.
#[utoipa::path(
    put,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user id")),
    request_body = PutUser,
    responses(
        (status = 200, description = "The user as stored", body = User),
        Refusals, BadJsonBody,
    ),
    security(("server_key" = [])),
)]
pub async fn put_user(
    State(state): State<AppState>,
    caller: Caller,
    Ids(user_id): Ids<String>,
    Body(body): Body<PutUser>,
) -> ApiResult<Json<User>> {
    let user = state
        .chat
        .put_user(
            &caller,
            &user_id,
            body.name,
            body.role.as_deref(),
            body.disabled,
        )
        .await?;
    Ok(Json(user))
}

/// Body of `POST /api/v1/rooms`. Ids may also be sent as numbers.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateRoomBody {
    /// An app's own id for the room; generated when absent.
    #[serde(default, deserialize_with = "de_opt_id")]
    id: Option<String>,
    /// The display name.
    name: Option<String>,
    /// `direct`, `group` (default), `assistant`, or any app word such as `job`.
    room_type: Option<String>,
    /// User ids to add as members (the caller becomes `owner`).
    #[serde(default, deserialize_with = "de_id_list")]
    members: Option<Vec<String>>,
    /// Free-form JSON object.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// With the server key: the user who owns the room.
    #[serde(default, deserialize_with = "de_opt_id")]
    owner: Option<String>,
}

/// `POST /api/v1/rooms`: 201 with the room, or 200 with an existing direct room.
#[utoipa::path(
    post,
    path = "/api/v1/rooms",
    tag = "rooms",
    request_body = CreateRoomBody,
    responses(
        (status = 201, description = "The room was created", body = RoomSummary),
        (status = 200, description = "A `direct` room of the same two members already existed", body = RoomSummary),
        (status = 409, description = "`invalid_field`: a room with this `id` already exists", body = ErrorBody),
        Refusals, NotFound, BadJsonBody,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn create_room(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<CreateRoomBody>,
) -> ApiResult<impl IntoResponse> {
    let created = state
        .chat
        .create_room(
            &caller,
            CreateRoom {
                id: body.id,
                name: body.name,
                room_type: body.room_type,
                members: body.members.unwrap_or_default(),
                metadata: body.metadata,
                owner: body.owner,
            },
        )
        .await?;
    let status = if created.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(created.room)))
}

/// Query of `GET /api/v1/rooms`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomListQuery {
    /// Page size (default 50, max 100).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Answer of `GET /api/v1/rooms`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomList {
    /// The caller's rooms, newest activity first.
    pub rooms: Vec<RoomSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/rooms`: the caller's rooms, newest activity first.
#[utoipa::path(
    get,
    path = "/api/v1/rooms",
    tag = "rooms",
    params(RoomListQuery),
    responses(
        (status = 200, description = "A page of the caller's rooms", body = RoomList),
        Refusals, InvalidField,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn list_rooms(
    State(state): State<AppState>,
    caller: Caller,
    Params(query): Params<RoomListQuery>,
) -> ApiResult<Json<RoomList>> {
    let (rooms, next_cursor) = state
        .chat
        .room_list(&caller, query.limit, query.cursor.as_deref())
        .await?;
    Ok(Json(RoomList { rooms, next_cursor }))
}

/// `GET /api/v1/rooms/{id}`: the room as the caller sees it.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{id}",
    tag = "rooms",
    params(("id" = String, Path, description = "The room id")),
    responses(
        (status = 200, description = "The room", body = RoomSummary),
        Refusals, NotFound,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn get_room(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
) -> ApiResult<Json<RoomSummary>> {
    Ok(Json(state.chat.get_room(&caller, &room_id).await?))
}

/// Body of `PATCH /api/v1/rooms/{id}`; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PatchRoom {
    /// The new display name.
    name: Option<String>,
    /// The new metadata object (replaces the old one).
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

/// `PATCH /api/v1/rooms/{id}`: rename and/or replace metadata (room admins).
#[utoipa::path(
    patch,
    path = "/api/v1/rooms/{id}",
    tag = "rooms",
    params(("id" = String, Path, description = "The room id")),
    request_body = PatchRoom,
    responses(
        (status = 200, description = "The room after the change", body = RoomSummary),
        Refusals, NotFound, BadJsonBody,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn patch_room(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
    Body(body): Body<PatchRoom>,
) -> ApiResult<Json<RoomSummary>> {
    let room = state
        .chat
        .update_room(&caller, &room_id, body.name, body.metadata)
        .await?;
    Ok(Json(room))
}

/// `DELETE /api/v1/rooms/{id}`: close (history stays; room admins).
#[utoipa::path(
    delete,
    path = "/api/v1/rooms/{id}",
    tag = "rooms",
    params(("id" = String, Path, description = "The room id")),
    responses(
        (status = 200, description = "The closed room", body = RoomSummary),
        Refusals, NotFound,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn close_room(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
) -> ApiResult<Json<RoomSummary>> {
    Ok(Json(state.chat.close_room(&caller, &room_id).await?))
}

/// Answer of `GET /api/v1/rooms/{id}/members`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    /// Every member with their room role.
    pub members: Vec<Member>,
}

/// `GET /api/v1/rooms/{id}/members`.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{id}/members",
    tag = "rooms",
    params(("id" = String, Path, description = "The room id")),
    responses(
        (status = 200, description = "The room's members", body = MemberList),
        Refusals, NotFound,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
) -> ApiResult<Json<MemberList>> {
    let members = state.chat.members(&caller, &room_id).await?;
    Ok(Json(MemberList { members }))
}

/// Body of `POST /api/v1/rooms/{id}/members`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMember {
    /// The user to add (a number is read as its decimal string).
    #[serde(deserialize_with = "de_id")]
    user_id: String,
    /// Room role: `owner`, `admin`, `member` (default) or `viewer`.
    role: Option<String>,
}

/// `POST /api/v1/rooms/{id}/members`: add, or change the role (room admins).
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{id}/members",
    tag = "rooms",
    params(("id" = String, Path, description = "The room id")),
    request_body = AddMember,
    responses(
        (status = 201, description = "The member as stored", body = Member),
        Refusals, NotFound, BadJsonBody,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
    Body(body): Body<AddMember>,
) -> ApiResult<impl IntoResponse> {
    let member = state
        .chat
        .add_member(&caller, &room_id, &body.user_id, body.role.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(member)))
}

/// `DELETE /api/v1/rooms/{id}/members/{user_id}`: remove a member (room
/// admins, or the member leaving).
#[utoipa::path(
    delete,
    path = "/api/v1/rooms/{id}/members/{user_id}",
    tag = "rooms",
    params(
        ("id" = String, Path, description = "The room id"),
        ("user_id" = String, Path, description = "The member's user id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        Refusals, NotFound,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Ids((room_id, user_id)): Ids<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .chat
        .remove_member(&caller, &room_id, &user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

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

/// `POST /api/v1/attachments`: multipart upload, form field `file`; 201 with
/// `{id, url, content_type, size, name}`.
#[utoipa::path(
    post,
    path = "/api/v1/attachments",
    tag = "attachments",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The stored upload; send its `id` as `attachment_id`", body = Attachment),
        (status = 400, description = "`invalid_field`: the multipart form is malformed", body = ErrorBody),
        (status = 413, description = "`invalid_field`: the file is larger than `limits.max_upload_bytes`", body = ErrorBody),
        (status = 415, description = "`invalid_field`: the body is not `multipart/form-data`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: no `file` field, or a type that is not accepted", body = ErrorBody),
        Refusals,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<impl IntoResponse> {
    let mut form =
        form.map_err(|e| ApiError::new(e.status(), ErrorCode::InvalidField, e.body_text()))?;
    let multipart_error =
        |e: MultipartError| ApiError::new(e.status(), ErrorCode::InvalidField, e.body_text());
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let bytes = field.bytes().await.map_err(multipart_error)?;
        let attachment = state
            .chat
            .upload(
                &caller,
                Upload {
                    name,
                    content_type,
                    bytes,
                },
            )
            .await?;
        return Ok((StatusCode::CREATED, Json(attachment)));
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidField,
        "multipart form field `file` is missing",
    ))
}

/// Upload types served `inline`: raster images, which run nothing. Their
/// stored type is the sniffed one (see [`crate::core::attachments`]).
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
];

/// `GET /api/v1/attachments/{id}`: the bytes, for the uploader and members
/// of rooms where the upload was shared.
#[utoipa::path(
    get,
    path = "/api/v1/attachments/{id}",
    tag = "attachments",
    params(("id" = String, Path, description = "The upload's id")),
    responses(
        (status = 200, description = "The file, with its stored `Content-Type`", content_type = "application/octet-stream", body = inline(FileBytes)),
        Refusals, NotFound,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Ids(id): Ids<String>,
) -> ApiResult<Response> {
    let (record, path) = state.chat.download(&caller, &id).await?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(crate::core::ChatError::from)?;
    // Only raster images a browser cannot run are shown inline; anything
    // else (HTML, SVG, JavaScript, PDF …) is a download, and the sandbox
    // keeps a page opened from it from running script on this origin.
    let disposition = if INLINE_TYPES.contains(&record.content_type.as_str()) {
        "inline"
    } else {
        "attachment"
    };
    let disposition = format!(
        "{disposition}; filename=\"{}\"",
        record.name.replace(['"', '\\'], "_")
    );
    let headers = [
        (header::CONTENT_TYPE, record.content_type),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::CONTENT_SECURITY_POLICY, "sandbox".to_owned()),
    ];
    Ok((headers, bytes).into_response())
}

/// `GET /api/v1/stats`: server counters, for global admins and the server key.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "server",
    responses((status = 200, description = "Counters", body = Stats), Refusals),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn stats(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Stats>> {
    Ok(Json(state.chat.stats(&caller).await?))
}

/// Answer of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "server",
    responses((status = 200, description = "The process is up", body = Health)),
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /metrics`: this node's counters, gauges and histograms in the
/// Prometheus text format (OpenMetrics flavour), for a Prometheus scraper.
///
/// Unauthenticated, like `/healthz`: it carries no user data, only counts.
/// Restrict it at the proxy if they must stay private. The series are listed
/// in docs/metrics.md.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    responses((
        status = 200,
        description = "Every series of this node, ending with `# EOF`",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8",
        body = String,
    )),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.chat.metrics().encode(),
    )
        .into_response()
}

/// Answer of `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    #[schema(value_type = String, example = "ready")]
    pub status: &'static str,
    /// `ok` or `down`.
    #[schema(value_type = String, example = "ok")]
    pub storage: &'static str,
    /// `ok`, `down`, or `none` with `broker_url = "memory"` (one node).
    #[schema(value_type = String, example = "ok")]
    pub broker: &'static str,
}

/// `GET /readyz`: storage answers and, with a broker, the broker is
/// connected (a node that cannot fan out to the others should not get new
/// connections; its sends would still be stored and acked).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "server",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Storage or broker does not answer", body = Readiness),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let found = state.chat.readiness().await;
    let storage = if found.storage { "ok" } else { "down" };
    let broker = match found.broker {
        None => "none",
        Some(true) => "ok",
        Some(false) => "down",
    };
    let ready = storage == "ok" && broker != "down";
    let (code, status) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        code,
        Json(Readiness {
            status,
            storage,
            broker,
        }),
    )
}

/// The message of the route-miss answer, distinct from every handler's own
/// `not_found` (so a client, and the OpenAPI test, can tell "no such route"
/// from "no such room").
pub const NO_SUCH_ROUTE: &str = "no such route";

/// The message of the wrong-method answer.
pub const METHOD_NOT_ALLOWED: &str = "method not allowed on this route";

/// Any other path: our error body, not an empty 404.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, NO_SUCH_ROUTE)
}

/// A served path with another method: our error body, 405.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::InvalidField,
        METHOD_NOT_ALLOWED,
    )
}
