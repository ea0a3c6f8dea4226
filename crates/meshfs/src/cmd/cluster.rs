//! `meshfs cluster`: a master that spreads clients over worker nodes round-robin (seed 002).
//! Prints `meshfs cluster master [NAME] on ADDR` (NAME unless the default) on stdout once the first health check is done.
//! Also `meshfs node --cluster-peer` ([`PeerArgs`]), which makes a node a worker that keeps in
//! step with its peers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meshfs_cluster::{Master, Replicator, Workers};
use meshfs_core::events::Events;
use meshfs_core::{NodeAddr, Share};
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
    pub workers: Vec<NodeAddr>,
    /// Name the master gives in `hello`.
    #[arg(long, default_value = "cluster")]
    pub name: String,
    /// How often each worker is checked with `hello`.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,
    /// Close client connections idle for this long.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// State folder holding the key and certificate the master's TLS presents, as
    /// `meshfs node --state` [default: $XDG_STATE_HOME/meshfs, else ~/.local/state/meshfs].
    #[arg(long, value_name = "DIR", env = "MESHFS_STATE")]
    pub state: Option<std::path::PathBuf>,
}

/// `meshfs node --cluster-peer URL…`, flattened into `meshfs node`.
#[derive(clap::Args, Debug, Clone)]
pub struct PeerArgs {
    /// Another worker of the same cluster (repeat for each): files added, replaced or deleted
    /// there are pulled here (BLAKE3-verified) or deleted here. HOST[:PORT] or meshfs://HOST[:PORT].
    #[arg(long = "cluster-peer", value_name = "URL")]
    pub peers: Vec<NodeAddr>,
    /// Make this node an archive of its --cluster-peers: new and changed files are copied,
    /// deletions never are (the archive keeps what the cameras' retention removed; give it
    /// its own --retain/--keep-free).
    #[arg(long, requires = "peers")]
    pub archive: bool,
    /// The password of protected --cluster-peers, on the first line of FILE (a cluster shares
    /// one): proven on every connection to them (PAKE inside TLS). Give it only when the peers
    /// are protected.
    #[arg(long, value_name = "FILE", requires = "peers")]
    pub cluster_password_file: Option<std::path::PathBuf>,
    /// Cap what this node pulls from its --cluster-peers, all peers together, in bytes per
    /// second (RATE as --max-upload-rate: 500K, 20M). What it serves to them counts under
    /// --max-upload-rate and --max-upload-rate-per-client (peers show their node ID).
    #[arg(long, value_name = "RATE", value_parser = super::get::parse_rate, requires = "peers")]
    pub max_replication_rate: Option<u64>,
}

impl PeerArgs {
    /// Start following the peers, if any. `events` (the share's own log, when watched)
    /// announces conflict copies and tells which files are being written here; what this
    /// node's retention removes is recorded in the `state` folder, never fetched back.
    pub fn start(
        self,
        share: &Share,
        events: Option<Events>,
        state: &std::path::Path,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<()> {
        if self.peers.is_empty() {
            return Ok(());
        }
        let peers = self.peers.iter().map(NodeAddr::to_string).collect();
        // One record per share (a state folder may serve several nodes).
        let key = blake3::hash(share.root().as_os_str().as_encoded_bytes()).to_hex();
        let record = state
            .join("retention-removed")
            .join(format!("{}.txt", &key[..16]));
        let mut replicator = Replicator::new(share.clone())
            .with_retired(meshfs_cluster::Retired::load(record))
            .archive(self.archive)
            .with_rate(self.max_replication_rate);
        if let Some(f) = &self.cluster_password_file {
            let p = crate::password::from_file(f).with_context(|| {
                format!(
                    "cannot read the password file {} (--cluster-password-file)",
                    f.display()
                )
            })?;
            replicator =
                replicator.with_credentials(meshfs_core::Credentials::password(p.expose()));
        }
        if let Some(events) = events {
            replicator = replicator.with_events(events);
        }
        replicator.start(peers, shutdown, tracker);
        Ok(())
    }
}

/// How long a stopping master lets its sessions finish.
const GRACE: Duration = Duration::from_secs(2);

pub async fn run(args: Args) -> anyhow::Result<()> {
    let workers = Arc::new(Workers::new(args.workers.iter().map(NodeAddr::to_string)));
    let interval = args.health_interval.max(Duration::from_millis(100));
    let master = Master::bind(
        &args.listen,
        args.name.clone(),
        workers.clone(),
        args.idle_timeout,
    )
    .await
    .with_context(|| format!("cannot listen on {}", args.listen))?;
    // TLS with this machine's node identity, as `meshfs node` has it (clients speak TLS).
    let identity = meshfs_core::Identity::load_or_create(
        &super::id::node_identity_dir(args.state.clone())?,
        &args.name,
    )
    .context("cannot load the node's identity (--state chooses its folder)")?;
    let tls = meshfs_core::tls::server_config(&identity, meshfs_core::tls::ClientAuth::Offer)?;
    let master = master.with_tls(tls);
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
    // The master's name only when it is not the default (no "meshfs cluster cluster").
    match args.name.as_str() {
        "cluster" => println!("meshfs cluster master on {addr}"),
        name => println!("meshfs cluster master {name} on {addr}"),
    }
    tracing::info!(%addr, workers = workers.len(), healthy = workers.healthy().len(), "cluster master ready");
    life.run_until_signal(GRACE).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        cluster: Args,
    }

    #[derive(clap::Parser)]
    struct Node {
        #[command(flatten)]
        peers: PeerArgs,
    }

    /// `--worker` and `--cluster-peer` follow the one set of node address rules.
    #[test]
    fn node_flags_are_node_addresses() {
        let workers = |w: &str| {
            Cli::try_parse_from(["cluster", "--worker", w])
                .map(|c| c.cluster.workers[0].to_string())
                .map_err(|e| e.to_string())
        };
        let peers = |p: &str| {
            Node::try_parse_from(["node", "--cluster-peer", p])
                .map(|n| n.peers.peers[0].to_string())
                .map_err(|e| e.to_string())
        };
        for parse in [&workers as &dyn Fn(&str) -> Result<String, String>, &peers] {
            assert_eq!(parse("pi1").unwrap(), "pi1:4044");
            assert_eq!(parse("pi1:4100").unwrap(), "pi1:4100");
            assert_eq!(parse("meshfs://pi1:4100").unwrap(), "pi1:4100");
            assert_eq!(parse("meshfs://pi1/").unwrap(), "pi1:4044");
            for bad in ["meshfs://pi1/clips", "a b", "pi1:notaport"] {
                let e = parse(bad).expect_err(bad);
                assert!(e.contains("is not a node address"), "{bad}: {e}");
            }
        }
    }
}
