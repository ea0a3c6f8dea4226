//! `meshfs ftp-passwd NAME`: turn a password read from stdin into a line of the FTP users file.

use std::io::{BufRead, Read};

use anyhow::{Context, bail};

#[derive(clap::Args)]
#[command(after_help = "\
Reads the password from the first line of standard input and prints `NAME:HASH` (argon2id).

Examples:
  read -rs pw; printf '%s\\n' \"$pw\" | meshfs ftp-passwd alice >> ftp-users
  meshfs node ~/videos --ftp --ftp-users ftp-users")]
pub struct Args {
    /// User name (no spaces or colons; not `anonymous` or `ftp`, which are the read-only logins).
    pub name: String,
}

/// Longest password line read.
const MAX_PASSWORD: u64 = 1024;

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.name.is_empty() || args.name.contains([':', ' ', '\t', '\n', '\r']) {
        bail!("bad user name {:?}", args.name);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_PASSWORD + 2)
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("empty password (give it on standard input)");
    }
    if password.len() as u64 > MAX_PASSWORD {
        bail!("password longer than {MAX_PASSWORD} bytes");
    }
    let hash = meshfs_ftp::hash_password(password)?;
    let entry = format!("{}:{hash}", args.name);
    // Check the line the way the node will read it (reserved names, hash format).
    meshfs_ftp::Users::parse(&entry)?;
    println!("{entry}");
    Ok(())
}
