//! `meshfs get`: download with a progress bar, resume and verification, from one node or
//! from every node that holds the same file (`--from`, `--discover`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use meshfs_core::transfer::{
    self, DownloadOptions, Ending, Outcome, Progress, Source, SourceReport, SourceState, Sources,
    TransferError,
};
use meshfs_core::{NodeAddr, RemotePath};

mod discover;

#[derive(clap::Args)]
#[command(after_help = "\
The download is written to DEST.part and renamed to DEST only once complete and verified.
A dropped connection is retried by itself (--retries), resuming. If it is interrupted anyway
(crash, kill -9), run the same command again: it continues where it stopped, or starts over if
the remote file changed (a file that only grew, a recording, is continued).

A file still being written (a camera recording) is copied as it was when the download started,
verified against the node's hash of that length; --follow keeps fetching until the node reports
the file closed. The last line says which was saved.

With --from NODE (repeatable), or --discover (the default for NAME:PATH), the file is fetched
from several nodes at once in 1 MiB blocks, favouring the fast ones. The first node's BLAKE3 of
the file names the version, and every block is checked against it as it arrives: a node whose
first block does not match holds another version and is not used; one that sends a wrong block
later is dropped and named. A node that vanishes leaves its
blocks to the others; one that appears on the LAN group meanwhile is used. An interrupted
download resumes with any set of sources.")]
pub struct Args {
    /// File to download, e.g. meshfs://cam2.local/clips/a.mp4, or NAME:PATH (cam2:clips/a.mp4)
    pub url: super::target::Target,
    /// Where to write it (default: the file's name, in the current folder; a folder: inside it).
    pub dest: Option<PathBuf>,
    /// Do not check the copy against the node's BLAKE3 (a download from one node then hashes
    /// nothing; the blocks of a multi-source download are still checked as they arrive).
    #[arg(long)]
    pub no_verify: bool,
    /// fsync the file before the final rename.
    #[arg(long)]
    pub sync: bool,
    /// Give up when the node sends nothing for this long (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Cap the bandwidth, in bytes per second (suffixes K, M, G: 500K, 20M).
    #[arg(long, value_parser = parse_rate)]
    pub limit_rate: Option<u64>,
    /// Keep fetching a file that is still being written until the node reports it closed
    /// (or it stays unchanged for --timeout).
    #[arg(long)]
    pub follow: bool,
    /// Replace DEST if it already exists (by default get refuses).
    #[arg(long)]
    pub force: bool,
    /// Retry a dropped connection this many times (back-off 0.5 s doubling to 8 s), resuming.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// URL is a folder: download it and the folders inside, file by file (resumable; files
    /// already here and verified are skipped; a summary at the end).
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Also fetch the same path from NODE (a name, HOST or HOST:PORT), in parallel, if it
    /// holds the same version (BLAKE3). Repeatable.
    #[arg(long, value_name = "NODE")]
    pub from: Vec<NodeAddr>,
    /// Look for more sources on the LAN group and DNS-SD while downloading: nodes holding the
    /// same version of the same path are used. The default for NAME:PATH.
    #[arg(long, overrides_with = "no_discover")]
    pub discover: bool,
    /// Use only the nodes named (the URL and --from).
    #[arg(long)]
    pub no_discover: bool,
    #[command(flatten)]
    pub client: super::client::ClientArgs,
}

/// `20M` → 20,000,000 bytes per second (decimal, as curl's --limit-rate).
pub(crate) fn parse_rate(s: &str) -> Result<u64, String> {
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1_000),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1_000_000),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => n
            .checked_mul(mult)
            .ok_or_else(|| format!("{s:?} is more bytes per second than can be counted")),
        _ => Err(format!("{s:?} is not a rate like 500K or 20M")),
    }
}

/// Draws the bar on a terminal; indicatif hides it when stderr is not one. Tells on stderr
/// what becomes of the sources (the addresses given by the user, the others found).
struct Bar(ProgressBar, Vec<String>);

impl Progress for Bar {
    fn start(&self, total: u64, already: u64) {
        self.0.set_length(total);
        self.0.set_position(already);
        self.0.reset_eta();
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn retry(&self, error: &TransferError, attempt: u32, max: u32, delay: std::time::Duration) {
        // On stderr, with or without a terminal: the user is told a retry happens.
        self.0.suspend(|| {
            eprintln!(
                "{error}; retrying in {:.1} s (retry {attempt} of {max}), resuming",
                delay.as_secs_f64()
            )
        });
    }
    fn source(&self, report: &SourceReport) {
        // A node found on the LAN without the file is no news.
        if matches!(report.state, SourceState::NotUsed(_))
            && self.1.iter().all(|given| given != &report.source)
        {
            tracing::debug!("{report}");
            return;
        }
        self.0.suspend(|| eprintln!("{report}"));
    }
}

fn destination(url: &RemotePath, dest: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let name = url
        .file_name()
        .with_context(|| format!("{url} names no file"))?;
    Ok(match dest {
        Some(d) if d.is_dir() => d.join(name),
        Some(d) => d,
        None => Path::new(name).to_owned(),
    })
}

pub async fn run(mut args: Args) -> anyhow::Result<()> {
    if args.recursive {
        return super::get_tree::run(args).await;
    }
    let passwords = args.client.passwords()?;
    let url = args.client.resolve(&args.url).await?;
    let dest = destination(&url, args.dest.take())?;
    // A cluster master's URL leads to the worker it assigns (seed 002); a protected node
    // asks for its password there.
    let names = super::client::names(&args.url, &url);
    let (url, credentials) = source_for(&passwords, &names, &url)
        .await
        .with_context(|| format!("cannot download {url}"))?;
    let mut known = vec![Source {
        path: url.clone(),
        credentials: credentials.clone(),
    }];
    let mut given = vec![url.addr.clone()];
    for node in &args.from {
        let node = args.client.lookup.node(node).await?;
        let other = RemotePath::new(&node, &url.path);
        given.push(other.addr.clone());
        let typed = node.to_string();
        match source_for(&passwords, &[typed.as_str()], &other).await {
            Ok((path, credentials)) => known.push(Source { path, credentials }),
            Err(e) => eprintln!("not using {}: {}", other.addr, crate::error_text(&e)),
        }
    }
    let discover = args.discover
        || (!args.no_discover && matches!(args.url, super::target::Target::Named { .. }));
    let opts = args.options(credentials);
    let stop = tokio_util::sync::CancellationToken::new();
    let more = match discover {
        false => None,
        true => {
            let (candidates, more) = discover::Candidates::new(&url.path, args.client.passwords()?);
            discover::cluster_peers(&candidates, &known);
            match discover::lan(&args.client.lookup, &candidates, &stop) {
                Ok(()) => {}
                Err(e) if args.discover => return Err(e),
                // Found by name (through DNS-SD, say) while the group cannot be joined: the
                // named node and its cluster peers still serve.
                Err(e) => tracing::warn!("{}", crate::error_text(&e)),
            }
            Some(more)
        }
    };
    // Decimal units in the bar and in the summary alike (MB/s, as curl).
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{bar:40} {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    let sources = Sources { known, more };
    let outcome = transfer::download_from(sources, &dest, &opts, &Bar(bar.clone(), given)).await;
    stop.cancel();
    bar.finish_and_clear();
    let outcome = outcome.with_context(|| format!("cannot download {url}"))?;
    report(&outcome, &dest);
    Ok(())
}

/// The file `url` names as a source: a cluster master's URL leads to the worker it assigns,
/// and a node that asks for a password gets it (from `names`' `--password-file`, …). Its
/// future is `Send`, for discovery's tasks: hence not `Passwords::retrying`, but its rule.
async fn source_for(
    passwords: &super::client::Passwords,
    names: &[&str],
    url: &RemotePath,
) -> anyhow::Result<(RemotePath, meshfs_core::Credentials)> {
    let attempt = |credentials: meshfs_core::Credentials| async move {
        let (url, mut client) = meshfs_cluster::follow(url, &credentials).await?;
        client.stat(&url.path).await?;
        Ok::<_, anyhow::Error>((url, credentials))
    };
    match attempt(meshfs_core::Credentials::none()).await {
        Err(e) => match passwords.on_auth_required(names, &e) {
            Some(again) => attempt(again?).await,
            None => Err(e),
        },
        ok => ok,
    }
}

/// What happened, on stdout: resume, restart, retries, the amount and rate, and what was
/// saved (the whole file, a snapshot of one still being written, or a followed recording).
fn report(outcome: &Outcome, dest: &Path) {
    report_sources(&outcome.sources);
    if outcome.resumed_from > 0 && outcome.sources.is_empty() {
        println!("resumed at byte {}", outcome.resumed_from);
    } else if outcome.resumed_from > 0 {
        // Blocks anywhere in the file, verified again from disk.
        println!(
            "kept {} verified bytes from the last attempt",
            outcome.resumed_from
        );
    }
    if let Some(why) = outcome.restarted {
        println!("{why}: started over");
    }
    if outcome.retries > 0 {
        println!(
            "the connection dropped: {} retr{} needed",
            outcome.retries,
            if outcome.retries == 1 {
                "y was"
            } else {
                "ies were"
            }
        );
    }
    let secs = outcome.elapsed.as_secs_f64();
    println!(
        "{} bytes received in {secs:.2} seconds ({:.1} MB/s)",
        outcome.received,
        outcome.received as f64 / secs.max(1e-9) / 1e6
    );
    if outcome.duplicate > 0 {
        println!(
            "and {} bytes received twice, not counted above: blocks two sources raced for at \
             the end (the second copy is not used)",
            outcome.duplicate
        );
    }
    let size = outcome.size;
    let what = match outcome.ending {
        Ending::Complete => String::new(),
        Ending::Snapshot { now } => format!(
            ": a snapshot, the file is still being written (now {now} bytes); \
             --follow fetches it until it is closed"
        ),
        Ending::Closed => ": followed until the node reported the file closed".to_owned(),
        Ending::Idle(after) => format!(
            ": followed until it stayed unchanged for {}, not closed",
            humantime::format_duration(after)
        ),
    };
    println!("saved {} ({size} bytes){what}", dest.display());
}

impl Args {
    /// The one-file download's options these flags ask for.
    pub(super) fn options(&self, credentials: meshfs_core::Credentials) -> DownloadOptions {
        DownloadOptions {
            credentials,
            verify: !self.no_verify,
            sync: self.sync,
            rate_limit: self.limit_rate,
            io_timeout: self.timeout,
            follow: self.follow,
            no_clobber: !self.force,
            retries: self.retries,
            ..DownloadOptions::default()
        }
    }
}

/// Each source's share of the bytes it brought, and those dropped, lost or not used.
fn report_sources(sources: &[SourceReport]) {
    let total: u64 = sources.iter().map(|s| s.bytes).sum();
    for s in sources {
        if matches!(
            s.state,
            SourceState::Used | SourceState::Lost(_) | SourceState::Dropped { .. }
        ) {
            println!(
                "from {}: {} bytes ({:.1} %)",
                s.source,
                s.bytes,
                s.bytes as f64 * 100.0 / total.max(1) as f64
            );
        }
        // A source not used was said as it happened, once.
        if matches!(s.state, SourceState::Lost(_) | SourceState::Dropped { .. }) {
            println!("{s}");
        }
    }
}
