//! `meshfs get -r`: a remote folder, file by file, each through the one-file download
//! ([`transfer::download`]: `.part`, resume, retries, BLAKE3), with one summary at the end.
//!
//! Run again after an interruption, it continues: a file already here whose BLAKE3 equals the
//! node's is skipped ("up to date"), an interrupted one resumes from its `.part`, and any other
//! existing file is refused unless `--force`, as `get` refuses for one file. Names come from the
//! node and are checked before anything is written: one that could leave the destination
//! (`..`, a `/`, a NUL) is refused and counted as failed, never followed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use meshfs_core::proto::Code;
use meshfs_core::transfer::{self, Progress, TransferError};
use meshfs_core::{Client, Credentials, Entry, Kind, RemotePath};

use super::files::{join, walk};
use super::get::Args;

/// Decimal units, as `get`'s bar and summary (MB/s).
const BAR_TEMPLATE: &str =
    "{bar:40} {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} eta {eta}";

/// What became of one file.
enum Fate {
    Fetched { received: u64, resumed: bool },
    UpToDate,
    Failed(String),
}

pub async fn run(mut args: Args) -> anyhow::Result<()> {
    let passwords = args.client.passwords()?;
    let url = args.client.resolve(&args.url).await?;
    let names = super::client::names(&args.url, &url);
    // The folder's listing, on the node a cluster master assigns, with its password if asked.
    let (root, credentials, listed) = passwords
        .retrying(&names, async |credentials: Credentials| {
            let (root, mut client) = meshfs_cluster::follow(&url, &credentials).await?;
            let first = match client.ls(&root.path).await {
                Err(e) if e.remote_code() == Some(Code::NotAFile) => {
                    anyhow::bail!("{url} is a file: drop -r to download it (-r takes a folder)")
                }
                other => other?,
            };
            let listed = walk(&mut client, &root, first, true).await?;
            Ok((root, credentials, listed))
        })
        .await
        .with_context(|| format!("cannot download {url}"))?;
    let dest = destination(&root, args.dest.take())?;
    let opts = args.options(credentials.clone());
    let total: u64 = listed.iter().map(|(_, e)| file_size(e)).sum();
    let bar = TreeBar::new(total);
    let mut client = meshfs_cluster::follow(&root, &credentials).await?.1;

    let (mut fetched, mut received, mut resumed, mut current, mut failed) = (0, 0, 0, 0, 0);
    for (rel, entry) in &listed {
        let fate = match safe_local(&dest, rel) {
            Err(why) => Fate::Failed(why),
            Ok(local) if entry.kind == Kind::Dir => match std::fs::create_dir_all(&local) {
                Ok(()) => continue,
                Err(e) => Fate::Failed(format!("cannot create {}: {e}", local.display())),
            },
            Ok(local) => {
                let remote = RemotePath {
                    addr: root.addr.clone(),
                    path: join(&root.path, rel),
                };
                bar.next_file();
                fetch(&mut client, &remote, &local, entry, &opts, &bar, args.force).await
            }
        };
        match fate {
            Fate::Fetched {
                received: n,
                resumed: r,
            } => {
                fetched += 1;
                received += n;
                resumed += u32::from(r);
            }
            Fate::UpToDate => current += 1,
            Fate::Failed(why) => {
                failed += 1;
                bar.0.suspend(|| eprintln!("{rel}: {why}"));
            }
        }
    }
    bar.0.finish_and_clear();
    let files = listed.iter().filter(|(_, e)| e.kind == Kind::File).count();
    println!(
        "{files} files in {}: {fetched} downloaded ({received} bytes{}), {current} up to date, \
         {failed} failed",
        dest.display(),
        if resumed > 0 {
            format!(", {resumed} resumed")
        } else {
            String::new()
        },
    );
    anyhow::ensure!(
        failed == 0,
        "{failed} of {files} files of {url} were not downloaded (said above); run the same \
         command again to retry them"
    );
    Ok(())
}

fn file_size(e: &Entry) -> u64 {
    if e.kind == Kind::File { e.size } else { 0 }
}

/// One file: skipped when already here and verified, refused when something else is here
/// (unless `force`), else downloaded (resuming its `.part`).
async fn fetch(
    client: &mut Client,
    remote: &RemotePath,
    local: &Path,
    entry: &Entry,
    opts: &transfer::DownloadOptions,
    bar: &TreeBar,
    force: bool,
) -> Fate {
    if let Some(parent) = local.parent()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        return Fate::Failed(format!("cannot create {}: {e}", parent.display()));
    }
    if local.exists() {
        match same_as_remote(client, remote, local, entry).await {
            Ok(true) => {
                bar.0.inc(entry.size);
                return Fate::UpToDate;
            }
            Ok(false) if !force => {
                return Fate::Failed(format!(
                    "{} exists and differs from the node's: --force replaces it",
                    local.display()
                ));
            }
            Ok(false) => {}
            Err(e) => return Fate::Failed(crate::error_text(&e)),
        }
    }
    let opts = transfer::DownloadOptions {
        no_clobber: false,
        ..opts.clone()
    };
    match transfer::download(remote, local, &opts, bar).await {
        Ok(o) => Fate::Fetched {
            received: o.received,
            resumed: o.resumed_from > 0,
        },
        Err(e) => Fate::Failed(crate::error_text(&anyhow::Error::from(e))),
    }
}

/// Does the local file hold the node's version (same size, same BLAKE3)?
async fn same_as_remote(
    client: &mut Client,
    remote: &RemotePath,
    local: &Path,
    entry: &Entry,
) -> anyhow::Result<bool> {
    let size = std::fs::metadata(local)
        .with_context(|| format!("cannot read {}", local.display()))?
        .len();
    if size != entry.size {
        return Ok(false);
    }
    let theirs = client
        .hash(&remote.path)
        .await
        .with_context(|| format!("cannot ask {remote} for its BLAKE3"))?;
    let path = local.to_owned();
    let ours = tokio::task::spawn_blocking(move || -> io::Result<blake3::Hash> {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(&path)?)?;
        Ok(hasher.finalize())
    })
    .await?
    .with_context(|| format!("cannot read {}", local.display()))?;
    Ok(ours.to_hex().as_str() == theirs)
}

/// Where the folder goes: DEST (an existing folder: the remote folder's name inside it), else
/// the remote folder's name here. The share's root has no name: it needs a DEST.
fn destination(root: &RemotePath, dest: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let name = root.file_name();
    Ok(match (dest, name) {
        (Some(d), Some(name)) if d.is_dir() => d.join(name),
        (Some(d), _) => d,
        (None, Some(name)) => PathBuf::from(name),
        (None, None) => anyhow::bail!(
            "{root} is the share's root, which has no name: give a DEST folder to put it in"
        ),
    })
}

/// `dest/rel`, for a path the node gave; refused when a component could leave `dest`.
fn safe_local(dest: &Path, rel: &str) -> Result<PathBuf, String> {
    let mut local = dest.to_owned();
    for part in rel.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\0') {
            return Err(format!(
                "the node sent the name {rel:?}, which could leave {}: not written",
                dest.display()
            ));
        }
        local.push(part);
    }
    Ok(local)
}

/// One bar over the whole folder: the bytes of the files done, plus the current file's.
struct TreeBar(ProgressBar, AtomicU64);

impl TreeBar {
    fn new(total: u64) -> TreeBar {
        let bar = ProgressBar::new(total)
            .with_style(ProgressStyle::with_template(BAR_TEMPLATE).expect("valid template"));
        TreeBar(bar, AtomicU64::new(0))
    }

    /// A file starts: what the bar shows now is the base of its progress.
    fn next_file(&self) {
        self.1.store(self.0.position(), Ordering::Relaxed);
    }
}

impl Progress for TreeBar {
    fn start(&self, _total: u64, already: u64) {
        self.0
            .set_position(self.1.load(Ordering::Relaxed) + already);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn retry(&self, error: &TransferError, attempt: u32, max: u32, delay: std::time::Duration) {
        let secs = delay.as_secs_f64();
        self.0
            .suspend(|| eprintln!("{error}; retry {attempt} of {max} in {secs:.1} s, resuming"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_destination_are_refused() {
        let dest = Path::new("/tmp/d");
        assert_eq!(
            safe_local(dest, "a/b.mp4").unwrap(),
            Path::new("/tmp/d/a/b.mp4")
        );
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a\0b",
            "",
        ] {
            assert!(safe_local(dest, bad).is_err(), "{bad:?}");
        }
    }
}
