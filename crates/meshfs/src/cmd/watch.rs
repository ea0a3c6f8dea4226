//! `meshfs watch`: follow the file events of one or more nodes.
//!
//! Events go to stdout, one per line; connection notices go to stderr (`connected to NAME`,
//! `lost NAME: …, reconnecting`), so stdout stays a clean feed for scripts.

use anyhow::Context;
use meshfs_core::NodeAddr;
use meshfs_core::events::Event;
use meshfs_core::follow::{Follower, Notice};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

#[derive(clap::Args)]
#[command(after_help = "\
Output: `<node> <seq> <kind> <path>`, kind one of created, modified, deleted, closed, resync
(events were lost: re-list). With --json, one object per line:
  {\"node\":\"cam1\",\"seq\":1732200000000001,\"kind\":\"closed\",\"path\":\"clip.mp4\"}
A node that restarts or a network cut is survived: meshfs reconnects and resumes after the last
event it printed, so nothing is repeated and a lost range shows as `resync`.

Examples:
  meshfs watch meshfs://cam1.local meshfs://cam2.local
  meshfs watch cam1 10.0.0.7:4044          (a name no DNS knows is asked of the LAN group)
  meshfs watch --json meshfs://cam1.local | jq -r 'select(.kind==\"closed\") | .path'")]
pub struct Args {
    /// Nodes to follow: HOST[:PORT], meshfs://HOST[:PORT], or a node's NAME.
    #[arg(required = true)]
    pub nodes: Vec<NodeAddr>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: super::client::ClientArgs,
}

/// Format one event line: the kind reads `deleted:retention` (JSON: `"reason"`) when meshfs
/// itself made the change.
fn format_event(node: &str, event: &Event, json: bool) -> String {
    if json {
        let mut value = serde_json::json!({
            "node": node,
            "seq": event.seq,
            "kind": event.kind.as_str(),
            "path": event.path,
        });
        if let Some(reason) = event.reason {
            value["reason"] = reason.as_str().into();
        }
        let mut line = value.to_string();
        line.push('\n');
        line
    } else {
        format!("{node} {}\n", event.line_with_reason())
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<String>(1024);
    let passwords = args.client.passwords()?;
    let mut nodes = Vec::with_capacity(args.nodes.len());
    for node in &args.nodes {
        let addr = args.client.lookup.node(node).await?.to_string();
        // A protected node is asked for its password before following starts, so a missing
        // one is an error now rather than a reconnect loop.
        let typed = node.to_string();
        let credentials = passwords
            .for_connections(&addr, &[&addr, &typed, node.host()], Default::default())
            .await
            .with_context(|| format!("cannot watch {addr}"))?;
        nodes.push((addr, credentials));
    }
    for (addr, credentials) in nodes {
        let tx = tx.clone();
        let json = args.json;
        tokio::spawn(async move {
            let mut follower = Follower::new(addr.clone(), None).with_credentials(credentials);
            // Until the node says its name, call it by its address.
            let mut name = addr.clone();
            loop {
                match follower.next().await {
                    Notice::Connected { name: n } => {
                        name = n;
                        eprintln!("connected to {name} ({addr})");
                    }
                    Notice::Disconnected { error } => {
                        eprintln!("lost {name}: {error}; reconnecting");
                    }
                    Notice::Event(event) => {
                        if tx.send(format_event(&name, &event, json)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    drop(tx);
    let mut stdout = tokio::io::stdout();
    let stop = crate::signals::terminate();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(line) = line else { return Ok(()) };
                if let Err(e) = stdout.write_all(line.as_bytes()).await {
                    // `meshfs watch | head` closing the pipe is a normal end.
                    return if e.kind() == std::io::ErrorKind::BrokenPipe { Ok(()) } else { Err(e.into()) };
                }
                stdout.flush().await?;
            }
            _ = &mut stop => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::Args,
    }

    #[test]
    fn nodes_follow_the_node_address_rules() {
        let cli = Cli::try_parse_from(["watch", "cam2", "10.0.0.7:5000", "meshfs://[::1]:7/"]);
        let nodes: Vec<String> = cli
            .unwrap()
            .args
            .nodes
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nodes, ["cam2:4044", "10.0.0.7:5000", "[::1]:7"]);
        for bad in ["meshfs://h/clips", "cam2:notaport"] {
            let e = Cli::try_parse_from(["watch", bad])
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("is not a node address"), "{bad}: {e}");
        }
    }
}
