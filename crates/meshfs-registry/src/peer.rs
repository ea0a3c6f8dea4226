//! The peer `GET_FILE` listener every connected client runs (registry.md, "Peer transfer").
//!
//! Request: `GET_FILE\0` then the file name. Reply: one byte (0 ok · 1 file does not exist ·
//! 2 error), and after 0 the size as a decimal field followed by exactly that many bytes.
//! Files come from a [`Share`] only, under the same confinement as every other door; a name
//! given as an absolute path inside the share is accepted (the course's clients publish
//! absolute paths). The file is streamed in small chunks, never loaded whole, each charged to
//! the node's upload limits ([`PeerConfig::upload`]; clients are told apart by IP address).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use meshfs_core::rate::{ClientKey, Limiter, UploadLimits};
use meshfs_core::{Share, ShareError, ShareFile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use meshfs_core::accept::{Door, accept_loop};
use meshfs_core::metrics::{Door as MetricsDoor, metrics};
use tokio_util::task::TaskTracker;

use crate::wire::{FieldReader, SERVER_SILENCE, push_field, write_all_within};

/// The peer operation's name.
pub const GET_FILE: &str = "GET_FILE";

/// `GET_FILE` result codes.
pub mod code {
    pub const OK: u8 = 0;
    pub const NO_SUCH_FILE: u8 = 1;
    pub const ERROR: u8 = 2;
}

/// Size of each chunk read from the file and written to the socket.
const CHUNK: usize = 64 * 1024;

/// Limits of one peer listener.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Silence mid-request after which the request fails.
    pub silence: Duration,
    /// A reader that takes no bytes for this long is dropped.
    pub write_timeout: Duration,
    /// Transfers served at once; further peers are closed at once ([`meshfs_core::accept`]).
    pub max_connections: usize,
    /// The node's upload limits, which file bytes sent here count against.
    pub upload: UploadLimits,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            silence: SERVER_SILENCE,
            write_timeout: Duration::from_secs(30),
            max_connections: 256,
            upload: UploadLimits::unlimited(),
        }
    }
}

/// A bound `GET_FILE` listener.
pub struct PeerServer {
    listener: TcpListener,
    share: Share,
    config: Arc<PeerConfig>,
}

impl PeerServer {
    pub async fn bind(addr: &str, share: Share, config: PeerConfig) -> io::Result<PeerServer> {
        Ok(PeerServer {
            listener: TcpListener::bind(addr).await?,
            share,
            config: Arc::new(config),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` is cancelled; each transfer is a task on `tracker` that stops at
    /// its next chunk once `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let (share, config) = (self.share, self.config);
        let door = Door {
            name: "GET_FILE",
            max_connections: config.max_connections,
            refusal: b"",
        };
        accept_loop(&self.listener, door, &shutdown, &tracker, |stream, peer| {
            let (share, config, shutdown) = (share.clone(), config.clone(), shutdown.clone());
            async move {
                if let Err(e) = serve(stream, share, &config, shutdown).await {
                    tracing::debug!(%peer, error = %e, "GET_FILE ended with an error");
                }
            }
        })
        .await;
    }
}

/// Map a requested name onto a path relative to the share: an absolute path inside the share
/// loses its root prefix; anything else is left for [`Share`] to judge (it ignores a leading
/// `/`, so an absolute path elsewhere can only name something inside the share).
pub fn share_path(share: &Share, name: &str) -> String {
    if name.starts_with('/') {
        if let Ok(rest) = Path::new(name).strip_prefix(share.root()) {
            if let Some(rest) = rest.to_str() {
                return rest.to_owned();
            }
        }
    }
    name.to_owned()
}

fn error_code(e: &ShareError) -> u8 {
    match e {
        ShareError::NotFound | ShareError::NotAFile | ShareError::NotADir => code::NO_SUCH_FILE,
        ShareError::Denied(_) | ShareError::Io(_) => code::ERROR,
    }
}

async fn serve(
    stream: TcpStream,
    share: Share,
    config: &PeerConfig,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr()?;
    let (read, mut write) = stream.into_split();
    let mut reader = FieldReader::new(read, config.silence);
    reader.set_deadline(Some(tokio::time::Instant::now() + config.silence * 5));

    let opened = match read_request(&mut reader).await {
        Ok(name) => {
            metrics().door(MetricsDoor::GetFile).request();
            let rel = share_path(&share, &name);
            let share = share.clone();
            let opened = tokio::task::spawn_blocking(move || {
                let file = share.open_file(&rel)?;
                let len = file.len()?;
                Ok::<_, ShareError>((file, len))
            })
            .await
            .unwrap_or_else(|e| Err(ShareError::Io(io::Error::other(e))));
            match &opened {
                Ok((file, len)) => tracing::info!(%peer, path = file.path(), len, "GET_FILE"),
                Err(e) => tracing::info!(%peer, %name, error = %e, "GET_FILE refused"),
            }
            opened.map_err(|e| error_code(&e))
        }
        Err(()) => Err(code::ERROR),
    };
    let result = match opened {
        Ok((file, len)) => {
            let limiter = config.upload.client(ClientKey::of(None, peer.ip()));
            send_file(&mut write, file, len, config, &limiter, &shutdown).await
        }
        Err(code) => write_all_within(&mut write, &[code], config.write_timeout).await,
    };
    let _ = write.shutdown().await;
    reader.drain(Duration::from_millis(200), 64 * 1024).await;
    result
}

/// `GET_FILE` and the name; Err for anything else (answered with code 2).
async fn read_request(
    reader: &mut FieldReader<tokio::net::tcp::OwnedReadHalf>,
) -> Result<String, ()> {
    match reader.read_field().await {
        Ok(op) if op == GET_FILE => {}
        Ok(op) => {
            tracing::info!(op = %op.chars().take(64).collect::<String>(), "unknown peer operation");
            return Err(());
        }
        Err(e) => {
            tracing::debug!(error = %e, "bad peer request");
            return Err(());
        }
    }
    reader.read_field().await.map_err(|e| {
        tracing::debug!(error = %e, "bad GET_FILE name");
    })
}

/// Code 0, the size, then exactly `len` bytes streamed from the file.
async fn send_file<W: tokio::io::AsyncWrite + Unpin>(
    write: &mut W,
    file: ShareFile,
    len: u64,
    config: &PeerConfig,
    limiter: &Limiter,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    let mut header = vec![code::OK];
    push_field(&mut header, &len.to_string()).map_err(io::Error::other)?;
    write_all_within(write, &header, config.write_timeout).await?;

    // A duplicate descriptor of the file Share opened (and confined): same file, async reads.
    let mut source = tokio::fs::File::from_std(file.as_file().try_clone()?);
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        if shutdown.is_cancelled() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "node shutting down",
            ));
        }
        let want = left.min(CHUNK as u64) as usize;
        let n = source.read(&mut buf[..want]).await?;
        if n == 0 {
            // The file shrank after we announced its size: the peer must see a short transfer.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank during GET_FILE",
            ));
        }
        for piece in limiter.pieces(&buf[..n]) {
            limiter.take(piece.len() as u64).await;
            write_all_within(write, piece, config.write_timeout).await?;
        }
        metrics()
            .door(MetricsDoor::GetFile)
            .bytes_sent_total
            .add(n as u64);
        left -= n as u64;
    }
    Ok(())
}
