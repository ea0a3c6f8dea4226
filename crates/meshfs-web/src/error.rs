//! `WebError`: every way a web request can fail, and the HTTP status each one becomes.
//!
//! Errors are answered as `{"error": "…"}` JSON for every route (the page shows the text); the
//! text never holds anything read from a file, only our own words and the node's error text
//! (and never anything a client sent: a login body holds a password). `401` answers also
//! carry `"login": true`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use meshfs_core::proto::Code;
use meshfs_core::{ClientError, ShareError};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// A password would unlock it: the page asks for one (`POST /api/login`).
    #[error("password required: {0}")]
    Unauthorized(&'static str),
    #[error("wrong password")]
    WrongPassword,
    /// Too many failed logins from one address.
    #[error("too many failed logins: try again in {0} s")]
    LockedOut(u64),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("{0} is a folder, not a file")]
    IsDir(String),
    #[error("node unreachable: {0}")]
    Unreachable(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("busy: {0}; try again soon")]
    Busy(&'static str),
    /// A password sent over plain HTTP (`true`: this port also speaks HTTPS).
    #[error("{}", https_required(*.0))]
    HttpsRequired(bool),
}

/// Why a login over plain HTTP is refused, and where to log in instead.
fn https_required(offered: bool) -> &'static str {
    if offered {
        "passwords are taken over HTTPS only (anyone on the network can read plain HTTP): \
         open this page as https:// at the same address and port"
    } else {
        "passwords are taken over HTTPS only (anyone on the network can read plain HTTP), \
         and this node serves its web UI without HTTPS (--no-web-tls)"
    }
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) | WebError::IsDir(_) => StatusCode::NOT_FOUND,
            WebError::Forbidden(_) | WebError::HttpsRequired(_) => StatusCode::FORBIDDEN,
            WebError::Unauthorized(_) | WebError::WrongPassword => StatusCode::UNAUTHORIZED,
            WebError::LockedOut(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Unreachable(_) => StatusCode::BAD_GATEWAY,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WebError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<ShareError> for WebError {
    fn from(e: ShareError) -> Self {
        match e {
            ShareError::NotFound => WebError::NotFound("no such file or folder".into()),
            ShareError::Denied(why) => WebError::Forbidden(why),
            ShareError::NotAFile => WebError::IsDir("the path".into()),
            ShareError::NotADir => WebError::BadRequest("not a folder".into()),
            ShareError::Io(e) => WebError::Internal(e.to_string()),
        }
    }
}

impl From<ClientError> for WebError {
    fn from(e: ClientError) -> Self {
        match e.remote_code() {
            Some(Code::NotFound) => WebError::NotFound("no such file or folder".into()),
            // What our file server says to a connection without the password: log in there.
            Some(Code::AuthRequired) => {
                WebError::Unauthorized("protected by a password on its node")
            }
            Some(Code::Denied) | Some(Code::AuthFailed) => {
                WebError::Forbidden("the node refused access")
            }
            Some(Code::NotAFile) => WebError::BadRequest("not a file (or not a folder)".into()),
            Some(Code::BadRequest) => WebError::BadRequest(e.to_string()),
            _ if e.is_connection() => WebError::Unreachable(e.to_string()),
            _ => WebError::Unreachable(format!("the node failed: {e}")),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "web request failed");
        } else {
            tracing::debug!(error = %self, "web request refused");
        }
        let mut body = serde_json::json!({ "error": self.to_string() });
        if status == StatusCode::UNAUTHORIZED {
            // The page shows its login form on this.
            body["login"] = serde_json::Value::Bool(true);
        }
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // Required with 401; a scheme browsers do not know, so none opens a dialog.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Form realm=\"meshfs\""),
            );
        }
        if let WebError::LockedOut(secs) = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
