//! `meshfs chat --hub PATH`: chat through a FIFO hub (seed 001, step 3).
//!
//! `--hub` is required for now: `meshfs chat` without it is reserved for the LAN group chat
//! (multicast, seed 004), which will become the default once it exists.

use std::path::PathBuf;

use meshfs_hub::chat::{self, ChatConfig};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs chat --hub /tmp/meshfs-hub-1234      type lines; what others say appears as it comes
  echo hello | meshfs chat --hub /tmp/chat    send one message and leave

Ends on end of input (^D) or ^C; either way it says goodbye to the hub and removes its FIFO.")]
pub struct Args {
    /// The hub's FIFO (the path `meshfs hub` prints). Required for now: without it this command
    /// will join the LAN group chat, which is not available yet.
    #[arg(long, required = true)]
    pub hub: Option<PathBuf>,
    /// This client's own FIFO, created at start and removed at exit
    /// [default: /tmp/meshfs-chat-<pid>].
    #[arg(long)]
    pub fifo: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Some(hub) = args.hub else {
        anyhow::bail!("the LAN group chat is not available yet: pass --hub PATH");
    };
    let config = ChatConfig {
        hub,
        fifo: args.fifo.unwrap_or_else(chat::default_fifo),
    };
    let shutdown = super::hub::stop_on_signals()?;
    let end = chat::run(&config, tokio::io::stdin(), tokio::io::stdout(), shutdown).await?;
    tracing::debug!(?end, "chat ended");
    Ok(())
}
