//! `GET /api/zip/<node>/<path>[?name=N&name=M…]`: a folder (with everything under it), or the
//! selected entries `N`, `M`… of that folder, as one ZIP archive streamed as it is made.
//!
//! Nothing is staged: a task walks the tree through the same [`Source`] as every other
//! request (this node's share or another node's file server) and writes each member's header,
//! its bytes in [`CHUNK`](crate::source::CHUNK)-sized reads, and its data descriptor into a
//! channel of [`IN_FLIGHT`] chunks that the response drains; a slow browser pauses the reads,
//! a closed one ends the task. What stays in memory until the end is the central directory (a
//! few dozen bytes per member, at most [`MAX_MEMBERS`] members). Members are stored, not
//! compressed (see `format.rs`). A file read while it grows is archived as long as it was when
//! opened; one that disappeared (retention) or is protected by its own password between the
//! listing and its turn is left out, with a warning in the log.
//!
//! Before the first byte, the folder and every selected name are checked (`404`, `401`, `403`
//! as for `/api/ls/`), so a bad request gets a clear error rather than a broken archive. A
//! failure after the first byte (the node vanished, too many members) can only cut the
//! response: the unzip then reports a truncated archive, never a wrong one.

mod crc32;
mod format;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use meshfs_core::rate::Limiter;
use meshfs_core::{Entry, Kind};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::error::WebError;
use crate::files::disposition;
use crate::listener::Conn;
use crate::paths;
use crate::source::Source;
use crate::state::AppState;
use crc32::Crc32;
use format::Member;

/// Chunks queued between the walker and the response.
pub const IN_FLIGHT: usize = 4;
/// Most members one archive holds (bounds the central directory kept in memory).
pub const MAX_MEMBERS: usize = 100_000;
/// Deepest folder nesting followed.
pub const MAX_DEPTH: usize = 64;
/// Central directory bytes gathered before they are sent.
const CENTRAL_BATCH: usize = 64 << 10;

/// The route's prefix.
pub const PREFIX: &str = "/api/zip/";

/// The handler.
pub async fn serve(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    conn: Option<Extension<ConnectInfo<Conn>>>,
) -> Result<Response, WebError> {
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let target = paths::split(raw)?;
    let (node, source) = state.node(&target.node, &state.sessions.grant(&headers))?;
    let names = selection(uri.query())?;
    // The archive's top folder: the folder's own name, or the node's for its share's root.
    let top = match target.path.rsplit('/').next() {
        Some(last) if !last.is_empty() => last.to_owned(),
        _ => node.name.clone(),
    };
    let mut roots = Vec::new();
    if names.is_empty() {
        let entry = stat(&source, &target.path).await?;
        roots.push((target.path.clone(), top.clone(), entry));
    } else {
        let folder = stat(&source, &target.path).await?;
        if folder.kind != Kind::Dir {
            return Err(WebError::BadRequest(format!(
                "{}: names are chosen in a folder, and this is a file",
                target.path
            )));
        }
        for name in names {
            let path = join(&target.path, &name);
            let entry = source.stat(&path).await.map_err(|e| match e {
                WebError::NotFound(why) => WebError::NotFound(format!("{path}: {why}")),
                e => e,
            })?;
            roots.push((path, format!("{top}/{name}"), entry));
        }
    }
    let permit = state.limits.file()?;
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let writer = Writer {
        source,
        tx,
        offset: 0,
        members: Vec::new(),
        limiter: state.upload_limiter(conn.as_ref().map(|c| &c.0.0)),
        _permit: permit,
    };
    let what = format!("{}:/{}", node.name, target.path);
    tokio::spawn(async move {
        let shutdown = state.shutdown.clone();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            () = writer.run(roots, what) => {}
        }
    });

    let mut out = HeaderMap::new();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    let file_name = format!("{top}.zip");
    if let Ok(v) = HeaderValue::from_str(&disposition(&file_name, true)) {
        out.insert(header::CONTENT_DISPOSITION, v);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((StatusCode::OK, out, Body::from_stream(stream)).into_response())
}

/// What `path` is; the share's root is a folder (a file server's `stat` wants a path).
async fn stat(source: &Source, path: &str) -> Result<Entry, WebError> {
    if !path.is_empty() {
        return source.stat(path).await;
    }
    // Listing it checks it may be read (a share password) before any byte is sent.
    source.list(path).await?;
    Ok(Entry {
        name: String::new(),
        kind: Kind::Dir,
        size: 0,
        mtime_ns: i64::try_from(crate::feed::now_ms()).unwrap_or(0) * 1_000_000,
        mode: 0o755,
    })
}

/// The selected names of `?name=A&name=B` (other keys ignored), each one path segment,
/// judged as a URL's segments are (no `/`, `..`, control characters).
fn selection(query: Option<&str>) -> Result<Vec<String>, WebError> {
    let mut names = Vec::new();
    for pair in query.unwrap_or_default().split('&') {
        if let Some(v) = pair.strip_prefix("name=") {
            let name = paths::decode_segment(&v.replace('+', "%20"))?;
            if name.is_empty() {
                return Err(WebError::BadRequest("an empty name was selected".into()));
            }
            if names.len() == MAX_MEMBERS {
                return Err(WebError::TooLarge(format!("at most {MAX_MEMBERS} names")));
            }
            names.push(name);
        }
    }
    Ok(names)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// The browser went away: stop.
struct Closed;

/// Why an archive was cut short.
#[derive(Debug, thiserror::Error)]
enum Cut {
    #[error("{0}")]
    Source(#[from] WebError),
    #[error("more than {MAX_MEMBERS} members")]
    TooMany,
    #[error("{0}: folders nested deeper than {MAX_DEPTH}")]
    TooDeep(String),
    #[error("the browser closed the download")]
    Closed,
}

impl From<Closed> for Cut {
    fn from(_: Closed) -> Cut {
        Cut::Closed
    }
}

/// The task writing one archive into the response's channel.
struct Writer {
    source: Source,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    /// Bytes sent so far: where the next record starts.
    offset: u64,
    members: Vec<Member>,
    /// The node's and the browser's upload limits, charged for each file's bytes.
    limiter: Limiter,
    /// One of the file-stream slots, for as long as the archive is written.
    _permit: OwnedSemaphorePermit,
}

impl Writer {
    async fn run(mut self, roots: Vec<(String, String, Entry)>, what: String) {
        match self.write(roots).await {
            Ok(()) => {
                tracing::debug!(%what, members = self.members.len(), bytes = self.offset, "zip sent")
            }
            Err(Cut::Closed) => tracing::debug!(%what, "zip download closed by the browser"),
            Err(e) => {
                tracing::warn!(%what, error = %e, "zip download cut");
                let _ = self
                    .tx
                    .send(Err(std::io::Error::other(e.to_string())))
                    .await;
            }
        }
    }

    async fn write(&mut self, roots: Vec<(String, String, Entry)>) -> Result<(), Cut> {
        // Depth-first, in name order: (path in the share, name in the archive, entry, depth).
        let mut stack: Vec<(String, String, Entry, usize)> = roots
            .into_iter()
            .rev()
            .map(|(path, name, entry)| (path, name, entry, 0))
            .collect();
        while let Some((path, name, entry, depth)) = stack.pop() {
            if self.members.len() >= MAX_MEMBERS {
                return Err(Cut::TooMany);
            }
            match entry.kind {
                Kind::File => self.file(&path, name).await?,
                Kind::Dir => {
                    if depth >= MAX_DEPTH {
                        return Err(Cut::TooDeep(path));
                    }
                    let member = Member::new(
                        format!("{name}/"),
                        true,
                        entry.mode,
                        entry.mtime_ns,
                        self.offset,
                        0,
                    );
                    self.send(member.local_header()).await?;
                    self.members.push(member);
                    let (children, truncated) = self.source.list(&path).await?;
                    if truncated {
                        return Err(Cut::TooMany);
                    }
                    for child in children.into_iter().rev() {
                        let child_path = join(&path, &child.name);
                        let child_name = format!("{name}/{}", child.name);
                        stack.push((child_path, child_name, child, depth + 1));
                    }
                }
            }
        }
        self.central_directory().await?;
        Ok(())
    }

    /// One file: header, bytes (as long as the file was when opened), descriptor.
    async fn file(&mut self, path: &str, name: String) -> Result<(), Cut> {
        let (mut reader, entry) = match self.source.open(path).await {
            Ok(opened) => opened,
            Err(e @ (WebError::NotFound(_) | WebError::Unauthorized(_))) => {
                tracing::warn!(%path, error = %e, "left out of the zip");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut member = Member::new(
            name,
            false,
            entry.mode,
            entry.mtime_ns,
            self.offset,
            entry.size,
        );
        self.send(member.local_header()).await?;
        let mut crc = Crc32::default();
        let mut done = 0;
        while done < entry.size {
            let left = entry.size - done;
            let want = self.limiter.slice().map_or(left, |s| s.min(left));
            self.limiter.take(want).await;
            let chunk = reader.read_at(done, want).await?;
            if chunk.is_empty() {
                // It shrank since it was opened: the descriptor says how much there was.
                break;
            }
            crc.update(&chunk);
            done += chunk.len() as u64;
            self.send_bytes(chunk).await?;
        }
        member.crc = crc.value();
        member.size = done;
        self.send(member.descriptor()).await?;
        self.members.push(member);
        Ok(())
    }

    async fn central_directory(&mut self) -> Result<(), Closed> {
        let start = self.offset;
        let members = std::mem::take(&mut self.members);
        let mut batch = Vec::with_capacity(CENTRAL_BATCH);
        for m in &members {
            batch.extend_from_slice(&m.central_header());
            if batch.len() >= CENTRAL_BATCH {
                self.send(std::mem::take(&mut batch)).await?;
            }
        }
        let size = self.offset - start + batch.len() as u64;
        batch.extend_from_slice(&format::end(members.len() as u64, start, size));
        self.send(batch).await?;
        self.members = members;
        Ok(())
    }

    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), Closed> {
        self.send_bytes(Bytes::from(bytes)).await
    }

    async fn send_bytes(&mut self, bytes: Bytes) -> Result<(), Closed> {
        self.offset += bytes.len() as u64;
        self.tx.send(Ok(bytes)).await.map_err(|_| Closed)
    }
}
