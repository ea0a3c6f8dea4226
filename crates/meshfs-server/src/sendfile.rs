//! Zero-copy file → socket transfer with Linux `sendfile(2)`, driven by tokio's readiness.
//!
//! Large `read`/`pread` replies go straight from the page cache to the socket: no user-space
//! buffer, no copy, which is how nginx and vsftpd serve files and what the transfer benchmark
//! compares us against.
#![allow(unsafe_code)] // sendfile(2), which std does not wrap

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Largest amount handed to one `sendfile` call.
const MAX_CALL: usize = 1 << 30;

/// Send `len` bytes of `file` starting at `offset`. Returns the bytes sent, which is less than
/// `len` only if the file shrank underneath us. A peer that accepts nothing for `timeout`
/// fails the transfer.
pub async fn send_file(
    stream: &TcpStream,
    file: &File,
    offset: u64,
    len: u64,
    timeout: Duration,
) -> io::Result<u64> {
    let mut off = offset as libc::off64_t;
    let mut sent = 0u64;
    while sent < len {
        let want = ((len - sent) as usize).min(MAX_CALL);
        let res = tokio::time::timeout(
            timeout,
            stream.async_io(Interest::WRITABLE, || {
                // SAFETY: both descriptors are open for the duration of the call (borrowed
                // above) and `off` is a valid, exclusively borrowed offset.
                let n = unsafe {
                    libc::sendfile64(stream.as_raw_fd(), file.as_raw_fd(), &mut off, want)
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as u64)
                }
            }),
        )
        .await;
        match res {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => sent += n,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "peer stopped reading",
                ));
            }
        }
    }
    Ok(sent)
}
