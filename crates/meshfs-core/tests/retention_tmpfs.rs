//! Retention on a real, small file system: an 8 MiB tmpfs mounted by the test, a recorder
//! writing segments continuously at 2 MB/s (about 1.3× the disk in all), a file held open for
//! writing that looks old, a protected file, and files outside the share on the same disk.
//! The disk must never fill, the recorder never be interrupted, and nothing but complete,
//! unprotected files inside the share be deleted, oldest first.
//!
//! Needs root (to mount); elsewhere it says so and passes without running.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use meshfs_core::Share;
use meshfs_core::events::{EventKind, Events, Reason};
use meshfs_core::retention::{Deletion, Limit, Retention, Rule, Rules};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const MIB: u64 = 1 << 20;
const DAY: Duration = Duration::from_secs(86_400);
/// Recorder: 16 KiB writes every 8 ms (2 MB/s), closed every 256 KiB.
const CHUNK: usize = 16 << 10;
const CHUNKS_PER_SEGMENT: usize = 16;
const SEGMENTS: usize = 40;
const PACE: Duration = Duration::from_millis(8);

/// A tmpfs of `size` mounted at `at`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// (total, available) bytes of the file system at `path`.
fn usage(path: &Path) -> (u64, u64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: valid C string and out-pointer; read only after success.
    let st = unsafe {
        assert_eq!(libc::statvfs(c.as_ptr(), st.as_mut_ptr()), 0);
        st.assume_init()
    };
    let unit = st.f_frsize as u64;
    (st.f_blocks as u64 * unit, st.f_bavail as u64 * unit)
}

fn write_aged(path: &Path, len: u64, age: Duration) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = File::create(path).unwrap();
    (&f).write_all(&vec![1u8; len as usize]).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

/// What the recorder saw.
#[derive(Debug, Default)]
struct Recording {
    writes: usize,
    max_used: u64,
    min_available: u64,
}

/// Record `SEGMENTS` segments into `cam`, checking after every write that it succeeded, and
/// before every close that the segment is still there (never deleted while being written).
fn record(fs_root: &Path, cam: &Path) -> Recording {
    let mut rec = Recording {
        min_available: u64::MAX,
        ..Recording::default()
    };
    let chunk = vec![0xabu8; CHUNK];
    for s in 0..SEGMENTS {
        let path = cam.join(format!("seg-{s:04}.mp4"));
        let mut f = File::create(&path).unwrap();
        for _ in 0..CHUNKS_PER_SEGMENT {
            f.write_all(&chunk)
                .unwrap_or_else(|e| panic!("recorder interrupted at {}: {e}", path.display()));
            rec.writes += 1;
            let (total, available) = usage(fs_root);
            rec.max_used = rec.max_used.max(total - available);
            rec.min_available = rec.min_available.min(available);
            // The recording rate (pacing, not synchronisation).
            std::thread::sleep(PACE);
        }
        assert_eq!(
            f.metadata().unwrap().nlink(),
            1,
            "{} deleted while written",
            path.display()
        );
    }
    rec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_never_fills_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&tmp.path().join("fs"), "8m") else {
        assert_ne!(
            unsafe { libc::geteuid() },
            0,
            "root, yet mounting a tmpfs failed"
        );
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    };
    let fs_root = disk.0.clone();
    let root = fs_root.join("share");
    let cam = root.join("cam");
    fs::create_dir_all(&cam).unwrap();
    write_aged(&root.join("keep/evidence.mp4"), MIB, 3 * DAY);
    write_aged(&root.join("old/a.mp4"), MIB, 2 * DAY);
    write_aged(&fs_root.join("outside/old.mp4"), MIB / 2, 5 * DAY);
    std::os::unix::fs::symlink("../outside/old.mp4", root.join("out.mp4")).unwrap();
    std::os::unix::fs::symlink("../outside", root.join("outdir")).unwrap();

    let share = Share::open(&root).unwrap();
    let events = Events::new(65_536);
    let _watch = events.watch(share.root()).unwrap();
    let mut log = events.subscribe(None).live;

    // A paused recorder: open for writing, written once, looking four days old.
    let held = File::create(cam.join("held.mp4")).unwrap();
    (&held).write_all(&[2u8; 64 << 10]).unwrap();
    held.set_modified(SystemTime::now() - 4 * DAY).unwrap();

    let retention = Retention::new(
        share,
        Some(events.clone()),
        Rules {
            retain: Some(Duration::from_secs(3600)),
            keep_free: Some(Limit::Bytes(2 * MIB)),
            protect: vec!["keep/**".parse().unwrap()],
            ..Rules::default()
        },
    );
    let (tx, mut deletions) = tokio::sync::mpsc::unbounded_channel::<Deletion>();
    let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
    retention.start(
        std::sync::Arc::new(move |d: &Deletion| {
            let _ = tx.send(d.clone());
        }),
        shutdown.clone(),
        &tracker,
    );

    // The first check, at start: the expired file goes, by age.
    let first = tokio::time::timeout(Duration::from_secs(10), deletions.recv())
        .await
        .expect("the first check deleted nothing")
        .unwrap();
    assert_eq!((first.path.as_str(), first.rule), ("old/a.mp4", Rule::Age));

    let (fs2, cam2) = (fs_root.clone(), cam.clone());
    let rec = tokio::task::spawn_blocking(move || record(&fs2, &cam2))
        .await
        .expect("the recorder was interrupted");
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;

    let mut deleted = vec![first];
    while let Ok(d) = deletions.try_recv() {
        deleted.push(d);
    }
    let (total, _) = usage(&fs_root);
    let segs: Vec<_> = deleted
        .iter()
        .filter(|d| d.path.starts_with("cam/seg-"))
        .collect();
    eprintln!(
        "retention figures: disk {total} B, max used {} B ({:.1} %), min free {} B, \
         {} writes of {CHUNK} B all succeeded, {} files deleted ({} segments of {SEGMENTS})",
        rec.max_used,
        rec.max_used as f64 * 100.0 / total as f64,
        rec.min_available,
        rec.writes,
        deleted.len(),
        segs.len(),
    );

    // The disk never filled, and the recorder was never refused.
    assert_eq!(rec.writes, SEGMENTS * CHUNKS_PER_SEGMENT);
    assert!(
        rec.min_available >= MIB / 2,
        "free space fell to {}",
        rec.min_available
    );
    // Space was made by deleting the oldest segments, and only complete ones.
    assert!(segs.len() >= 10, "{} segments deleted", segs.len());
    for (i, d) in segs.iter().enumerate() {
        assert_eq!(d.path, format!("cam/seg-{i:04}.mp4"), "oldest first");
        assert_eq!(d.rule, Rule::KeepFree);
    }
    assert!(cam.join(format!("seg-{:04}.mp4", SEGMENTS - 1)).exists());
    // The held file, the protected file, and everything outside are untouched.
    assert_eq!(held.metadata().unwrap().nlink(), 1);
    assert_eq!(fs::metadata(cam.join("held.mp4")).unwrap().len(), 64 << 10);
    assert!(root.join("keep/evidence.mp4").exists());
    assert_eq!(
        fs::metadata(fs_root.join("outside/old.mp4")).unwrap().len(),
        MIB / 2
    );
    assert!(fs::symlink_metadata(root.join("out.mp4")).is_ok());
    assert!(fs::symlink_metadata(root.join("outdir")).is_ok());
    assert_eq!(deleted.len(), segs.len() + 1);
    // Each deletion is in the event log, saying retention made it. The watch reports the last
    // ones a moment after they were made: wait for them.
    let mut expected: Vec<_> = deleted.iter().map(|d| d.path.clone()).collect();
    expected.sort();
    let mut by_retention = Vec::new();
    while by_retention.len() < expected.len() {
        let e = tokio::time::timeout(Duration::from_secs(10), log.recv())
            .await
            .unwrap_or_else(|_| panic!("logged {by_retention:?}, deleted {expected:?}"))
            .expect("the log held every event");
        if e.kind == EventKind::Deleted {
            assert_eq!(e.reason, Some(Reason::Retention), "{e:?}");
            by_retention.push(e.path);
        }
    }
    by_retention.sort();
    assert_eq!(by_retention, expected);
    drop(held);
}
