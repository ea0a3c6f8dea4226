//! `meshfs chat --hub PATH`: chat through a FIFO hub (seed 001, step 3).
//!
//! Without `--hub`, `meshfs chat` joins the LAN group chat (multicast, seed 004, see
//! `group_chat.rs`).

use std::path::PathBuf;

use meshfs_hub::chat::{self, ChatConfig};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs chat --hub /tmp/meshfs-hub-1234      type lines; what others say appears as it comes
  echo hello | meshfs chat --hub /tmp/chat    send one message and leave
  meshfs chat                                 the LAN group chat (no --hub): /help for commands

Ends on end of input (^D) or ^C; either way it says goodbye to the hub and removes its FIFO.")]
pub struct Args {
    /// The hub's FIFO (the path `meshfs hub` prints). Without it: the LAN group chat.
    #[arg(long)]
    pub hub: Option<PathBuf>,
    /// This client's own FIFO, created at start and removed at exit
    /// [default: /tmp/meshfs-chat-<pid>].
    #[arg(long, requires = "hub")]
    pub fifo: Option<PathBuf>,
    #[command(flatten)]
    pub group: super::group_chat::GroupChatArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Some(hub) = args.hub else {
        return super::group_chat::run(args.group).await;
    };
    let config = ChatConfig {
        hub,
        fifo: args.fifo.unwrap_or_else(chat::default_fifo),
    };
    let shutdown = crate::signals::cancel_on_signal();
    let end = chat::run(&config, tokio::io::stdin(), tokio::io::stdout(), shutdown).await?;
    tracing::debug!(?end, "chat ended");
    Ok(())
}
