//! REST error bodies: the one place where a [`ChatError`] becomes an HTTP
//! status and `{"error": {"code", "message"}}`.

use crate::core::ChatError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_protocol::ErrorCode;
use serde::Serialize;

/// An error answered over HTTP.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The contract code.
    pub code: ErrorCode,
    /// Text for people.
    pub message: String,
    /// For `rate_limited`: milliseconds until a retry would be allowed, sent
    /// as `retry_after_ms` in the body and as `Retry-After` (whole seconds).
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

/// The body of every REST error: `{"error": {"code", "message"}}` (protocol.md §4).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The contract code clients branch on.
    pub code: ErrorCode,
    /// Text for people.
    pub message: String,
    /// For `rate_limited`: milliseconds until a retry would be allowed (also
    /// sent as the `Retry-After` header, in whole seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The HTTP status for each contract code.
fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidJson => StatusCode::BAD_REQUEST,
        ErrorCode::UnknownType
        | ErrorCode::InvalidField
        | ErrorCode::EmptyMessage
        | ErrorCode::MessageTooLong => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Forbidden | ErrorCode::NotSubscribed => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ChatError> for ApiError {
    fn from(error: ChatError) -> Self {
        if error.is_internal() {
            tracing::error!(error = ?error, "request failed");
        } else {
            tracing::debug!(error = %error, "request refused");
        }
        let status = match &error {
            ChatError::AlreadyExists(_) => StatusCode::CONFLICT,
            ChatError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            // The database is down or the server is stopping: nothing was
            // stored, and the same request may succeed later or elsewhere.
            unavailable if unavailable.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            other => status_for(other.code()),
        };
        ApiError {
            retry_after_ms: error.retry_after_ms(),
            ..ApiError::new(status, error.code(), error.public_message())
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // The rejection's own status is right (400, 413 for an oversized body,
        // 415 without a JSON content type, 422 for a body of the wrong shape).
        let status = rejection.status();
        let code = match &rejection {
            JsonRejection::JsonDataError(_) => ErrorCode::InvalidField,
            _ => ErrorCode::InvalidJson,
        };
        tracing::debug!(%rejection, "bad JSON body");
        ApiError::new(status, code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidField,
            rejection.body_text(),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            rejection.body_text(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                retry_after_ms: self.retry_after_ms,
            },
        };
        let Some(retry_after_ms) = self.retry_after_ms else {
            return (self.status, Json(body)).into_response();
        };
        let seconds = retry_after_ms.div_ceil(1000).max(1);
        let headers = [(header::RETRY_AFTER, seconds.to_string())];
        (self.status, headers, Json(body)).into_response()
    }
}

/// Result of a REST handler.
pub type ApiResult<T> = Result<T, ApiError>;
