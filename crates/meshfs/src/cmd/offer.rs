//! `meshfs offer PATH`: announce a file of the local node to the LAN group.

use anyhow::Context;

use super::group::GroupAddr;
use meshfs_group::probe::offer_for;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs offer clips/a.mp4                       offer a file of the node on 127.0.0.1:4044
  meshfs offer a.mp4 --node 127.0.0.1:5044       of another local node

The file must be in the node's share. To protect an offered file with a password, start the
node with `--offer PATH:PASSWORDFILE` (the password never travels in the announcement).")]
pub struct Args {
    /// Path of the file inside the node's share.
    pub path: String,
    /// The local node's file server: HOST[:PORT] or meshfs://HOST[:PORT].
    #[arg(long, default_value = "127.0.0.1:4044", value_name = "HOST:PORT")]
    pub node: meshfs_core::NodeAddr,
    #[command(flatten)]
    pub group: GroupAddr,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // A node on loopback is announced on loopback, like the node itself does.
    let node = args.node.to_string();
    let node_ip = node.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
    let group = args.group.group(node_ip);
    let offer = offer_for(&group, args.group.group_port, &node, &args.path)
        .await
        .with_context(|| {
            format!(
                "cannot offer {} (a path inside the share of the node at {node})",
                args.path
            )
        })?;
    super::peers::print_offer(&offer);
    Ok(())
}
