//! What the directory remembers, behind a trait so that a store for directories that outgrow
//! one machine (PostgreSQL) can replace the embedded one without touching the server.
//!
//! Every method is one atomic operation: it either refuses with a [`Refusal`] and changes
//! nothing, or applies completely, and its effect is durable when it returns `Ok` (the server
//! only acknowledges after that). Methods block; the server calls them on blocking threads.

use std::net::IpAddr;

use crate::op::Refusal;

/// A user currently connected, as `LIST_USERS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedUser {
    pub name: String,
    pub ip: String,
    pub port: u16,
}

/// The store itself failed (disk, database): the operation's "error" code.
#[derive(Debug, thiserror::Error)]
#[error("directory store failed: {0}")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Result of one operation: done, refused, or failed.
pub type Outcome<T = ()> = Result<Result<T, Refusal>, StoreError>;

/// The course's optional `DD/MM/YYYY HH:MM:SS` stamp, recorded with the operation.
pub type Date<'a> = Option<&'a str>;

/// The directory's state: users, where connected users listen, what each publishes.
pub trait Store: Send + Sync + 'static {
    fn register(&self, user: &str, date: Date) -> Outcome;
    /// Also removes everything the user published.
    fn unregister(&self, user: &str, date: Date) -> Outcome;
    fn connect(&self, user: &str, ip: IpAddr, port: u16, date: Date) -> Outcome;
    /// Keeps the user's published files (hidden until the user connects again).
    fn disconnect(&self, user: &str, date: Date) -> Outcome;
    fn publish(&self, user: &str, file: &str, description: &str, date: Date) -> Outcome;
    fn delete(&self, user: &str, file: &str, date: Date) -> Outcome;
    /// Connected users, sorted by name; `user` must exist and be connected.
    fn list_users(&self, user: &str, date: Date) -> Outcome<Vec<ConnectedUser>>;
    /// Names of the files `target` publishes, sorted (none while `target` is disconnected);
    /// `user` must exist and be connected.
    fn list_content(&self, user: &str, target: &str, date: Date) -> Outcome<Vec<String>>;
}
