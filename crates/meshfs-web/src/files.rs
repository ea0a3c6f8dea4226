//! `GET`/`HEAD /files/<node>/<path>`: a node's file over HTTP, done properly — single byte
//! ranges (`206`/`416`), validators (`ETag`, `Last-Modified`, `If-None-Match`,
//! `If-Modified-Since`, `If-Range`), `Content-Type` by extension, and a body streamed in
//! [`CHUNK`](crate::source::CHUNK)-sized reads, so a `<video>` element can seek anywhere in a
//! large file on any node while this node holds at most one chunk per response in memory.
//! Under an upload limit, chunks are a [`Limiter::slice`] each, charged before they are read.
//!
//! Responses carry [`FILE_CSP`] and `nosniff`: a hostile `.html` or `.svg` in a share, opened
//! directly, is shown without scripts, forms or plugins, so it can never act in this UI's name.

use std::time::UNIX_EPOCH;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use meshfs_core::rate::Limiter;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::WebError;
use crate::listener::Conn;
use crate::paths;
use crate::range::{RangeRequest, etag, if_range_holds, none_match, parse_range};
use crate::source::Reader;
use crate::state::AppState;
use meshfs_core::mime::content_type;

/// The sandbox of a file opened directly: no scripts (nor forms, popups, plugins). It keeps
/// the origin (`allow-same-origin`) only because a video opened in its own tab is played by a
/// media document that fetches the same URL again: in an opaque origin that fetch is refused
/// as cross-origin. Without scripts, keeping the origin gives a document no power.
pub const FILE_CSP: &str = "sandbox allow-same-origin";

/// The route's prefix; everything after it is `<node>/<path>`.
pub const PREFIX: &str = "/files/";

/// The handler for `GET` and `HEAD`.
pub async fn serve(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    conn: Option<Extension<ConnectInfo<Conn>>>,
) -> Result<Response, WebError> {
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let target = paths::split(raw)?;
    if target.path.is_empty() {
        return Err(WebError::IsDir("the share's root".into()));
    }
    let source = state.source(&target.node, &state.sessions.grant(&headers))?;
    // Taken before opening, so the limit also bounds connections to remote nodes.
    let permit = state.limits.file()?;
    let (reader, entry) = source.open(&target.path).await?;
    let size = entry.size;
    let tag = etag(size, entry.mtime_ns);
    let modified = entry.modified();
    let last_modified = httpdate::fmt_http_date(modified);
    let download = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "download=1"));

    let mut out = HeaderMap::new();
    let hv = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    out.insert(header::ETAG, hv(&tag));
    out.insert(header::LAST_MODIFIED, hv(&last_modified));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Files grow while cameras record: always revalidate (cheap, thanks to the ETag).
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FILE_CSP),
    );

    if not_modified(&headers, &tag, modified) {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }

    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&entry.name)),
    );
    out.insert(
        header::CONTENT_DISPOSITION,
        hv(&disposition(&entry.name, download)),
    );

    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => RangeRequest::Full,
        Some(r) => {
            let if_range = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok());
            match if_range {
                Some(ir) if !if_range_holds(ir, &tag, &last_modified) => RangeRequest::Full,
                _ => parse_range(r, size),
            }
        }
    };
    let (status, start, len) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Partial { start, end } => {
            out.insert(
                header::CONTENT_RANGE,
                hv(&format!("bytes {start}-{end}/{size}")),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            out.insert(header::CONTENT_RANGE, hv(&format!("bytes */{size}")));
            out.remove(header::CONTENT_TYPE);
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, out).into_response());
        }
    };
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if method == Method::HEAD {
        return Ok((status, out).into_response());
    }
    // Only a body is paced: a 304, a 416 or a HEAD costs no bucket of its client.
    let limiter = state.upload_limiter(conn.as_ref().map(|c| &c.0.0));
    let body = body(reader, start, len, permit, limiter);
    Ok((status, out, body).into_response())
}

/// Should the answer be `304`? `If-None-Match` decides when present; otherwise
/// `If-Modified-Since` (at one-second resolution, as HTTP dates have).
fn not_modified(headers: &HeaderMap, tag: &str, modified: std::time::SystemTime) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        return inm.to_str().is_ok_and(|v| none_match(v, tag));
    }
    let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    let secs = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    secs(modified) <= secs(since)
}

/// `Content-Disposition` with an ASCII fallback name and the exact UTF-8 name (RFC 6266).
pub(crate) fn disposition(name: &str, download: bool) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let kind = if download { "attachment" } else { "inline" };
    format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{}",
        paths::encode_path(name).replace('/', "%2F")
    )
}

/// The body: `len` bytes from `start`, one chunk per read, pulled as the client takes them
/// (back-pressure: a paused video stops the reads). If the file shrank below the promised
/// length, the stream ends with an error and the client sees a cut response, never padding.
fn body(
    reader: Reader,
    start: u64,
    len: u64,
    permit: OwnedSemaphorePermit,
    limiter: Limiter,
) -> Body {
    let stream = futures_util::stream::unfold(
        (reader, start, len, (permit, limiter)),
        |(mut reader, offset, remaining, held)| async move {
            if remaining == 0 {
                return None;
            }
            let limiter = &held.1;
            let want = limiter.slice().map_or(remaining, |s| s.min(remaining));
            limiter.take(want).await;
            let item: Result<Bytes, std::io::Error> = match reader.read_at(offset, want).await {
                Ok(b) if b.is_empty() => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was sent",
                )),
                Ok(b) => {
                    let n = b.len() as u64;
                    return Some((Ok(b), (reader, offset + n, remaining - n, held)));
                }
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            if let Err(e) = &item {
                tracing::warn!(error = %e, "file response cut");
            }
            Some((item, (reader, offset, 0, held)))
        },
    );
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_is_header_safe() {
        assert_eq!(
            disposition("a b.mp4", false),
            "inline; filename=\"a b.mp4\"; filename*=UTF-8''a%20b.mp4"
        );
        let d = disposition("\"<x>\"\\é.txt", true);
        assert!(d.starts_with("attachment; filename=\"_<x>__"), "{d}");
        assert!(HeaderValue::from_str(&d).is_ok());
    }
}
