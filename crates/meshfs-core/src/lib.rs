//! The meshfs core: what every door (file server, FTP, HTTP, FUSE, directory peer, chat) calls.
//!
//! - [`accept`]: the accept loop every TCP door runs, with the one overload rule;
//! - [`access`]: passwords protecting the share or single files;
//! - [`share`]: one folder, every path resolved once beneath its root: list/stat/open/read-at,
//!   BLAKE3 hash, and confined changes;
//! - [`dir`]: an open folder and the one temporary-file-then-rename writer;
//! - [`mime`]: media types by file extension;
//! - [`proto`]: the file-server protocol's codes, request parser and reply formats;
//! - [`metrics`]: what the node counts about itself (Prometheus text, `status`);
//! - [`events`]: the share's numbered change log (inotify), replay and live subscription;
//! - [`follow`]: a reconnecting subscription to a remote node's events;
//! - [`client`]: one connection to a node's file server, and the [`Credentials`] it proves;
//! - [`secret`]: [`Password`](secret::Password), which never prints itself;
//! - [`pool`]: the connections to one node, shared by every request a door makes to it;
//! - [`rate`]: node-side bandwidth limits: a shared token bucket and each connection's limiter;
//! - [`peers`]: the one table of known nodes, fed by every discovery, with an up/down watch;
//! - [`retention`]: deleting the oldest complete files before the disk fills, and the disk's state;
//! - [`remote`]: naming nodes ([`NodeAddr`]) and remote files (`meshfs://HOST:PORT/PATH`);
//! - [`transfer`]: crash-proof downloads to `.part` with resume and verification;
//! - [`identity`]: a node's or user's key pair, self-signed certificate and [`NodeId`];
//! - [`tls`]: TLS 1.3 configurations that trust a node by its pinned ID;
//! - [`known_nodes`]: the user's pins of node names to IDs (trust on first use, like SSH);
//! - [`pake`]: a password proof (SPAKE2) bound to the TLS session, so no password is sent;
//! - [`throttle`]: failed logins per client address, one lockout for every door;
//! - [`status`]: the `status` reply (what `meshfs status` shows of a node);
//! - [`stream`]: a connection in clear or in TLS behind one reader/writer;
//! - [`trust`]: a client process's policy (TLS with pins, or `--plaintext`).
#![deny(unsafe_code)]

pub mod accept;
pub mod access;
pub mod blocks;
pub mod client;
pub mod dir;
pub mod events;
pub mod follow;
pub mod identity;
pub mod known_nodes;
pub mod metrics;
pub mod mime;
pub mod pake;
pub mod peers;
pub mod pool;
pub mod proto;
pub mod rate;
pub mod remote;
pub mod retention;
pub mod secret;
pub mod share;
pub mod status;
pub mod stream;
mod sys;
pub mod throttle;
pub mod tls;
pub mod transfer;
pub mod trust;

pub use client::{Client, ClientError, Credentials};
pub use dir::Dir;
pub use identity::{Identity, NodeId};
pub use known_nodes::KnownNodes;
pub use peers::{Peer, PeerEvent, Peers};
pub use pool::{Lease, Pool, PoolConfig, Pools};
pub use remote::{NodeAddr, RemotePath};
pub use share::{Entry, Kind, Share, ShareError, ShareFile};

/// The meshfs version, as `hello` announces it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
