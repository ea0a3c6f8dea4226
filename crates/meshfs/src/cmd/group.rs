//! The LAN group's flags (seed 004): [`GroupAddr`] (where the group is, shared by `meshfs
//! node`, `peers`, `offers`, `offer`, `chat`, `hub` and `mount`), [`DnsSdArgs`], and
//! [`GroupArgs`] (what `meshfs node` adds: discovery, static peers, passwords, offers), with
//! the steps the node runs with them. meshfs-group itself takes plain configs
//! (`discovery::Config`, `dnssd::Config`, `socket::Group`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meshfs_core::Peers;
use meshfs_core::Share;
use meshfs_core::access::Access;
use meshfs_group::discovery::{self, Discovery};
use meshfs_group::socket::Group;
use meshfs_group::{ANNOUNCE_PORT, CHAT_PORT, GROUP_ADDR, dnssd, lan};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::password;

/// Where the multicast group is.
#[derive(clap::Args, Debug, Clone)]
pub struct GroupAddr {
    /// Interface (its IPv4 address) for the multicast group [default: 127.0.0.1 for a node
    /// listening on loopback, else the kernel's choice].
    #[arg(long, value_name = "ADDR")]
    pub group_iface: Option<Ipv4Addr>,
    /// Multicast group address.
    #[arg(long, default_value_t = GROUP_ADDR, value_name = "ADDR")]
    pub group_addr: Ipv4Addr,
    /// Port of the node announcements.
    #[arg(long, default_value_t = ANNOUNCE_PORT, value_name = "PORT")]
    pub group_port: u16,
    /// Port of the group chat.
    #[arg(long, default_value_t = CHAT_PORT, value_name = "PORT")]
    pub chat_port: u16,
    /// Multicast TTL: 1 keeps datagrams on the local network.
    #[arg(long, default_value_t = 1, value_name = "HOPS")]
    pub group_ttl: u32,
}

impl GroupAddr {
    /// The group, with the interface chosen for a process reachable at `listen` (a node on
    /// loopback announces on loopback: nobody else could reach it anyway).
    pub fn group(&self, listen: Option<IpAddr>) -> Group {
        let iface = self.group_iface.unwrap_or(match listen {
            Some(ip) if ip.is_loopback() => Ipv4Addr::LOCALHOST,
            _ => Ipv4Addr::UNSPECIFIED,
        });
        Group {
            addr: self.group_addr,
            iface,
            ttl: self.group_ttl,
        }
    }
}

/// What a browser (`meshfs mount`, `get --discover`) starts on the LAN: the group with port 0
/// (every node answers at once, nobody lists it), and DNS-SD browsed beside it (networks that
/// drop our group), advertising nothing. Nodes silent for `expiry` are forgotten.
pub fn browser(group: &GroupAddr, dnssd: &DnsSdArgs, name: &str, expiry: Duration) -> lan::Config {
    let g = group.group(None);
    let iface = g.iface;
    lan::Config {
        discovery: discovery::Config {
            name: name.into(),
            node_id: None,
            port: 0,
            web: None,
            group: g,
            announce_port: group.group_port,
            expiry,
            multicast: true,
            static_peers: Vec::new(),
        },
        dnssd: (!dnssd.no_dnssd).then(|| dnssd::Config {
            port: dnssd.dnssd_port,
            interfaces: dnssd::Interfaces::of(iface),
            // Port 0: browse only, advertise nothing (a browser serves no files).
            server: SocketAddr::from((iface, 0)),
            web: None,
        }),
        // The caller decides whether the nodes it was given are enough.
        without_group: false,
    }
}

/// DNS-SD (`_meshfs._tcp`) beside the group: shared by `meshfs node` and `meshfs peers`.
#[derive(clap::Args, Debug, Clone)]
pub struct DnsSdArgs {
    /// Neither advertise nor browse DNS-SD `_meshfs._tcp` (the multicast group still runs).
    /// By default a node advertises itself (TXT: name, id, web port, v=1) on the group's
    /// interface(s), so `avahi-browse _meshfs._tcp` lists it, and nodes that mDNS resolves join
    /// the same peers as the ones the group finds.
    #[arg(long)]
    pub no_dnssd: bool,
    /// UDP port of mDNS: 5353 is the one Avahi and Bonjour use; another one keeps a lab's (or
    /// a test's) nodes among themselves.
    #[arg(long, default_value_t = dnssd::MDNS_PORT, value_name = "PORT")]
    pub dnssd_port: u16,
}

impl Default for DnsSdArgs {
    fn default() -> Self {
        DnsSdArgs {
            no_dnssd: false,
            dnssd_port: dnssd::MDNS_PORT,
        }
    }
}

/// `meshfs node` flags for discovery, offers and passwords.
#[derive(clap::Args, Debug, Clone)]
pub struct GroupArgs {
    #[command(flatten)]
    pub group: GroupAddr,
    /// No multicast at all (no announcements, no DNS-SD, nothing heard); `--peer`s still work.
    #[arg(long)]
    pub no_discovery: bool,
    #[command(flatten)]
    pub dnssd: DnsSdArgs,
    /// A node to poll over the file-server protocol, for networks that drop multicast
    /// (repeatable).
    #[arg(long, value_name = "HOST:PORT")]
    pub peer: Vec<meshfs_core::NodeAddr>,
    /// Forget peers silent for this long.
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub peer_expiry: Duration,
    /// Print discovery (multicast, DNS-SD and --peer alike) on stdout, one line each: first
    /// `discovery on GROUP:PORT via IFACE` (or `discovery off`) once listening, then
    /// `peer up NAME ADDR`, `peer down NAME bye|expired`,
    /// `offer NAME URL SIZE open|protected`, `ignored WHY from IP total N`.
    #[arg(long)]
    pub show_peers: bool,
    /// Protect the whole share with the password on the first line of FILE (also:
    /// MESHFS_PASSWORD in the environment, or --password to be asked).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Ask for the share password on the terminal.
    #[arg(long, conflicts_with = "password_file")]
    pub password: bool,
    /// Offer a file of the share to the group, optionally behind the password in
    /// PASSWORDFILE (repeatable).
    #[arg(long, value_name = "PATH[:PASSWORDFILE]")]
    pub offer: Vec<String>,
}

/// A `--offer` value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OfferArg {
    path: String,
    password_file: Option<PathBuf>,
}

impl OfferArg {
    /// `PATH` or `PATH:PASSWORDFILE` (split at the last `:`).
    fn parse(s: &str) -> OfferArg {
        match s.rsplit_once(':') {
            Some((path, file)) if !path.is_empty() && !file.is_empty() => OfferArg {
                path: path.to_owned(),
                password_file: Some(file.into()),
            },
            _ => OfferArg {
                path: s.to_owned(),
                password_file: None,
            },
        }
    }
}

/// The node discovery runs for.
pub struct ThisNode<'a> {
    pub name: &'a str,
    /// Its ID, announced beside its name.
    pub node_id: meshfs_core::NodeId,
    /// Its file server.
    pub server: SocketAddr,
    /// Its web UI's port, announced in hellos.
    pub web: Option<u16>,
    pub share: &'a Share,
    /// Its protection rules (from [`GroupArgs::access`]).
    pub access: &'a Access,
    /// The node's one table of peers, which discovery feeds (the web UI reads it).
    pub peers: &'a Peers,
    /// Where `--show-peers` prints (after the node's readiness lines).
    pub out: &'a super::ready::Stdout,
}

impl GroupArgs {
    /// The node's [`Access`]: the share password (file, environment or prompt) and the
    /// passwords of offered files. Call before the file server starts.
    pub fn access(&self) -> anyhow::Result<Access> {
        let access = Access::open();
        let read = "cannot read the password";
        let share_password = if let Some(f) = &self.password_file {
            let named = || {
                format!(
                    "cannot read the password file {} (--password-file)",
                    f.display()
                )
            };
            Some(password::from_file(f).with_context(named)?)
        } else if let Some(p) = password::from_env().context(read)? {
            Some(p)
        } else if self.password {
            Some(password::prompt("share password: ").context(read)?)
        } else {
            None
        };
        if let Some(p) = share_password {
            access.set_share_password(p.expose());
        }
        for o in self.offer.iter().map(|o| OfferArg::parse(o)) {
            if let Some(f) = &o.password_file {
                let p = password::from_file(f).with_context(|| {
                    format!(
                        "cannot read the password file {} (--offer {})",
                        f.display(),
                        o.path
                    )
                })?;
                access
                    .protect_file(&o.path, p.expose())
                    .with_context(|| format!("cannot offer {}", o.path))?;
            }
        }
        Ok(access)
    }

    /// Start discovery for `node` and announce the `--offer`s. Returns `None` when there is
    /// nothing to run (`--no-discovery`, no peers).
    pub async fn start(
        &self,
        node: ThisNode<'_>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<Option<Discovery>> {
        let ThisNode {
            name,
            node_id,
            server,
            web,
            share,
            access,
            peers,
            out,
        } = node;
        let offers = self
            .offer
            .iter()
            .map(|o| {
                let o = OfferArg::parse(o);
                let cannot = || format!("cannot offer {}", o.path);
                let entry = share.stat(&o.path).with_context(cannot)?;
                if entry.kind != meshfs_core::Kind::File {
                    anyhow::bail!("{}: not a regular file", cannot());
                }
                let path = Share::normalize(&o.path).with_context(cannot)?;
                Ok((path, entry.size))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if self.no_discovery && self.peer.is_empty() {
            if self.show_peers {
                out.line(discovery::Change::Started { group: None }.to_string());
            }
            return Ok(None);
        }
        let config = discovery::Config {
            name: name.to_owned(),
            node_id: Some(node_id),
            port: server.port(),
            web,
            group: self.group.group(Some(server.ip())),
            announce_port: self.group.group_port,
            expiry: self.peer_expiry,
            multicast: !self.no_discovery,
            static_peers: self.peer.iter().map(ToString::to_string).collect(),
        };
        let show = self.show_peers.then(|| out.clone());
        let on_change: discovery::OnChange = Arc::new(move |c: &discovery::Change| {
            if let Some(out) = &show {
                out.line(c.to_string());
            }
        });
        // DNS-SD beside the group (not with --no-discovery): its peers land in the same table.
        let dnssd = (!self.no_discovery && !self.dnssd.no_dnssd).then(|| dnssd::Config {
            port: self.dnssd.dnssd_port,
            interfaces: dnssd::Interfaces::of(config.group.iface),
            server,
            web,
        });
        let lan = lan::Config {
            discovery: config,
            dnssd,
            // A node whose network refuses the group still serves its files and polls its
            // static peers.
            without_group: true,
        };
        let d = lan::start(lan, peers, on_change, &shutdown, tracker)
            .context("cannot join the multicast group")?;
        for (path, size) in offers {
            d.offer(&path, size, access.is_file_protected(&path))
                .await
                .with_context(|| format!("cannot offer {path}"))?;
        }
        Ok(Some(d))
    }
}

impl Default for GroupArgs {
    fn default() -> Self {
        GroupArgs {
            group: GroupAddr {
                group_iface: None,
                group_addr: GROUP_ADDR,
                group_port: ANNOUNCE_PORT,
                chat_port: CHAT_PORT,
                group_ttl: 1,
            },
            no_discovery: false,
            dnssd: DnsSdArgs::default(),
            peer: Vec::new(),
            peer_expiry: meshfs_core::peers::DEFAULT_EXPIRY,
            show_peers: false,
            password_file: None,
            password: false,
            offer: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_args() {
        assert_eq!(OfferArg::parse("a.mp4").password_file, None);
        let o = OfferArg::parse("clips/a.mp4:/etc/pw");
        assert_eq!(o.path, "clips/a.mp4");
        assert_eq!(o.password_file, Some("/etc/pw".into()));
    }

    /// `--peer` follows the one set of node address rules.
    #[test]
    fn peer_is_a_node_address() {
        #[derive(clap::Parser)]
        struct Node {
            #[command(flatten)]
            group: GroupArgs,
        }
        let parse = |p: &str| {
            <Node as clap::Parser>::try_parse_from(["node", "--peer", p])
                .map(|n| n.group.peer[0].to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(parse("cam2").unwrap(), "cam2:4044");
        assert_eq!(parse("[::1]:4100").unwrap(), "[::1]:4100");
        for bad in ["cam2:notaport", "meshfs://cam2/clips"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains("is not a node address"), "{bad}: {e}");
        }
    }
}
