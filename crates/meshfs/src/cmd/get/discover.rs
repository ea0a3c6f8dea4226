//! `get --discover`: the nodes of the LAN group (and DNS-SD) as candidate sources of the file
//! while the download runs, those there at the start and those that appear later. The
//! download uses a candidate only if its BLAKE3 of the file equals the first source's.
//!
//! Each node heard is first asked for the file as `--from` nodes are, on a task of its own:
//! one that asks for a password gets the one `--password-file` (or `MESHFS_CLIENT_PASSWORD`)
//! gives for it, never a prompt (nobody expects one in the middle of a download); one without
//! the file is left out quietly.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meshfs_core::transfer::Source;
use meshfs_core::{Credentials, Peer, PeerEvent, Peers, RemotePath};
use meshfs_group::{discovery, lan};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cmd::client::{NoPassword, Passwords, auth_required};
use crate::cmd::target::Lookup;

/// How long a node silent on the group stays a candidate (as `meshfs mount`'s default).
const EXPIRY: Duration = Duration::from_secs(90);

/// Listen on the group as a browser (port 0: nodes answer, nobody lists us) until `stop`,
/// sending `url`'s path on every node heard that holds it as a candidate source, with the
/// credentials it asks for from `passwords`.
pub fn sources(
    lookup: &Lookup,
    url: &RemotePath,
    stop: &CancellationToken,
    passwords: Passwords,
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
    let passwords = Arc::new(passwords.without_prompt());
    tokio::spawn(async move {
        let send = |peer: &Peer| {
            let (tx, passwords) = (tx.clone(), passwords.clone());
            let (name, addr) = (peer.name.clone(), peer.node_addr().to_string());
            let url = RemotePath::new(&peer.node_addr(), &path);
            let open = !tx.is_closed();
            tokio::spawn(async move {
                match probe(&passwords, &[name.as_str(), addr.as_str()], &url).await {
                    Ok((path, credentials)) => {
                        let _ = tx.send(Source { path, credentials });
                    }
                    Err(e) if e.downcast_ref::<NoPassword>().is_some() => {
                        tracing::info!("not using {name} ({addr}), found on the LAN: {e}")
                    }
                    Err(e) => tracing::debug!(%name, %addr, error = %e, "not a source"),
                }
            });
            open
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

/// `url` as a source, with the credentials its node asks for: as the `--from` nodes are judged
/// (`source_for`, through [`Passwords::retrying`]), written out because this runs on a task of
/// its own and `retrying`'s async closure does not give a `Send` future.
async fn probe(
    passwords: &Passwords,
    names: &[&str],
    url: &RemotePath,
) -> anyhow::Result<(RemotePath, Credentials)> {
    let attempt = |credentials: Credentials| async move {
        let (url, mut client) = meshfs_cluster::follow(url, &credentials).await?;
        client.stat(&url.path).await?;
        Ok::<_, anyhow::Error>((url, credentials))
    };
    match attempt(Credentials::none()).await {
        Err(e) if auth_required(&e) => {
            let password = passwords.for_node(names)?;
            attempt(Credentials::password(password.expose())).await
        }
        other => other,
    }
}
