//! `meshfs mount DIR --node URL…`: every node's share under `DIR/<node-name>/`, read-only.
//! Runs in the foreground; prints `meshfs mount DIR ready: NAME, NAME…` on stdout once the
//! kernel serves the mount (scripts and tests wait for it) and unmounts cleanly on SIGINT or
//! SIGTERM. Unmounted from outside (`fusermount3 -u DIR`), it exits 0 too.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use meshfs_core::RemotePath;
use meshfs_core::remote::DEFAULT_PORT;
use meshfs_fuse::{MountOptions, PoolConfig};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs mount /mnt/mesh --node cam1.local --node cam2.local
  meshfs mount ~/mesh --node meshfs://10.0.0.7:4044 --node 10.0.0.8
  mpv /mnt/mesh/cam2/2024-05-01/clip.mp4     play a video from node cam2
  fusermount3 -u /mnt/mesh                    unmount (or Ctrl-C the mount)")]
pub struct Args {
    /// Existing folder to mount on.
    pub dir: PathBuf,
    /// A node to show, as meshfs://HOST[:PORT], HOST:PORT or HOST (port 4044). Repeatable,
    /// or several separated by commas.
    #[arg(
        long = "node",
        required = true,
        value_name = "URL",
        value_delimiter = ','
    )]
    pub nodes: Vec<String>,
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

pub async fn run(args: Args) -> anyhow::Result<()> {
    let addrs = args
        .nodes
        .iter()
        .map(|n| node_addr(n))
        .collect::<anyhow::Result<Vec<_>>>()?;
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
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let rt = tokio::runtime::Handle::current();
    let dir = args.dir.clone();
    // Handlers in place before the ready line: a signal right after it still unmounts cleanly.
    let stop = crate::signals::terminate();
    let mut mount =
        tokio::task::spawn_blocking(move || meshfs_fuse::mount(&dir, nodes, &options, rt))
            .await
            .context("mount task failed")??;
    println!(
        "meshfs mount {} ready: {}",
        args.dir.display(),
        names.join(", ")
    );
    let _ = std::io::stdout().flush();
    tracing::info!(dir = %args.dir.display(), nodes = ?names, "mounted");

    tokio::select! {
        _ = stop => {}
        _ = mount.ended() => {
            tracing::info!("unmounted from outside");
            return Ok(());
        }
    }
    tokio::task::spawn_blocking(move || mount.unmount())
        .await
        .context("unmount task failed")??;
    tracing::info!("unmounted");
    Ok(())
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
