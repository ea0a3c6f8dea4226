//! [`WebConfig`] and [`start`]: what the web UI needs from the node that serves it, as a
//! plain struct, and starting it. The flags that fill the struct (`--web`, `--no-web`,
//! `--node`) and the choice of address live in the binary (`meshfs node`), like every other
//! door's: this crate knows nothing of the command line.

use std::net::SocketAddr;

use meshfs_core::access::Access;
use meshfs_core::retention::DiskStatus;
use meshfs_core::{Identity, Peers, Share};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::ChatSetting;
use crate::listener::Https;
use crate::nodes::NodeDirectory;
use crate::server::WebServer;

/// What the web UI of one node is given.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where to listen, `host:port` (port 0: any free port).
    pub addr: String,
    /// This node's name (the first entry of the node list).
    pub name: String,
    /// This node's share, served directly.
    pub share: Share,
    /// Its passwords: what they protect is asked for (login, cookie session).
    pub access: Access,
    /// This node's file server as this process reaches it (`host:port`): the node's own
    /// events are followed there, like every other node's.
    pub file_server: String,
    /// Other nodes to show, by file-server address (`host:port`).
    pub nodes: Vec<String>,
    /// The node's peer table: every node in it is shown too, as it comes.
    pub peers: Peers,
    /// The LAN group chat, or why the page shows none.
    pub chat: ChatSetting,
    /// The node's key and certificate: HTTPS is served with them and the page shows its ID.
    /// `None`: plain HTTP only, no ID (and so no login form).
    pub identity: Option<Identity>,
    /// Which protocols the port speaks when there is an identity.
    pub https: Https,
    /// This node's disk as its retention measures it: the page says when it is full.
    pub disk: DiskStatus,
    /// The node's upload limits: file and zip bodies count against them.
    pub upload: meshfs_core::rate::UploadLimits,
}

/// A running web UI.
#[derive(Debug, Clone)]
pub struct WebHandle {
    /// Where it listens. (The nodes it shows come from the [`Peers`] it was given: there
    /// is no other way in.)
    pub addr: SocketAddr,
    /// What it speaks there.
    pub https: Https,
}

/// Why the web UI could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve the web UI on {addr}: {source}")]
pub struct StartError {
    /// The address asked for.
    pub addr: String,
    #[source]
    pub source: std::io::Error,
}

impl StartError {
    /// True when the address could not be bound (rather than the TLS side made).
    pub fn is_bind(&self) -> bool {
        self.source.kind() != std::io::ErrorKind::InvalidData
    }
}

/// Bind the web UI and run it on `tracker` until `shutdown`.
pub async fn start(
    config: WebConfig,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<WebHandle, StartError> {
    let WebConfig {
        addr,
        name,
        share,
        access,
        file_server,
        nodes: others,
        peers,
        chat,
        identity,
        https,
        disk,
        upload,
    } = config;
    let nodes = NodeDirectory::new(&name, &file_server);
    if let Some(identity) = &identity {
        let id = identity.id().to_string();
        nodes.update(&file_server, |n| n.id = Some(id));
    }
    for node in &others {
        nodes.add(node);
    }
    tracker.spawn(nodes.clone().follow_peers(peers, shutdown.clone()));
    let error = |source| StartError {
        addr: addr.clone(),
        source,
    };
    let mut server = WebServer::bind(&addr, share, nodes.clone())
        .await
        .map_err(error)?
        .with_access(access)
        .with_chat(chat)
        .with_disk(disk)
        .with_upload(upload);
    if let Some(identity) = &identity {
        server = server
            .with_identity(identity, https)
            .map_err(|e| error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    }
    let local = server.local_addr().map_err(error)?;
    let https = server.https();
    tracker.spawn(server.run(shutdown, tracker.clone()));
    match &identity {
        Some(identity) => tracing::info!(
            addr = %local, ?https, id = %identity.id(), pin = %identity.id().pinned_pubkey(),
            "web UI ready"
        ),
        None => tracing::info!(addr = %local, "web UI ready (plain HTTP, no identity)"),
    }
    Ok(WebHandle { addr: local, https })
}
