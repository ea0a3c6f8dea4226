//! `Transport`: did a request come over HTTPS? And what plain HTTP may not do.
//!
//! Anyone on the LAN reads plain HTTP, so a password or a session token must never cross it.
//! The rules, applied to every request by [`layer`] before any handler runs:
//! - over plain HTTP the `Cookie` header is dropped: such a request is anonymous whatever it
//!   carries (session cookies are `Secure`, so browsers send them only over HTTPS anyway);
//! - `POST /api/login` refuses plain HTTP (`login.rs`, with [`Transport`]);
//! - with HTTPS only (`--web-tls`), a plain HTTP request is redirected to the same URL over
//!   HTTPS (`307`, so a later `--no-web-tls` is not held back by browsers' caches).

use std::convert::Infallible;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::uri::{Authority, Scheme, Uri};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::WebError;
use crate::listener::{Conn, Https};
use crate::state::AppState;

/// How a request reached us (an extractor; plain HTTP when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transport {
    /// True over HTTPS.
    pub secure: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Transport {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Transport, Infallible> {
        Ok(parts
            .extensions
            .get::<Transport>()
            .copied()
            .unwrap_or_default())
    }
}

/// The middleware applying the rules above.
pub async fn layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let secure = request
        .extensions()
        .get::<ConnectInfo<Conn>>()
        .is_some_and(|c| c.0.secure);
    if !secure {
        if state.https == Https::Only {
            return to_https(&request);
        }
        request.headers_mut().remove(header::COOKIE);
    }
    request.extensions_mut().insert(Transport { secure });
    next.run(request).await
}

/// `307` to the same host and target over HTTPS.
fn to_https(request: &Request) -> Response {
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<Authority>().ok())
        // The user part (`user@host`) has no business in a redirect.
        .filter(|a| !a.as_str().contains('@'));
    let Some(authority) = authority else {
        return WebError::BadRequest(
            "this web UI speaks HTTPS only; no Host to send you to".into(),
        )
        .into_response();
    };
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let uri = Uri::builder()
        .scheme(Scheme::HTTPS)
        .authority(authority)
        .path_and_query(target)
        .build();
    match uri
        .ok()
        .and_then(|u| HeaderValue::from_str(&u.to_string()).ok())
    {
        Some(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
            "this web UI speaks HTTPS only\n",
        )
            .into_response(),
        None => WebError::BadRequest("this web UI speaks HTTPS only".into()).into_response(),
    }
}
