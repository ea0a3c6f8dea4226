//! `get --discover`: the nodes of the LAN group (and DNS-SD) as candidate sources of the file
//! while the download runs, those there at the start and those that appear later. The
//! download uses a candidate only if its BLAKE3 of the file equals the first source's.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meshfs_core::transfer::Source;
use meshfs_core::{Credentials, Peer, PeerEvent, Peers, RemotePath};
use meshfs_group::{discovery, lan};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cmd::target::Lookup;

/// How long a node silent on the group stays a candidate (as `meshfs mount`'s default).
const EXPIRY: Duration = Duration::from_secs(90);

/// Listen on the group as a browser (port 0: nodes answer, nobody lists us) until `stop`,
/// sending `url`'s path on every node heard as a candidate source.
pub fn sources(
    lookup: &Lookup,
    url: &RemotePath,
    stop: &CancellationToken,
) -> anyhow::Result<mpsc::UnboundedReceiver<Source>> {
    let config = crate::cmd::group::browser(&lookup.group, &lookup.dnssd, "get", EXPIRY);
    let peers = Peers::default();
    let quiet: discovery::OnChange = Arc::new(|_: &discovery::Change| {});
    lan::start(config, &peers, quiet, stop, &TaskTracker::new()).context(
        "cannot listen on the LAN group for more sources (use --no-discover to download \
         from the nodes named only)",
    )?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watch = peers.watch();
    let path = url.path.clone();
    let stop = stop.clone();
    tokio::spawn(async move {
        let send = |peer: &Peer| {
            tx.send(Source {
                path: RemotePath::new(&peer.node_addr(), &path),
                credentials: Credentials::none(),
            })
            .is_ok()
        };
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
    Ok(rx)
}
