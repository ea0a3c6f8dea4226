//! `meshfs trust`: pin a node's ID ahead of time, re-pin it after a reinstall, list or forget.
//!
//! Clients pin a node's ID the first time they meet its name (trust on first use, like SSH);
//! pinning ahead of time, with the ID read from `meshfs id --node` on the node itself, closes
//! even that first window. A changed key is refused until the user re-pins it here.

use anyhow::Context;
use meshfs_core::trust::Trust;
use meshfs_core::{KnownNodes, NodeId};

#[derive(clap::Args)]
#[command(after_help = "\
The pins live in $XDG_CONFIG_HOME/meshfs/known_nodes (default ~/.config/meshfs/known_nodes),
one `NAME ID` per line.

Examples:
  meshfs trust --list                list the pinned nodes (also: `meshfs trust` alone)
  meshfs trust cam1 ABCD-EFGH-…      pin cam1 (read the ID with `meshfs id --node` on cam1)
  meshfs trust cam1 NEW-ID           re-pin cam1 after a reinstall (the changed-key error
                                     names this command with the ID it was shown)
  meshfs trust --forget cam1         drop the pin: the next contact pins again")]
pub struct Args {
    /// The node's name (as `meshfs peers` and `hello` give it).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// The node's ID (base32 groups as `meshfs id` prints them, or sha256//BASE64).
    #[arg(value_name = "ID", requires = "name", conflicts_with = "forget")]
    pub id: Option<NodeId>,
    /// Drop the pin of NAME.
    #[arg(long, requires = "name")]
    pub forget: bool,
    /// List the pinned nodes, one `NAME ID` per line.
    #[arg(long, conflicts_with_all = ["name", "forget"])]
    pub list: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let path = KnownNodes::default_path()
        .context("neither XDG_CONFIG_HOME nor HOME is set: cannot find known_nodes")?;
    let mut known = KnownNodes::load(&path)?;
    match (args.name, args.id) {
        (Some(name), _) if args.forget => match known.forget(&name)? {
            Some(old) => println!("forgot {name} {old}"),
            None => println!("{name} was not pinned"),
        },
        (Some(name), Some(id)) => match known.trust(&name, id)? {
            Some(old) => println!("pinned {name} {id} (was {old})"),
            None => println!("pinned {name} {id}"),
        },
        (Some(name), None) => match known.get(&name) {
            Some(id) => println!("{name} {id}"),
            None => anyhow::bail!("{name} is not pinned (give its ID to pin it)"),
        },
        (None, _) => {
            for (name, id) in known.pins() {
                println!("{name} {id}");
            }
        }
    }
    Ok(())
}

/// Install this process's policy for meeting nodes: TLS with the user's identity and pins, or
/// clear text with `--plaintext`. Every connection the command makes, in whichever library,
/// follows it.
pub fn install(plaintext: bool) -> anyhow::Result<()> {
    install_as(plaintext, None)
}

/// [`install`] for `meshfs node`: its client side (cluster replication, the web UI's remote
/// nodes, directory fetches, static peer polls) presents the node's own identity, so another
/// node's `--allow` admits it by its node ID.
pub fn install_as(plaintext: bool, node: Option<&meshfs_core::Identity>) -> anyhow::Result<()> {
    let trust = match (plaintext, node) {
        (true, _) => Ok(Trust::plaintext()),
        (false, Some(node)) => Trust::for_node(node.clone()),
        (false, None) => Trust::for_user(),
    };
    Trust::install_process_default(
        trust.context("cannot set up TLS to nodes (--plaintext speaks in clear)")?,
    );
    Ok(())
}
