//! `meshfs offer PATH`: announce a file of the local node to the LAN group.

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
    /// The node's file server.
    #[arg(long, default_value = "127.0.0.1:4044")]
    pub node: String,
    #[command(flatten)]
    pub group: GroupAddr,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // A node on loopback is announced on loopback, like the node itself does.
    let node_ip = args
        .node
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip());
    let group = args.group.group(node_ip);
    let offer = offer_for(&group, args.group.group_port, &args.node, &args.path).await?;
    super::peers::print_offer(&offer);
    Ok(())
}
