//! `meshfs mount DIR [--node URL…]`: every node's share under `DIR/<node-name>/`, read-only:
//! the nodes given, and every node discovered on the LAN group while mounted (seed 004), whose
//! folders come and go with them.
//!
//! Runs in the foreground; prints `meshfs mount DIR ready: NAME, NAME…` on stdout once the
//! kernel serves the mount (scripts and tests wait for it), then `node up FOLDER ADDR` and
//! `node down FOLDER` as discovered nodes come and go, and unmounts cleanly on SIGINT or
//! SIGTERM. Unmounted from outside (`fusermount3 -u DIR`), it exits 0 too.
//!
//! A protected node gets its password as every client command gives it (`--password-file
//! [NODE=]FILE`, `MESHFS_CLIENT_PASSWORD`, a no-echo prompt for the nodes given), proven on
//! each of the mount's connections to it and by its event subscription; an open node is never
//! sent one. A node that asks for a password none was given for is still shown: its files
//! answer `EACCES`, and a warning says which node asks and how to give it.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meshfs_core::{Credentials, NodeAddr, Peer, PeerEvent, Peers, PoolConfig};
use meshfs_fuse::{FolderChange, MountOptions, PeerFolders, WithCredentials};
use meshfs_group::{discovery, lan};

use super::client::{NoPassword, PasswordArgs, Passwords};
use super::group::{DnsSdArgs, GroupAddr};
use crate::signals::Lifetime;

/// How long discovery may take to stop (a browser says no `bye`: its tasks end at once).
const DISCOVERY_GRACE: Duration = Duration::from_secs(1);

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs mount /mnt/mesh                      every node on the LAN, as they come and go
  meshfs mount /mnt/mesh --node cam1.local --node cam2.local
  meshfs mount ~/mesh --node meshfs://10.0.0.7:4044 --node 10.0.0.8 --no-discovery
  meshfs mount ~/mesh --node cam2             a node by its name on the LAN group
  meshfs mount ~/mesh --node cam1 --password-file cam1=$HOME/.cam1-pw
                                              a protected node (discovered ones too)
  mpv /mnt/mesh/cam2/2024-05-01/clip.mp4     play a video from node cam2
  fusermount3 -u /mnt/mesh                    unmount (or Ctrl-C the mount)")]
pub struct Args {
    /// Existing folder to mount on.
    pub dir: PathBuf,
    /// A node to show, as meshfs://HOST[:PORT], HOST:PORT, HOST (port 4044) or the NAME a
    /// node announces on the LAN group. Repeatable, or several separated by commas. Given
    /// nodes stay shown even when they are down (their folder answers EIO).
    #[arg(long = "node", value_name = "URL", value_delimiter = ',')]
    pub nodes: Vec<NodeAddr>,
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
    /// How long an answer is trusted while the node's change events are received (any change
    /// drops it at once; this bounds what a change the node cannot see costs). It is what
    /// makes a folder of small files cost one round trip per file.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub events_ttl: Duration,
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
    /// Files at least this large (MiB) are read past the kernel's page cache: one copy fewer
    /// for large sequential reads (recordings), none kept for a second read. A file read in
    /// pieces under 64 KiB goes through the page cache from its next open on.
    #[arg(long, default_value_t = meshfs_fuse::DEFAULT_DIRECT_IO_MIN >> 20, value_name = "MIB")]
    pub direct_io_min_mib: u64,
    /// Most connections to each node.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub connections: u64,
    /// Do not follow the nodes' change events (freshness then comes from --ttl alone).
    #[arg(long)]
    pub no_events: bool,
    /// Let other users read the mount (needs root or user_allow_other in /etc/fuse.conf).
    #[arg(long)]
    pub allow_other: bool,
    #[command(flatten)]
    pub passwords: PasswordArgs,
}

/// `host:port` of a node given on the command line: a host name that resolves, else (a bare
/// word, see [`NodeAddr::lookup_name`]) the node that answers to that name on the LAN group.
async fn resolve(node: &NodeAddr, args: &Args) -> anyhow::Result<String> {
    let addr = node.to_string();
    let Some(name) = node.lookup_name() else {
        return Ok(addr);
    };
    if args.no_discovery || tokio::net::lookup_host(&addr).await.is_ok() {
        return Ok(addr);
    }
    let found = super::target::find_node(&args.group, &args.dnssd, name, Duration::from_secs(1))
        .await
        .with_context(|| format!("{name:?} is no host name"))?;
    Ok(found.to_string())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.nodes.is_empty() || !args.no_discovery,
        "nothing to mount: give --node URL, or let the mount discover nodes (no --no-discovery)"
    );
    anyhow::ensure!(args.dir.is_dir(), "{} is not a folder", args.dir.display());
    let mut options = MountOptions::default();
    options.fs.ttl = args.ttl;
    options.fs.events_ttl = args.events_ttl;
    options.fs.max_readahead = args.readahead_mib << 20;
    options.fs.readahead_budget = args.readahead_total_mib as usize;
    options.fs.direct_io_min = args.direct_io_min_mib.saturating_mul(1 << 20);
    options.pool = PoolConfig {
        connect_timeout: args.connect_timeout,
        request_timeout: args.timeout,
        max_connections: args.connections as usize,
        // Keep every connection the bound allows (several files read at once, read-ahead).
        max_idle: args.connections as usize,
        ..options.pool
    };
    options.allow_other = args.allow_other;
    options.live_events = !args.no_events;

    let passwords = Passwords::new(&args.passwords)?;
    let mut addrs = Vec::new();
    let mut given_nodes = Vec::new();
    for n in &args.nodes {
        let addr = resolve(n, &args).await?;
        let typed = n.to_string();
        let names = names(n.host(), &addr, &typed);
        let credentials = credentials(&passwords, &addr, &names, options.pool)
            .await
            .with_context(|| format!("cannot mount {typed}"))?;
        addrs.push(addr.clone());
        given_nodes.push((addr, credentials));
    }
    // Nodes found later are not asked for on the terminal: nobody may be watching it.
    let passwords = passwords.without_prompt();

    let nodes = meshfs_fuse::connect_nodes(&given_nodes, options.pool).await;
    let pool = options.pool;
    let rt = tokio::runtime::Handle::current();
    let dir = args.dir.clone();
    // Handlers in place before the ready line: a signal right after it still unmounts cleanly.
    let mut life = Lifetime::new();
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

    let peers = Peers::default();
    let mut watch = if args.no_discovery {
        None
    } else {
        match discover(&args, &peers, &life) {
            Ok(()) => Some(peers.watch()),
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
    let mut folders = PeerFolders::new(given.iter().copied());
    if let Some(w) = &watch {
        let snapshot = w.snapshot();
        let credentials = discovered(&passwords, snapshot, &given, pool).await;
        let with = WithCredentials {
            mount: &mount,
            credentials: &credentials,
        };
        report(folders.resync(&with, snapshot));
    }
    let ended_outside = loop {
        tokio::select! {
            _ = life.signalled() => break false,
            _ = mount.ended() => break true,
            Some(event) = async { Some(watch.as_mut()?.next().await) } => {
                let credentials = discovered(&passwords, shown_by(&event), &given, pool).await;
                let with = WithCredentials { mount: &mount, credentials: &credentials };
                report(folders.apply(&with, event));
            }
        }
    };
    // Stop listening to the group (its `bye` names no listed node: a mount is a browser).
    life.shut_down(DISCOVERY_GRACE).await;
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

/// The names `NODE=FILE` may give a node (the first one is what messages call it): as typed
/// or announced, its address, its host.
fn names<'a>(first: &'a str, addr: &'a str, typed: &'a str) -> Vec<&'a str> {
    let mut names = vec![first, typed, addr];
    if let Some((host, _)) = addr.rsplit_once(':') {
        names.push(host.trim_start_matches('[').trim_end_matches(']'));
    }
    names
}

/// What the mount proves to the node at `addr`: its password when it asks for one (see
/// [`Passwords::for_connections`]). A node asking for a password none was given for is mounted
/// proving nothing, and the log says which node asks and how to give it.
async fn credentials(
    passwords: &Passwords,
    addr: &str,
    names: &[&str],
    config: PoolConfig,
) -> anyhow::Result<Credentials> {
    match passwords.for_connections(addr, names, config).await {
        Err(e) => match e.chain().find_map(|c| c.downcast_ref::<NoPassword>()) {
            Some(missing) => {
                tracing::warn!(
                    %addr,
                    "{missing}, and mount again; until then its files answer EACCES (permission denied)"
                );
                Ok(Credentials::none())
            }
            None => Err(e),
        },
        ok => ok,
    }
}

/// The nodes a change of the table may show.
fn shown_by(event: &PeerEvent) -> &[Peer] {
    match event {
        PeerEvent::Up(peer) | PeerEvent::Changed { new: peer, .. } => std::slice::from_ref(peer),
        PeerEvent::Resync(peers) => peers,
        PeerEvent::Down { .. } => &[],
    }
}

/// The credentials of the discovered nodes `peers` (those given with `--node` have theirs):
/// for each, whether it asks for a password, and that password. A node that cannot be given
/// one is shown proving nothing; why is logged.
async fn discovered(
    passwords: &Passwords,
    peers: &[Peer],
    given: &[SocketAddr],
    config: PoolConfig,
) -> HashMap<SocketAddr, Credentials> {
    let mut out = HashMap::new();
    for peer in peers.iter().filter(|p| !given.contains(&p.addr)) {
        let addr = peer.addr.to_string();
        let names = names(&peer.name, &addr, &peer.name);
        match credentials(passwords, &addr, &names, config).await {
            Ok(c) => {
                out.insert(peer.addr, c);
            }
            Err(e) => {
                tracing::warn!(node = %peer.name, %addr, "{}; its files answer EACCES", crate::error_text(&e))
            }
        }
    }
    out
}

/// Listen on the LAN group as a browser (port 0: every node answers at once, nobody lists us),
/// and browse DNS-SD beside it (networks that drop our group), feeding `peers` with the nodes
/// that come and go.
fn discover(args: &Args, peers: &Peers, life: &Lifetime) -> anyhow::Result<()> {
    let config = super::group::browser(&args.group, &args.dnssd, "mount", args.peer_expiry);
    // The mount follows `peers.watch()`: nothing to print per change.
    let quiet: discovery::OnChange = Arc::new(|_: &discovery::Change| {});
    lan::start(config, peers, quiet, &life.shutdown, &life.tracker)
        .context("cannot listen on the LAN group (use --no-discovery with --node)")?;
    Ok(())
}

/// Report a node folder that appeared or left: `node up FOLDER ADDR`, `node down FOLDER`
/// (scripts and tests wait for these lines).
fn report(changes: Vec<FolderChange>) {
    for change in changes {
        match change {
            FolderChange::Up { folder, addr } => println!("node up {folder} {addr}"),
            FolderChange::Down { folder } => println!("node down {folder}"),
        }
        let _ = std::io::stdout().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        mount: Args,
    }

    fn nodes(arg: &str) -> Result<Vec<String>, String> {
        Cli::try_parse_from(["mount", "/mnt", "--node", arg])
            .map(|c| c.mount.nodes.iter().map(NodeAddr::to_string).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn node_flags_follow_the_node_address_rules() {
        assert_eq!(nodes("cam1").unwrap(), ["cam1:4044"]);
        assert_eq!(
            nodes("10.0.0.7:5000,cam2").unwrap(),
            ["10.0.0.7:5000", "cam2:4044"]
        );
        assert_eq!(nodes("meshfs://h:7/").unwrap(), ["h:7"]);
        assert_eq!(nodes("meshfs://h").unwrap(), ["h:4044"]);
        for bad in ["cam2:notaport", "meshfs://h/clips", "a/b", ""] {
            let e = nodes(bad).expect_err(bad);
            assert!(e.contains("is not a node address"), "{bad}: {e}");
        }
    }
}
