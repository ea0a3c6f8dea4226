//! The node's TLS flags on the file server's port: who may connect (`--allow`,
//! `--allow-file`), whether clear text is still served (`--require-tls`), and whether a
//! password may be sent in clear (`--allow-plaintext-auth`).
//!
//! TLS itself is always on: the port tells a TLS handshake from the text protocol by its first
//! byte, so `nc` and the seeds' clients keep working beside TLS clients.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use meshfs_core::tls::{self, ClientAuth};
use meshfs_core::{Identity, NodeId};
use meshfs_server::{Tls, Transport};

/// Longest `--allow-file` read.
const MAX_ALLOW_FILE: u64 = 1 << 20;

#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// Admit only clients presenting one of these IDs (mutual TLS; `meshfs id` prints a user's,
    /// `meshfs id --node` a node's); repeat it for several. Implies --require-tls.
    #[arg(long, value_name = "ID")]
    pub allow: Vec<NodeId>,
    /// Like --allow, with the IDs read from FILE (one per line, `#` comments).
    #[arg(long, value_name = "FILE")]
    pub allow_file: Option<PathBuf>,
    /// Refuse the text protocol in clear except `hello`, `help` and `quit`.
    #[arg(long)]
    pub require_tls: bool,
    /// Accept `auth <password>` in clear, where anyone on the network can read the password
    /// (for clients older than TLS). Without it, a node answers them to use TLS.
    #[arg(long)]
    pub allow_plaintext_auth: bool,
}

impl TlsArgs {
    /// The file server's transport for a node with `identity`.
    pub fn transport(&self, identity: &Identity) -> anyhow::Result<Transport> {
        let mut allowed: HashSet<NodeId> = self.allow.iter().copied().collect();
        if let Some(path) = &self.allow_file {
            allowed.extend(read_allow_file(path)?);
        }
        let restricted = !self.allow.is_empty() || self.allow_file.is_some();
        let clients = if restricted {
            ClientAuth::Require(Arc::new(allowed))
        } else {
            ClientAuth::Offer
        };
        let config = tls::server_config(identity, clients).context("cannot set up TLS")?;
        Ok(Transport {
            tls: Some(Tls {
                config,
                id: identity.id(),
            }),
            // Only admitted clients: nothing may be served in clear to anyone else.
            require_tls: self.require_tls || restricted,
            plaintext_auth: self.allow_plaintext_auth,
        })
    }
}

/// IDs, one per line; blank lines and `#` comments skipped; a bad line is an error.
fn read_allow_file(path: &PathBuf) -> anyhow::Result<Vec<NodeId>> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .with_context(|| format!("cannot read --allow-file {}", path.display()))?
        .take(MAX_ALLOW_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read --allow-file {}", path.display()))?;
    anyhow::ensure!(
        text.len() as u64 <= MAX_ALLOW_FILE,
        "--allow-file {} is larger than {MAX_ALLOW_FILE} bytes",
        path.display()
    );
    let mut ids = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let id = line
            .parse()
            .with_context(|| format!("{}:{}: not a node ID", path.display(), i + 1))?;
        ids.push(id);
    }
    Ok(ids)
}
