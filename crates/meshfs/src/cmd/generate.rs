//! `meshfs generate` (hidden): shell completions and man pages made from the command's own
//! clap description, so they can never drift from `--help`. The package build script
//! (`packaging/build-deb.sh`) runs it on the host-built binary; nobody needs it at run time.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Command;
use clap_complete::Shell;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Completion scripts for bash, zsh and fish, written into DIR as `meshfs.bash`,
    /// `_meshfs` and `meshfs.fish`.
    Completions { dir: PathBuf },
    /// One man page per command (`meshfs.1`, `meshfs-node.1`, …) written into DIR.
    Man { dir: PathBuf },
}

pub fn run(args: Args, mut command: Command) -> anyhow::Result<()> {
    let dir = match &args.what {
        What::Completions { dir } | What::Man { dir } => dir,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    match args.what {
        What::Completions { dir } => {
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                let path = clap_complete::generate_to(shell, &mut command, "meshfs", &dir)
                    .with_context(|| {
                        format!("cannot write {shell} completions into {}", dir.display())
                    })?;
                println!("{}", path.display());
            }
        }
        What::Man { dir } => man_pages(&command, &dir)?,
    }
    Ok(())
}

/// `meshfs.1` and one page per visible subcommand, named as `man meshfs-node` finds it (no
/// pages for clap's `help` subcommands: `man` is the help there).
fn man_pages(command: &Command, dir: &Path) -> anyhow::Result<()> {
    fn without_help(command: Command) -> Command {
        command
            .disable_help_subcommand(true)
            .mut_subcommands(without_help)
    }
    let mut command = without_help(command.clone());
    command.build();
    clap_mangen::generate_to(command, dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    Ok(())
}
