//! `get --discover`: more candidate sources of the file while the download runs. From the
//! nodes of the LAN group (and DNS-SD), those there at the start and those that appear later,
//! and from the `--cluster-peer`s of the nodes named (`cluster-peers`): an archive replica or
//! the other workers of a cluster, which need not be on this LAN group. The download uses a
//! candidate only if it holds the same version (its first block proves it).
//!
//! Each candidate is first asked for the file as `--from` nodes are ([`super::source_for`]),
//! on a task of its own: one that asks for a password gets the one `--password-file` (or
//! `MESHFS_CLIENT_PASSWORD`) gives for it, never a prompt (nobody expects one in the middle of
//! a download); one without the file is left out quietly.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meshfs_core::transfer::Source;
use meshfs_core::{Client, NodeAddr, Peer, PeerEvent, Peers, RemotePath};
use meshfs_group::{discovery, lan};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cmd::client::{NoPassword, Passwords};
use crate::cmd::target::Lookup;

/// How long a node silent on the group stays a candidate (as `meshfs mount`'s default).
const EXPIRY: Duration = Duration::from_secs(90);

/// Where candidate nodes are sent once they proved to hold the file's path.
#[derive(Clone)]
pub struct Candidates {
    tx: mpsc::UnboundedSender<Source>,
    path: String,
    passwords: Arc<Passwords>,
}

impl Candidates {
    /// Candidates for `path`, proving to each the password `passwords` give for it (never
    /// prompted); the download reads them from the receiver.
    pub fn new(path: &str, passwords: Passwords) -> (Candidates, mpsc::UnboundedReceiver<Source>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let candidates = Candidates {
            tx,
            path: path.to_owned(),
            passwords: Arc::new(passwords.without_prompt()),
        };
        (candidates, rx)
    }

    /// Ask the node at `node` (also known as `name`) for the file, on a task of its own, and
    /// send it if it holds it. False once the download takes no more.
    fn offer(&self, node: &NodeAddr, name: String) -> bool {
        let this = self.clone();
        let url = RemotePath::new(node, &self.path);
        let addr = url.addr.clone();
        tokio::spawn(async move {
            match super::source_for(&this.passwords, &[name.as_str(), addr.as_str()], &url).await {
                Ok((path, credentials)) => {
                    let _ = this.tx.send(Source { path, credentials });
                }
                Err(e) if e.downcast_ref::<NoPassword>().is_some() => {
                    tracing::info!("not using {name} ({addr}), found by discovery: {e}")
                }
                Err(e) => tracing::debug!(%name, %addr, error = %e, "not a source"),
            }
        });
        !self.tx.is_closed()
    }
}

/// Listen on the group as a browser (port 0: nodes answer, nobody lists us) until `stop`,
/// offering every node heard to `candidates`.
pub fn lan(
    lookup: &Lookup,
    candidates: &Candidates,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let config = crate::cmd::group::browser(&lookup.group, &lookup.dnssd, "get", EXPIRY);
    let peers = Peers::default();
    let quiet: discovery::OnChange = Arc::new(|_: &discovery::Change| {});
    lan::start(config, &peers, quiet, stop, &TaskTracker::new()).context(
        "cannot listen on the LAN group for more sources (use --no-discover to download \
         from the nodes named only)",
    )?;
    let mut watch = peers.watch();
    let (candidates, stop) = (candidates.clone(), stop.clone());
    tokio::spawn(async move {
        let send = |peer: &Peer| candidates.offer(&peer.node_addr(), peer.name.clone());
        let mut open = watch.snapshot().iter().all(send);
        while open {
            let event = tokio::select! {
                event = watch.next() => event,
                () = stop.cancelled() => return,
            };
            open = match event {
                PeerEvent::Up(peer) | PeerEvent::Changed { new: peer, .. } => send(&peer),
                PeerEvent::Resync(list) => list.iter().all(send),
                PeerEvent::Down { .. } => true,
            };
        }
    });
    Ok(())
}

/// Ask each of `sources` for its `--cluster-peer`s (`cluster-peers`), on a task of its own,
/// and offer each of them to `candidates`: the archive replica or the other workers that
/// hold the same files. A node older than the request, or one that cannot say, adds none.
pub fn cluster_peers(candidates: &Candidates, sources: &[Source]) {
    for source in sources {
        let (candidates, source) = (candidates.clone(), source.clone());
        tokio::spawn(async move {
            let addr = &source.path.addr;
            let peers = async {
                let mut client = Client::connect_with(addr, &source.credentials).await?;
                client.cluster_peers().await
            };
            let peers = match peers.await {
                Ok(peers) => peers,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "no cluster peers from this source");
                    return;
                }
            };
            for peer in peers {
                match peer.parse::<NodeAddr>() {
                    Ok(node) if candidates.offer(&node, peer.clone()) => {}
                    Ok(_) => return,
                    Err(e) => tracing::debug!(%addr, %peer, error = %e, "not a node address"),
                }
            }
        });
    }
}
