//! `subscribe` end to end: a real inotify watch on a temporary share, a real server, and
//! subscribers on real sockets.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use support::{Options, TestServer};

/// A watched share served on loopback, keeping `capacity` events.
fn start(root: &Path, capacity: usize) -> TestServer {
    support::start(
        root,
        Options {
            events: Some(capacity),
            ..Options::default()
        },
    )
}

struct Sub {
    reader: BufReader<TcpStream>,
    /// Position from the first ping (where the subscription starts).
    start: u64,
}

impl Sub {
    fn open(addr: &str, since: Option<u64>) -> Sub {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match since {
            Some(n) => writeln!(s, "subscribe {n}").unwrap(),
            None => writeln!(s, "subscribe").unwrap(),
        }
        let mut sub = Sub {
            reader: BufReader::new(s),
            start: 0,
        };
        assert_eq!(sub.line(), "0 OK");
        let ping = sub.line();
        sub.start = ping
            .strip_suffix(" ping")
            .unwrap_or_else(|| panic!("expected a ping, got {ping:?}"))
            .parse()
            .unwrap();
        sub
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("event line in time");
        assert!(line.ends_with('\n'), "connection closed: {line:?}");
        line.pop();
        line
    }

    /// Next non-ping line, split into (seq, kind, path); panics after 10 s.
    fn event(&mut self) -> (u64, String, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no event within 10 s");
            let line = self.line();
            let mut parts = line.splitn(3, ' ');
            let seq = parts.next().unwrap().parse().unwrap();
            let kind = parts.next().unwrap().to_owned();
            if kind == "ping" {
                continue;
            }
            return (seq, kind, parts.next().unwrap_or("").to_owned());
        }
    }

    /// Read events until `pred` holds for one; returns all read (in order).
    fn until(
        &mut self,
        mut pred: impl FnMut(&(u64, String, String)) -> bool,
    ) -> Vec<(u64, String, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "event not seen; got {seen:?}");
            let ev = self.event();
            let done = pred(&ev);
            seen.push(ev);
            if done {
                return seen;
            }
        }
    }
}

fn has(seen: &[(u64, String, String)], kind: &str, path: &str) -> bool {
    seen.iter().any(|(_, k, p)| k == kind && p == path)
}

/// A tree moved into the share appears at once, every folder in it: each folder is reported
/// only once it is watched, so a client that writes into a folder as soon as it hears of it
/// gets that file's `closed` (a folder reported when its parent was read, before its own watch,
/// lost it).
#[test]
fn a_folder_is_reported_only_once_it_is_watched() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let node = start(&share, 10_000);
    let mut sub = Sub::open(&node.addr, None);
    let outside = dir.path().join("many");
    for i in 0..300 {
        std::fs::create_dir_all(outside.join(format!("d{i}"))).unwrap();
    }
    std::fs::rename(&outside, share.join("many")).unwrap();
    let seen = sub.until(|(_, k, p)| k == "created" && p.starts_with("many/d"));
    let folder = seen.last().unwrap().2.clone();
    std::fs::write(share.join(&folder).join("clip.mp4"), b"x").unwrap();
    let clip = format!("{folder}/clip.mp4");
    sub.until(|(_, k, p)| k == "closed" && *p == clip);
}

#[test]
fn kinds_paths_and_increasing_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), 1000);
    let mut sub = Sub::open(&node.addr, None);

    let mut f = std::fs::File::create(dir.path().join("rec.mp4")).unwrap();
    f.write_all(b"frame1").unwrap();
    f.write_all(b"frame2").unwrap();
    drop(f);
    let mut seen = sub.until(|(_, k, p)| k == "closed" && p == "rec.mp4");
    assert!(has(&seen, "created", "rec.mp4"), "{seen:?}");

    // A folder created after start is watched as soon as it is reported.
    std::fs::create_dir_all(dir.path().join("day1/cam")).unwrap();
    seen.extend(sub.until(|(_, k, p)| k == "created" && p == "day1/cam"));
    assert!(has(&seen, "created", "day1"), "{seen:?}");
    std::fs::write(dir.path().join("day1/cam/a.mp4"), b"x").unwrap();
    seen.extend(sub.until(|(_, k, p)| k == "closed" && p == "day1/cam/a.mp4"));

    // Files written into a brand-new folder before its watch exists are still reported.
    std::fs::create_dir_all(dir.path().join("x/y")).unwrap();
    std::fs::write(dir.path().join("x/y/z.mp4"), b"z").unwrap();
    seen.extend(sub.until(|(_, k, p)| k == "created" && p == "x/y/z.mp4"));

    std::fs::rename(dir.path().join("rec.mp4"), dir.path().join("day1/rec.mp4")).unwrap();
    seen.extend(sub.until(|(_, k, p)| k == "created" && p == "day1/rec.mp4"));
    assert!(has(&seen, "deleted", "rec.mp4"), "{seen:?}");

    std::fs::remove_file(dir.path().join("day1/cam/a.mp4")).unwrap();
    seen.extend(sub.until(|(_, k, p)| k == "deleted" && p == "day1/cam/a.mp4"));

    let seqs: Vec<u64> = seen.iter().map(|e| e.0).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(seqs[0] > sub.start);
    // Nothing outside the share, nothing absolute.
    assert!(
        seen.iter()
            .all(|(_, _, p)| !p.starts_with('/') && !p.contains(".."))
    );
}

/// Every folder is watched on its own, and each reports its own deletion and move beside its
/// parent's report: a subscriber still hears of each change once.
#[test]
fn folders_moved_and_deleted_are_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("old/sub")).unwrap();
    let node = start(dir.path(), 1000);
    let mut sub = Sub::open(&node.addr, None);

    std::fs::rename(dir.path().join("old"), dir.path().join("moved")).unwrap();
    // The moved folder is watched under its new name (a file written before that is found
    // by the scan of the folder, hence `created`).
    std::fs::write(dir.path().join("moved/sub/f"), b"f").unwrap();
    let mut seen = sub.until(|(_, k, p)| k == "created" && p == "moved/sub/f");
    std::fs::remove_dir_all(dir.path().join("moved")).unwrap();
    std::fs::write(dir.path().join("end"), b"e").unwrap();
    seen.extend(sub.until(|(_, k, p)| k == "closed" && p == "end"));
    let count = |kind: &str, path: &str| {
        seen.iter()
            .filter(|(_, k, p)| k == kind && p == path)
            .count()
    };
    for (kind, path) in [
        ("deleted", "old"),
        ("created", "moved"),
        ("deleted", "moved/sub/f"),
        ("deleted", "moved/sub"),
        ("deleted", "moved"),
    ] {
        assert_eq!(count(kind, path), 1, "{kind} {path}: {seen:?}");
    }
}

#[test]
fn appends_are_coalesced() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), 1000);
    let mut sub = Sub::open(&node.addr, None);
    let mut f = std::fs::File::create(dir.path().join("grow")).unwrap();
    for _ in 0..200 {
        f.write_all(&[0u8; 100]).unwrap();
    }
    drop(f);
    let seen = sub.until(|(_, k, _)| k == "closed");
    let modified = seen.iter().filter(|(_, k, _)| k == "modified").count();
    assert!(
        modified <= 2,
        "200 writes gave {modified} modified events: {seen:?}"
    );
}

#[test]
fn reconnect_with_since_gets_exactly_the_missed_events() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), 1000);
    let mut sub = Sub::open(&node.addr, None);
    std::fs::write(dir.path().join("first"), b"1").unwrap();
    let seen = sub.until(|(_, k, p)| k == "closed" && p == "first");
    let since = seen.last().unwrap().0;
    drop(sub);

    // A witness that stays connected sees everything from here.
    let mut witness = Sub::open(&node.addr, Some(since));
    for name in ["m1", "m2", "m3"] {
        std::fs::write(dir.path().join(name), b"x").unwrap();
    }
    let expected = witness.until(|(_, k, p)| k == "closed" && p == "m3");

    let mut again = Sub::open(&node.addr, Some(since));
    let replayed = again.until(|(_, k, p)| k == "closed" && p == "m3");
    assert_eq!(replayed, expected);
}

#[test]
fn since_older_than_the_log_gets_resync() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), 4);
    let sub = Sub::open(&node.addr, None);
    let since = sub.start;
    drop(sub);
    let mut witness = Sub::open(&node.addr, Some(since));
    for i in 0..10 {
        std::fs::write(dir.path().join(format!("f{i}")), b"x").unwrap();
    }
    witness.until(|(_, k, p)| k == "closed" && p == "f9");
    let mut late = Sub::open(&node.addr, Some(since));
    let (_, kind, _) = late.event();
    assert_eq!(kind, "resync");
}

#[test]
fn ten_thousand_files_in_a_burst_none_lost_or_resync() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), 65_536);
    let mut sub = Sub::open(&node.addr, None);
    const N: usize = 10_000;
    for i in 0..N {
        std::fs::write(dir.path().join(format!("b{i:05}")), b"").unwrap();
    }
    std::fs::write(dir.path().join("zz-end"), b"").unwrap();
    let mut created = HashSet::new();
    let mut resync = false;
    let seen = sub.until(|(_, k, p)| {
        if k == "resync" {
            resync = true;
        }
        if k == "closed" && p == "zz-end" {
            return true;
        }
        if k == "created" && p.starts_with('b') {
            created.insert(p.clone());
        }
        false
    });
    assert!(
        resync || created.len() == N,
        "{} of {N} created events and no resync (read {} lines)",
        created.len(),
        seen.len()
    );
}

#[test]
fn a_subscriber_that_never_reads_does_not_hold_back_others() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), 65_536);
    // Subscribes, then never reads a byte.
    let stalled = Sub::open(&node.addr, None);
    let mut active = Sub::open(&node.addr, None);
    // Long names so the stalled socket's buffers fill up quickly.
    let long = "n".repeat(200);
    for i in 0..6000 {
        std::fs::write(dir.path().join(format!("{long}{i:05}")), b"").unwrap();
    }
    std::fs::write(dir.path().join("last"), b"").unwrap();
    active.until(|(_, k, p)| k == "closed" && p == "last");
    // The node still serves ordinary requests promptly.
    let mut s = TcpStream::connect(&node.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"stat last\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    assert_eq!(line, "0 OK\n");
    // When the stalled one finally reads, it is told it lost events (resync) or has them all.
    let mut stalled = stalled;
    let seen = stalled.until(|(_, k, p)| k == "resync" || (k == "closed" && p == "last"));
    assert!(!seen.is_empty());
}

#[test]
fn without_events_subscribe_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = support::start(dir.path(), Options::default());
    let mut s = TcpStream::connect(&node.addr).unwrap();
    s.write_all(b"subscribe\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    assert_eq!(line, "5 this node does not watch its share\n");
}

#[test]
fn the_watcher_never_follows_symlinks_out_of_the_share() {
    let outer = tempfile::tempdir().unwrap();
    let share = outer.path().join("share");
    std::fs::create_dir_all(outer.path().join("elsewhere")).unwrap();
    std::fs::create_dir(&share).unwrap();
    std::os::unix::fs::symlink("/", share.join("rootlink")).unwrap();
    std::os::unix::fs::symlink(outer.path().join("elsewhere"), share.join("out")).unwrap();
    // Watching must not walk `/` through the link (it used to fail on /proc).
    let node = start(&share, 1000);
    let mut sub = Sub::open(&node.addr, None);
    std::fs::write(outer.path().join("elsewhere/outside.txt"), b"x").unwrap();
    std::fs::write(share.join("inside.txt"), b"x").unwrap();
    let seen = sub.until(|(_, k, p)| k == "closed" && p == "inside.txt");
    assert!(
        seen.iter().all(|(_, _, p)| !p.contains("outside")),
        "{seen:?}"
    );
}

#[test]
fn symlinks_made_while_watching_are_neither_watched_nor_scanned() {
    let outer = tempfile::tempdir().unwrap();
    let share = outer.path().join("share");
    let elsewhere = outer.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("deep")).unwrap();
    std::fs::write(elsewhere.join("deep/before.txt"), b"x").unwrap();
    std::fs::create_dir(&share).unwrap();
    let node = start(&share, 1000);
    let mut sub = Sub::open(&node.addr, None);
    // Links to folders outside, made after the watch started (one to `/`: walking it would
    // exhaust the inotify watches of the whole user).
    std::os::unix::fs::symlink(&elsewhere, share.join("late")).unwrap();
    std::os::unix::fs::symlink("/", share.join("root")).unwrap();
    let mut seen = sub.until(|(_, k, p)| k == "created" && p == "root");
    std::fs::write(elsewhere.join("after.txt"), b"x").unwrap();
    std::fs::write(elsewhere.join("deep/after.txt"), b"x").unwrap();
    std::fs::write(share.join("inside.txt"), b"x").unwrap();
    seen.extend(sub.until(|(_, k, p)| k == "closed" && p == "inside.txt"));
    assert!(has(&seen, "created", "late"), "{seen:?}");
    assert!(
        seen.iter()
            .all(|(_, _, p)| !p.starts_with("late/") && !p.starts_with("root/")),
        "names behind a link were reported: {seen:?}"
    );
}

/// Read one reply of `pread`/`read`: `0 N`, then N bytes.
fn payload(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let n: usize = status
        .strip_prefix("0 ")
        .and_then(|n| n.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("not a payload: {status:?}"));
    let mut data = vec![0; n];
    std::io::Read::read_exact(reader, &mut data).unwrap();
    data
}

/// Reading a file changes nothing, so it must wake nothing: every read by path opens the file,
/// and the watch used to take each open from the kernel and hand it to its ingest thread.
/// 300 files read by `pread`, one by `open`/`read`/`close`, and their folder listed, add no
/// raw change to the watch and no event, while what is written, closed and deleted next is
/// still reported.
#[test]
fn reading_files_wakes_no_watch_and_changes_are_still_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("snaps")).unwrap();
    for i in 0..300 {
        std::fs::write(dir.path().join(format!("snaps/s{i:03}.jpg")), b"jpeg").unwrap();
    }
    let node = start(dir.path(), 1000);
    let mut sub = Sub::open(&node.addr, None);
    std::fs::write(dir.path().join("start"), b"s").unwrap();
    sub.until(|(_, k, p)| k == "closed" && p == "start");
    let events = node.events.as_ref().unwrap();
    let before = events.raw_changes();

    let s = TcpStream::connect(&node.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for i in 0..300 {
        w.write_all(format!("pread 0 4096 snaps/s{i:03}.jpg\n").as_bytes())
            .unwrap();
        assert_eq!(payload(&mut r), b"jpeg");
    }
    w.write_all(b"open snaps/s001.jpg\nread 100\nclose\nls snaps\n")
        .unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "0 OK\n");
    assert_eq!(payload(&mut r), b"jpeg");
    for _ in 0..303 {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    assert_eq!(line, "\n", "the listing ends");

    std::fs::write(dir.path().join("rec.mp4"), b"frame").unwrap();
    std::fs::remove_file(dir.path().join("snaps/s000.jpg")).unwrap();
    let seen = sub.until(|(_, k, p)| k == "deleted" && p == "snaps/s000.jpg");
    assert!(has(&seen, "created", "rec.mp4"), "{seen:?}");
    assert!(has(&seen, "closed", "rec.mp4"), "{seen:?}");
    assert!(
        seen.iter()
            .all(|(_, _, p)| p == "rec.mp4" || p == "snaps/s000.jpg"),
        "reading made events: {seen:?}"
    );
    // What was taken from the kernel came before the deletion's event: all counted by now.
    let raw = events.raw_changes() - before;
    assert!(
        raw < 30,
        "{raw} raw changes woke the watch for 302 files read and 2 changed"
    );
}

/// The share's folder itself deleted: what it held is reported deleted, and the node keeps
/// answering.
#[test]
fn the_share_deleted_reports_what_it_held_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir_all(share.join("day1")).unwrap();
    std::fs::write(share.join("day1/a.mp4"), b"a").unwrap();
    let node = start(&share, 1000);
    let mut sub = Sub::open(&node.addr, None);
    std::fs::write(share.join("top.mp4"), b"t").unwrap();
    sub.until(|(_, k, p)| k == "closed" && p == "top.mp4");

    std::fs::remove_dir_all(&share).unwrap();
    let mut gone = HashSet::new();
    let seen = sub.until(|(_, k, p)| {
        if k == "deleted" {
            gone.insert(p.clone());
        }
        gone.len() == 3
    });
    let want: HashSet<String> = ["day1/a.mp4", "day1", "top.mp4"].map(String::from).into();
    assert_eq!(gone, want, "{seen:?}");

    let mut s = TcpStream::connect(&node.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"stat top.mp4\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    assert!(line.starts_with("1 "), "{line:?}");
}
