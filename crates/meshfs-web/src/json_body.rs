//! Bounded JSON request bodies for the few `POST` routes (login, logout, chat).
//!
//! `Content-Type: application/json` is required: a plain HTML form on another site cannot send
//! it without a CORS preflight (which this server never grants), so a foreign page cannot
//! post to the chat or log a browser in or out. Parse errors become one fixed message: serde's text
//! may quote the input, and a login body holds a password.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::error::WebError;

/// Largest `POST` body accepted (route layer `DefaultBodyLimit`); a chat message of
/// [`MAX_MESSAGE`](meshfs_group::chat::MAX_MESSAGE) bytes fits even fully `\u`-escaped.
pub const MAX_BODY: usize = 16 << 10;

/// Decode a body of type `T`, or say what is wrong with it (`expected` describes the shape).
pub fn parse<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    expected: &'static str,
) -> Result<T, WebError> {
    require_json(headers)?;
    let body = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            WebError::TooLarge(format!("the body is larger than {MAX_BODY} bytes"))
        } else {
            WebError::BadRequest("unreadable body".into())
        }
    })?;
    serde_json::from_slice(&body).map_err(|_| WebError::BadRequest(format!("expected {expected}")))
}

/// `415` unless the request says `Content-Type: application/json` (also for `POST`s whose
/// body is ignored, such as logout: the header is what a foreign form cannot send).
pub fn require_json(headers: &HeaderMap) -> Result<(), WebError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(WebError::UnsupportedMediaType)
    }
}
