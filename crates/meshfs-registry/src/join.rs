//! A node joining a directory by itself (`meshfs node --registry HOST:PORT`).
//!
//! At start the node binds its peer `GET_FILE` listener, then a task registers the user (a
//! name already in use is taken to be ours from an earlier run), connects with the listener's
//! port, and makes the directory's list of its files match the share: it publishes every file
//! of the share not yet listed (description `"<size> bytes <type>"`) and deletes the listed
//! ones that are gone. If the directory cannot be reached the node keeps serving and the task
//! retries with exponential back-off. On shutdown it sends `DISCONNECT`.
//!
//! Following the share's events (a new file published, a removed one deleted while running)
//! waits on `meshfs_core::events`; for now the share is published at start only.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use meshfs_core::{Kind, Share};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{Answer, ClientError, DirectoryClient};
use crate::describe::describe;
use crate::op::{OK, Refusal};
use crate::peer::{PeerConfig, PeerServer};
use crate::wire::MAX_FIELD;

/// Most files a node publishes (a bound on the walk of a huge share).
pub const MAX_PUBLISHED: usize = 100_000;
/// Deepest folder nesting walked.
const MAX_DEPTH: usize = 32;
/// Longest wait between two attempts to join.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First wait after a failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Command-line options of a node that joins a directory (flattened into `meshfs node`).
#[derive(Debug, Clone, clap::Args)]
pub struct JoinArgs {
    /// Join the central directory at HOST:PORT (seed 003): register, connect, publish the share.
    #[arg(long, env = "MESHFS_REGISTRY", value_name = "HOST:PORT")]
    pub registry: Option<String>,
    /// User name in the directory (default: the node name).
    #[arg(long, env = "MESHFS_USER")]
    pub user: Option<String>,
    /// Address of the peer GET_FILE listener announced to the directory (port 0: any free port).
    #[arg(long, default_value = "0.0.0.0:0", env = "MESHFS_PEER_LISTEN")]
    pub peer_listen: String,
}

/// Why a node could not start joining.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("cannot listen for GET_FILE on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("user name {0:?} is not valid in the directory (empty, spaces, or over 256 bytes)")]
    BadUser(String),
}

/// What a node announced once it joined.
#[derive(Debug, Clone)]
pub struct Joined {
    pub registry: String,
    pub user: String,
    /// Where the peer listener accepts `GET_FILE`.
    pub peer: SocketAddr,
    /// Files now listed in the directory for this user.
    pub files: usize,
}

impl fmt::Display for Joined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "joined directory {} as {} (GET_FILE on {}, {} files published)",
            self.registry, self.user, self.peer, self.files
        )
    }
}

/// Start the peer listener and the join task on `tracker`, if `args` names a directory.
/// `on_joined` is called once the share is published. Returns the peer listener's address.
pub async fn start(
    args: JoinArgs,
    default_user: &str,
    share: Share,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    on_joined: impl FnOnce(&Joined) + Send + 'static,
) -> Result<Option<SocketAddr>, JoinError> {
    let Some(registry) = args.registry else {
        return Ok(None);
    };
    let user = args.user.unwrap_or_else(|| default_user.to_owned());
    if user.is_empty()
        || user.len() > MAX_FIELD
        || user.contains(char::is_whitespace)
        || user.contains('\0')
    {
        return Err(JoinError::BadUser(user));
    }
    let peer = PeerServer::bind(&args.peer_listen, share.clone(), PeerConfig::default())
        .await
        .map_err(|source| JoinError::Listen {
            addr: args.peer_listen.clone(),
            source,
        })?;
    let peer_addr = peer.local_addr().map_err(|source| JoinError::Listen {
        addr: args.peer_listen.clone(),
        source,
    })?;
    tracker.spawn(peer.run(shutdown.clone(), tracker.clone()));
    let client = DirectoryClient::new(registry).with_timeout(Duration::from_secs(5));
    tracker.spawn(stay_joined(
        client, user, peer_addr, share, shutdown, on_joined,
    ));
    Ok(Some(peer_addr))
}

/// Join (retrying with back-off), then wait for shutdown and disconnect.
async fn stay_joined(
    client: DirectoryClient,
    user: String,
    peer: SocketAddr,
    share: Share,
    shutdown: CancellationToken,
    on_joined: impl FnOnce(&Joined) + Send + 'static,
) {
    let mut backoff = FIRST_BACKOFF;
    let joined = loop {
        match join_once(&client, &user, peer.port(), &share).await {
            Ok(files) => {
                break Joined {
                    registry: client.addr().to_owned(),
                    user: user.clone(),
                    peer,
                    files,
                };
            }
            Err(e) => {
                tracing::warn!(registry = client.addr(), error = %e, retry_in = ?backoff, "cannot join the directory");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    tracing::info!(registry = %joined.registry, user = %joined.user, peer = %joined.peer, files = joined.files, "joined the directory");
    on_joined(&joined);
    shutdown.cancelled().await;
    match client.disconnect(&user).await {
        Ok(OK) => {
            tracing::info!(registry = client.addr(), %user, "disconnected from the directory")
        }
        Ok(code) => tracing::warn!(registry = client.addr(), %user, code, "DISCONNECT refused"),
        Err(e) => tracing::warn!(registry = client.addr(), error = %e, "DISCONNECT failed"),
    }
}

/// Why one attempt to join failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{op} answered {code}")]
    Code { op: &'static str, code: u8 },
}

fn expect(op: &'static str, code: u8, fine: &[u8]) -> Result<(), AttemptError> {
    if fine.contains(&code) {
        Ok(())
    } else {
        Err(AttemptError::Code { op, code })
    }
}

/// One attempt: register, connect, reconcile the published list with the share.
async fn join_once(
    client: &DirectoryClient,
    user: &str,
    port: u16,
    share: &Share,
) -> Result<usize, AttemptError> {
    expect(
        "REGISTER",
        client.register(user).await?,
        &[OK, Refusal::NameInUse.code()],
    )?;
    let code = client.connect(user, port).await?;
    if code == Refusal::AlreadyConnected.code() {
        // Left connected by an earlier run that died: reconnect with the current port.
        expect("DISCONNECT", client.disconnect(user).await?, &[OK])?;
        expect("CONNECT", client.connect(user, port).await?, &[OK])?;
    } else {
        expect("CONNECT", code, &[OK])?;
    }
    let listed: BTreeSet<String> = match client.list_content(user, user).await? {
        Answer::Ok(files) => files.into_iter().collect(),
        Answer::Failed(code) => {
            return Err(AttemptError::Code {
                op: "LIST_CONTENT",
                code,
            });
        }
    };
    let walk_share = share.clone();
    let files = tokio::task::spawn_blocking(move || publishable_files(&walk_share))
        .await
        .unwrap_or_default();
    let present: BTreeSet<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    for gone in listed
        .iter()
        .filter(|name| !present.contains(name.as_str()))
    {
        expect(
            "DELETE",
            client.delete(user, gone).await?,
            &[OK, Refusal::NotPublished.code()],
        )?;
    }
    for (name, size) in files.iter().filter(|(name, _)| !listed.contains(name)) {
        let code = client.publish(user, name, &describe(name, *size)).await?;
        expect("PUBLISH", code, &[OK, Refusal::AlreadyPublished.code()])?;
    }
    Ok(files.len())
}

/// Every regular file of the share that can be named in the directory (relative path, no
/// spaces, at most 256 bytes), with its size; at most [`MAX_PUBLISHED`].
pub fn publishable_files(share: &Share) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut dirs = vec![(String::new(), 0usize)];
    while let Some((dir, depth)) = dirs.pop() {
        let entries = match share.list(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::debug!(%dir, error = %e, "cannot list");
                continue;
            }
        };
        for entry in entries {
            let path = if dir.is_empty() {
                entry.name.clone()
            } else {
                format!("{dir}/{}", entry.name)
            };
            match entry.kind {
                Kind::Dir if depth + 1 < MAX_DEPTH => dirs.push((path, depth + 1)),
                Kind::Dir => {}
                Kind::File => {
                    if path.len() > MAX_FIELD
                        || path.contains(char::is_whitespace)
                        || path.chars().any(char::is_control)
                    {
                        tracing::debug!(%path, "not publishable in the directory");
                        continue;
                    }
                    out.push((path, entry.size));
                    if out.len() >= MAX_PUBLISHED {
                        tracing::warn!(
                            max = MAX_PUBLISHED,
                            "share too large: publishing only the first files"
                        );
                        return out;
                    }
                }
            }
        }
    }
    out.sort();
    out
}
