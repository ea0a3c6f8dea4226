//! `meshfs peers` and `meshfs offers`: ask the LAN group who is there and what they offer.
//! Every node answers a browser's hello by unicast at once, so a short wait is enough.

use std::time::{Duration, Instant};

use super::group::GroupAddr;
use meshfs_core::NodeAddr;
use meshfs_group::probe::{Answers, probe};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs peers                          nodes on the LAN: NAME ADDRESS AGE ID [conflict]
  meshfs peers --group-iface 10.0.0.2   ask through one interface
  meshfs peers --peer 10.0.0.7:4044     also ask this node directly (networks without multicast)
  meshfs peers --no-dnssd               ask the group only, not DNS-SD (_meshfs._tcp)

ID is the node's ID as it announced it (`meshfs id --node` on the node; `-` for a node too old
to announce one). `conflict` marks a name that several nodes with different IDs announce:
`NAME:PATH` then goes only to the one pinned with `meshfs trust NAME ID`.

Prints nothing (and exits 0) when no node answers.")]
pub struct PeersArgs {
    #[command(flatten)]
    pub group: GroupAddr,
    #[command(flatten)]
    pub dnssd: super::group::DnsSdArgs,
    /// Also ask this node's file server directly (repeatable; HOST[:PORT], port 4044 by
    /// default); unreachable ones are reported on stderr.
    #[arg(long, value_name = "HOST:PORT")]
    pub peer: Vec<NodeAddr>,
    /// How long to listen for answers.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs offers                         files offered on the LAN: NODE URL SIZE open|protected
  meshfs get $(meshfs offers | awk '$1==\"cam2\" {print $2; exit}')")]
pub struct OffersArgs {
    #[command(flatten)]
    pub group: GroupAddr,
    /// How long to listen for answers.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

async fn ask(group: &GroupAddr, wait: Duration) -> anyhow::Result<Answers> {
    Ok(probe(&group.group(None), group.group_port, wait).await?)
}

pub async fn peers(args: PeersArgs) -> anyhow::Result<()> {
    use meshfs_group::discovery::{POLL_TIMEOUT, poll_hello};
    // The group and DNS-SD are asked at once, for the same wait; a node heard both ways is
    // listed once, at the address its hello came from.
    let (peers, group_error) = super::target::ask_lan(&args.group, &args.dnssd, args.wait).await;
    if let Some(e) = group_error {
        // A network without a route for our group may still carry mDNS: say so, list the rest.
        if args.dnssd.no_dnssd {
            return Err(e.into());
        }
        eprintln!("multicast group not asked: {e}");
    }
    let now = Instant::now();
    let mut listed: Vec<(String, std::net::SocketAddr)> = Vec::new();
    for p in peers.list() {
        let age = now.saturating_duration_since(p.last_seen).as_secs();
        let conflict = !peers.conflict(&p.name).is_empty();
        println!("{}", line(&p.name, p.addr, age, p.node_id, conflict));
        listed.push((p.name, p.addr));
    }
    for target in &args.peer {
        let target = target.to_string();
        match tokio::time::timeout(POLL_TIMEOUT, poll_hello(&target)).await {
            Ok(Ok(found)) if listed.contains(&(found.name.clone(), found.addr)) => {}
            Ok(Ok(found)) => {
                println!("{}", line(&found.name, found.addr, 0, found.node_id, false));
                listed.push((found.name, found.addr));
            }
            Ok(Err(e)) => eprintln!("{target}: {e}"),
            Err(_) => eprintln!("{target}: no answer within {POLL_TIMEOUT:?}"),
        }
    }
    Ok(())
}

/// One line of `meshfs peers`: `NAME ADDRESS AGEs ID`, and ` conflict` when other nodes
/// claim the name.
fn line(
    name: &str,
    addr: std::net::SocketAddr,
    age: u64,
    id: Option<meshfs_core::NodeId>,
    conflict: bool,
) -> String {
    let id = id.map_or_else(|| "-".to_owned(), |i| i.to_string());
    let mark = if conflict { " conflict" } else { "" };
    format!("{name} {addr} {age}s {id}{mark}")
}

pub async fn offers(args: OffersArgs) -> anyhow::Result<()> {
    for o in ask(&args.group, args.wait).await?.offers {
        print_offer(&o);
    }
    Ok(())
}

/// `NODE URL SIZE open|protected`, the format `meshfs offers` and the chat's `/offers` share.
pub fn print_offer(o: &meshfs_group::Offer) {
    let lock = if o.protected { "protected" } else { "open" };
    println!("{} {} {} {lock}", o.node, o.url(), o.size);
}
