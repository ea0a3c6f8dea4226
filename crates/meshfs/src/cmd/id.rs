//! `meshfs id`: print the ID others pin for this user, or for this machine's node.
//!
//! The ID is what `meshfs trust NAME ID` takes on another machine and what a node prints at
//! start and shows on its web page, so reading it aloud or pasting it is how two people check
//! a first contact. It prints one line, so `$(meshfs id --node)` is the ID; `--curl` prints the
//! same hash in the form `curl --pinnedpubkey` takes.

use std::path::PathBuf;

use anyhow::Context;
use meshfs_core::Identity;

#[derive(clap::Args)]
#[command(after_help = "\
The user's identity lives in $XDG_CONFIG_HOME/meshfs (default ~/.config/meshfs), a node's in
STATE/identity (default $XDG_STATE_HOME/meshfs/identity, ~/.local/state/meshfs/identity);
either is made on first use.

Prints the ID (base32, in groups to read aloud); --curl prints the same hash as curl's
`sha256//BASE64` pin.

Examples:
  meshfs id                         this user's ID (what nodes started with --allow admit)
  meshfs id --node --state /var/lib/meshfs   the ID of the node run as a system service
  meshfs id --node                  this machine's node ID (as the node prints it at start)
  curl --pinnedpubkey \"$(meshfs id --node --curl)\" -k https://cam1.local:8044/")]
pub struct Args {
    /// Print the node's ID (as `meshfs node` uses it) instead of the user's.
    #[arg(long)]
    pub node: bool,
    /// The node's state folder (with --node; as `meshfs node --state`).
    #[arg(long, value_name = "DIR", requires = "node")]
    pub state: Option<PathBuf>,
    /// Print only `sha256//BASE64`, the form `curl --pinnedpubkey` checks (the same hash).
    #[arg(long)]
    pub curl: bool,
    /// Also print where the certificate is (PEM; browsers and `openssl` can read it).
    #[arg(long)]
    pub cert: bool,
}

/// Where a node keeps its key and certificate inside its state folder.
pub fn node_identity_dir(state: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let state = match state {
        Some(dir) => dir,
        None => super::registry::default_state_dir()?,
    };
    Ok(state.join("identity"))
}

/// The user's identity folder.
pub fn user_identity_dir() -> anyhow::Result<PathBuf> {
    meshfs_core::identity::user_dir()
        .context("neither XDG_CONFIG_HOME nor HOME is set: cannot find the user's meshfs folder")
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (dir, name) = if args.node {
        (node_identity_dir(args.state)?, host_name())
    } else {
        (user_identity_dir()?, "user".to_owned())
    };
    let identity = Identity::load_or_create(&dir, &name)?;
    let id = identity.id();
    if args.curl {
        println!("{}", id.pinned_pubkey());
    } else {
        println!("{id}");
    }
    if args.cert {
        println!("{}", dir.join(meshfs_core::identity::CERT_FILE).display());
    }
    Ok(())
}

/// The machine's host name, which names a node by default (and so its certificate).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        .unwrap_or_else(|| "meshfs".into())
}
