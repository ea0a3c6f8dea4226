//! The directory's operations, their fields and their result codes (registry.md's table).

use tokio::io::AsyncRead;

use crate::wire::{FieldError, FieldReader, is_date};

/// Reply to an operation name the server does not know. registry.md gives no code for it;
/// 255 is no operation's code, so no client can mistake it for success or a known refusal.
pub const UNKNOWN_OPERATION: u8 = 255;

/// The result byte of success, for every operation.
pub const OK: u8 = 0;

/// One operation of the directory protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Register,
    Unregister,
    Connect,
    Disconnect,
    Publish,
    Delete,
    ListUsers,
    ListContent,
}

impl Operation {
    pub const ALL: [Operation; 8] = [
        Operation::Register,
        Operation::Unregister,
        Operation::Connect,
        Operation::Disconnect,
        Operation::Publish,
        Operation::Delete,
        Operation::ListUsers,
        Operation::ListContent,
    ];

    /// The name sent on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Register => "REGISTER",
            Operation::Unregister => "UNREGISTER",
            Operation::Connect => "CONNECT",
            Operation::Disconnect => "DISCONNECT",
            Operation::Publish => "PUBLISH",
            Operation::Delete => "DELETE",
            Operation::ListUsers => "LIST_USERS",
            Operation::ListContent => "LIST_CONTENT",
        }
    }

    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }

    /// How many fields follow the operation name (and the optional date).
    pub fn arg_count(self) -> usize {
        match self {
            Operation::Register
            | Operation::Unregister
            | Operation::Disconnect
            | Operation::ListUsers => 1,
            Operation::Connect | Operation::Delete | Operation::ListContent => 2,
            Operation::Publish => 3,
        }
    }

    /// The operation's "error" code: the last one of its row, also used for every malformed
    /// request once the operation is known.
    pub fn error_code(self) -> u8 {
        match self {
            Operation::Register | Operation::Unregister => 2,
            Operation::Connect | Operation::Disconnect | Operation::ListUsers => 3,
            Operation::Publish | Operation::Delete | Operation::ListContent => 4,
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the directory turned a well-formed operation down. The code of each refusal is the same
/// in every row of registry.md's table that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("user name in use")]
    NameInUse,
    #[error("user does not exist")]
    NoSuchUser,
    #[error("user already connected")]
    AlreadyConnected,
    #[error("user not connected")]
    NotConnected,
    #[error("content already published")]
    AlreadyPublished,
    #[error("content not published")]
    NotPublished,
    #[error("target user does not exist")]
    NoSuchTarget,
}

impl Refusal {
    pub fn code(self) -> u8 {
        match self {
            Refusal::NameInUse | Refusal::NoSuchUser => 1,
            Refusal::AlreadyConnected | Refusal::NotConnected => 2,
            Refusal::AlreadyPublished | Refusal::NotPublished | Refusal::NoSuchTarget => 3,
        }
    }
}

/// One request as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub op: Operation,
    /// The optional `DD/MM/YYYY HH:MM:SS` field of the course's later variant.
    pub date: Option<String>,
    /// The operation's fields, exactly [`Operation::arg_count`] of them.
    pub args: Vec<String>,
}

/// A request that could not be read; [`RequestError::code`] is what to answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("unknown operation {0:?}")]
    Unknown(String),
    #[error("bad operation name: {0}")]
    BadName(FieldError),
    #[error("{op}: {err}")]
    Field { op: Operation, err: FieldError },
    #[error("{op} without the date field this directory requires")]
    NoDate { op: Operation },
}

impl RequestError {
    pub fn code(&self) -> u8 {
        match self {
            RequestError::Unknown(_) | RequestError::BadName(_) => UNKNOWN_OPERATION,
            RequestError::Field { op, .. } | RequestError::NoDate { op } => op.error_code(),
        }
    }
}

impl Request {
    /// Read the operation name, the optional date and the operation's fields.
    pub async fn read<R: AsyncRead + Unpin>(
        reader: &mut FieldReader<R>,
    ) -> Result<Request, RequestError> {
        Request::read_dated(reader, false).await
    }

    /// [`Request::read`], refusing requests without the date field when `date_required` (a
    /// directory of the course's later version, whose clients all send it).
    pub async fn read_dated<R: AsyncRead + Unpin>(
        reader: &mut FieldReader<R>,
        date_required: bool,
    ) -> Result<Request, RequestError> {
        let name = reader.read_field().await.map_err(RequestError::BadName)?;
        let op = Operation::from_name(&name)
            .ok_or_else(|| RequestError::Unknown(name.chars().take(64).collect()))?;
        let field_err = |err| RequestError::Field { op, err };
        let mut args = Vec::with_capacity(op.arg_count());
        let first = reader.read_field().await.map_err(field_err)?;
        let date = if is_date(&first) {
            Some(first)
        } else if date_required {
            return Err(RequestError::NoDate { op });
        } else {
            args.push(first);
            None
        };
        while args.len() < op.arg_count() {
            args.push(reader.read_field().await.map_err(field_err)?);
        }
        Ok(Request { op, date, args })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn parse(bytes: &[u8]) -> Result<Request, RequestError> {
        Request::read(&mut FieldReader::new(bytes, Duration::from_secs(1))).await
    }

    #[tokio::test]
    async fn with_and_without_date() {
        let r = parse(b"PUBLISH\0alice\0f1\0a nice file\0").await.unwrap();
        assert_eq!(r.op, Operation::Publish);
        assert_eq!(r.date, None);
        assert_eq!(r.args, ["alice", "f1", "a nice file"]);

        let r = parse(b"CONNECT\x0001/02/2026 10:20:30\x00bob\x004051\x00")
            .await
            .unwrap();
        assert_eq!(r.date.as_deref(), Some("01/02/2026 10:20:30"));
        assert_eq!(r.args, ["bob", "4051"]);
    }

    #[tokio::test]
    async fn errors_carry_the_right_code() {
        assert_eq!(
            parse(b"FOO\0x\0").await.unwrap_err().code(),
            UNKNOWN_OPERATION
        );
        assert_eq!(parse(b"DELETE\0alice\0").await.unwrap_err().code(), 4);
        assert_eq!(parse(b"REGISTER\0al").await.unwrap_err().code(), 2);
        assert_eq!(parse(b"LIST_USERS\0\xff\0").await.unwrap_err().code(), 3);
    }

    #[tokio::test]
    async fn a_required_date_is_required() {
        let mut dated = FieldReader::new(
            &b"REGISTER\x0001/02/2026 10:20:30\x00bob\x00"[..],
            Duration::from_secs(1),
        );
        let r = Request::read_dated(&mut dated, true).await.unwrap();
        assert_eq!(r.args, ["bob"]);
        let mut bare = FieldReader::new(&b"REGISTER\0bob\0"[..], Duration::from_secs(1));
        let e = Request::read_dated(&mut bare, true).await.unwrap_err();
        assert_eq!(e.code(), 2);
    }

    #[test]
    fn names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
        }
    }
}
