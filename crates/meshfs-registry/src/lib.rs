//! The central directory of seed 003, byte-compatible with the course's protocol
//! (`shared/spec/registry.md`): a directory server that knows users, where they listen and what
//! they publish, while files move directly between peers.
//!
//! - [`wire`]: NUL-terminated fields, bounded (256 bytes, 2 s of silence);
//! - [`op`]: the operations, their fields and result codes;
//! - [`store`]: what the directory remembers, behind a trait; [`sqlite`]: the embedded store
//!   (`commit`: its group-committing writer thread); [`postgres`]: the store several instances
//!   share;
//! - [`server`]: the directory server (`meshfs registry`);
//! - [`client`]: a client of the directory;
//! - [`peer`]: the peer `GET_FILE` listener, serving from a `Share`; [`fetch`]: its client;
//! - [`join`]: a node registering, connecting and publishing its share by itself;
//! - [`shell`] and [`messages`]: the course's interactive client (`meshfs shell`).
#![forbid(unsafe_code)]

pub mod client;
mod commit;
pub mod describe;
pub mod fetch;
pub mod join;
pub mod messages;
pub mod op;
pub mod peer;
pub mod postgres;
pub mod server;
pub mod shell;
pub mod sqlite;
pub mod store;
pub mod wire;

pub use client::{Answer, ClientError, DirectoryClient, Stamp};
pub use join::{JoinConfig, Joined};
pub use postgres::{PostgresConfig, PostgresStore};
pub use server::{DirectoryServer, ServerConfig};
pub use sqlite::SqliteStore;
pub use store::{ConnectedUser, Store, StoreError};
