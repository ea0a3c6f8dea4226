//! LAN discovery in one step, as `meshfs node` and `meshfs mount` both start it: the group's
//! [`Discovery`], then DNS-SD beside it, both writing the caller's [`Peers`]. The two differ
//! only in what they announce (a mount is a browser: port 0, advertising nothing) and in what
//! a group that cannot be joined means ([`Config::without_group`]).

use meshfs_core::Peers;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::discovery::{self, Discovery, OnChange};
use crate::dnssd;

/// What to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub discovery: discovery::Config,
    /// DNS-SD beside the group; `None`: none. Never fatal, never waited for (mDNS probing
    /// takes most of a second, and a node is already serving by then).
    pub dnssd: Option<dnssd::Config>,
    /// When the group cannot be joined (no multicast route, say): go on without multicast
    /// (true: a node still serves its files, polls its static peers and tries DNS-SD) rather
    /// than fail (false: a mount lets its caller decide whether its given nodes are enough).
    pub without_group: bool,
}

/// Start discovery, then DNS-SD, feeding `peers`; see [`Discovery::start`]. Fails only when
/// the group cannot be joined and `config.without_group` is false.
pub fn start(
    config: Config,
    peers: &Peers,
    on_change: OnChange,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<Discovery> {
    let Config {
        discovery,
        dnssd,
        without_group,
    } = config;
    let start = |config| {
        Discovery::start(
            config,
            peers.clone(),
            on_change.clone(),
            shutdown.clone(),
            tracker,
        )
    };
    let d = match start(discovery.clone()) {
        Ok(d) => d,
        Err(e) if without_group && discovery.multicast => {
            tracing::warn!(error = %e, "cannot join the multicast group: discovery off");
            start(discovery::Config {
                multicast: false,
                ..discovery
            })?
        }
        Err(e) => return Err(e),
    };
    // After the group: DNS-SD merges what it resolves into the same peers.
    if let Some(config) = dnssd
        && let Err(e) = dnssd::start(&d, config, shutdown.clone(), tracker)
    {
        tracing::warn!(error = %e, "DNS-SD off");
    }
    Ok(d)
}
