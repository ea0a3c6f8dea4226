//! `meshfs node --cluster-peer URL…`: make a node a worker that keeps in step with its peers.

use meshfs_core::Share;
use meshfs_core::remote::{DEFAULT_PORT, RemotePath};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Replicator;

#[derive(clap::Args, Debug, Clone)]
pub struct PeerArgs {
    /// Another worker of the same cluster (repeat for each): files added, replaced or deleted
    /// there are pulled here (BLAKE3-verified) or deleted here. HOST[:PORT] or meshfs://HOST[:PORT].
    #[arg(long = "cluster-peer", value_name = "URL")]
    pub peers: Vec<String>,
}

impl PeerArgs {
    /// Start following the peers, if any.
    pub fn start(
        self,
        share: &Share,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<(), String> {
        if self.peers.is_empty() {
            return Ok(());
        }
        let peers = self
            .peers
            .iter()
            .map(|p| node_addr(p))
            .collect::<Result<Vec<_>, _>>()?;
        Replicator::new(share.clone()).start(peers, shutdown, tracker);
        Ok(())
    }
}

/// `host:port` of a node given as `meshfs://HOST[:PORT]`, `HOST:PORT` or `HOST`.
pub fn node_addr(s: &str) -> Result<String, String> {
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
