//! `GET /metrics`: the node's counters in Prometheus's text exposition format
//! ([`meshfs_core::metrics::render`]), and [`count`], the layer that counts the web door's own
//! requests and response bytes.
//!
//! No password is asked: nothing in it names a file (see the core module for what is
//! exposed). A scrape reads atomics only; the share's size comes from a background walk.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use meshfs_core::metrics::{Door, metrics};

/// The exposition's media type (format version 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub async fn serve() -> Response {
    let mut out = String::with_capacity(8192);
    meshfs_core::metrics::render(&mut out);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response()
}

/// Count every request of the web door, and the bytes its responses announce
/// (`Content-Length`; file bodies always carry one).
pub async fn count(request: Request, next: Next) -> Response {
    let door = metrics().door(Door::Web);
    door.requests_total.inc();
    let response = next.run(request).await;
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = length {
        door.bytes_sent_total.add(n);
    }
    response
}
