//! The meshfs web UI (TCP 8044): browse every node's files, play videos while they record,
//! follow file events live. Read-only, and a thin door like every other: local files go
//! through [`Share`](meshfs_core::Share), remote ones through the file-server protocol
//! ([`Client`](meshfs_core::Client) `stat`/`ls`/`pread`).
//!
//! # Starting it
//! The binary (`meshfs node`, its `--web ADDR`, `--no-web`, `--node URL` flags) fills a
//! [`WebConfig`] and calls [`start`]; this crate parses no flags. The default address is
//! `0.0.0.0:8044`; when `--listen` asks for port 0 (tests, several nodes on one machine) the
//! UI also takes port 0 on the `--listen` host. The node prints `web http://ADDR/` as its
//! second stdout line (`web https://ADDR/` with HTTPS only).
//!
//! # HTTPS
//! Given the node's [`Identity`](meshfs_core::Identity) ([`WebConfig::identity`]), the port
//! speaks HTTPS with the node's own certificate (TLS 1.3, rustls' ring provider, HTTP/1.1) and,
//! by default ([`Https::Offer`]), plain HTTP beside it: the first byte of a connection tells a
//! TLS ClientHello (0x16) from a request line (`listener.rs`). [`Https::Only`] redirects plain
//! requests to HTTPS (`307`); [`Https::Off`] (or no identity) is plain HTTP only. Over plain
//! HTTP no password is taken and no cookie honoured (`transport.rs`): anyone on the LAN reads
//! it. The page shows the node ID (the SHA-256 of its key, as `meshfs id --node` prints it)
//! so its owner can compare; `curl --pinnedpubkey` checks the same hash.
//!
//! # Pages
//! One HTML page with its script and style built into the binary (`assets/`), routed by the
//! URL fragment: `#/` the nodes and their status (a full disk said there and in a banner on
//! every view), `#/ls/<node>/<path>` a folder as a table (sortable by name, size, date, type;
//! filter box; only the rows on screen exist, so 20,000 files open and sort at once) or as a
//! gallery (a poster frame per video, drawn in the browser from the video's first frame, and a
//! thumbnail per image), with a zip of the folder or of the ticked entries;
//! `#/file/<node>/<path>` a file (download link, a `<video>`, `<audio>` or `<img>` as wide as
//! the page, the first 64 KiB of a text file); and a live feed of file events beside them (its
//! paths are links; the last 100 events come again after a reload), with the LAN group chat
//! under it when the node has discovery on (senders named by the node at their address).
//!
//! Why posters are drawn in the browser rather than on the node: the node is a camera on a
//! small disk; ffmpeg there would cost it CPU while it records and a cache would cost it disk.
//! The page's muted `<video>` fetches only what the first frame needs (`Range` requests), is
//! stopped as soon as the frame is on a canvas, and at most three are made at once, for tiles
//! on screen only. What a password protects shows a
//! login form instead over HTTPS; over plain HTTP, why there is none and a link to the same
//! page over HTTPS. The header shows this node's ID.
//!
//! # HTTP API
//! `<node>` is a node's name or its `host:port`; `<path>` is percent-encoded per segment.
//! Paths holding `..`, `.`, an encoded `/` (`%2F`), NUL or control characters, empty segments
//! (`//`, an absolute path) or bad escapes are refused with `403`; unknown nodes and files
//! give `404`; an unreachable node `502`; more than 256 file bodies or 128 event feeds at once
//! `503`. Errors are JSON: `{"error": "…"}`.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /api/nodes` | `[{"name","addr","local","status":"online\|offline\|unknown","events":"live\|unavailable\|unknown","events_why","version","error","disk_full","id"}]` (`id`: the node ID when known, else `null`; `events_why`: what `subscribe` answered when events are unavailable; `disk_full`: this node's retention measured a full disk, or another node's `hello` said `disk=full`). Nodes that said `bye` or expired from the peer table are dropped |
//! | `GET /api/ls/<node>/<path>` | `{"node","path","entries":[ENTRY…],"truncated"}` (at most 100,000 entries) |
//! | `GET /api/stat/<node>/<path>` | `{"node","path",…ENTRY}` |
//! | `GET /api/events` | Server-Sent Events: `nodes` (the node list, at once and on change), `file` (`{"node","seq","kind","path","time_ms"}`: the last 100 at once, then each new one), `resync` (`{"node"}`: reload), `chat` (`CHAT`: the recent messages at once, then each new one) |
//! | `GET /api/zip/<node>/<path>` | the folder and everything under it as a ZIP archive (`<folder>.zip`, `<node>.zip` for the root), streamed as it is made: stored members, data descriptors, ZIP64 when needed; `?name=N&name=M…` only those entries of the folder. Missing names `404`, hostile ones `403`, before any byte |
//! | `GET`/`HEAD /files/<node>/<path>` | the file's bytes; `?download=1` asks for `attachment` |
//! | `GET /api/session` | `{"protected","logged_in","may_browse","node_id","pin","secure","https"}`: `node_id` this node's ID, `pin` the same as `sha256//BASE64`, `secure` this request came over HTTPS, `https` this port speaks HTTPS |
//! | `POST /api/login` `{"password","node"?}` | over plain HTTP `403` (passwords go over HTTPS only); `200` + `Set-Cookie` (always a new token) and the session JSON; `401` wrong password; `429` (`Retry-After`) after 5 failures from one address, or while 5 of its attempts are in flight; `node` (a name or `host:port`, default this node) picks whose password it is |
//! | `POST /api/logout` (JSON) | `200`, the session ended and its cookie cleared |
//! | `GET /api/chat` | `{"enabled","group":"ADDR:PORT","max_bytes":1400,"messages":[CHAT…]}`, or `{"enabled":false,"reason"}` |
//! | `GET /metrics` | the node's counters in Prometheus's text format (no password: no file names in it; README "Monitoring") |
//! | `POST /api/chat` `{"text"}` | one datagram to the group (`413` over 1400 bytes, `400` empty or control characters, `404` no chat) |
//!
//! `ENTRY` is `{"name","type":"file\|dir","size","mtime_ms","mode","content_type"}`; `CHAT` is
//! `{"id","from","time_ms","lines":["<ip> :> <text>"…],"name"}` (`name`: the node(s) at the
//! address `from`, `a / b` when several share it, or `null`). `POST` bodies are JSON
//! (`Content-Type: application/json`, else `415`; at most 16 KiB, else `413`).
//!
//! `/files/` honours a single `Range: bytes=A-B`, `A-` or `-N` (`206` with `Content-Range`; a
//! range past the end is `416` with `Content-Range: bytes */SIZE`; several ranges get the
//! whole file), and sends `Content-Length`, `Content-Type` (by extension), `Accept-Ranges`,
//! `Last-Modified`, a strong `ETag` made of size and mtime (`If-None-Match`,
//! `If-Modified-Since` → `304`; `If-Range`), `Cache-Control: no-cache` (files grow while
//! recording) and `Content-Security-Policy: sandbox allow-same-origin` (no scripts).
//!
//! # Passwords
//! This node's files behind a password (`--password*`: the whole share; `--offer PATH:FILE`:
//! one file) answer `401` with `"login": true` until the browser logs in: `POST /api/login`
//! checks the password with [`Access`](meshfs_core::access::Access) (keyed digests,
//! constant-time comparison; never logged) and sets `meshfs_session` (256 random bits,
//! `HttpOnly; SameSite=Strict; Path=/; Secure`, 12 h; sessions in memory, at most 1024, at most 16
//! per client address). A session unlocks exactly what its passwords unlock. Every
//! successful login mints a new token (a second password given with a live cookie moves that
//! session's grants to the new token and ends the old one), so a token planted before login
//! is never promoted. Another node's protected files answer `401` too
//! (its file server says "password required"): a login with `"node"` proves the password to
//! that node with `auth`, and the session then reaches it through its own connections, which
//! keep that password in memory until the session ends. Five failed logins from one address
//! (an IPv6 client: its /64), here or at another door of the node (file server, FTP: one
//! `meshfs_core::throttle` table, in the node's `Access`) lock it out for a minute; attempts count from their start, so
//! concurrent guesses waiting on a remote node are bounded the same way. At most 4096
//! addresses are tracked, and a locked-out one is never dropped to make room: when all are
//! locked, new addresses get `429` until a lockout ends.
//!
//! # Chat
//! With discovery on, the node joins the group chat (protocols.md §4, `--chat-port`) and
//! keeps its last 200 messages; with `--no-discovery` the page shows no chat. The binary
//! holds the chat's socket and hands this crate a [`ChatRoom`] (see `chat.rs`).
//!
//! # Events
//! The feed follows each node's `subscribe` (protocols.md §1). A node whose file server does
//! not offer it shows events `unavailable`; the page then refreshes listings on demand. A
//! node with a share password refuses `subscribe` to connections without it, this one's own
//! watcher included: its events are `unavailable` too, which also keeps its file names out of
//! a feed every page may open.
#![forbid(unsafe_code)]

mod api;
mod assets;
mod chat;
mod error;
mod feed;
mod files;
mod json_body;
mod listener;
mod login;
mod metrics;
mod nodes;
mod paths;
mod range;
mod server;
mod session;
mod source;
mod start;
mod state;
mod transport;
mod watch;
mod zip;

pub use chat::{ChatMessage, ChatRoom, ChatSend, ChatSetting};
pub use error::WebError;
pub use feed::FileEvent;
pub use listener::{Conn, Https};
pub use meshfs_core::mime::content_type;
pub use nodes::{Events, NodeDirectory, NodeInfo, Status};
pub use range::{RangeRequest, parse_range};
pub use server::{WebServer, router};
pub use start::{StartError, WebConfig, WebHandle, start};
