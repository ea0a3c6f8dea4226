//! `meshfs config check [PATH]`, and the step of `meshfs node`'s start that reads its
//! configuration file (`crate::config` holds the file's rules).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgMatches, Command};

use crate::config::{Settings, clap_message, default_path};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs config check                          the user's file ($XDG_CONFIG_HOME/meshfs/meshfs.toml)
  sudo meshfs config check /etc/meshfs/meshfs.toml   the service's file

Keys are the flags of `meshfs node` without their leading -- (`meshfs node --help` lists
them), plus `dir` for the served folder; the packaged /usr/share/doc/meshfs/meshfs.toml is a
commented example.")]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Check a configuration file: every key a flag of `meshfs node`, every value one that
    /// flag accepts, no two settings in conflict. Starts nothing.
    Check {
        /// The file [default: $XDG_CONFIG_HOME/meshfs/meshfs.toml, else ~/.config/meshfs/meshfs.toml].
        path: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Action::Check { path } = args.action;
    let path = path.unwrap_or_else(default_path);
    let command = <crate::Cli as clap::CommandFactory>::command();
    let node = node_command(&command)?;
    let settings = Settings::load(&path, node)?;
    // The settings alone, as `meshfs node` would see them without flags: conflicts and
    // `requires` between them show here.
    let (mut words, dir) = settings.words_under(None);
    words.extend(dir);
    let argv = ["meshfs", "node"]
        .map(OsString::from)
        .into_iter()
        .chain(words);
    command
        .try_get_matches_from(argv)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), clap_message(&e)))?;
    println!("{}: ok", path.display());
    Ok(())
}

/// The command line of `meshfs node` with its configuration file's settings added under the
/// flags and environment that `node` (the first parse) shows, and the file's path; `None`
/// when there is no file to read (no `--config`, and no file at the default path).
pub fn node_argv(
    command: &Command,
    node: &ArgMatches,
    argv: Vec<OsString>,
) -> anyhow::Result<Option<(Vec<OsString>, PathBuf)>> {
    let path = match node.get_one::<PathBuf>("config") {
        Some(path) => path.clone(),
        None => {
            let path = default_path();
            if !path.exists() {
                return Ok(None);
            }
            path
        }
    };
    let settings = Settings::load(&path, node_command(command)?)?;
    let (options, dir) = settings.words_under(Some(node));
    // The settings go right after the subcommand's name, before any `--` the user typed;
    // the only flag before the name is the global --plaintext, which takes no value.
    let at = argv
        .iter()
        .skip(1)
        .position(|word| word == "node")
        .context("no `node` on the command line")?
        + 2;
    let mut out = argv[..at].to_vec();
    out.extend(options);
    out.extend(dir);
    out.extend_from_slice(&argv[at..]);
    Ok(Some((out, path)))
}

fn node_command(command: &Command) -> anyhow::Result<&Command> {
    command
        .find_subcommand("node")
        .context("meshfs has no node command")
}
