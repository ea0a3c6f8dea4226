//! The chat client of seed step 3: waits on the keyboard and on its own FIFO at once, so what
//! others say appears while you type.
//!
//! It speaks the seed's framing exactly: `¶<my FIFO>` to register, `<my FIFO>¶<text>` per input
//! chunk, `<my FIFO>¶` (empty text) to leave — on end of input and on ^C alike. Its FIFO is
//! removed on every way out.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;

use crate::fifo::{self, OwnedFifo};
use crate::framing::SEPARATOR;

/// Writes up to this size are atomic on Linux pipes: a message never mixes with another client's.
const PIPE_BUF: usize = 4096;
/// Longest own FIFO path accepted, so every message leaves room for text within `PIPE_BUF`.
const MAX_FIFO_PATH: usize = 1024;
/// How long the goodbye may wait for room in the hub's FIFO.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a chat session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatEnd {
    /// End of input (^D).
    InputClosed,
    /// The shutdown token was cancelled (^C, SIGTERM).
    Interrupted,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("my FIFO path {0} is longer than {MAX_FIFO_PATH} bytes")]
    PathTooLong(PathBuf),
    #[error("cannot create my FIFO {path}: {source}")]
    CreateFifo { path: PathBuf, source: io::Error },
    #[error("cannot reach the hub at {path}: {reason}")]
    Connect { path: PathBuf, reason: String },
    #[error("the hub stopped or dropped this client (its FIFO was closed)")]
    HubLeft,
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: io::Error,
    },
}

/// Where the client listens and which hub it talks to.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// The hub's FIFO.
    pub hub: PathBuf,
    /// This client's own FIFO, created here and removed at the end. It must not exist.
    pub fifo: PathBuf,
}

/// Runs one chat session: `input` chunks go to the hub, what the hub sends goes to `output`.
pub async fn run(
    config: &ChatConfig,
    mut input: impl AsyncRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
    shutdown: CancellationToken,
) -> Result<ChatEnd, ChatError> {
    // The hub runs elsewhere: it needs an absolute path to find our FIFO.
    let create_err = |source| ChatError::CreateFifo {
        path: config.fifo.clone(),
        source,
    };
    let path = std::path::absolute(&config.fifo).map_err(create_err)?;
    let me = path.as_os_str().as_bytes();
    if me.len() > MAX_FIFO_PATH {
        return Err(ChatError::PathTooLong(path));
    }
    let own = OwnedFifo::create(&path, 0o600).map_err(create_err)?;
    // Open our read end before registering, so the hub can open its write end at once.
    let mut from_hub = fifo::open_reader(own.path()).map_err(create_err)?;
    let mut to_hub = connect(&config.hub)?;

    let mut registration = SEPARATOR.to_vec();
    registration.extend_from_slice(me);
    send(&mut to_hub, &registration).await?;
    tracing::debug!(hub = %config.hub.display(), fifo = %own.path().display(), "registered");

    let mut prefix = me.to_vec();
    prefix.extend_from_slice(SEPARATOR);
    let result = talk(
        &prefix,
        &mut input,
        &mut output,
        &mut to_hub,
        &mut from_hub,
        shutdown,
    )
    .await;
    // The seed's goodbye, the prefix with an empty text, on every way out (pointless only when the
    // hub is gone). Bounded: a hub whose FIFO is full must not keep us from exiting.
    if !matches!(result, Err(ChatError::HubLeft)) {
        match tokio::time::timeout(GOODBYE_TIMEOUT, to_hub.write_all(&prefix)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("could not say goodbye to the hub: {e}"),
            Err(_) => tracing::debug!("the hub did not take our goodbye in time"),
        }
    }
    result
}

/// The session proper: input chunks to the hub, the hub's bytes to `output`.
async fn talk(
    prefix: &[u8],
    input: &mut (impl AsyncRead + Unpin),
    output: &mut (impl AsyncWrite + Unpin),
    to_hub: &mut pipe::Sender,
    from_hub: &mut pipe::Receiver,
    shutdown: CancellationToken,
) -> Result<ChatEnd, ChatError> {
    let mut typed = vec![0u8; PIPE_BUF - prefix.len()];
    let mut heard = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(ChatEnd::Interrupted),
            n = input.read(&mut typed) => {
                let n = n.map_err(|source| ChatError::Io { context: "cannot read the input", source })?;
                if n == 0 {
                    return Ok(ChatEnd::InputClosed);
                }
                // One write per message: atomic, never interleaved with another client's.
                let mut message = Vec::with_capacity(prefix.len() + n);
                message.extend_from_slice(prefix);
                message.extend_from_slice(&typed[..n]);
                send(to_hub, &message).await?;
            }
            // The hub's read end closed: it stopped, even if it never opened our FIFO.
            _ = to_hub.ready(Interest::ERROR) => return Err(ChatError::HubLeft),
            n = from_hub.read(&mut heard) => {
                let n = n.map_err(|source| ChatError::Io { context: "cannot read my FIFO", source })?;
                if n == 0 {
                    return Err(ChatError::HubLeft);
                }
                let shown = async {
                    output.write_all(&heard[..n]).await?;
                    output.flush().await
                };
                shown.await.map_err(|source| ChatError::Io { context: "cannot write the output", source })?;
            }
        }
    }
}

/// Opens the hub's FIFO for writing, without blocking when no hub is there.
fn connect(hub: &Path) -> Result<pipe::Sender, ChatError> {
    fifo::open_writer(hub).map_err(|e| ChatError::Connect {
        path: hub.to_owned(),
        reason: match e.raw_os_error() {
            Some(libc::ENXIO) => "no hub is reading that FIFO".to_owned(),
            _ => e.to_string(),
        },
    })
}

async fn send(to_hub: &mut pipe::Sender, bytes: &[u8]) -> Result<(), ChatError> {
    to_hub.write_all(bytes).await.map_err(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            ChatError::HubLeft
        } else {
            ChatError::Io {
                context: "cannot write to the hub",
                source: e,
            }
        }
    })
}

/// The default FIFO of a chat client: `/tmp/meshfs-chat-<pid>`, like the seed's clients.
pub fn default_fifo() -> PathBuf {
    std::env::temp_dir().join(format!("meshfs-chat-{}", std::process::id()))
}
