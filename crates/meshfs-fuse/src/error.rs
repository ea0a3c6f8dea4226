//! Errors: what the mount itself can fail with, and how a node's answer becomes an errno.

use fuser::Errno;
use meshfs_core::ClientError;
use meshfs_core::proto::Code;

/// Why mounting failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot mount on {dir}: {source}")]
    Mount {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot unmount {dir}: {source}")]
    Unmount {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// The errno a failed request becomes. `not_a_file` is what code 7 means for this request
/// (`EISDIR` when a file was expected, `ENOTDIR` when a folder was).
///
/// Every failure that is not the node's answer (refused, timed out, closed mid-reply,
/// garbled) is `EIO`: the caller learns quickly that the node is unreachable.
pub fn errno(e: &ClientError, not_a_file: Errno) -> Errno {
    match e.remote_code() {
        Some(Code::NotFound) => Errno::ENOENT,
        Some(Code::Denied | Code::AuthRequired | Code::AuthFailed) => Errno::EACCES,
        Some(Code::NotAFile) => not_a_file,
        Some(Code::BadRequest) => Errno::EINVAL,
        _ => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(code: u8) -> ClientError {
        ClientError::Remote {
            code,
            message: "x".into(),
        }
    }

    #[test]
    fn node_answers_map_to_their_errno_and_the_rest_is_eio() {
        assert_eq!(errno(&remote(1), Errno::EISDIR), Errno::ENOENT);
        assert_eq!(errno(&remote(2), Errno::EISDIR), Errno::EACCES);
        assert_eq!(errno(&remote(7), Errno::ENOTDIR), Errno::ENOTDIR);
        assert_eq!(errno(&remote(9), Errno::EISDIR), Errno::EIO);
        let closed = ClientError::Closed { addr: "a".into() };
        assert_eq!(errno(&closed, Errno::EISDIR), Errno::EIO);
    }
}
