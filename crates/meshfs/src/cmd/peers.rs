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

Prints nothing (and exits 0) when no node answers. With --json, one array of objects:
  name, addr (the file server, HOST:PORT), web (its web UI's port, or null), age_s (seconds
  since last heard), id (its node ID, or null), conflict (true when other nodes announce the
  name).")]
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
    #[arg(long, visible_alias = "lookup-wait", default_value = "1s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Print JSON (fields above) instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
#[command(after_help = "\
Offers travel on the LAN group only: DNS-SD carries none, so --no-dnssd and --dnssd-port
(accepted, as by every client command, for scripts that pass one set of flags) change nothing.
With --json, one array of objects: node, url (what `meshfs get` takes), addr, path, size,
protected (true when the file asks for its own password).

Examples:
  meshfs offers                         files offered on the LAN: NODE URL SIZE open|protected
  meshfs get $(meshfs offers | awk '$1==\"cam2\" {print $2; exit}')
  meshfs offers --json | jq -r '.[] | select(.protected|not) | .url'")]
pub struct OffersArgs {
    #[command(flatten)]
    pub group: GroupAddr,
    #[command(flatten)]
    pub dnssd: super::group::DnsSdArgs,
    /// How long to listen for answers.
    #[arg(long, visible_alias = "lookup-wait", default_value = "1s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Print JSON (fields above) instead of lines.
    #[arg(long)]
    pub json: bool,
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
    let mut listed: Vec<Listed> = peers
        .list()
        .into_iter()
        .map(|p| Listed {
            age: now.saturating_duration_since(p.last_seen).as_secs(),
            conflict: !peers.conflict(&p.name).is_empty(),
            name: p.name,
            addr: p.addr,
            web: p.web,
            id: p.node_id,
        })
        .collect();
    for target in &args.peer {
        let target = target.to_string();
        match tokio::time::timeout(POLL_TIMEOUT, poll_hello(&target)).await {
            Ok(Ok(found)) => {
                if !listed
                    .iter()
                    .any(|l| l.name == found.name && l.addr == found.addr)
                {
                    listed.push(Listed {
                        name: found.name,
                        addr: found.addr,
                        web: None,
                        age: 0,
                        id: found.node_id,
                        conflict: false,
                    });
                }
            }
            Ok(Err(e)) => eprintln!("{target}: {e}"),
            Err(_) => eprintln!("{target}: no answer within {POLL_TIMEOUT:?}"),
        }
    }
    if args.json {
        let all: Vec<_> = listed.iter().map(Listed::json).collect();
        println!("{}", serde_json::Value::Array(all));
        return Ok(());
    }
    for l in &listed {
        println!("{}", l.line());
    }
    Ok(())
}

/// One node `meshfs peers` lists.
struct Listed {
    name: String,
    addr: std::net::SocketAddr,
    web: Option<u16>,
    /// Seconds since last heard.
    age: u64,
    /// The node ID it announced (or showed over TLS when asked with `--peer`).
    id: Option<meshfs_core::NodeId>,
    /// Other nodes announce the same name with other IDs.
    conflict: bool,
}

impl Listed {
    /// `NAME ADDRESS AGEs ID`, and ` conflict` when other nodes claim the name.
    fn line(&self) -> String {
        let id = self.id.map_or_else(|| "-".to_owned(), |i| i.to_string());
        let mark = if self.conflict { " conflict" } else { "" };
        format!("{} {} {}s {id}{mark}", self.name, self.addr, self.age)
    }

    /// The fields `--json` documents.
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "addr": self.addr.to_string(),
            "web": self.web,
            "age_s": self.age,
            "id": self.id.map(|i| i.to_string()),
            "conflict": self.conflict,
        })
    }
}

pub async fn offers(args: OffersArgs) -> anyhow::Result<()> {
    let offers = ask(&args.group, args.wait).await?.offers;
    if args.json {
        let all: Vec<_> = offers.iter().map(offer_json).collect();
        println!("{}", serde_json::Value::Array(all));
        return Ok(());
    }
    for o in &offers {
        print_offer(o);
    }
    Ok(())
}

/// The JSON of one offer (the field names `offers --json` documents).
fn offer_json(o: &meshfs_group::Offer) -> serde_json::Value {
    serde_json::json!({
        "node": o.node,
        "url": o.url(),
        "addr": o.addr.to_string(),
        "path": o.path,
        "size": o.size,
        "protected": o.protected,
    })
}

/// `NODE URL SIZE open|protected`, the format `meshfs offers` and the chat's `/offers` share.
pub fn print_offer(o: &meshfs_group::Offer) {
    let lock = if o.protected { "protected" } else { "open" };
    println!("{} {} {} {lock}", o.node, o.url(), o.size);
}
