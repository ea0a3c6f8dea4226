//! `meshfs get`: download with a progress bar, resume and verification.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use meshfs_core::RemotePath;
use meshfs_core::transfer::{self, DownloadOptions, Ending, Outcome, Progress, TransferError};

#[derive(clap::Args)]
#[command(after_help = "\
The download is written to DEST.part and renamed to DEST only once complete and verified.
A dropped connection is retried by itself (--retries), resuming. If it is interrupted anyway
(crash, kill -9), run the same command again: it continues where it stopped, or starts over if
the remote file changed (a file that only grew, a recording, is continued).

A file still being written (a camera recording) is copied as it was when the download started,
verified against the node's hash of that length; --follow keeps fetching until the node reports
the file closed. The last line says which was saved.")]
pub struct Args {
    /// File to download, e.g. meshfs://cam2.local/clips/a.mp4, or NAME:PATH (cam2:clips/a.mp4)
    pub url: super::target::Target,
    /// Where to write it (default: the file's name, in the current folder; a folder: inside it).
    pub dest: Option<PathBuf>,
    /// Skip the final BLAKE3 comparison with the node's `hash`.
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

/// Draws the bar on a terminal; indicatif hides it when stderr is not one.
struct Bar(ProgressBar);

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
    let passwords = args.client.passwords()?;
    let url = args.client.resolve(&args.url).await?;
    let dest = destination(&url, args.dest.take())?;
    // A cluster master's URL leads to the worker it assigns (seed 002); a protected node
    // asks for its password there.
    let (url, credentials) = passwords
        .retrying(
            &super::client::names(&args.url, &url),
            async |credentials| {
                let (url, mut client) = meshfs_cluster::follow(&url, &credentials).await?;
                client.stat(&url.path).await?;
                Ok((url, credentials))
            },
        )
        .await
        .with_context(|| format!("cannot download {url}"))?;
    let opts = DownloadOptions {
        credentials,
        verify: !args.no_verify,
        sync: args.sync,
        rate_limit: args.limit_rate,
        io_timeout: args.timeout,
        follow: args.follow,
        no_clobber: !args.force,
        retries: args.retries,
        ..DownloadOptions::default()
    };
    // Decimal units in the bar and in the summary alike (MB/s, as curl).
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{bar:40} {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    let outcome = transfer::download(&url, &dest, &opts, &Bar(bar.clone())).await;
    bar.finish_and_clear();
    let outcome = outcome.with_context(|| format!("cannot download {url}"))?;
    report(&outcome, &dest);
    Ok(())
}

/// What happened, on stdout: resume, restart, retries, the amount and rate, and what was
/// saved (the whole file, a snapshot of one still being written, or a followed recording).
fn report(outcome: &Outcome, dest: &Path) {
    if outcome.resumed_from > 0 {
        println!("resumed at byte {}", outcome.resumed_from);
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
