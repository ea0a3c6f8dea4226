//! The client side of the peer `GET_FILE`: download a file from another peer into a local
//! path, atomically. Bytes go to a temporary file beside the destination (core's one
//! [`TempFile`] writer), renamed over it only once every announced byte arrived and was synced;
//! any failure removes the temporary file, so a failed `GET_FILE` leaves nothing behind.

use std::io;
use std::path::Path;
use std::time::Duration;

use meshfs_core::dir::{Dir, TempFile};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::peer::{GET_FILE, code};
use crate::wire::{FieldError, FieldReader, SendError, push_field};

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the peer has no such file")]
    NoSuchFile,
    #[error("the peer refused the transfer (code {0})")]
    Refused(u8),
    #[error("cannot reach the peer at {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("the peer went silent for {0:?}")]
    Timeout(Duration),
    #[error("the peer closed after {got} of {want} bytes")]
    Short { got: u64, want: u64 },
    #[error("bad reply from the peer: {0}")]
    Reply(#[from] FieldError),
    #[error("cannot send that name: {0}")]
    Name(#[from] SendError),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Fetch `remote` from the peer at `addr` into `dest`. `progress(done, total)` is called as
/// bytes arrive. Returns the size.
pub async fn get_file(
    addr: &str,
    remote: &str,
    dest: &Path,
    timeout: Duration,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<u64, FetchError> {
    let mut request = Vec::new();
    push_field(&mut request, GET_FILE)?;
    push_field(&mut request, remote)?;
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| FetchError::Timeout(timeout))?
        .map_err(|source| FetchError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
    tokio::time::timeout(timeout, stream.write_all(&request))
        .await
        .map_err(|_| FetchError::Timeout(timeout))??;
    let mut reader = FieldReader::new(stream, timeout);
    match reader.read_code().await? {
        code::OK => {}
        code::NO_SUCH_FILE => return Err(FetchError::NoSuchFile),
        other => return Err(FetchError::Refused(other)),
    }
    let size = reader.read_number(u64::MAX).await?;

    let (dir, name) = Dir::open_parent(dest)?;
    let temp: TempFile = dir.temp_file()?;
    let mut out = tokio::fs::File::from_std(temp.file().try_clone()?);

    let body = reader.inner_mut();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    progress(0, size);
    while got < size {
        let want = (size - got).min(buf.len() as u64) as usize;
        let n = tokio::time::timeout(timeout, body.read(&mut buf[..want]))
            .await
            .map_err(|_| FetchError::Timeout(timeout))??;
        if n == 0 {
            return Err(FetchError::Short { got, want: size });
        }
        out.write_all(&buf[..n]).await?;
        got += n as u64;
        progress(got, size);
    }
    out.flush().await?;
    drop(out);
    // `persist` syncs, then renames: off the async threads.
    tokio::task::spawn_blocking(move || temp.persist(&name))
        .await
        .map_err(io::Error::other)??;
    Ok(size)
}
