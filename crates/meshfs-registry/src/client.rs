//! A client of the directory: one connection per operation, as registry.md frames it. Used by
//! `meshfs shell` and by nodes that join a directory.

use std::io;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::op::{OK, Operation};
use crate::store::ConnectedUser;
use crate::wire::{FieldError, FieldReader, SendError, parse_number, push_field};

/// Most entries a client accepts in one listing (a bound against a hostile server).
pub const MAX_LISTED: u64 = 1_000_000;
/// Most bytes of fields a client accepts in one listing by default (a directory of 10,000 users
/// lists in about 300 KiB).
pub const MAX_LISTING_BYTES: usize = 64 << 20;

/// Why an operation got no result code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the directory at {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("directory did not answer within {0:?}")]
    Timeout(Duration),
    #[error("sending to the directory: {0}")]
    Send(#[from] io::Error),
    #[error("cannot send that field: {0}")]
    Field(#[from] SendError),
    #[error("bad reply from the directory: {0}")]
    Reply(#[from] FieldError),
    #[error("listing larger than the client accepts")]
    TooLarge,
}

/// Counts the bytes of a listing against the client's limit.
struct Budget(usize);

impl Budget {
    fn take(&mut self, field: String) -> Result<String, ClientError> {
        self.0 = self
            .0
            .checked_sub(field.len() + 1)
            .ok_or(ClientError::TooLarge)?;
        Ok(field)
    }
}

/// The directory's answer: the result code, and the listing that follows a 0 where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    Ok(T),
    /// A non-zero result code.
    Failed(u8),
}

/// What a client sends as the course's optional date field, right after each operation name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stamp {
    /// No date field (the course's first version).
    #[default]
    None,
    /// This `DD/MM/YYYY HH:MM:SS` text with every operation.
    Fixed(String),
    /// The local time when each operation is sent (`--date`), which directories of the
    /// course's later version require.
    LocalNow,
}

impl Stamp {
    /// The field to send now, if any.
    pub fn field(&self) -> Option<String> {
        match self {
            Stamp::None => None,
            Stamp::Fixed(date) => Some(date.clone()),
            Stamp::LocalNow => Some(local_date(chrono::Local::now())),
        }
    }
}

/// `DD/MM/YYYY HH:MM:SS`, the course's shape (see [`crate::wire::is_date`]).
pub fn local_date<Tz: chrono::TimeZone>(at: chrono::DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    at.format("%d/%m/%Y %H:%M:%S").to_string()
}

/// Talks to one directory server.
#[derive(Debug, Clone)]
pub struct DirectoryClient {
    addr: String,
    timeout: Duration,
    date: Stamp,
    max_listing_bytes: usize,
}

impl DirectoryClient {
    /// A client of the directory at `addr` (`host:port`).
    pub fn new(addr: impl Into<String>) -> DirectoryClient {
        DirectoryClient {
            addr: addr.into(),
            timeout: Duration::from_secs(10),
            date: Stamp::None,
            max_listing_bytes: MAX_LISTING_BYTES,
        }
    }

    /// Give up on an operation after `timeout` (connect and every read).
    pub fn with_timeout(mut self, timeout: Duration) -> DirectoryClient {
        self.timeout = timeout;
        self
    }

    /// Send this date field with every operation (the course's later variant).
    pub fn with_date(mut self, date: Stamp) -> DirectoryClient {
        self.date = date;
        self
    }

    /// Refuse listings whose fields add up to more than `bytes`.
    pub fn with_listing_limit(mut self, bytes: usize) -> DirectoryClient {
        self.max_listing_bytes = bytes;
        self
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Send one request and return the reader positioned after the result code.
    async fn call(
        &self,
        op: Operation,
        args: &[&str],
    ) -> Result<(u8, FieldReader<TcpStream>), ClientError> {
        let mut msg = Vec::with_capacity(64);
        push_field(&mut msg, op.name())?;
        if let Some(date) = self.date.field() {
            push_field(&mut msg, &date)?;
        }
        for arg in args {
            push_field(&mut msg, arg)?;
        }
        let mut stream = tokio::time::timeout(self.timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))?
            .map_err(|source| ClientError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        tokio::time::timeout(self.timeout, stream.write_all(&msg))
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))??;
        let mut reader = FieldReader::new(stream, self.timeout);
        let code = reader.read_code().await?;
        Ok((code, reader))
    }

    async fn simple(&self, op: Operation, args: &[&str]) -> Result<u8, ClientError> {
        Ok(self.call(op, args).await?.0)
    }

    pub async fn register(&self, user: &str) -> Result<u8, ClientError> {
        self.simple(Operation::Register, &[user]).await
    }

    pub async fn unregister(&self, user: &str) -> Result<u8, ClientError> {
        self.simple(Operation::Unregister, &[user]).await
    }

    pub async fn connect(&self, user: &str, port: u16) -> Result<u8, ClientError> {
        self.simple(Operation::Connect, &[user, &port.to_string()])
            .await
    }

    pub async fn disconnect(&self, user: &str) -> Result<u8, ClientError> {
        self.simple(Operation::Disconnect, &[user]).await
    }

    pub async fn publish(
        &self,
        user: &str,
        file: &str,
        description: &str,
    ) -> Result<u8, ClientError> {
        self.simple(Operation::Publish, &[user, file, description])
            .await
    }

    pub async fn delete(&self, user: &str, file: &str) -> Result<u8, ClientError> {
        self.simple(Operation::Delete, &[user, file]).await
    }

    pub async fn list_users(&self, user: &str) -> Result<Answer<Vec<ConnectedUser>>, ClientError> {
        let (code, mut reader) = self.call(Operation::ListUsers, &[user]).await?;
        if code != OK {
            return Ok(Answer::Failed(code));
        }
        let count = reader.read_number(MAX_LISTED).await?;
        let mut users = Vec::new();
        let mut budget = Budget(self.max_listing_bytes);
        for _ in 0..count {
            let name = budget.take(reader.read_field().await?)?;
            let ip = budget.take(reader.read_field().await?)?;
            let port = budget.take(reader.read_field().await?)?;
            let port = parse_number(&port, u16::MAX as u64).unwrap_or(0) as u16;
            users.push(ConnectedUser { name, ip, port });
        }
        Ok(Answer::Ok(users))
    }

    pub async fn list_content(
        &self,
        user: &str,
        target: &str,
    ) -> Result<Answer<Vec<String>>, ClientError> {
        let (code, mut reader) = self.call(Operation::ListContent, &[user, target]).await?;
        if code != OK {
            return Ok(Answer::Failed(code));
        }
        let count = reader.read_number(MAX_LISTED).await?;
        let mut files = Vec::new();
        let mut budget = Budget(self.max_listing_bytes);
        for _ in 0..count {
            files.push(budget.take(reader.read_field().await?)?);
        }
        Ok(Answer::Ok(files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_have_the_course_shape() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(local_date(at), "02/01/2026 03:04:05");
        let now = Stamp::LocalNow.field().unwrap();
        assert!(crate::wire::is_date(&now), "{now}");
        assert_eq!(Stamp::None.field(), None);
    }
}
