//! `meshfs mount DIR [--node URL…]`: every node's share under `DIR/<node-name>/`, read-only:
//! the nodes given, and every node discovered on the LAN group while mounted (seed 004), whose
//! folders come and go with them.
//!
//! Runs in the foreground; prints `meshfs mount DIR ready: NAME, NAME…` on stdout once the
//! kernel serves the mount (scripts and tests wait for it), then `node up FOLDER ADDR` and
//! `node down FOLDER` as discovered nodes come and go, and unmounts cleanly on SIGINT or
//! SIGTERM. Unmounted from outside (`fusermount3 -u DIR`), it exits 0 too.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meshfs_core::RemotePath;
use meshfs_core::remote::DEFAULT_PORT;
use meshfs_fuse::{Mount, MountOptions, PoolConfig};
use meshfs_group::discovery::{self, Change, Discovery};
use meshfs_group::dnssd;

use super::group::{DnsSdArgs, GroupAddr};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs mount /mnt/mesh                      every node on the LAN, as they come and go
  meshfs mount /mnt/mesh --node cam1.local --node cam2.local
  meshfs mount ~/mesh --node meshfs://10.0.0.7:4044 --node 10.0.0.8 --no-discovery
  meshfs mount ~/mesh --node cam2             a node by its name on the LAN group
  mpv /mnt/mesh/cam2/2024-05-01/clip.mp4     play a video from node cam2
  fusermount3 -u /mnt/mesh                    unmount (or Ctrl-C the mount)")]
pub struct Args {
    /// Existing folder to mount on.
    pub dir: PathBuf,
    /// A node to show, as meshfs://HOST[:PORT], HOST:PORT, HOST (port 4044) or the NAME a
    /// node announces on the LAN group. Repeatable, or several separated by commas. Given
    /// nodes stay shown even when they are down (their folder answers EIO).
    #[arg(long = "node", value_name = "URL", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Show only the --node nodes: do not listen for nodes on the LAN group.
    #[arg(long)]
    pub no_discovery: bool,
    /// Forget discovered nodes silent for this long (their folder disappears).
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub peer_expiry: Duration,
    #[command(flatten)]
    pub group: GroupAddr,
    #[command(flatten)]
    pub dnssd: DnsSdArgs,
    /// How long attributes and listings are trusted without news from the node (change
    /// events from the node make new and changed files show sooner).
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Longest wait for a connection to a node (a node down answers EIO after this).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Longest single wait for a node during a request.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Largest sequential read-ahead window per open file, in MiB.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub readahead_mib: u64,
    /// Most read-ahead memory held by the whole mount, in MiB (many readers share it).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub readahead_total_mib: u64,
    /// Most connections to each node.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub connections: u64,
    /// Do not follow the nodes' change events (freshness then comes from --ttl alone).
    #[arg(long)]
    pub no_events: bool,
    /// Let other users read the mount (needs root or user_allow_other in /etc/fuse.conf).
    #[arg(long)]
    pub allow_other: bool,
}

/// `host:port` of a node given on the command line.
fn node_addr(s: &str) -> anyhow::Result<String> {
    if s.starts_with("meshfs://") {
        return Ok(s.parse::<RemotePath>()?.addr);
    }
    anyhow::ensure!(
        !s.is_empty() && !s.contains('/'),
        "{s:?} is not a node address"
    );
    let has_port = s
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !s.ends_with(']');
    Ok(if has_port {
        s.to_owned()
    } else {
        format!("{s}:{DEFAULT_PORT}")
    })
}

/// `host:port` of a node given by name: a host name that resolves, else the node that
/// answers to that name on the LAN group.
async fn resolve(s: &str, args: &Args) -> anyhow::Result<String> {
    let addr = node_addr(s)?;
    let bare = !s.starts_with("meshfs://") && !s.contains(':');
    if !bare || args.no_discovery || tokio::net::lookup_host(&addr).await.is_ok() {
        return Ok(addr);
    }
    let found = super::target::find_node(&args.group, &args.dnssd, s, Duration::from_secs(1))
        .await
        .with_context(|| format!("{s:?} is no host name"))?;
    Ok(found.to_string())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.nodes.is_empty() || !args.no_discovery,
        "nothing to mount: give --node URL, or let the mount discover nodes (no --no-discovery)"
    );
    let mut addrs = Vec::new();
    for n in &args.nodes {
        addrs.push(resolve(n, &args).await?);
    }
    anyhow::ensure!(args.dir.is_dir(), "{} is not a folder", args.dir.display());
    let mut options = MountOptions::default();
    options.fs.ttl = args.ttl;
    options.fs.max_readahead = args.readahead_mib << 20;
    options.fs.readahead_budget = args.readahead_total_mib as usize;
    options.pool = PoolConfig {
        connect_timeout: args.connect_timeout,
        request_timeout: args.timeout,
        max_connections: args.connections as usize,
        ..PoolConfig::default()
    };
    options.allow_other = args.allow_other;
    options.live_events = !args.no_events;

    let nodes = meshfs_fuse::connect_nodes(&addrs, options.pool).await;
    let rt = tokio::runtime::Handle::current();
    let dir = args.dir.clone();
    // Handlers in place before the ready line: a signal right after it still unmounts cleanly.
    let mut stop = std::pin::pin!(crate::signals::terminate());
    let mut mount =
        tokio::task::spawn_blocking(move || meshfs_fuse::mount(&dir, nodes, &options, rt))
            .await
            .context("mount task failed")??;
    println!(
        "meshfs mount {} ready: {}",
        args.dir.display(),
        mount.folders().join(", ")
    );
    let _ = std::io::stdout().flush();
    tracing::info!(dir = %args.dir.display(), nodes = ?mount.folders(), "mounted");

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut changes = if args.no_discovery {
        None
    } else {
        match discover(&args, &shutdown, &tracker) {
            Ok(rx) => Some(rx),
            // A network without multicast still mounts the nodes it was given.
            Err(e) if !addrs.is_empty() => {
                tracing::warn!(error = %e, "LAN discovery off: only the --node nodes are shown");
                None
            }
            Err(e) => return Err(e),
        }
    };
    let mut given = Vec::new();
    for a in &addrs {
        // As discovery will name them: `localhost:4044` is announced as `127.0.0.1:4044`.
        given.extend(tokio::net::lookup_host(a).await.into_iter().flatten());
    }
    let mut discovered = Discovered {
        given,
        by_name: HashMap::new(),
    };
    let ended_outside = loop {
        tokio::select! {
            _ = &mut stop => break false,
            _ = mount.ended() => break true,
            Some(change) = async { changes.as_mut()?.recv().await } => {
                discovered.apply(&mount, change);
            }
        }
    };
    // Stop listening to the group (its `bye` names no listed node: a mount is a browser).
    shutdown.cancel();
    tracker.close();
    if ended_outside {
        tracing::info!("unmounted from outside");
        return Ok(());
    }
    tokio::task::spawn_blocking(move || mount.unmount())
        .await
        .context("unmount task failed")??;
    tracing::info!("unmounted");
    Ok(())
}

/// Listen on the LAN group as a browser (port 0: every node answers at once, nobody lists us),
/// and browse DNS-SD beside it (networks that drop our group), and hand the nodes that come
/// and go to the mount.
fn discover(
    args: &Args,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<Change>> {
    let group = args.group.group(None);
    let iface = group.iface;
    let config = discovery::Config {
        name: "mount".into(),
        port: 0,
        web: None,
        group,
        announce_port: args.group.group_port,
        expiry: args.peer_expiry,
        multicast: true,
        static_peers: Vec::new(),
    };
    // Unbounded but small: only peers coming and going are sent, and the peer table is
    // bounded (meshfs_group::peers::MAX_PEERS).
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let on_change = Arc::new(move |c: &Change| {
        if matches!(c, Change::PeerUp(_) | Change::PeerDown { .. }) {
            let _ = tx.send(c.clone());
        }
    });
    let d = Discovery::start(config, on_change, shutdown.clone(), tracker)
        .context("cannot listen on the LAN group (use --no-discovery with --node)")?;
    if !args.dnssd.no_dnssd {
        let config = dnssd::Config {
            port: args.dnssd.dnssd_port,
            interfaces: dnssd::Interfaces::of(iface),
            // Port 0: browse only, advertise nothing (a mount serves no files).
            server: std::net::SocketAddr::from((iface, 0)),
            web: None,
        };
        if let Err(e) = dnssd::start(&d, config, shutdown.clone(), tracker) {
            tracing::warn!(error = %e, "DNS-SD off: nodes are found on the multicast group only");
        }
    }
    Ok(rx)
}

/// The discovered nodes the mount shows.
struct Discovered {
    /// Addresses given with --node: shown for good, whatever discovery says.
    given: Vec<std::net::SocketAddr>,
    /// Announced name → address, to hide a node when it says `bye` or falls silent.
    by_name: HashMap<String, String>,
}

impl Discovered {
    fn apply(&mut self, mount: &Mount, change: Change) {
        match change {
            Change::PeerUp(peer) => {
                if self.given.contains(&peer.addr) {
                    return;
                }
                let addr = peer.addr.to_string();
                // The same name at another address (restarted with a new lease, no `bye`):
                // discovery sends no PeerDown for the old one. Hide it, so the node keeps its
                // folder instead of leaving a dead one beside a `NAME-2`.
                if let Some(old) = self.by_name.get(&peer.name).filter(|old| **old != addr)
                    && mount.hide_node(old).is_some()
                {
                    tracing::info!(peer = %peer.name, %old, %addr, "node moved");
                }
                if let Some(folder) = mount.add_node(&peer.name, &addr) {
                    println!("node up {folder} {addr}");
                    let _ = std::io::stdout().flush();
                    tracing::info!(%folder, %addr, "node discovered");
                }
                self.by_name.insert(peer.name, addr);
            }
            Change::PeerDown { name, why } => {
                let Some(addr) = self.by_name.remove(&name) else {
                    return;
                };
                if let Some(folder) = mount.hide_node(&addr) {
                    println!("node down {folder}");
                    let _ = std::io::stdout().flush();
                    tracing::info!(%folder, why, "node gone");
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::node_addr;

    #[test]
    fn node_addresses_take_the_default_port() {
        assert_eq!(node_addr("cam1").unwrap(), "cam1:4044");
        assert_eq!(node_addr("10.0.0.7:5000").unwrap(), "10.0.0.7:5000");
        assert_eq!(node_addr("meshfs://h:7/").unwrap(), "h:7");
        assert_eq!(node_addr("meshfs://h").unwrap(), "h:4044");
        assert!(node_addr("a/b").is_err());
        assert!(node_addr("").is_err());
    }
}
