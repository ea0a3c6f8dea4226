//! What file commands accept as a remote file: `meshfs://HOST[:PORT]/PATH`, `HOST:PORT/PATH`,
//! or `NAME:PATH` for a node found by name on the LAN group (seed 004's discovery); and
//! [`find_node`], which finds a node by name for them and for `mount`/`watch`.
//!
//! The node part of every form follows [`NodeAddr`]'s rules, the ones every flag naming a
//! node follows.

use std::str::FromStr;
use std::time::Duration;

use super::group::{DnsSdArgs, GroupAddr};
use anyhow::Context;
use meshfs_core::Peers;
use meshfs_core::{NodeAddr, RemotePath};
use meshfs_group::dnssd;
use meshfs_group::probe::probe;

/// A remote file as typed on the command line.
#[derive(Debug, Clone)]
pub enum Target {
    Url(RemotePath),
    /// `NAME:PATH`: resolved by asking the group which node is called NAME.
    Named {
        node: String,
        path: String,
    },
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("meshfs://") {
            return s.parse().map(Target::Url).map_err(|e| e.to_string());
        }
        if s.contains("://") {
            return Err(format!(
                "{s:?}: only meshfs://HOST[:PORT]/PATH URLs are understood (or NAME:PATH)"
            ));
        }
        // `HOST:PORT/PATH` or `[V6]:PORT/PATH` (a port is all digits) is a URL without its
        // scheme; its node part is a node address like any other.
        let (authority, path) = s.split_once('/').unwrap_or((s, ""));
        let port = authority.rsplit_once(':').map_or("", |(_, p)| p);
        if authority.starts_with('[')
            || (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        {
            let node: NodeAddr = authority.parse().map_err(|e| format!("{e}"))?;
            return Ok(Target::Url(RemotePath::new(&node, path)));
        }
        let Some((head, rest)) = s.split_once(':') else {
            return Err(format!(
                "{s:?} names no node: use meshfs://HOST[:PORT]/PATH or NAME:PATH"
            ));
        };
        if head.is_empty() || head.contains(['/', ' ']) {
            return Err(format!(
                "{s:?}: expected NAME:PATH with a node name before ':'"
            ));
        }
        Ok(Target::Named {
            node: head.to_owned(),
            path: rest.trim_start_matches('/').to_owned(),
        })
    }
}

/// How `NAME:PATH` finds its node.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Finding nodes by name (NAME:PATH)")]
pub struct Lookup {
    #[command(flatten)]
    pub group: GroupAddr,
    #[command(flatten)]
    pub dnssd: DnsSdArgs,
    /// How long to wait for nodes to answer on the group.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub lookup_wait: Duration,
}

impl Lookup {
    /// The node and path `target` names.
    pub async fn resolve(&self, target: &Target) -> anyhow::Result<RemotePath> {
        let (node, path) = match target {
            Target::Url(url) => return Ok(url.clone()),
            Target::Named { node, path } => (node, path),
        };
        let addr = find_node(&self.group, &self.dnssd, node, self.lookup_wait).await?;
        Ok(RemotePath::new(&NodeAddr::from(addr), path))
    }

    /// The node `addr` names: itself, unless it is a bare word that does not resolve as a host
    /// name, which is then looked up as a node's name on the LAN (as `mount --node` does).
    pub async fn node(&self, addr: &NodeAddr) -> anyhow::Result<NodeAddr> {
        let Some(name) = addr.lookup_name() else {
            return Ok(addr.clone());
        };
        if tokio::net::lookup_host(addr.to_string()).await.is_ok() {
            return Ok(addr.clone());
        }
        let found = find_node(&self.group, &self.dnssd, name, self.lookup_wait)
            .await
            .with_context(|| format!("{name:?} is no host name"))?;
        Ok(NodeAddr::from(found))
    }
}

/// Ask the LAN group and DNS-SD at once, for `wait`, who is there. A node heard both ways is
/// one peer, at the address its group hello came from. DNS-SD errors are logged; the group's
/// error is returned beside what DNS-SD found, for the caller to judge.
pub async fn ask_lan(
    group: &GroupAddr,
    dnssd: &DnsSdArgs,
    wait: Duration,
) -> (Peers, Option<std::io::Error>) {
    let g = group.group(None);
    let by_dnssd = async {
        if dnssd.no_dnssd {
            return Vec::new();
        }
        dnssd::browse(dnssd.dnssd_port, dnssd::Interfaces::of(g.iface), wait)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "DNS-SD not asked"))
            .unwrap_or_default()
    };
    let (answers, by_dnssd) = tokio::join!(probe(&g, group.group_port, wait), by_dnssd);
    let peers = Peers::default();
    // DNS-SD first, so the group's answer for a node of the same name replaces it.
    for p in by_dnssd {
        peers.hello(p);
    }
    match answers {
        Ok(answers) => {
            for p in answers.peers {
                peers.hello(p);
            }
            (peers, None)
        }
        Err(e) => (peers, Some(e)),
    }
}

/// The file server of the node called `name`: asks the LAN group and DNS-SD at once, for
/// `wait`; the group's answer wins (it names the address the node's hello came from).
pub async fn find_node(
    group: &GroupAddr,
    dnssd: &DnsSdArgs,
    name: &str,
    wait: Duration,
) -> anyhow::Result<std::net::SocketAddr> {
    let (peers, group_error) = ask_lan(group, dnssd, wait).await;
    if let Some(e) = group_error {
        tracing::warn!(error = %e, "multicast group not asked");
    }
    peers.find(name).map(|p| p.addr).with_context(|| {
        format!(
            "no node named {name:?} answered on the LAN group or DNS-SD within {} \
             (multicast blocked? use meshfs://HOST:PORT/PATH)",
            humantime::format_duration(wait)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let t: Target = "cam2:clips/a.mp4".parse().unwrap();
        assert!(
            matches!(t, Target::Named { ref node, ref path } if node == "cam2" && path == "clips/a.mp4")
        );
        let t: Target = "10.0.0.7:4044/a.mp4".parse().unwrap();
        assert!(matches!(t, Target::Url(ref u) if u.addr == "10.0.0.7:4044" && u.path == "a.mp4"));
        let t: Target = "meshfs://h/x".parse().unwrap();
        assert!(matches!(t, Target::Url(ref u) if u.addr == "h:4044"));
        let t: Target = "cam2:".parse().unwrap();
        assert!(matches!(t, Target::Named { ref path, .. } if path.is_empty()));
        assert!("nocolon".parse::<Target>().is_err());
        assert!(":x".parse::<Target>().is_err());
        assert!("http://x/y".parse::<Target>().is_err());
        let t: Target = "[::1]:7/x".parse().unwrap();
        assert!(matches!(t, Target::Url(ref u) if u.addr == "[::1]:7" && u.path == "x"));
        let e = "cam2:0/x".parse::<Target>().unwrap_err();
        assert!(e.contains("is not a node address"), "{e}");
        let t: Target = "meshfs://h:5/".parse().unwrap();
        assert!(matches!(t, Target::Url(ref u) if u.addr == "h:5" && u.path.is_empty()));
    }
}
