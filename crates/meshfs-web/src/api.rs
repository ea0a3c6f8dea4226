//! The JSON API the page itself uses (documented in the crate docs, `lib.rs`).
//!
//! Names and paths are returned exactly as the share holds them; the page puts them into the
//! DOM as text only, never as markup.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use meshfs_core::{Entry, Kind};
use serde::Serialize;

use crate::error::WebError;
use crate::nodes::NodeInfo;
use crate::paths;
use crate::state::AppState;
use meshfs_core::mime::content_type;

/// One entry of a listing or a `stat`.
#[derive(Debug, Serialize)]
pub struct EntryJson {
    pub name: String,
    /// `file` or `dir`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub mtime_ms: i64,
    /// `ls -l` style, e.g. `-rw-r--r--`.
    pub mode: String,
    /// Media type by extension (`null` for folders).
    pub content_type: Option<&'static str>,
}

impl From<&Entry> for EntryJson {
    fn from(e: &Entry) -> Self {
        EntryJson {
            name: e.name.clone(),
            kind: match e.kind {
                Kind::File => "file",
                Kind::Dir => "dir",
            },
            size: e.size,
            mtime_ms: e.mtime_ns.div_euclid(1_000_000),
            mode: e.mode_string(),
            content_type: (e.kind == Kind::File).then(|| content_type(&e.name)),
        }
    }
}

/// `GET /api/nodes`.
pub async fn nodes(State(state): State<AppState>) -> Json<Vec<NodeInfo>> {
    Json(state.nodes.snapshot())
}

#[derive(Debug, Serialize)]
pub struct Listing {
    pub node: String,
    pub path: String,
    pub entries: Vec<EntryJson>,
    /// True when the folder held more entries than one answer carries.
    pub truncated: bool,
}

/// `GET /api/ls/<node>/<path>`.
pub async fn ls(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Listing>, WebError> {
    let raw = uri.path().strip_prefix("/api/ls/").unwrap_or_default();
    let target = paths::split(raw)?;
    let (node, source) = state.node(&target.node, &state.sessions.grant(&headers))?;
    let (entries, truncated) = source.list(&target.path).await?;
    Ok(Json(Listing {
        node: node.name,
        path: target.path,
        entries: entries.iter().map(EntryJson::from).collect(),
        truncated,
    }))
}

#[derive(Debug, Serialize)]
pub struct StatJson {
    pub node: String,
    pub path: String,
    #[serde(flatten)]
    pub entry: EntryJson,
}

/// `GET /api/stat/<node>/<path>`.
pub async fn stat(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<StatJson>, WebError> {
    let raw = uri.path().strip_prefix("/api/stat/").unwrap_or_default();
    let target = paths::split(raw)?;
    let (node, source) = state.node(&target.node, &state.sessions.grant(&headers))?;
    let entry = source.stat(&target.path).await?;
    Ok(Json(StatJson {
        node: node.name,
        path: target.path,
        entry: EntryJson::from(&entry),
    }))
}
