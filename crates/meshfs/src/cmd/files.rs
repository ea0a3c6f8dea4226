//! `meshfs ls`, `meshfs stat` and `meshfs cat`: look at remote files.

use anyhow::Context;
use meshfs_core::proto::Code;
use meshfs_core::{Client, Credentials, Entry, Kind, RemotePath};

use super::client::{ClientArgs, Passwords};
use super::target::Target;
use tokio::io::AsyncWriteExt;

/// Deepest folder `ls -R` descends into (a symlink loop inside a share ends here).
const MAX_DEPTH: usize = 64;

#[derive(clap::Args)]
#[command(after_help = "\
Output: `MODE SIZE DATE NAME`, folders ending in `/`; with -R the NAME is the path below the
folder listed. With --json, one array of objects with the fields
  path, name, type (\"file\" or \"dir\"), size, modified (RFC 3339, UTC), mode (\"-rw-r--r--\").

Examples:
  meshfs ls meshfs://cam2.local/clips
  meshfs ls -R cam2:                        every file of node cam2, found by name on the LAN
  meshfs ls --json 10.0.0.7:4044/ | jq -r '.[] | select(.type==\"file\") | .path'")]
pub struct LsArgs {
    /// Folder to list: meshfs://HOST[:PORT]/PATH, HOST:PORT/PATH or NAME:PATH.
    pub url: Target,
    /// List the folders inside, and theirs, too.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Print JSON (fields above) instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(clap::Args)]
#[command(after_help = "\
Output: the lines `size: BYTES`, `modified: RFC 3339`, `mode: -rw-r--r--`, `type: file|dir`.
With --json one object: path, name, type, size, modified, mode (as `meshfs ls --json`).

Examples:
  meshfs stat meshfs://cam2.local/clips/a.mp4
  meshfs stat meshfs://cam2.local/           the share itself")]
pub struct StatArgs {
    /// File or folder: meshfs://HOST[:PORT]/PATH, HOST:PORT/PATH or NAME:PATH.
    pub url: Target,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(clap::Args)]
pub struct CatArgs {
    /// File to print: meshfs://HOST[:PORT]/PATH, HOST:PORT/PATH or NAME:PATH.
    pub url: Target,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What a command names, and the passwords it may prove there.
async fn prepare(target: &Target, client: &ClientArgs) -> anyhow::Result<(RemotePath, Passwords)> {
    let passwords = client.passwords()?;
    Ok((client.resolve(target).await?, passwords))
}

/// Run `request` on a connection to the node `url` names (for a cluster master, to the worker
/// it assigns), proving the node's password if it asks for one.
pub(super) async fn with_client<T>(
    target: &Target,
    url: &RemotePath,
    passwords: &Passwords,
    mut request: impl AsyncFnMut(&mut Client) -> Result<T, meshfs_core::ClientError>,
) -> anyhow::Result<(Client, T)> {
    passwords
        .retrying(
            &super::client::names(target, url),
            async |credentials: Credentials| {
                let (_, mut client) = meshfs_cluster::follow(url, &credentials).await?;
                let value = request(&mut client).await?;
                Ok((client, value))
            },
        )
        .await
}

pub async fn ls(args: LsArgs) -> anyhow::Result<()> {
    let (url, passwords) = prepare(&args.url, &args.client).await?;
    let path = url.path.clone();
    let (mut client, first) = with_client(&args.url, &url, &passwords, async |c| {
        match c.ls(&path).await {
            // `ls` of a file shows that file, as ls(1) does.
            Err(e) if e.remote_code() == Some(Code::NotAFile) => Ok(vec![c.stat(&path).await?]),
            other => other,
        }
    })
    .await
    .with_context(|| format!("cannot list {url}"))?;
    let listed = walk(&mut client, &url, first, args.recursive).await?;
    let out = if args.json {
        let all: Vec<_> = listed.iter().map(|(p, e)| entry_json(p, e)).collect();
        format!("{}\n", serde_json::Value::Array(all))
    } else {
        let mut out = String::new();
        for (rel, e) in &listed {
            out.push_str(&format_entry(rel, e));
            out.push('\n');
        }
        out
    };
    print!("{out}");
    Ok(())
}

/// The entries of a folder `first` lists, with their paths below `url`; with `recursive`, the
/// folders inside too, depth-first in the node's order. Bounded: at most
/// [`MAX_ENTRIES`](meshfs_core::client::MAX_ENTRIES) entries, [`MAX_DEPTH`] levels.
pub(super) async fn walk(
    client: &mut Client,
    url: &RemotePath,
    first: Vec<Entry>,
    recursive: bool,
) -> anyhow::Result<Vec<(String, Entry)>> {
    let mut listed: Vec<(String, Entry)> = Vec::new();
    // Depth-first, in the node's order: (prefix, entries) still to print.
    let mut todo = vec![(String::new(), first, 0usize)];
    while let Some((prefix, entries, depth)) = todo.pop() {
        let mut below = Vec::new();
        for e in entries {
            let rel = format!("{prefix}{}", e.name);
            if recursive && e.kind == Kind::Dir {
                below.push(rel.clone());
            }
            listed.push((rel, e));
            anyhow::ensure!(
                listed.len() <= meshfs_core::client::MAX_ENTRIES,
                "{url} holds more than {} entries: list a folder inside it",
                meshfs_core::client::MAX_ENTRIES
            );
        }
        if depth >= MAX_DEPTH {
            anyhow::ensure!(
                below.is_empty(),
                "{url}: folders nested deeper than {MAX_DEPTH} (a symlink loop?)"
            );
        }
        // Reversed, so the first folder is listed next.
        for rel in below.into_iter().rev() {
            let dir = join(&url.path, &rel);
            let entries = client
                .ls(&dir)
                .await
                .with_context(|| format!("cannot list meshfs://{}/{dir}", url.addr))?;
            todo.push((format!("{rel}/"), entries, depth + 1));
        }
    }
    Ok(listed)
}

/// `dir/rel` without doubled or leading slashes.
pub(super) fn join(dir: &str, rel: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        rel.to_owned()
    } else {
        format!("{dir}/{rel}")
    }
}

/// `-rw-r--r--  1048576  2026-11-21 10:00:00  name` (folders end with `/`).
fn format_entry(name: &str, e: &Entry) -> String {
    let date = humantime::format_rfc3339_seconds(e.modified()).to_string();
    let date = date.trim_end_matches('Z').replacen('T', " ", 1);
    let slash = if e.kind == Kind::Dir { "/" } else { "" };
    format!("{} {:>12} {} {name}{slash}", e.mode_string(), e.size, date)
}

/// The JSON of one entry (the field names `ls --json` and `stat --json` document).
fn entry_json(path: &str, e: &Entry) -> serde_json::Value {
    serde_json::json!({
        "path": path,
        "name": e.name,
        "type": if e.kind == Kind::Dir { "dir" } else { "file" },
        "size": e.size,
        "modified": humantime::format_rfc3339_seconds(e.modified()).to_string(),
        "mode": e.mode_string(),
    })
}

pub async fn stat(args: StatArgs) -> anyhow::Result<()> {
    let (url, passwords) = prepare(&args.url, &args.client).await?;
    let path = url.path.clone();
    let (_, e) = with_client(&args.url, &url, &passwords, async |c| c.stat(&path).await)
        .await
        .with_context(|| format!("cannot stat {url}"))?;
    if args.json {
        println!("{}", entry_json(&url.path, &e));
        return Ok(());
    }
    println!("size: {}", e.size);
    println!(
        "modified: {}",
        humantime::format_rfc3339_seconds(e.modified())
    );
    println!("mode: {}", e.mode_string());
    println!("type: {}", if e.kind == Kind::Dir { "dir" } else { "file" });
    Ok(())
}

pub async fn cat(args: CatArgs) -> anyhow::Result<()> {
    let (url, passwords) = prepare(&args.url, &args.client).await?;
    const CHUNK: u64 = 1 << 20;
    let path = url.path.clone();
    let (client, ()) = with_client(&args.url, &url, &passwords, async |c| c.open(&path).await)
        .await
        .with_context(|| format!("cannot read {url}"))?;
    // Bulk bytes from here on: over TLS, meshfs opens the records itself (large socket reads,
    // decryption in place), as `get` and the mount do.
    let mut client = client
        .hand_over_records()
        .await
        .with_context(|| format!("cannot read {url}"))?;
    let mut stdout = tokio::io::stdout();
    let mut buf = Vec::with_capacity(CHUNK as usize);
    // Keep one read in flight while the previous chunk is written out.
    client.send(&format!("read {CHUNK}"));
    loop {
        client.send(&format!("read {CHUNK}"));
        buf.clear();
        let n = client.data_header(CHUNK).await?;
        if n == 0 {
            // Drain the one extra read still in flight.
            client.data_header(CHUNK).await?;
            break;
        }
        client.payload_into(n, &mut buf).await?;
        if let Err(e) = stdout.write_all(&buf).await {
            // A closed pipe (`meshfs cat … | head`) is a normal way to stop.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
    }
    stdout.flush().await?;
    Ok(())
}
