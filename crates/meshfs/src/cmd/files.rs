//! `meshfs ls`, `meshfs stat` and `meshfs cat`: look at remote files.

use anyhow::Context;
use meshfs_core::proto::Code;
use meshfs_core::{Client, Entry, Kind, RemotePath};

use super::target::{Lookup, Target};
use tokio::io::AsyncWriteExt;

#[derive(clap::Args)]
pub struct LsArgs {
    /// Folder to list, e.g. meshfs://cam2.local/clips (or NAME:PATH)
    pub url: Target,
    #[command(flatten)]
    pub lookup: Lookup,
}

#[derive(clap::Args)]
pub struct StatArgs {
    /// File or folder, e.g. meshfs://cam2.local/clips/a.mp4 (or NAME:PATH)
    pub url: Target,
    #[command(flatten)]
    pub lookup: Lookup,
}

#[derive(clap::Args)]
pub struct CatArgs {
    /// File to print, e.g. meshfs://cam2.local/notes.txt (or NAME:PATH)
    pub url: Target,
    #[command(flatten)]
    pub lookup: Lookup,
}

/// Connect to the node `url` names or, for a cluster master, to the worker it assigns.
async fn connect(url: &RemotePath) -> anyhow::Result<Client> {
    let (_, client) = meshfs_cluster::follow(url).await?;
    Ok(client)
}

pub async fn ls(args: LsArgs) -> anyhow::Result<()> {
    let url = args.lookup.resolve(&args.url).await?;
    let mut client = connect(&url).await?;
    let entries = match client.ls(&url.path).await {
        // `ls` of a file shows that file, as ls(1) does.
        Err(e) if e.remote_code() == Some(Code::NotAFile) => {
            vec![client.stat(&url.path).await?]
        }
        other => other.with_context(|| url.to_string())?,
    };
    let mut out = String::new();
    for e in &entries {
        out.push_str(&format_entry(e));
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

/// `-rw-r--r--  1048576  2026-11-21 10:00:00  name` (folders end with `/`).
fn format_entry(e: &Entry) -> String {
    let date = humantime::format_rfc3339_seconds(e.modified()).to_string();
    let date = date.trim_end_matches('Z').replacen('T', " ", 1);
    let slash = if e.kind == Kind::Dir { "/" } else { "" };
    format!(
        "{} {:>12} {} {}{slash}",
        e.mode_string(),
        e.size,
        date,
        e.name
    )
}

pub async fn stat(args: StatArgs) -> anyhow::Result<()> {
    let url = args.lookup.resolve(&args.url).await?;
    let mut client = connect(&url).await?;
    let e = client
        .stat(&url.path)
        .await
        .with_context(|| url.to_string())?;
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
    let url = args.lookup.resolve(&args.url).await?;
    const CHUNK: u64 = 1 << 20;
    let mut client = connect(&url).await?;
    client
        .open(&url.path)
        .await
        .with_context(|| url.to_string())?;
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
