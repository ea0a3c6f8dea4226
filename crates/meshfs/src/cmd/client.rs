//! What every client command shares ([`ClientArgs`]): how a node is named and found
//! ([`Lookup`]), and how a password is proven to a protected node ([`Passwords`]).
//!
//! A password is never sent to a node that does not ask for one: a command first tries
//! without, and only when the node answers "authentication required" (code 8) proves the
//! password from `--password-file` (`NODE=FILE` for one node, `FILE` for any), else
//! `MESHFS_CLIENT_PASSWORD`, else asks on the terminal, and tries again. An open node thus
//! never sees a password meant for another.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

use anyhow::Context;
use meshfs_cluster::AssignError;
use meshfs_core::proto::Code;
use meshfs_core::secret::Password;
use meshfs_core::transfer::TransferError;
use meshfs_core::{ClientError, Credentials, Pool, PoolConfig, RemotePath};

use super::target::{Lookup, Target};
use crate::password;

/// The flags of every command that talks to nodes.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    #[command(flatten)]
    pub lookup: Lookup,
    #[command(flatten)]
    pub passwords: PasswordArgs,
}

impl ClientArgs {
    /// The node and path `target` names (asking the LAN for a `NAME:PATH`).
    pub async fn resolve(&self, target: &Target) -> anyhow::Result<RemotePath> {
        self.lookup.resolve(target).await
    }

    /// The passwords the flags and the environment give (files are read now, so a wrong path
    /// fails before anything is fetched).
    pub fn passwords(&self) -> anyhow::Result<Passwords> {
        Passwords::new(&self.passwords)
    }
}

/// Where the password of a protected node comes from.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Passwords of protected nodes")]
pub struct PasswordArgs {
    /// Prove the password on the first line of FILE to nodes that ask for one; NODE=FILE
    /// for one node only (NODE as typed: its name, HOST or HOST:PORT). Repeatable. Without
    /// it: $MESHFS_CLIENT_PASSWORD, else a prompt when run on a terminal.
    #[arg(long, value_name = "[NODE=]FILE")]
    pub password_file: Vec<PasswordFile>,
}

/// One `--password-file` value: `FILE`, or `NODE=FILE` (a `NODE` holds no `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordFile {
    pub node: Option<String>,
    pub file: PathBuf,
}

impl FromStr for PasswordFile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (node, file) = match s.split_once('=') {
            Some((node, file)) if !node.is_empty() && !node.contains('/') => {
                (Some(node.to_owned()), file)
            }
            _ => (None, s),
        };
        if file.is_empty() {
            return Err(format!("{s:?} names no file: give FILE or NODE=FILE"));
        }
        Ok(PasswordFile {
            node,
            file: file.into(),
        })
    }
}

/// The passwords at hand for this run, and the ones typed at the prompt (asked once per node).
pub struct Passwords {
    /// `(node, password)` from `NODE=FILE`.
    per_node: Vec<(String, Password)>,
    /// From `--password-file FILE`, else `MESHFS_CLIENT_PASSWORD`.
    any: Option<Password>,
    typed: Mutex<HashMap<String, Password>>,
    /// Ask on the terminal when nothing else gives a password (off for nodes found while a
    /// mount runs: nobody is watching its terminal then).
    prompt: bool,
}

/// A node asks for a password and none was given for it (nor a terminal to ask on).
#[derive(Debug, thiserror::Error)]
#[error(
    "{node} asks for a password: give --password-file FILE (or {node}=FILE), or set {}",
    password::CLIENT_ENV
)]
pub struct NoPassword {
    /// The node, as first named.
    pub node: String,
}

impl Passwords {
    pub fn new(args: &PasswordArgs) -> anyhow::Result<Passwords> {
        let mut per_node = Vec::new();
        let mut any = None;
        for f in &args.password_file {
            let p = password::from_file(&f.file).with_context(|| {
                format!(
                    "cannot read the password file {} (given to --password-file)",
                    f.file.display()
                )
            })?;
            match &f.node {
                Some(node) => per_node.push((node.clone(), p)),
                None => any = Some(p),
            }
        }
        if any.is_none() {
            any = password::client_from_env()?;
        }
        Ok(Passwords {
            per_node,
            any,
            typed: Mutex::new(HashMap::new()),
            prompt: true,
        })
    }

    /// The same passwords, never asked for on the terminal (a node without one is then a
    /// [`NoPassword`] error).
    pub fn without_prompt(mut self) -> Passwords {
        self.prompt = false;
        self
    }

    /// The password for the node known as any of `names` (as typed, its address, its
    /// host): its own `NODE=FILE`, else the one for any node, else asked on the terminal.
    pub fn for_node(&self, names: &[&str]) -> anyhow::Result<Password> {
        if let Some((_, p)) = self
            .per_node
            .iter()
            .find(|(n, _)| names.contains(&n.as_str()))
        {
            return Ok(p.clone());
        }
        if let Some(p) = &self.any {
            return Ok(p.clone());
        }
        let node = names.first().copied().unwrap_or("the node");
        if !self.prompt || !std::io::stdin().is_terminal() {
            return Err(NoPassword { node: node.into() }.into());
        }
        let mut typed = self.typed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = typed.get(node) {
            return Ok(p.clone());
        }
        let p = password::prompt(&format!("{node} password: "))
            .with_context(|| format!("cannot ask for the password of {node}"))?;
        typed.insert(node.to_owned(), p.clone());
        Ok(p)
    }

    /// Run `attempt` without a password; when the node answers "authentication required",
    /// once more proving the password of the node known as `names` (see [`Self::for_node`]).
    pub async fn retrying<T>(
        &self,
        names: &[&str],
        mut attempt: impl AsyncFnMut(Credentials) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        match attempt(Credentials::none()).await {
            Err(e) => match self.on_auth_required(names, &e) {
                Some(again) => attempt(again?).await,
                None => Err(e),
            },
            ok => ok,
        }
    }

    /// When `error` is the node asking for a password: the credentials to try once more with
    /// (the password of the node known as `names`, see [`Self::for_node`]). The rule of
    /// [`Self::retrying`], for a caller whose future must be `Send` (a task of its own), which
    /// `retrying`'s async closure does not give.
    pub fn on_auth_required(
        &self,
        names: &[&str],
        error: &anyhow::Error,
    ) -> Option<anyhow::Result<Credentials>> {
        auth_required(error).then(|| Ok(Credentials::password(self.for_node(names)?.expose())))
    }

    /// The credentials a long-lived client (a watch, a mount) proves to `addr` on every
    /// connection: a password when the node asks for one at its share's root, else none.
    /// A node down now (or silent for longer than `config`'s timeouts) gets none: the
    /// client's reconnections then say what it answers.
    pub async fn for_connections(
        &self,
        addr: &str,
        names: &[&str],
        config: PoolConfig,
    ) -> anyhow::Result<Credentials> {
        let probed = self
            .retrying(names, async |credentials| {
                let pool = Pool::with_credentials(addr, config, credentials.clone());
                pool.stat("").await?;
                Ok(credentials)
            })
            .await;
        match probed {
            Err(e) if client_error(&e).is_some_and(ClientError::is_connection) => {
                tracing::debug!(%addr, error = %e, "node not reached: no password proven yet");
                Ok(Credentials::none())
            }
            other => other,
        }
    }
}

/// The names `NODE=FILE` may give the node of `url` (as typed, its address, its host).
pub fn names<'a>(target: &'a Target, url: &'a RemotePath) -> Vec<&'a str> {
    let mut names = Vec::with_capacity(3);
    if let Target::Named { node, .. } = target {
        names.push(node.as_str());
    }
    names.push(url.addr.as_str());
    if let Some((host, _)) = url.addr.rsplit_once(':') {
        names.push(host.trim_start_matches('[').trim_end_matches(']'));
    }
    names
}

/// The client error behind `e`, through the library errors that wrap one.
pub fn client_error(e: &anyhow::Error) -> Option<&ClientError> {
    e.chain().find_map(|cause| {
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return Some(c);
        }
        match cause.downcast_ref::<AssignError>() {
            Some(AssignError::Client(c)) => return Some(c),
            Some(_) => return None,
            None => {}
        }
        match cause.downcast_ref::<TransferError>() {
            Some(TransferError::Remote(c)) => Some(c),
            _ => None,
        }
    })
}

/// True when the node answered "authentication required" (code 8).
pub fn auth_required(e: &anyhow::Error) -> bool {
    client_error(e).and_then(ClientError::remote_code) == Some(Code::AuthRequired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_values() {
        let f: PasswordFile = "/etc/pw".parse().unwrap();
        assert_eq!((f.node, f.file), (None, PathBuf::from("/etc/pw")));
        let f: PasswordFile = "cam1=pw.txt".parse().unwrap();
        assert_eq!(f.node.as_deref(), Some("cam1"));
        assert_eq!(f.file, PathBuf::from("pw.txt"));
        let f: PasswordFile = "10.0.0.7:4044=/a/b".parse().unwrap();
        assert_eq!(f.node.as_deref(), Some("10.0.0.7:4044"));
        // A `=` inside a path is part of the file name.
        let f: PasswordFile = "./a=b".parse().unwrap();
        assert_eq!((f.node, f.file), (None, PathBuf::from("./a=b")));
        assert!("cam1=".parse::<PasswordFile>().is_err());
        assert!("".parse::<PasswordFile>().is_err());
    }
}
