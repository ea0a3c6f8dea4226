//! `meshfs cluster`: a master that spreads clients over worker nodes round-robin (seed 002).
//! Prints `meshfs cluster NAME on ADDR` on stdout once the first health check is done.
//! Also `meshfs node --cluster-peer` ([`PeerArgs`]), which makes a node a worker that keeps in
//! step with its peers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meshfs_cluster::{Master, Replicator, Workers};
use meshfs_core::Share;
use meshfs_core::events::Events;
use meshfs_core::remote::{DEFAULT_PORT, RemotePath};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(clap::Args)]
#[command(after_help = "\
Clients ask the master `assign` and get the next healthy worker; `meshfs ls/get/cat/stat`
given the master's URL follow the assignment by themselves.

Examples:
  meshfs cluster --worker pi1.local --worker pi2.local --worker pi3.local
  meshfs cluster --listen 127.0.0.1:0 --worker meshfs://127.0.0.1:4101 --worker 127.0.0.1:4102
  meshfs get meshfs://master.local/clips/a.mp4     downloaded from whichever worker is next")]
pub struct Args {
    /// Address of the master.
    #[arg(long, default_value = "0.0.0.0:4044")]
    pub listen: String,
    /// A worker node: meshfs://HOST[:PORT] or HOST[:PORT] (repeat for each worker).
    #[arg(long = "worker", value_name = "URL", required = true)]
    pub workers: Vec<String>,
    /// Name the master gives in `hello`.
    #[arg(long, default_value = "cluster")]
    pub name: String,
    /// How often each worker is checked with `hello`.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,
    /// Close client connections idle for this long.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
}

fn worker_addr(s: &str) -> anyhow::Result<String> {
    node_addr(s).map_err(anyhow::Error::msg)
}

/// `meshfs node --cluster-peer URL…`, flattened into `meshfs node`.
#[derive(clap::Args, Debug, Clone)]
pub struct PeerArgs {
    /// Another worker of the same cluster (repeat for each): files added, replaced or deleted
    /// there are pulled here (BLAKE3-verified) or deleted here. HOST[:PORT] or meshfs://HOST[:PORT].
    #[arg(long = "cluster-peer", value_name = "URL")]
    pub peers: Vec<String>,
    /// Make this node an archive of its --cluster-peers: new and changed files are copied,
    /// deletions never are (the archive keeps what the cameras' retention removed; give it
    /// its own --retain/--keep-free).
    #[arg(long, requires = "peers")]
    pub archive: bool,
}

impl PeerArgs {
    /// Start following the peers, if any. `events` (the share's own log, when watched)
    /// announces conflict copies and tells which files are being written here.
    pub fn start(
        self,
        share: &Share,
        events: Option<Events>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<()> {
        if self.peers.is_empty() {
            return Ok(());
        }
        let peers = self
            .peers
            .iter()
            .map(|p| node_addr(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        let mut replicator = Replicator::new(share.clone()).archive(self.archive);
        if let Some(events) = events {
            replicator = replicator.with_events(events);
        }
        replicator.start(peers, shutdown, tracker);
        Ok(())
    }
}

/// `host:port` of a node given as `meshfs://HOST[:PORT]`, `HOST:PORT` or `HOST`.
fn node_addr(s: &str) -> Result<String, String> {
    if s.starts_with("meshfs://") {
        let url: RemotePath = s.parse().map_err(|e| format!("{e}"))?;
        if !url.path.is_empty() {
            return Err(format!("{s}: a node, not a path inside it"));
        }
        return Ok(url.addr);
    }
    if s.is_empty() || s.contains(['/', ' ']) {
        return Err(format!(
            "{s:?} is not a node address (HOST[:PORT] or meshfs://HOST[:PORT])"
        ));
    }
    Ok(match s.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => s.to_owned(),
        _ => format!("{s}:{DEFAULT_PORT}"),
    })
}

/// How long a stopping master lets its sessions finish.
const GRACE: Duration = Duration::from_secs(2);

pub async fn run(args: Args) -> anyhow::Result<()> {
    let addrs = args
        .workers
        .iter()
        .map(|w| worker_addr(w))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let workers = Arc::new(Workers::new(addrs));
    let interval = args.health_interval.max(Duration::from_millis(100));
    let master = Master::bind(
        &args.listen,
        args.name.clone(),
        workers.clone(),
        args.idle_timeout,
    )
    .await
    .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = master.local_addr()?;
    // First check before announcing readiness, so the first assignments are already right.
    workers
        .check_all(interval.max(Duration::from_secs(1)))
        .await;
    let life = crate::signals::Lifetime::new();
    (life.tracker).spawn(master.run(life.shutdown.clone(), life.tracker.clone()));
    (life.tracker).spawn({
        let workers = workers.clone();
        let shutdown = life.shutdown.clone();
        async move { workers.check_forever(interval, shutdown).await }
    });
    println!("meshfs cluster {} on {addr}", args.name);
    tracing::info!(%addr, workers = workers.len(), healthy = workers.healthy().len(), "cluster master ready");
    life.run_until_signal(GRACE).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses() {
        assert_eq!(node_addr("pi1").unwrap(), "pi1:4044");
        assert_eq!(node_addr("pi1:4100").unwrap(), "pi1:4100");
        assert_eq!(node_addr("meshfs://pi1:4100").unwrap(), "pi1:4100");
        assert_eq!(node_addr("meshfs://pi1/").unwrap(), "pi1:4044");
        assert!(node_addr("meshfs://pi1/clips").is_err());
        assert!(node_addr("a b").is_err());
    }
}
