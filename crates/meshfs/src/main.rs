//! `meshfs`: one binary for every role a node plays. Each subcommand lives in its own module
//! under `cmd/` and is a thin layer over the library crates.
#![deny(unsafe_code)]

mod cmd;
mod config;
mod notify;
mod password;
mod signals;

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  meshfs node ~/videos                      serve ~/videos on port 4044
  meshfs ls meshfs://cam2.local/            list a node's share
  meshfs get meshfs://cam2.local/clip.mp4   download (resumes after a crash, verifies BLAKE3)
  meshfs cat meshfs://10.0.0.7:4044/log.txt | less

Logs go to stderr; set RUST_LOG=debug for more.";

#[derive(Parser)]
#[command(name = "meshfs", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Speak to nodes in clear text instead of TLS (for nodes older than TLS): no encryption,
    /// no check of the node's key, passwords sent readable with `auth`.
    #[arg(long, global = true, env = "MESHFS_PLAINTEXT")]
    plaintext: bool,
}

#[derive(Subcommand)]
// Parsed once at start: the node's many flags cost nothing worth a Box.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Serve a folder to the network (the main job of every node).
    Node(cmd::node::Args),
    /// List a remote folder.
    Ls(cmd::files::LsArgs),
    /// Show a remote file's size, date, mode and type.
    Stat(cmd::files::StatArgs),
    /// Write a remote file to standard output.
    Cat(cmd::files::CatArgs),
    /// Download a remote file, resuming an interrupted download and verifying the result.
    Get(cmd::get::Args),
    /// Run a FIFO chat hub (seed 001): clients on this machine talk through named pipes.
    Hub(cmd::hub::Args),
    /// Chat on the LAN group (multicast), or through a FIFO hub with `--hub PATH`.
    Chat(cmd::fifo_chat::Args),
    /// Mount every node's files read-only under one folder (FUSE): DIR/<node>/<path>.
    Mount(cmd::mount::Args),
    /// Print file events of one or more nodes as they happen.
    Watch(cmd::watch::Args),
    /// Run the central directory (seed 003): users, where they listen, what they publish.
    Registry(cmd::registry::Args),
    /// The directory's interactive client (`c> ` prompt); also reads commands from stdin.
    Shell(cmd::shell::Args),
    /// List the nodes on the LAN (asks the multicast group).
    Peers(cmd::peers::PeersArgs),
    /// One line per node found: version, uptime, share, free space, last recording, warnings.
    Status(cmd::status::Args),
    /// List the files nodes offer on the LAN.
    Offers(cmd::peers::OffersArgs),
    /// Offer a file of the local node to the LAN group.
    Offer(cmd::offer::Args),
    /// Hash a password for the FTP users file (`--ftp-users`): prints `NAME:HASH`.
    FtpPasswd(cmd::ftp_passwd::Args),
    /// Run a cluster master (seed 002): hands each client the next healthy worker.
    Cluster(cmd::cluster::Args),
    /// Print this user's ID (or with --node this machine's node ID), as others pin it.
    Id(cmd::id::Args),
    /// Pin a node's ID ahead of time (NAME ID), list the pins, or --forget one.
    Trust(cmd::trust::Args),
    /// Check a configuration file (meshfs.toml) without starting a node.
    Config(cmd::config::Args),
    /// Write shell completions or man pages (used when building the packages).
    #[command(hide = true)]
    Generate(cmd::generate::Args),
}

fn main() -> std::process::ExitCode {
    let cli = match parse_with_config(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            return std::process::ExitCode::from(2);
        }
    };
    let default_level = match cli.command {
        Command::Node(_) | Command::Registry(_) | Command::Cluster(_) => "info",
        _ => "warn",
    };
    init_logging(default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Every command that connects to nodes meets them under the user's trust policy (a node,
    // under its own identity: it installs its policy once its identity is loaded).
    let connects = !matches!(
        cli.command,
        Command::Node(_)
            | Command::Hub(_)
            | Command::Registry(_)
            | Command::Shell(_)
            | Command::FtpPasswd(_)
            | Command::Id(_)
            | Command::Trust(_)
            | Command::Config(_)
            | Command::Generate(_)
    );
    if connects && let Err(e) = cmd::trust::install(cli.plaintext) {
        eprintln!("error: {}", error_text(&e));
        return std::process::ExitCode::FAILURE;
    }
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => cmd::node::run(args, cli.plaintext).await,
            Command::Ls(args) => cmd::files::ls(args).await,
            Command::Stat(args) => cmd::files::stat(args).await,
            Command::Cat(args) => cmd::files::cat(args).await,
            Command::Get(args) => cmd::get::run(args).await,
            Command::Hub(args) => cmd::hub::run(args).await,
            Command::Chat(args) => cmd::fifo_chat::run(args).await,
            Command::Mount(args) => cmd::mount::run(args).await,
            Command::Watch(args) => cmd::watch::run(args).await,
            Command::Registry(args) => cmd::registry::run(args).await,
            Command::Shell(args) => cmd::shell::run(args).await,
            Command::Peers(args) => cmd::peers::peers(args).await,
            Command::Status(args) => cmd::status::run(args).await,
            Command::Offers(args) => cmd::peers::offers(args).await,
            Command::Offer(args) => cmd::offer::run(args).await,
            Command::FtpPasswd(args) => cmd::ftp_passwd::run(args),
            Command::Cluster(args) => cmd::cluster::run(args).await,
            Command::Id(args) => cmd::id::run(args),
            Command::Trust(args) => cmd::trust::run(args),
            Command::Config(args) => cmd::config::run(args),
            Command::Generate(args) => cmd::generate::run(args, Cli::command()),
        }
    });
    // Do not wait for stray blocking tasks (a hash of a huge file, say) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `e` and its causes joined by `: `, each said once: library errors that show their cause in
/// their own text (`cannot connect to ADDR: Connection refused`) would otherwise repeat it
/// (`…: Connection refused (os error 111): Connection refused (os error 111)`).
pub(crate) fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Parse the command line; for `meshfs node`, add the settings of its configuration file
/// (`--config`, else the user's default file if it exists) under the flags and environment.
/// Help, version and usage errors exit here, as with `Cli::parse`.
fn parse_with_config(argv: Vec<OsString>) -> anyhow::Result<Cli> {
    let command = Cli::command();
    let matches = command.clone().get_matches_from(&argv);
    let Some(("node", node)) = matches.subcommand() else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let Some((argv, file)) = cmd::config::node_argv(&command, node, argv)? else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    match command.try_get_matches_from(argv) {
        Ok(matches) => Ok(Cli::from_arg_matches(&matches)?),
        Err(e) => {
            // A conflict between the file and the command line (say `no-web = true` in the
            // file and --web on the command line): clap's message, and where the rest came from.
            let _ = e.print();
            eprintln!(
                "note: the flags above include the settings of {}",
                file.display()
            );
            std::process::exit(2);
        }
    }
}

fn init_logging(default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colour only for a person at a terminal: a journal, a file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-written help (examples in `after_help`) must fit clap's 100 columns, or clap wraps
    /// an example in the middle of its line. Checked for every command and subcommand.
    #[test]
    fn written_help_lines_fit_without_wrapping() {
        fn check(cmd: &clap::Command, path: &str) {
            let path = format!("{path} {}", cmd.get_name());
            for help in [cmd.get_after_help(), cmd.get_after_long_help()]
                .into_iter()
                .flatten()
            {
                for line in help.to_string().lines() {
                    assert!(line.chars().count() <= 100, "{path}: {line:?}");
                }
            }
            for sub in cmd.get_subcommands() {
                check(sub, &path);
            }
        }
        check(&Cli::command(), "");
    }
}
