//! The one error type of the homeserver and its mapping to Matrix error responses.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use crate::storage::StorageError;

/// Matrix error codes Haven answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrCode {
    Forbidden,
    UnknownToken,
    MissingToken,
    BadJson,
    NotJson,
    NotFound,
    LimitExceeded,
    Unrecognized,
    Unknown,
    UserInUse,
    InvalidUsername,
    RoomInUse,
    InvalidRoomState,
    TooLarge,
    InvalidParam,
    MissingParam,
    UnsupportedRoomVersion,
    UserDeactivated,
    Exclusive,
    Unauthorized,
    WeakPassword,
    BadAlias,
    GuestAccessForbidden,
    UrlNotSet,
    BadStatus,
    ConnectionFailed,
    ConnectionTimeout,
    /// Synapse's code for a second identical reaction.
    DuplicateAnnotation,
    WrongRoomKeysVersion,
    /// Sliding sync: the connection or position is no longer known (MSC4186).
    UnknownPos,
    /// Federation: the room's version is not one the joining server supports.
    IncompatibleRoomVersion,
    /// An admin locked the account (Matrix 1.18).
    UserLocked,
    /// An admin suspended the account: it may read but not act (Matrix 1.18).
    UserSuspended,
}

impl ErrCode {
    const ALL: &'static [ErrCode] = &[
        ErrCode::Forbidden,
        ErrCode::UnknownToken,
        ErrCode::MissingToken,
        ErrCode::BadJson,
        ErrCode::NotJson,
        ErrCode::NotFound,
        ErrCode::LimitExceeded,
        ErrCode::Unrecognized,
        ErrCode::Unknown,
        ErrCode::UserInUse,
        ErrCode::InvalidUsername,
        ErrCode::RoomInUse,
        ErrCode::InvalidRoomState,
        ErrCode::TooLarge,
        ErrCode::InvalidParam,
        ErrCode::MissingParam,
        ErrCode::UnsupportedRoomVersion,
        ErrCode::UserDeactivated,
        ErrCode::Exclusive,
        ErrCode::Unauthorized,
        ErrCode::WeakPassword,
        ErrCode::BadAlias,
        ErrCode::GuestAccessForbidden,
        ErrCode::UrlNotSet,
        ErrCode::BadStatus,
        ErrCode::ConnectionFailed,
        ErrCode::ConnectionTimeout,
        ErrCode::DuplicateAnnotation,
        ErrCode::WrongRoomKeysVersion,
        ErrCode::UnknownPos,
        ErrCode::IncompatibleRoomVersion,
        ErrCode::UserLocked,
        ErrCode::UserSuspended,
    ];

    /// The code named by another server's error (`M_UNKNOWN` for codes Haven does not use).
    pub fn from_str_or_unknown(s: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .unwrap_or(ErrCode::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        use ErrCode::*;
        match self {
            Forbidden => "M_FORBIDDEN",
            UnknownToken => "M_UNKNOWN_TOKEN",
            MissingToken => "M_MISSING_TOKEN",
            BadJson => "M_BAD_JSON",
            NotJson => "M_NOT_JSON",
            NotFound => "M_NOT_FOUND",
            LimitExceeded => "M_LIMIT_EXCEEDED",
            Unrecognized => "M_UNRECOGNIZED",
            Unknown => "M_UNKNOWN",
            UserInUse => "M_USER_IN_USE",
            InvalidUsername => "M_INVALID_USERNAME",
            RoomInUse => "M_ROOM_IN_USE",
            InvalidRoomState => "M_INVALID_ROOM_STATE",
            TooLarge => "M_TOO_LARGE",
            DuplicateAnnotation => "M_DUPLICATE_ANNOTATION",
            WrongRoomKeysVersion => "M_WRONG_ROOM_KEYS_VERSION",
            UnknownPos => "M_UNKNOWN_POS",
            IncompatibleRoomVersion => "M_INCOMPATIBLE_ROOM_VERSION",
            UserLocked => "M_USER_LOCKED",
            UserSuspended => "M_USER_SUSPENDED",
            InvalidParam => "M_INVALID_PARAM",
            MissingParam => "M_MISSING_PARAM",
            UnsupportedRoomVersion => "M_UNSUPPORTED_ROOM_VERSION",
            UserDeactivated => "M_USER_DEACTIVATED",
            Exclusive => "M_EXCLUSIVE",
            Unauthorized => "M_UNAUTHORIZED",
            WeakPassword => "M_WEAK_PASSWORD",
            BadAlias => "M_BAD_ALIAS",
            GuestAccessForbidden => "M_GUEST_ACCESS_FORBIDDEN",
            UrlNotSet => "M_URL_NOT_SET",
            BadStatus => "M_BAD_STATUS",
            ConnectionFailed => "M_CONNECTION_FAILED",
            ConnectionTimeout => "M_CONNECTION_TIMEOUT",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client-visible Matrix error.
    #[error("{code:?}: {message}")]
    Matrix {
        status: StatusCode,
        code: ErrCode,
        message: String,
        extra: Option<Value>,
    },
    /// User-interactive authentication must continue: the body lists flows and progress.
    #[error("user-interactive authentication required")]
    Uiaa(Value),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A bug or an impossible state: logged, answered as 500 M_UNKNOWN.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(status: StatusCode, code: ErrCode, message: impl Into<String>) -> Self {
        Error::Matrix {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrCode::NotFound, message)
    }

    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrCode::BadJson, message)
    }

    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrCode::InvalidParam, message)
    }

    pub fn bad_request(code: ErrCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unrecognized() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrCode::Unrecognized,
            "Unrecognized request",
        )
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrCode::TooLarge, message)
    }

    pub fn limit_exceeded(retry_after_ms: u64) -> Self {
        Error::Matrix {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: ErrCode::LimitExceeded,
            message: "Too many requests".into(),
            extra: Some(json!({ "retry_after_ms": retry_after_ms })),
        }
    }

    /// A key-backup request for a version that is not the current one.
    pub fn wrong_room_keys_version(current: Option<String>) -> Self {
        Error::Matrix {
            status: StatusCode::FORBIDDEN,
            code: ErrCode::WrongRoomKeysVersion,
            message: "Wrong backup version".into(),
            extra: Some(json!({ "current_version": current })),
        }
    }

    pub fn unknown_token(soft_logout: bool) -> Self {
        Error::Matrix {
            status: StatusCode::UNAUTHORIZED,
            code: ErrCode::UnknownToken,
            message: "Unknown access token".into(),
            extra: Some(json!({ "soft_logout": soft_logout })),
        }
    }

    /// A locked account: every request refused until an admin unlocks it.
    pub fn user_locked() -> Self {
        Error::Matrix {
            status: StatusCode::UNAUTHORIZED,
            code: ErrCode::UserLocked,
            message: "This account has been locked by the server's administrators".into(),
            extra: Some(json!({ "soft_logout": true })),
        }
    }

    /// A suspended account trying to act.
    pub fn user_suspended() -> Self {
        Error::new(
            StatusCode::FORBIDDEN,
            ErrCode::UserSuspended,
            "This account is suspended: it may read, not act",
        )
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Error::Internal(message.to_string())
    }

    /// The same error with another errcode (keeps status and message).
    pub fn with_code(self, new: ErrCode) -> Self {
        match self {
            Error::Matrix {
                status,
                message,
                extra,
                ..
            } => Error::Matrix {
                status,
                code: new,
                message,
                extra,
            },
            e => e,
        }
    }

    /// A 403 for guests trying what only registered users may do.
    pub fn into_guest(self) -> Self {
        self.with_code(ErrCode::GuestAccessForbidden)
    }

    /// The errcode, for tests and logging.
    pub fn code(&self) -> ErrCode {
        match self {
            Error::Matrix { code, .. } => *code,
            Error::Uiaa(_) => ErrCode::Unauthorized,
            _ => ErrCode::Unknown,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Error::Matrix {
                status,
                code,
                message,
                extra,
            } => {
                let mut body = json!({ "errcode": code.as_str(), "error": message });
                if let (Some(Value::Object(extra)), Value::Object(b)) = (extra, &mut body) {
                    b.extend(extra);
                }
                let mut resp = (status, axum::Json(body)).into_response();
                if code == ErrCode::LimitExceeded {
                    if let Some(ms) = resp_retry_after(&resp) {
                        resp.headers_mut()
                            .insert(axum::http::header::RETRY_AFTER, ms);
                    }
                }
                return resp;
            }
            Error::Uiaa(body) => (StatusCode::UNAUTHORIZED, body),
            Error::Storage(e) => {
                tracing::error!(error = %e, "storage error");
                let body = json!({ "errcode": "M_UNKNOWN", "error": "Internal storage error" });
                (StatusCode::INTERNAL_SERVER_ERROR, body)
            }
            Error::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                let body = json!({ "errcode": "M_UNKNOWN", "error": "Internal server error" });
                (StatusCode::INTERNAL_SERVER_ERROR, body)
            }
        };
        (status, axum::Json(body)).into_response()
    }
}

fn resp_retry_after(_resp: &Response) -> Option<axum::http::HeaderValue> {
    // Retry-After is whole seconds; one second is the smallest honest hint.
    Some(axum::http::HeaderValue::from_static("1"))
}
