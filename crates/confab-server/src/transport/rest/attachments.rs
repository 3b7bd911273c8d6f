//! Uploads and downloads for `image` and `file` messages.

use crate::core::Caller;
use crate::core::attachments::Upload;
use crate::transport::error::{ApiError, ApiResult, ErrorBody};
use crate::transport::extract::Ids;
use crate::transport::openapi::{FileBytes, NotFound, Refusals, UploadForm};
use crate::transport::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use confab_protocol::{Attachment, ErrorCode};

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
