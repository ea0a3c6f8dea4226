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
use meshfs_core::trust::Trust;
use meshfs_core::{NodeAddr, NodeId, Peer, Peers, RemotePath};
use meshfs_group::dnssd;
use meshfs_group::probe::probe_into;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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

/// How long a name lookup that has its answer still listens for a contradicting one (another
/// node claiming the name) before it settles: nodes answer a browser's hello at once, so
/// their answers arrive together. The pinned key answering settles it too, after as long (a
/// second process holding that key would answer with it).
const SETTLE: Duration = Duration::from_millis(150);

/// Ask the LAN group and DNS-SD at once, for `wait`, who is there. A node heard both ways is
/// one peer. DNS-SD errors are logged; the group's error is returned beside what DNS-SD
/// found, for the caller to judge.
pub async fn ask_lan(
    group: &GroupAddr,
    dnssd: &DnsSdArgs,
    wait: Duration,
) -> (Peers, Option<std::io::Error>) {
    ask_lan_until(group, dnssd, wait, |_| None).await
}

/// [`ask_lan`], ending early once the table holds what the caller needs: `settled` is asked
/// after every answer, and says from when the table is enough (`None`: not yet; a time to
/// come: unless a later answer changes its mind by then).
async fn ask_lan_until(
    group: &GroupAddr,
    dnssd: &DnsSdArgs,
    wait: Duration,
    settled: impl Fn(&Peers) -> Option<Instant>,
) -> (Peers, Option<std::io::Error>) {
    let g = group.group(None);
    let peers = Peers::for_lookup();
    let stop = CancellationToken::new();
    let by_dnssd = async {
        if dnssd.no_dnssd {
            return;
        }
        let ifaces = dnssd::Interfaces::of(g.iface);
        if let Err(e) = dnssd::browse_into(dnssd.dnssd_port, ifaces, wait, &peers, &stop).await {
            tracing::warn!(error = %e, "DNS-SD not asked");
        }
    };
    let asking = async {
        let (answers, ()) = tokio::join!(
            probe_into(&g, group.group_port, wait, &peers, &stop),
            by_dnssd
        );
        stop.cancel();
        answers.err()
    };
    let judging = async {
        let mut changes = peers.watch();
        loop {
            let at = settled(&peers);
            if at.is_some_and(|t| t <= Instant::now()) {
                break;
            }
            let later = async {
                match at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changes.next() => {}
                () = later => {}
                () = stop.cancelled() => return,
            }
        }
        stop.cancel();
    };
    let (group_error, ()) = tokio::join!(asking, judging);
    (peers, group_error)
}

/// The node to reach for `name` among those claiming it, judged by the user's pin.
fn choose(name: &str, claims: &[Peer], pinned: Option<NodeId>) -> Result<Peer, String> {
    let show = |p: &Peer| {
        let id = p
            .node_id
            .map_or_else(|| "(no ID)".to_owned(), |i| i.to_string());
        format!("  {id} at {}", p.addr)
    };
    let listed = || claims.iter().map(show).collect::<Vec<_>>().join("\n");
    // Two live nodes with one key (one state folder): pinning cannot tell them apart.
    let twins = |same: &[&Peer]| {
        format!(
            "{} nodes answer to the name {name} with the same ID, so they share one key (two \
             nodes started with one state folder):\n{}\nNot choosing one at random: give each \
             node its own --name and --state, or name the one you mean by address: \
             meshfs://HOST:PORT/PATH",
            same.len(),
            same.iter().map(|p| show(p)).collect::<Vec<_>>().join("\n")
        )
    };
    if let Some(pin) = pinned {
        let same: Vec<&Peer> = claims.iter().filter(|p| p.node_id == Some(pin)).collect();
        match same[..] {
            [one] => return Ok(one.clone()),
            [_, _, ..] => return Err(twins(&same)),
            [] => {}
        }
        // A node too old to announce its ID: the handshake checks the pin.
        let bare: Vec<&Peer> = claims.iter().filter(|p| p.node_id.is_none()).collect();
        if bare.len() == 1 {
            return Ok(bare[0].clone());
        }
        return Err(format!(
            "node {name} is pinned to {pin}, but only other keys answered to that name:\n{}\n\
             Someone may be impersonating {name}, or it was reinstalled: check the ID \
             `meshfs id --node` prints on {name} itself, and if it changed, re-pin it:\n    \
             meshfs trust {name} ID",
            listed()
        ));
    }
    match claims {
        [one] => Ok(one.clone()),
        [first, ..]
            if first.node_id.is_some() && claims.iter().all(|p| p.node_id == first.node_id) =>
        {
            Err(twins(&claims.iter().collect::<Vec<_>>()))
        }
        _ => Err(format!(
            "{} nodes answer to the name {name}, with different IDs:\n{}\n\
             Not choosing one at random: check the ID `meshfs id --node` prints on the node you \
             mean, pin it, and try again:\n    meshfs trust {name} ID",
            claims.len(),
            listed()
        )),
    }
}

/// The claims of a name, but where several announce one ID, only those that prove they hold
/// its key in a TLS handshake: a hello naming a real node's ID at another host (a forger, who
/// cannot prove it) then neither hides the real node nor makes the name unreachable, while two
/// nodes that really share a key (one state folder) both stay, for [`choose`] to refuse. In
/// clear, or when none proves it, the claims stay as they are.
async fn proven(trust: &Trust, claims: Vec<Peer>) -> Vec<Peer> {
    let shared =
        |id: Option<NodeId>| id.is_some() && claims.iter().filter(|p| p.node_id == id).count() > 1;
    if trust.is_plaintext() || !claims.iter().any(|p| shared(p.node_id)) {
        return claims;
    }
    let mut probes = tokio::task::JoinSet::new();
    for (i, p) in claims.iter().enumerate() {
        let Some(id) = p.node_id.filter(|&id| shared(Some(id))) else {
            continue;
        };
        let (trust, addr) = (trust.clone(), NodeAddr::from(p.addr).to_string());
        probes.spawn(async move {
            let proof = async {
                let tcp = tokio::net::TcpStream::connect(&addr).await.ok()?;
                trust.expect_announced(&addr, id);
                trust.handshake(tcp, &addr, None).await.ok()
            };
            let held = tokio::time::timeout(meshfs_core::client::CONNECT_TIMEOUT, proof).await;
            (i, matches!(held, Ok(Some(_))))
        });
    }
    let mut holds = vec![true; claims.len()];
    while let Some(Ok((i, held))) = probes.join_next().await {
        holds[i] = held;
    }
    let kept: Vec<Peer> = claims
        .iter()
        .zip(&holds)
        .filter(|&(p, &held)| {
            // An ID none of its claimants proves keeps them all (the error names them).
            held || !claims
                .iter()
                .zip(&holds)
                .any(|(q, &h)| h && q.node_id == p.node_id)
        })
        .map(|(p, _)| p.clone())
        .collect();
    kept
}

/// The file server of the node called `name`: asks the LAN group and DNS-SD at once, for
/// at most `wait`, stopping as soon as the answer cannot change (the pinned node answered)
/// or has settled ([`SETTLE`]). Several nodes claiming the name are never chosen between at
/// random: the pinned one, or an error listing them ([`choose`]). The key the chosen node
/// announced is demanded in the handshakes with it (see [`Trust::expect_announced`]), so a
/// forged hello pointing the name at another host leads nowhere.
pub async fn find_node(
    group: &GroupAddr,
    dnssd: &DnsSdArgs,
    name: &str,
    wait: Duration,
) -> anyhow::Result<std::net::SocketAddr> {
    let trust = Trust::default();
    let pinned = trust.pinned(name);
    // When the name was first answered by one node alone, and by the pinned key: each
    // settles on its own clock (a lone unpinned claim before the pinned one must not shorten
    // the wait for a second process with the pinned key).
    let alone_since = std::sync::Mutex::new(None::<Instant>);
    let pinned_since = std::sync::Mutex::new(None::<Instant>);
    let settled = |peers: &Peers| {
        let claims = peers.find_all(name);
        let mut since = alone_since.lock().unwrap_or_else(|e| e.into_inner());
        let mut pinned_at = pinned_since.lock().unwrap_or_else(|e| e.into_inner());
        let with_pin = pinned.map_or(0, |pin| {
            claims.iter().filter(|p| p.node_id == Some(pin)).count()
        });
        match with_pin {
            0 => {}
            // The pinned key answered: what others claim does not matter, but a second
            // process with that key (a shared state folder) would, and answers with it.
            1 => return Some(*pinned_at.get_or_insert_with(Instant::now) + SETTLE),
            _ => return Some(Instant::now()),
        }
        if claims.len() != 1 {
            *since = None; // unanswered, or contested: only the full wait tells
            return None;
        }
        Some(*since.get_or_insert_with(Instant::now) + SETTLE)
    };
    let (peers, group_error) = ask_lan_until(group, dnssd, wait, settled).await;
    let claims = peers.find_all(name);
    if claims.is_empty() {
        let hint = match &group_error {
            Some(e) => format!(
                "the LAN group could not be asked ({e}): no multicast route? For nodes on this \
                 machine try --group-iface 127.0.0.1, on a LAN --group-iface with this host's \
                 address"
            ),
            None => "multicast blocked? try --group-iface with this host's LAN address \
                     (127.0.0.1 for nodes on this machine)"
                .to_owned(),
        };
        anyhow::bail!(
            "no node named {name:?} answered on the LAN group or DNS-SD within {} ({hint}; \
             or name the node by address: meshfs://HOST:PORT/PATH)",
            humantime::format_duration(wait)
        );
    }
    if let Some(e) = group_error {
        tracing::warn!(error = %e, "multicast group not asked");
    }
    let claims = proven(&trust, claims).await;
    let node = choose(name, &claims, pinned).map_err(anyhow::Error::msg)?;
    if let Some(id) = node.node_id {
        trust.expect_announced(&NodeAddr::from(node.addr).to_string(), id);
    }
    Ok(node.addr)
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
