//! The FTP door of a meshfs node (seed 002, protocols.md §5).
//!
//! A [`libunftp`] server whose storage back-end is the node's [`meshfs_core::Share`]: every
//! read, listing and metadata call goes through `Share`, so FTP clients meet exactly the
//! confinement of every other door (`..`, absolute escapes and symlinks leaving the share are
//! refused). Anonymous logins read; named users from a users file (argon2 hashes) may also
//! upload, delete, create and remove folders and rename. Writes are outside `Share`'s read-only
//! API and live in [`write`], which confines paths the same way.
//!
//! Explicit FTPS (`AUTH TLS`, [`FtpTls`]) uses the node's certificate; plain FTP stays on for
//! the cameras that speak nothing else unless the node requires TLS.
//!
//! We accept connections ourselves (rather than `Server::listen`) so that the node can bind
//! port 0 and print the real address, cap the number of sessions, and drain transfers on
//! shutdown: stop accepting, wait for running transfers within the node's grace period.
#![forbid(unsafe_code)]

mod busy;
mod notes;
mod order;
mod relay;
mod server;
mod storage;
mod tls;
pub mod users;
pub mod write;

pub use relay::MAX_COMMAND_LINE;
pub use server::{FtpConfig, FtpServer};
pub use tls::FtpTls;
pub use users::{FtpUser, Users, UsersError, hash_password};
