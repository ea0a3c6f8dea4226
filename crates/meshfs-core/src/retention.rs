//! Retention: a node deletes its oldest complete recordings before the disk fills.
//!
//! The rules ([`Rules`]: `--retain AGE`, `--keep-free PERCENT|SIZE`, `--max-size SIZE`) are
//! checked on a timer and whenever a file is `closed`. Each check walks the share, sorts the
//! files oldest first (by modification time) and deletes until every rule holds: files older
//! than `--retain` all go; then, while the file system has less free than `--keep-free` or
//! the share holds more than `--max-size` (both counted in allocated bytes, as `df` and `du`
//! count them), the oldest complete file goes.
//!
//! A file is deleted only if it is *complete* — the rule, checked again right before each
//! deletion on the very folder the deletion acts on:
//! 1. no process holds it open for writing (`/proc`, see [`writers`]);
//! 2. the event log has not reported it `modified` since its last `closed` (a camera's segment
//!    being recorded), see [`writers::Writers`];
//! 3. if the log has said nothing of it since the node started (files present at start, or
//!    after a `resync`), it has not been modified for [`Rules::settle`] (a minute by default);
//! 4. its modification time has not changed since the walk saw it;
//!
//! and only if it matches no `--protect` pattern, is a regular file (a symlink is never
//! followed nor deleted: it frees nothing), and is not one of meshfs's own temporary or
//! partial files. Everything goes through [`Share`]: the folder is resolved beneath the root
//! and the name removed inside it, so nothing outside the share is ever touched.
//!
//! Each deletion is logged with its rule and announced to the event log
//! ([`Events::annotate`]), so the `deleted` event the watcher then records says
//! `retention`. With `--dry-run` nothing is deleted; each file that would go is reported once.
//! Each check also measures the disk: [`DiskStatus`] says when it is full anyway (protected or
//! open files, no rule), which `hello` reports while the node goes on serving.

pub mod disk;
pub mod rules;
pub mod writers;

use std::collections::HashSet;
#[cfg(test)]
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dir::Dir;
use crate::events::{EventKind, Events, Reason};
use crate::share::{Share, ShareError, mtime_ns};
pub use disk::{DiskStatus, DiskUsage};
pub use rules::{BadRule, Glob, Limit, Rule, Rules, parse_age, parse_size};
use writers::{Seen, Tracked};

/// Most files (and folders) one check walks; beyond it the rest waits for the next check.
const MAX_WALK: usize = 200_000;

/// Most dry-run paths remembered as already reported.
const MAX_REPORTED: usize = 100_000;

/// One file retention deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// Relative to the share.
    pub path: String,
    pub rule: Rule,
    /// Allocated bytes it held.
    pub bytes: u64,
    pub dry_run: bool,
}

/// Called for every deletion (the node prints dry runs on stdout).
pub type Report = Arc<dyn Fn(&Deletion) + Send + Sync>;

/// A file the walk found.
#[derive(Debug, Clone)]
struct Found {
    path: String,
    mtime_ns: i64,
}

/// The retention of one share. Cheap to clone.
#[derive(Clone)]
pub struct Retention {
    inner: Arc<Inner>,
}

struct Inner {
    share: Share,
    events: Option<Events>,
    rules: Rules,
    disk: DiskStatus,
    /// Replaced by the live one when [`Retention::start`] follows the events.
    writers: Mutex<Tracked>,
    /// Dry runs report each path once.
    reported: Mutex<HashSet<String>>,
}

impl Retention {
    /// Retention of `share` under `rules`; `events` is the share's own log when it is watched
    /// (without it, only open files and ages say what is being written).
    pub fn new(share: Share, events: Option<Events>, rules: Rules) -> Retention {
        Retention {
            inner: Arc::new(Inner {
                share,
                events,
                rules,
                disk: DiskStatus::default(),
                writers: Mutex::default(),
                reported: Mutex::default(),
            }),
        }
    }

    /// The disk's state, as the latest check measured it.
    pub fn disk(&self) -> DiskStatus {
        self.inner.disk.clone()
    }

    pub fn rules(&self) -> &Rules {
        &self.inner.rules
    }

    /// Check now, then on the timer and after every `closed`, until `shutdown`. The share's
    /// events are subscribed to before this returns, so none is missed.
    pub fn start(&self, report: Report, shutdown: CancellationToken, tracker: &TaskTracker) {
        let wake = Arc::new(Notify::new());
        if let Some(events) = &self.inner.events {
            let tracked = Tracked::follow(events, Some(wake.clone()), shutdown.clone(), tracker);
            *self.inner.writers.lock().unwrap_or_else(|e| e.into_inner()) = tracked;
        }
        let me = self.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(me.inner.rules.every.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                    _ = wake.notified() => {}
                }
                let (me, report) = (me.clone(), report.clone());
                let checked = tokio::task::spawn_blocking(move || {
                    let done = me.check();
                    if let Ok(done) = &done {
                        for d in done {
                            report(d);
                        }
                    }
                    done
                })
                .await;
                match checked {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "retention check failed"),
                    Err(e) => tracing::warn!(error = %e, "retention check panicked"),
                }
            }
        });
    }

    fn writers(&self) -> Tracked {
        self.inner
            .writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The share's root folder, opened beneath itself.
    fn root_dir(&self) -> Result<Dir, ShareError> {
        // The folder holding a top-level name is the root: resolved like every other folder.
        Ok(self.inner.share.parent_dir("x")?.0)
    }

    /// One check: measure the disk, delete what the rules say (or report it in a dry run),
    /// and return what went. Blocks on the file system.
    pub fn check(&self) -> Result<Vec<Deletion>, ShareError> {
        let rules = &self.inner.rules;
        let root = self.root_dir()?;
        let usage = DiskUsage::of(&root)?;
        self.note_disk(usage);
        let keep_free = rules.keep_free.map(|l| l.bytes(usage.total));
        let short_of_space = keep_free.is_some_and(|k| usage.available < k);
        if rules.retain.is_none() && rules.max_size.is_none() && !short_of_space {
            return Ok(Vec::new());
        }
        let (mut files, mut total) = self.walk()?;
        files.sort_by(|a, b| a.mtime_ns.cmp(&b.mtime_ns).then(a.path.cmp(&b.path)));
        let now = SystemTime::now();
        let now_ns = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let expired_before = rules
            .retain
            .map(|age| now_ns.saturating_sub(age.as_nanos() as i64));
        let mut available = usage.available;
        let mut open = None;
        let mut done = Vec::new();
        for file in files {
            let rule = if expired_before.is_some_and(|t| file.mtime_ns < t) {
                Rule::Age
            } else if keep_free.is_some_and(|k| available < k) {
                Rule::KeepFree
            } else if rules.max_size.is_some_and(|m| total > m) {
                Rule::MaxSize
            } else {
                // Every later file is younger: no rule wants any of them.
                break;
            };
            if rules.protected(&file.path) {
                tracing::debug!(path = %file.path, %rule, "retention: protected, kept");
                continue;
            }
            let open =
                open.get_or_insert_with(|| writers::open_for_writing(self.inner.share.root()));
            match self.delete(&file, rule, open, now_ns) {
                Ok(Some(bytes)) => {
                    available = available.saturating_add(bytes);
                    total = total.saturating_sub(bytes);
                    done.push(Deletion {
                        path: file.path,
                        rule,
                        bytes,
                        dry_run: rules.dry_run,
                    });
                }
                Ok(None) => {}
                Err(ShareError::NotFound) => {}
                Err(e) => {
                    tracing::warn!(path = %file.path, %rule, error = %e, "retention: not deleted")
                }
            }
        }
        if !done.is_empty() && !rules.dry_run {
            self.note_disk(DiskUsage::of(&root)?);
        }
        if rules.dry_run {
            let mut seen = self
                .inner
                .reported
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if seen.len() > MAX_REPORTED {
                seen.clear();
            }
            done.retain(|d| seen.insert(d.path.clone()));
        }
        Ok(done)
    }

    /// Record the disk's state, saying so when it changes.
    fn note_disk(&self, usage: DiskUsage) {
        let full = usage.is_full();
        if self.inner.disk.set_full(full) {
            if full {
                tracing::warn!(
                    available = usage.available,
                    total = usage.total,
                    "disk full: still serving, but new recordings may fail{}",
                    if self.inner.rules.any() {
                        " (what is left is protected, open or too recent)"
                    } else {
                        " (no retention rule: see --keep-free)"
                    }
                );
            } else {
                tracing::info!(available = usage.available, "disk has room again");
            }
        }
    }

    /// Every regular file of the share (never through a link), and their allocated bytes.
    fn walk(&self) -> Result<(Vec<Found>, u64), ShareError> {
        let share = &self.inner.share;
        let mut files = Vec::new();
        let mut total = 0u64;
        let mut seen = 0usize;
        let mut dirs = vec![String::new()];
        while let Some(dir) = dirs.pop() {
            let join = |name: &str| crate::share::join_path(&dir, name);
            // The folder, held open: every entry is judged (not followed) inside it.
            let folder = match share.parent_dir(&join("x")) {
                Ok((folder, _)) => folder,
                Err(e) => {
                    tracing::debug!(%dir, error = %e, "retention: folder skipped");
                    continue;
                }
            };
            let Ok(entries) = share.list(&dir) else {
                continue;
            };
            for entry in entries {
                seen += 1;
                if seen > MAX_WALK {
                    tracing::warn!("retention: more than {MAX_WALK} entries, checking the first");
                    return Ok((files, total));
                }
                let Ok(st) = folder.stat(&entry.name, false) else {
                    continue;
                };
                match st.st_mode & libc::S_IFMT {
                    libc::S_IFDIR => dirs.push(join(&entry.name)),
                    libc::S_IFREG => {
                        let bytes = (st.st_blocks as u64).saturating_mul(512);
                        total = total.saturating_add(bytes);
                        if crate::transfer::is_leftover(&entry.name) {
                            continue; // meshfs's own work in progress
                        }
                        files.push(Found {
                            path: join(&entry.name),
                            mtime_ns: mtime_ns(&st),
                        });
                    }
                    _ => {} // links free nothing and may lead anywhere
                }
            }
        }
        Ok((files, total))
    }

    /// Delete `file` if it is still complete and unchanged; returns the bytes freed, or
    /// `None` when it must be kept.
    fn delete(
        &self,
        file: &Found,
        rule: Rule,
        open: &HashSet<(u64, u64)>,
        now_ns: i64,
    ) -> Result<Option<u64>, ShareError> {
        let (folder, name) = self.inner.share.parent_dir(&file.path)?;
        let st = folder.stat(&name, false).map_err(not_found_or_io)?;
        let kept = |why: &str| {
            tracing::debug!(path = %file.path, %rule, why, "retention: kept");
            Ok(None)
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return kept("no longer a regular file");
        }
        if mtime_ns(&st) != file.mtime_ns {
            return kept("changed since the walk");
        }
        if open.contains(&(st.st_dev, st.st_ino)) {
            return kept("open for writing");
        }
        let seen = self.writers().lock().seen(&file.path);
        match seen {
            Some(Seen::Modified) => return kept("modified since its last close"),
            Some(Seen::Created | Seen::Closed) => {}
            None => {
                let quiet = now_ns.saturating_sub(file.mtime_ns);
                if quiet < self.inner.rules.settle.as_nanos() as i64 {
                    return kept("modified too recently");
                }
            }
        }
        let bytes = (st.st_blocks as u64).saturating_mul(512);
        if self.inner.rules.dry_run {
            tracing::info!(path = %file.path, %rule, bytes, "retention would delete");
            return Ok(Some(bytes));
        }
        if let Some(events) = &self.inner.events {
            events.annotate(EventKind::Deleted, &file.path, Reason::Retention);
        }
        if let Err(e) = folder.remove_file(&name) {
            if let Some(events) = &self.inner.events {
                events.forget(EventKind::Deleted, &file.path);
            }
            return Err(not_found_or_io(e));
        }
        let counted = crate::metrics::metrics();
        counted.retention_deleted_total.inc();
        counted.retention_deleted_bytes_total.add(bytes);
        tracing::info!(path = %file.path, %rule, bytes, "retention deleted");
        Ok(Some(bytes))
    }
}

fn not_found_or_io(e: std::io::Error) -> ShareError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ShareError::NotFound
    } else {
        ShareError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;
    use std::time::Duration;

    fn write_aged(path: &Path, len: usize, age: Duration) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, vec![7u8; len]).unwrap();
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn age_rule_spares_protected_open_linked_and_outside_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("share");
        write_aged(&root.join("cam/old.mp4"), 5000, 2 * DAY);
        write_aged(&root.join("keep/evidence.mp4"), 5000, 3 * DAY);
        write_aged(&root.join("cam/new.mp4"), 5000, Duration::from_secs(60));
        write_aged(&root.join("cam/held.mp4"), 5000, 4 * DAY);
        write_aged(&root.join("cam/x.mp4.part"), 5000, 4 * DAY);
        write_aged(&tmp.path().join("outside/old.mp4"), 5000, 5 * DAY);
        std::os::unix::fs::symlink("../outside/old.mp4", root.join("out.mp4")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("outdir")).unwrap();
        // Open for writing, and old-looking: a paused recorder.
        let held = fs::File::options()
            .append(true)
            .open(root.join("cam/held.mp4"))
            .unwrap();
        let share = Share::open(&root).unwrap();
        let rules = Rules {
            retain: Some(Duration::from_secs(3600)),
            protect: vec!["keep/**".parse().unwrap()],
            ..Rules::default()
        };
        let dry = Retention::new(
            share.clone(),
            None,
            Rules {
                dry_run: true,
                ..rules.clone()
            },
        );
        let said: Vec<_> = dry.check().unwrap().into_iter().map(|d| d.path).collect();
        assert_eq!(said, ["cam/old.mp4"]);
        assert!(
            root.join("cam/old.mp4").exists(),
            "a dry run deletes nothing"
        );
        assert!(dry.check().unwrap().is_empty(), "reported once");

        let done = Retention::new(share, None, rules).check().unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(
            (done[0].path.as_str(), done[0].rule),
            ("cam/old.mp4", Rule::Age)
        );
        assert!(!root.join("cam/old.mp4").exists());
        for kept in [
            "keep/evidence.mp4",
            "cam/new.mp4",
            "cam/held.mp4",
            "cam/x.mp4.part",
            "out.mp4",
        ] {
            assert!(root.join(kept).exists(), "{kept}");
        }
        assert!(tmp.path().join("outside/old.mp4").exists());
        drop(held);
    }

    #[test]
    fn size_rule_deletes_oldest_first_until_it_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("share");
        for i in 0..5u32 {
            write_aged(
                &root.join(format!("seg{i}.mp4")),
                64 << 10,
                DAY - Duration::from_secs(i as u64 * 60),
            );
        }
        let share = Share::open(&root).unwrap();
        let one = fs::metadata(root.join("seg0.mp4")).unwrap().blocks() * 512;
        let r = Retention::new(
            share,
            None,
            Rules {
                max_size: Some(2 * one),
                ..Rules::default()
            },
        );
        let done: Vec<_> = r.check().unwrap().into_iter().map(|d| d.path).collect();
        assert_eq!(done, ["seg0.mp4", "seg1.mp4", "seg2.mp4"]);
        assert!(r.check().unwrap().is_empty());
    }

    /// A file retention has no events for (there before the node started, or written while
    /// events were lost) must have been quiet for `settle` (a minute): a recorder that never
    /// closed its file may still be writing it. Even a size rule that wants every byte back
    /// keeps it.
    #[test]
    fn a_file_without_events_is_kept_until_it_has_been_quiet_a_minute() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("share");
        write_aged(&root.join("old.mp4"), 100, DAY);
        write_aged(&root.join("fresh.mp4"), 100, Duration::from_secs(5));
        let r = Retention::new(
            Share::open(&root).unwrap(),
            None,
            Rules {
                max_size: Some(0),
                ..Rules::default()
            },
        );
        assert!(r.inner.rules.settle >= Duration::from_secs(60));
        let done: Vec<_> = r.check().unwrap().into_iter().map(|d| d.path).collect();
        assert_eq!(done, ["old.mp4"]);
        assert!(root.join("fresh.mp4").exists());
    }

    #[test]
    fn a_file_modified_since_its_close_is_never_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("share");
        write_aged(&root.join("a.mp4"), 100, 2 * DAY);
        write_aged(&root.join("b.mp4"), 100, 2 * DAY);
        let share = Share::open(&root).unwrap();
        let events = Events::new(100);
        let r = Retention::new(
            share,
            Some(events.clone()),
            Rules {
                retain: Some(Duration::from_secs(60)),
                ..Rules::default()
            },
        );
        let mut live = events.subscribe(None).live;
        r.writers()
            .lock()
            .note(&crate::events::Event::new(1, EventKind::Modified, "a.mp4"));
        let done: Vec<_> = r.check().unwrap().into_iter().map(|d| d.path).collect();
        assert_eq!(done, ["b.mp4"]);
        // Its `deleted` event (pushed here as the watcher would) says why.
        events.push(EventKind::Deleted, "b.mp4".into());
        let e = live.try_recv().unwrap();
        assert_eq!(
            (e.path.as_str(), e.reason),
            ("b.mp4", Some(Reason::Retention))
        );
        r.writers()
            .lock()
            .note(&crate::events::Event::new(2, EventKind::Closed, "a.mp4"));
        assert_eq!(r.check().unwrap()[0].path, "a.mp4");
    }
}
