//! `meshfs shell`: the course's interactive client (`c> ` prompt) for a central directory.
//! Commands come from standard input, one per line, so it also runs scripts.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use meshfs_core::Share;
use meshfs_registry::Stamp;
use meshfs_registry::shell::{Shell, ShellConfig};

#[derive(clap::Args)]
#[command(after_help = "\
Commands (one per line):
  REGISTER <user>   UNREGISTER <user>   CONNECT <user>   DISCONNECT <user>
  PUBLISH <file> <description...>   DELETE <file>
  LIST_USERS   LIST_CONTENT <user>   GET_FILE <user> <remote> <local>   QUIT

Examples:
  meshfs shell --registry 10.0.0.1:4050
  meshfs shell --registry 127.0.0.1:4050 --share ~/videos < script.txt
  meshfs shell --registry 10.0.0.1:4050 --date     a directory that requires the date")]
pub struct Args {
    /// The central directory, HOST:PORT.
    #[arg(long, env = "MESHFS_REGISTRY", value_name = "HOST:PORT")]
    pub registry: String,
    /// Folder served to other peers' GET_FILE while connected.
    #[arg(long, default_value = ".")]
    pub share: PathBuf,
    /// Address of the GET_FILE listener opened on CONNECT (port 0: any free port).
    #[arg(long, default_value = "0.0.0.0:0")]
    pub peer_listen: String,
    /// Give up on the directory or a peer after this much silence.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Send the local time (DD/MM/YYYY HH:MM:SS) after every operation name, as the
    /// directories of the course's later version require.
    #[arg(long)]
    pub date: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let share = Share::open(&args.share)
        .with_context(|| format!("cannot share {}", args.share.display()))?;
    let interactive = std::io::stdin().is_terminal();
    let config = ShellConfig {
        registry: args.registry,
        share,
        peer_listen: args.peer_listen,
        prompt: interactive,
        timeout: args.timeout,
        date: if args.date {
            Stamp::LocalNow
        } else {
            Stamp::None
        },
    };
    let mut shell = Shell::new(config, tokio::io::stdout());
    if std::io::stderr().is_terminal() {
        shell = shell.with_progress(Box::new(|done, total| {
            let pct = (done * 100).checked_div(total).unwrap_or(100);
            eprint!("\r{done}/{total} bytes ({pct}%)");
            if done == total {
                eprintln!();
            }
        }));
    }
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    shell.run(stdin).await.context("shell I/O")?;
    Ok(())
}
