//! REST handlers under `/api/v1` (spec §4). Each one parses, calls core once,
//! and shapes the answer; rules live in core.

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Ids, Params};
use crate::app::AppState;
use crate::core::Caller;
use crate::core::attachments::Upload;
use crate::core::rooms::CreateRoom;
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
use confab_protocol::{ErrorCode, RoomSummary, User};
use serde::Deserialize;
use serde_json::{Value, json};

/// `GET /api/v1/me`.
pub async fn me(caller: Caller) -> Json<User> {
    Json(crate::core::wire::user(caller.user))
}

/// Body of `PUT /api/v1/users/{id}`.
#[derive(Debug, Deserialize)]
pub struct PutUser {
    name: Option<String>,
    role: Option<String>,
    disabled: Option<bool>,
}

/// `PUT /api/v1/users/{id}` (server key).
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

/// Body of `POST /api/v1/rooms`.
#[derive(Debug, Deserialize)]
pub struct CreateRoomBody {
    #[serde(default, deserialize_with = "de_opt_id")]
    id: Option<String>,
    name: Option<String>,
    room_type: Option<String>,
    #[serde(default, deserialize_with = "de_id_list")]
    members: Option<Vec<String>>,
    metadata: Option<Value>,
    #[serde(default, deserialize_with = "de_opt_id")]
    owner: Option<String>,
}

/// `POST /api/v1/rooms`: 201 with the room, or 200 with an existing direct room.
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
#[derive(Debug, Deserialize)]
pub struct RoomListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/rooms`: the caller's rooms, newest activity first.
pub async fn list_rooms(
    State(state): State<AppState>,
    caller: Caller,
    Params(query): Params<RoomListQuery>,
) -> ApiResult<Json<Value>> {
    let (rooms, next_cursor) = state
        .chat
        .room_list(&caller, query.limit, query.cursor.as_deref())
        .await?;
    Ok(Json(json!({"rooms": rooms, "next_cursor": next_cursor})))
}

/// `GET /api/v1/rooms/{id}`.
pub async fn get_room(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
) -> ApiResult<Json<RoomSummary>> {
    Ok(Json(state.chat.get_room(&caller, &room_id).await?))
}

/// Body of `PATCH /api/v1/rooms/{id}`.
#[derive(Debug, Deserialize)]
pub struct PatchRoom {
    name: Option<String>,
    metadata: Option<Value>,
}

/// `PATCH /api/v1/rooms/{id}`: rename and/or replace metadata.
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

/// `DELETE /api/v1/rooms/{id}`: close (history stays).
pub async fn close_room(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
) -> ApiResult<Json<RoomSummary>> {
    Ok(Json(state.chat.close_room(&caller, &room_id).await?))
}

/// `GET /api/v1/rooms/{id}/members`.
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
) -> ApiResult<Json<Value>> {
    let members = state.chat.members(&caller, &room_id).await?;
    Ok(Json(json!({"members": members})))
}

/// Body of `POST /api/v1/rooms/{id}/members`.
#[derive(Debug, Deserialize)]
pub struct AddMember {
    #[serde(deserialize_with = "de_id")]
    user_id: String,
    role: Option<String>,
}

/// `POST /api/v1/rooms/{id}/members`: add, or change the role.
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

/// `DELETE /api/v1/rooms/{id}/members/{user_id}`.
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
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    before_seq: Option<i64>,
    after_seq: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/v1/rooms/{id}/messages`: a page of history, ascending seq.
pub async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
    Params(query): Params<HistoryQuery>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(
        json!({"room_id": room_id, "messages": messages, "has_more": has_more}),
    ))
}

/// `POST /api/v1/rooms/{id}/messages`: store and fan out; 201 with
/// `{"message", "duplicate"}`.
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
        Json(json!({"message": sent.message, "duplicate": sent.duplicate})),
    ))
}

/// Body of `PATCH /api/v1/rooms/{id}/messages/{message_id}`.
#[derive(Debug, Deserialize)]
pub struct EditBody {
    content: String,
}

/// `PATCH /api/v1/rooms/{id}/messages/{message_id}`: edit; `{"message"}`.
pub async fn edit_message(
    State(state): State<AppState>,
    caller: Caller,
    Ids((room_id, message_id)): Ids<(String, String)>,
    Body(body): Body<EditBody>,
) -> ApiResult<Json<Value>> {
    let message = state
        .chat
        .edit_message(&caller, &room_id, &message_id, body.content)
        .await?;
    Ok(Json(json!({"message": message})))
}

/// `DELETE /api/v1/rooms/{id}/messages/{message_id}`: delete; `{"message"}`.
pub async fn delete_message(
    State(state): State<AppState>,
    caller: Caller,
    Ids((room_id, message_id)): Ids<(String, String)>,
) -> ApiResult<Json<Value>> {
    let message = state
        .chat
        .delete_message(&caller, &room_id, &message_id)
        .await?;
    Ok(Json(json!({"message": message})))
}

/// Query of `GET /api/v1/rooms/{id}/context`.
#[derive(Debug, Deserialize)]
pub struct ContextQuery {
    max_messages: Option<u32>,
}

/// `GET /api/v1/rooms/{id}/context`: recent messages for an AI back-end,
/// `{"room_id", "messages": [{role, name, content, timestamp}]}`.
pub async fn context(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
    Params(query): Params<ContextQuery>,
) -> ApiResult<Json<Value>> {
    let messages = state
        .chat
        .context(&caller, &room_id, query.max_messages)
        .await?;
    Ok(Json(json!({"room_id": room_id, "messages": messages})))
}

/// Body of `POST /api/v1/rooms/{id}/read` (optional: no body = everything).
#[derive(Debug, Default, Deserialize)]
pub struct ReadBody {
    up_to_seq: Option<i64>,
    #[serde(default, deserialize_with = "de_id_list")]
    message_ids: Option<Vec<String>>,
}

/// `POST /api/v1/rooms/{id}/read`.
pub async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: ReadBody = optional_json(&body)?;
    let marker = state
        .chat
        .mark_read(&caller, &room_id, body.up_to_seq, body.message_ids)
        .await?;
    let unread = state
        .chat
        .store
        .unread_count(&room_id, caller.id())
        .await
        .map_err(crate::core::ChatError::from)?;
    Ok(Json(
        json!({"room_id": room_id, "last_read_seq": marker, "unread_count": unread}),
    ))
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

/// `GET /api/v1/attachments/{id}`: the bytes, for the uploader and members
/// of rooms where the upload was shared.
pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Ids(id): Ids<String>,
) -> ApiResult<Response> {
    let (record, path) = state.chat.download(&caller, &id).await?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(crate::core::ChatError::from)?;
    let disposition = format!(
        "inline; filename=\"{}\"",
        record.name.replace(['"', '\\'], "_")
    );
    let headers = [
        (header::CONTENT_TYPE, record.content_type),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    Ok((headers, bytes).into_response())
}

/// `GET /api/v1/stats`: admins and the server key.
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<crate::core::stats::Stats>> {
    Ok(Json(state.chat.stats(&caller).await?))
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: storage answers.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.chat.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "storage": "ok"})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "storage": "down"})),
            )
        }
    }
}

/// Any other path: our error body, not an empty 404.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}
