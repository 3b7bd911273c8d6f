//! Core's error type and its mapping to contract codes — the one place where a
//! failure becomes an `error.code` (protocol.md §2.4) or a close code (protocol.md §2.1).

use crate::auth::AuthError;
use crate::limits::rate::ceil_millis;
use crate::store::StoreError;
use confab_protocol::{CloseCode, ErrorCode};
use std::time::Duration;

/// Why a chat operation was refused. The `Display` text is safe to show the
/// client; internal causes are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// A field is missing, malformed or out of range.
    #[error("{0}")]
    InvalidField(String),
    /// The content is empty.
    #[error("message content is empty")]
    EmptyMessage,
    /// The content is longer than allowed.
    #[error("message is longer than {max} characters")]
    MessageTooLong {
        /// The limit.
        max: usize,
    },
    /// An upload is larger than `limits.max_upload_bytes` (HTTP 413).
    #[error("the file is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The named thing does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The connection is not subscribed to the room.
    #[error("not subscribed to this room")]
    NotSubscribed,
    /// The credential was missing or refused.
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// The user is disabled, or unknown where users must pre-exist.
    #[error("user is disabled or unknown")]
    UserRefused,
    /// Something with this id already exists.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A file could not be written or read (uploads).
    #[error("internal error")]
    Io(#[from] std::io::Error),
    /// Over a rate limit; nothing was done. Retry after the given wait.
    #[error("too many requests; retry in {} ms", ceil_millis(*.retry_after))]
    RateLimited {
        /// How long until the request would be allowed.
        retry_after: Duration,
    },
    /// The user or address has as many open connections as allowed (close 4029).
    #[error("too many connections")]
    TooManyConnections,
    /// Storage failed; nothing was stored.
    #[error("internal error")]
    Store(#[from] StoreError),
    /// The app's back-end, asked to sign a connection in (the connect
    /// proxy), failed or answered nonsense: the server's problem (1011),
    /// not the client's.
    #[error("the sign-in could not be checked; try again")]
    Upstream(String),
}

impl ChatError {
    /// The contract code clients branch on.
    pub fn code(&self) -> ErrorCode {
        match self {
            ChatError::InvalidField(_)
            | ChatError::AlreadyExists(_)
            | ChatError::TooLarge { .. } => ErrorCode::InvalidField,
            ChatError::EmptyMessage => ErrorCode::EmptyMessage,
            ChatError::MessageTooLong { .. } => ErrorCode::MessageTooLong,
            ChatError::NotFound(_) | ChatError::Store(StoreError::NotFound) => ErrorCode::NotFound,
            ChatError::Forbidden(_) | ChatError::UserRefused => ErrorCode::Forbidden,
            ChatError::NotSubscribed => ErrorCode::NotSubscribed,
            ChatError::Auth(_) => ErrorCode::Unauthorized,
            ChatError::RateLimited { .. } | ChatError::TooManyConnections => ErrorCode::RateLimited,
            ChatError::Store(_) | ChatError::Io(_) | ChatError::Upstream(_) => ErrorCode::Internal,
        }
    }

    /// The close code for a refusal that ends a WebSocket before it starts.
    /// A credential that cannot be used as given (a token, or the server key
    /// with a malformed `X-Confab-User`) is 4003, as REST refuses it; only a
    /// failure of the server's own is 1011, which tells clients to retry.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ChatError::Auth(AuthError::Missing) => CloseCode::NoToken,
            ChatError::Auth(_)
            | ChatError::InvalidField(_)
            | ChatError::EmptyMessage
            | ChatError::MessageTooLong { .. }
            | ChatError::TooLarge { .. }
            | ChatError::AlreadyExists(_)
            | ChatError::NotSubscribed => CloseCode::BadToken,
            ChatError::UserRefused => CloseCode::UserRefused,
            ChatError::Forbidden(_)
            | ChatError::NotFound(_)
            | ChatError::Store(StoreError::NotFound) => CloseCode::NotMember,
            ChatError::TooManyConnections | ChatError::RateLimited { .. } => {
                CloseCode::TooManyConnections
            }
            ChatError::Store(_) | ChatError::Io(_) | ChatError::Upstream(_) => CloseCode::Internal,
        }
    }

    /// `retry_after_ms` of the `error` frame (and, in seconds, the REST
    /// `Retry-After` header) for a rate-limited request.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ChatError::RateLimited { retry_after } => Some(ceil_millis(*retry_after)),
            _ => None,
        }
    }

    /// The text sent to the client. Internal causes stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            ChatError::Store(StoreError::NotFound) => "not found".into(),
            other => other.to_string(),
        }
    }

    /// Whether nothing was done because the database cannot be reached or
    /// the server is stopping: the same request may succeed later or on
    /// another node (REST answers 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ChatError::Store(StoreError::Unavailable(_) | StoreError::Closed)
        )
    }

    /// Whether this is the server's fault (logged at error level) rather than
    /// the client's (logged at debug level).
    pub fn is_internal(&self) -> bool {
        self.code() == ErrorCode::Internal
    }
}

/// Result of every core operation.
pub type ChatResult<T> = Result<T, ChatError>;
