//! Rooms and members: create, list, read, rename, close; list, add and remove members.

use crate::core::Caller;
use crate::core::rooms::CreateRoom;
use crate::transport::error::{ApiResult, ErrorBody};
use crate::transport::extract::{Body, Ids, Params};
use crate::transport::openapi::{BadJsonBody, InvalidField, NotFound, Refusals};
use crate::transport::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use confab_protocol::ids::{de_id, de_id_list, de_opt_id};
use confab_protocol::{Member, RoomSummary};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

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
