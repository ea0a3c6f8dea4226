//! `meshfs node --retain AGE --keep-free PERCENT|SIZE --max-size SIZE --protect GLOB
//! --dry-run`: the node's retention flags, turned into core's [`Rules`] and started.
//!
//! Retention always runs, rules or not: it is also what measures the disk, so that a full
//! disk is logged and announced (`hello` says `disk=full`) while the node keeps serving.

use std::sync::Arc;
use std::time::Duration;

use meshfs_core::Share;
use meshfs_core::events::Events;
use meshfs_core::retention::{self, Deletion, Glob, Limit, Retention, Rules};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(clap::Args, Debug, Clone)]
#[command(
    next_help_heading = "Retention (oldest complete files first; never open, recent or protected ones)"
)]
pub struct RetainArgs {
    /// Delete files last modified longer ago than AGE (e.g. 7d, 36h).
    #[arg(long, value_name = "AGE", value_parser = retention::parse_age)]
    pub retain: Option<Duration>,
    /// Delete the oldest files while the disk has less free than this (e.g. 10%, 2G).
    #[arg(long, value_name = "PERCENT|SIZE")]
    pub keep_free: Option<Limit>,
    /// Delete the oldest files while the share holds more than SIZE (e.g. 500G).
    #[arg(long, value_name = "SIZE", value_parser = retention::parse_size)]
    pub max_size: Option<u64>,
    /// Never delete files matching GLOB (repeat for more): `keep/**` (a path in the share),
    /// `*.keep` (a name in any folder).
    #[arg(long, value_name = "GLOB")]
    pub protect: Vec<Glob>,
    /// Print what retention would delete (`retention would delete PATH (RULE, BYTES bytes)`),
    /// delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How often retention checks, besides whenever a file is closed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub retain_every: Duration,
}

impl RetainArgs {
    /// The share's retention under these flags (`events`: the share's log, when watched).
    pub fn retention(&self, share: &Share, events: Option<Events>) -> Retention {
        let rules = Rules {
            retain: self.retain,
            keep_free: self.keep_free,
            max_size: self.max_size,
            protect: self.protect.clone(),
            dry_run: self.dry_run,
            every: self.retain_every,
            ..Rules::default()
        };
        if rules.any() {
            tracing::info!(?rules, "retention on");
        } else if self.dry_run || !self.protect.is_empty() {
            tracing::warn!("--dry-run/--protect without --retain, --keep-free or --max-size");
        }
        Retention::new(share.clone(), events, rules)
    }
}

/// Start checking: now, on the timer and after every closed file. Dry runs print each file
/// that would go on stdout, once.
pub fn start(retention: &Retention, shutdown: CancellationToken, tracker: &TaskTracker) {
    let report = Arc::new(|d: &Deletion| {
        if d.dry_run {
            println!(
                "retention would delete {} ({}, {} bytes)",
                d.path, d.rule, d.bytes
            );
        }
    });
    retention.start(report, shutdown, tracker);
}
