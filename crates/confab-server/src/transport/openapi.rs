//! The OpenAPI document, `GET /api/v1/openapi.json`.
//!
//! Nothing here is hand-written JSON: every operation comes from a handler's
//! `#[utoipa::path]` and every schema from a type's `ToSchema` derive. The
//! router registers each handler through `utoipa_axum::routes!`, which adds
//! the route and its operation in the same call, so the router cannot serve
//! a path the document lacks. This module holds what is shared by all
//! operations: the document's header, the security schemes, the error
//! answers, and the handler that serves the document.

use super::error::{ErrorBody, ErrorDetail};
use super::extract::ACT_AS_HEADER;
use axum::Extension;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use confab_protocol::ErrorCode;
use std::collections::BTreeMap;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Security scheme: a user's JWT as `Authorization: Bearer T`.
pub const BEARER_JWT: &str = "bearer_jwt";
/// Security scheme: the server key (`CONFAB_API_KEY`) as `Authorization: Bearer KEY`.
pub const SERVER_KEY: &str = "server_key";
/// Security scheme: `X-Confab-User`, the user the server key acts for.
pub const ACTING_USER: &str = "acting_user";

/// The document's header and the schemas no handler names directly; the
/// operations are added by the router (see [`super::router`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "confab",
        description = "confab's REST API (docs/protocol.md §4). Generated from the server's handlers and \
                       types at start-up. The WebSocket protocol spoken after the `101` of \
                       `/ws` and `/ws/chat/` is described in docs/protocol.md.",
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "users", description = "The caller and user records"),
        (name = "rooms", description = "Rooms and membership"),
        (name = "messages", description = "History, sending, edits, read state"),
        (name = "attachments", description = "Uploads for image and file messages"),
        (name = "webhooks", description = "Webhook events that failed, and retrying them (server key)"),
        (name = "server", description = "Health, statistics and this document"),
        (name = "dev", description = "The browser client's dev sign-in: only while `auth.dev_login` is on"),
        (name = "websocket", description = "WebSocket upgrades (see docs/protocol.md)"),
    )
)]
pub struct ApiDoc;

/// Adds the three security schemes: a user JWT, the server key, and the
/// header with which the server key acts for a user.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_JWT,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A user's token (HS256 with the configured secret); \
                         `confab token --user ID` mints one.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SERVER_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The server key (`CONFAB_API_KEY`) of a trusted back-end; it may do \
                         anything. Without `X-Confab-User` it acts as the `system` user.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            ACTING_USER,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                ACT_AS_HEADER,
                "`X-Confab-User`, with the server key only: the id of the user to act for.",
            ))),
        );
    }
}

/// The document, serialized once at start-up and shared by every request.
#[derive(Clone)]
pub struct OpenApiJson(Bytes);

impl OpenApiJson {
    /// Serializes `doc`; fails only if a schema holds a non-JSON value.
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Result<Self, serde_json::Error> {
        serde_json::to_vec(doc).map(|json| OpenApiJson(Bytes::from(json)))
    }
}

/// `GET /api/v1/openapi.json`: this document (OpenAPI 3.1), generated from
/// the handlers and their types.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "server",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc.0)
}

/// One error answer: a status, what it means here, and the error body.
fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build(),
        )
        .into()
}

/// Builds an [`IntoResponses`] map from `(status, description)` pairs.
fn error_responses(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| ((*status).to_owned(), error_response(description)))
        .collect()
}

/// Answers every authenticated operation can give: no or a bad credential
/// (401), a disabled user (403), a storage failure (500).
pub struct Refusals;

impl IntoResponses for Refusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[
            (
                "401",
                "`unauthorized`: no credential, or an invalid or expired one",
            ),
            (
                "403",
                "`forbidden`: the caller may not do this (role, membership, closed room, disabled user)",
            ),
            ("500", "`internal`: storage failed; nothing was stored"),
        ])
    }
}

/// The room, message, user or attachment named in the path does not exist
/// or is not visible to the caller.
pub struct NotFound;

impl IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[(
            "404",
            "`not_found`: the room, message, user or attachment does not exist or is not visible",
        )])
    }
}

/// A query or path value out of range.
pub struct InvalidField;

impl IntoResponses for InvalidField {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[(
            "422",
            "`invalid_field` (or `empty_message`, `message_too_long`): a value is missing, \
             malformed or out of range",
        )])
    }
}

/// What a JSON request body can be refused with (the extractor's rejections
/// mapped to our error body in `transport::error`).
pub struct BadJsonBody;

impl IntoResponses for BadJsonBody {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[
            ("400", "`invalid_json`: the body is not JSON"),
            (
                "413",
                "`invalid_json`: the body is larger than the request limit",
            ),
            (
                "415",
                "`invalid_json`: the body is not sent as `Content-Type: application/json`",
            ),
            (
                "422",
                "`invalid_field` (or `empty_message`, `message_too_long`): a field is missing, \
                 malformed or out of range",
            ),
        ])
    }
}

/// The bytes of a download, whatever their stored content type.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FileBytes(pub Vec<u8>);

/// The upload form: one file in the field `file` (protocol.md §7).
#[derive(ToSchema)]
pub struct UploadForm {
    /// The file's bytes; its part's `filename` and `Content-Type` are kept.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    pub file: Vec<u8>,
}
