//! End-to-end test of change propagation between cluster workers (`--cluster-peer`): three
//! real nodes on loopback, changes made by FTP upload and by plain file writes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Proc;
use common::ports::free_tcp_port;

fn start(dir: &Path, name: &str, port: u16, peers: &[u16], extra: &[&str]) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let peers: Vec<String> = peers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut args = vec!["--no-web"];
    for p in &peers {
        args.extend(["--cluster-peer", p]);
    }
    args.extend_from_slice(extra);
    let (proc, _) = common::node_at(dir, name, &listen, &args);
    proc
}

fn wait_until(what: &str, timeout: Duration, cond: impl FnMut() -> bool) -> Duration {
    common::wait_until(timeout, what, cond)
}

fn same(a: &Path, b: &Path) -> bool {
    matches!((fs::read(a), fs::read(b)), (Ok(x), Ok(y)) if x == y)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Write a file the way a recorder finishing a clip does: elsewhere, then rename into place.
fn drop_file(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.parent().unwrap().join(format!("tmp-{name}"));
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, dir.join(name)).unwrap();
}

fn leftovers(dirs: &[&PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for d in dirs {
        for e in fs::read_dir(d).unwrap() {
            let n = e.unwrap().file_name().into_string().unwrap();
            if n.ends_with(".part") || n.ends_with(".resume") || n.starts_with('.') {
                out.push(n);
            }
        }
    }
    out
}

/// Folder `name` in `tmp`, made.
fn made(tmp: &Path, name: &str) -> PathBuf {
    let d = tmp.join(name);
    fs::create_dir_all(&d).unwrap();
    d
}

/// `w1` … `wN` in `tmp`, made.
fn worker_dirs(tmp: &Path, n: usize) -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = (1..=n).map(|i| tmp.join(format!("w{i}"))).collect();
    for d in &dirs {
        fs::create_dir_all(d).unwrap();
    }
    dirs
}

#[test]
fn workers_converge_on_uploads_deletions_and_after_an_outage() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = worker_dirs(tmp.path(), 3);
    let [p1, p2, p3] = [free_tcp_port(), free_tcp_port(), free_tcp_port()];

    // Alice may upload to w1 over FTP.
    let users = common::ftp_users(tmp.path(), "alice", "pw");

    let w1 = start(
        &dirs[0],
        "w1",
        p1,
        &[p2, p3],
        &[
            "--ftp",
            "127.0.0.1:0",
            "--ftp-users",
            users.to_str().unwrap(),
        ],
    );
    let ftp = loop {
        let line = w1.next_line(Duration::from_secs(20));
        if let Some(a) = line.strip_prefix("ftp ") {
            break a.to_owned();
        }
    };
    let _w2 = start(&dirs[1], "w2", p2, &[p1, p3], &[]);
    let w3 = start(&dirs[2], "w3", p3, &[p1, p2], &[]);

    // An FTP upload on w1 reaches w2 and w3, byte-identical.
    let src = tmp.path().join("upload.bin");
    fs::write(&src, data(2 << 20, 7)).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "-u", "alice:pw", "-T"])
        .arg(&src)
        .arg(format!("ftp://{ftp}/upload.bin"))
        .output()
        .unwrap();
    common::assert_success(&out);
    let took = wait_until("the upload on w2 and w3", Duration::from_secs(10), || {
        same(&src, &dirs[1].join("upload.bin")) && same(&src, &dirs[2].join("upload.bin"))
    });
    eprintln!("upload propagated in {took:?}");

    // A file written into w2's folder by another process, in a new sub-folder, reaches w1, w3.
    fs::create_dir(dirs[1].join("clips")).unwrap();
    drop_file(&dirs[1].join("clips"), "c1.bin", &data(300_000, 1));
    wait_until("clips/c1.bin everywhere", Duration::from_secs(10), || {
        same(&dirs[1].join("clips/c1.bin"), &dirs[0].join("clips/c1.bin"))
            && same(&dirs[1].join("clips/c1.bin"), &dirs[2].join("clips/c1.bin"))
    });

    // A deletion on w1 propagates.
    fs::remove_file(dirs[0].join("upload.bin")).unwrap();
    wait_until("the deletion everywhere", Duration::from_secs(10), || {
        !dirs[1].join("upload.bin").exists() && !dirs[2].join("upload.bin").exists()
    });

    // w3 goes down; changes happen meanwhile; w3 returns and catches up.
    drop(w3);
    drop_file(&dirs[0], "while-down.bin", &data(500_000, 3));
    wait_until("while-down.bin on w2", Duration::from_secs(10), || {
        same(
            &dirs[0].join("while-down.bin"),
            &dirs[1].join("while-down.bin"),
        )
    });
    // Nothing was deleted on w1 or w2 because w3 was unreachable.
    assert!(dirs[0].join("clips/c1.bin").exists() && dirs[1].join("clips/c1.bin").exists());
    let _w3 = start(&dirs[2], "w3", p3, &[p1, p2], &[]);
    wait_until("w3 to catch up", Duration::from_secs(10), || {
        same(
            &dirs[0].join("while-down.bin"),
            &dirs[2].join("while-down.bin"),
        )
    });
    // The deleted file stayed deleted everywhere.
    for d in &dirs {
        assert!(!d.join("upload.bin").exists(), "{}", d.display());
    }
    // No temporary or partial file stays behind (one may exist while a check is running).
    let all: Vec<&PathBuf> = dirs.iter().collect();
    wait_until("no partial files", Duration::from_secs(10), || {
        leftovers(&all).is_empty()
    });
}

/// The event lines of `subscribe reasons` on the node at port `port`, as they come.
fn subscribe_reasons(port: u16) -> std::sync::mpsc::Receiver<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"subscribe reasons\n").unwrap();
    common::lines_of(s)
}

/// `STEM.mp4` and its one conflict copy in `dir`: (content, copy's name, copy's content).
fn versions(dir: &Path, stem: &str) -> Option<(Vec<u8>, String, Vec<u8>)> {
    let prefix = format!("{stem}.sync-conflict-");
    let copies: Vec<String> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    let [copy] = copies.as_slice() else {
        return None;
    };
    Some((
        fs::read(dir.join(format!("{stem}.mp4"))).ok()?,
        copy.clone(),
        fs::read(dir.join(copy)).ok()?,
    ))
}

/// Whether both `dirs` hold `STEM.mp4` and one conflict copy, alike, the two being `a` and
/// `b` in either order.
fn both_kept(dirs: &[PathBuf], stem: &str, a: &[u8], b: &[u8]) -> bool {
    match (versions(&dirs[0], stem), versions(&dirs[1], stem)) {
        (Some(v1), Some(v2)) => v1 == v2 && ((v1.0 == a && v1.2 == b) || (v1.0 == b && v1.2 == a)),
        _ => false,
    }
}

#[test]
fn two_writers_of_one_path_keep_both_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = worker_dirs(tmp.path(), 2);
    let [p1, p2] = [free_tcp_port(), free_tcp_port()];
    // Two recorders finish `clip.mp4` at once, one on each worker, before either worker can
    // tell the other: w1 is up but cannot reach w2, which is down. (Writing both while both
    // run races with the pull itself on a loaded machine; this is the same decision, always.)
    let _w1 = start(&dirs[0], "w1", p1, &[p2], &[]);
    let w1_events = subscribe_reasons(p1);
    let (older, newer) = (data(200_000, 1), data(300_000, 2));
    drop_file(&dirs[0], "clip.mp4", &older);
    drop_file(&dirs[1], "clip.mp4", &newer);
    let _w2 = start(&dirs[1], "w2", p2, &[p1], &[]);
    let streams = [w1_events, subscribe_reasons(p2)];

    wait_until(
        "both versions on both workers",
        Duration::from_secs(10),
        || both_kept(&dirs, "clip", &older, &newer),
    );
    // One keeps the name (the newer to the second; in one second, the greater hash), the other becomes
    // `NAME.sync-conflict-DATE-TIME-HASH7.ext`.
    let (_, copy, kept) = versions(&dirs[0], "clip").unwrap();
    let hash = blake3::hash(&kept).to_hex();
    let rest = copy
        .strip_prefix("clip.sync-conflict-")
        .and_then(|r| r.strip_suffix(".mp4"))
        .unwrap();
    let parts: Vec<&str> = rest.split('-').collect();
    assert_eq!(parts.len(), 3, "{copy}");
    assert!(parts[0].len() == 8 && parts[1].len() == 6, "{copy}");
    assert!(
        parts[..2]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    );
    assert_eq!(parts[2], &hash.as_str()[..7], "{copy}");
    // The copy's appearance says it is a conflict copy, on a worker that made it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let wanted = format!(" created:conflict {copy}");
    'found: loop {
        for s in &streams {
            while let Ok(line) = s.try_recv() {
                if line.ends_with(&wanted) {
                    break 'found;
                }
            }
        }
        assert!(std::time::Instant::now() < deadline, "no {wanted:?} event");
        // Lines arrive on their own threads; poll them briefly.
        if let Ok(line) = streams[0].recv_timeout(Duration::from_millis(20))
            && line.ends_with(&wanted)
        {
            break;
        }
    }
    let all: Vec<&PathBuf> = dirs.iter().collect();
    wait_until("no partial files", Duration::from_secs(10), || {
        leftovers(&all).is_empty()
    });
}

#[test]
fn an_archive_keeps_what_the_camera_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let [cam, archive, mirror] = ["cam", "archive", "mirror"].map(|n| made(tmp.path(), n));
    let [pc, pa, pm] = [free_tcp_port(), free_tcp_port(), free_tcp_port()];
    let _cam = start(&cam, "cam", pc, &[], &[]);
    let _archive = start(
        &archive,
        "archive",
        pa,
        &[pc],
        &["--archive", "--retain", "30d"],
    );
    // The control: an ordinary worker, which does propagate deletions.
    let _mirror = start(&mirror, "mirror", pm, &[pc], &[]);

    drop_file(&cam, "a.mp4", &data(100_000, 1));
    wait_until("a.mp4 copied", Duration::from_secs(10), || {
        same(&cam.join("a.mp4"), &archive.join("a.mp4"))
            && same(&cam.join("a.mp4"), &mirror.join("a.mp4"))
    });
    // The camera's clean-up deletes it, then records the next clip. Each worker handles its
    // peer's events in order: once b.mp4 is there, the deletion was dealt with.
    fs::remove_file(cam.join("a.mp4")).unwrap();
    drop_file(&cam, "b.mp4", &data(50_000, 2));
    wait_until(
        "b.mp4 copied, a.mp4 gone from the mirror",
        Duration::from_secs(10),
        || {
            same(&cam.join("b.mp4"), &archive.join("b.mp4"))
                && same(&cam.join("b.mp4"), &mirror.join("b.mp4"))
                && !mirror.join("a.mp4").exists()
        },
    );
    assert_eq!(fs::read(archive.join("a.mp4")).unwrap(), data(100_000, 1));
    // A changed file is copied again (no conflict copy: the archive's version was in step).
    drop_file(&cam, "b.mp4", &data(60_000, 3));
    wait_until(
        "the new b.mp4 in the archive",
        Duration::from_secs(10),
        || same(&cam.join("b.mp4"), &archive.join("b.mp4")),
    );
    let names: Vec<_> = fs::read_dir(&archive)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("sync-conflict")),
        "{names:?}"
    );
}

/// The conflict copies of `STEM.mp4` in `dir` whose name's hash (its first seven hex digits)
/// is not that of the bytes they hold: names that lie about their content.
fn misnamed_copies(dir: &Path, stem: &str) -> Vec<String> {
    let prefix = format!("{stem}.sync-conflict-");
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .filter(|n| {
            let named = n.trim_end_matches(".mp4").rsplit('-').next().unwrap_or("");
            fs::read(dir.join(n))
                .is_ok_and(|bytes| !blake3::hash(&bytes).to_hex().starts_with(named))
        })
        .collect()
}

/// Set `path`'s modification time to `secs` after the epoch.
fn set_mtime(path: &Path, secs: u64) {
    let when = std::time::UNIX_EPOCH + Duration::from_secs(secs);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// The peer's version changes between the `hash` a worker decides a conflict on and the
/// download of the copy (a relay answers that `hash` with a third version's): the copy that
/// landed is not kept under a name made from the other hash; the conflict is decided again,
/// and both versions end up kept under names that tell their content.
#[test]
fn a_conflict_copy_never_holds_another_version_than_its_name_says() {
    let tmp = tempfile::tempdir().unwrap();
    let [cam, worker] = ["cam", "worker"].map(|n| made(tmp.path(), n));
    let (ours, theirs) = (common::pattern(200_000, 1), common::pattern(300_000, 2));
    let ours_hash = blake3::hash(&ours);
    // A third version, whose hash the relay gives: one that loses to ours at the tie-break
    // (same second), so the peer's version lands under the conflict name made from it.
    let third = (3..)
        .map(|seed| common::pattern(250_000, seed))
        .find(|v| blake3::hash(v).to_hex().as_str() < ours_hash.to_hex().as_str())
        .unwrap();
    let lie = blake3::hash(&third).to_hex().to_string();
    // Both written in the same second, each on its side, before the worker starts.
    let second = 1_780_000_000;
    drop_file(&cam, "clip.mp4", &theirs);
    drop_file(&worker, "clip.mp4", &ours);
    set_mtime(&cam.join("clip.mp4"), second);
    set_mtime(&worker.join("clip.mp4"), second);

    let (_cam, cam_addr) = common::named_node(&cam, "cam", &["--no-web"]);
    let (relay, relay_addr) =
        common::relay::relay_with(&cam_addr, &["--honest", "--hash-once", &lie]);
    // In clear, so the relay sees the requests.
    let (_worker, _, log) = common::logged(&[
        "--plaintext",
        "node",
        worker.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--name",
        "worker",
        "--no-web",
        "--cluster-peer",
        &relay_addr,
    ]);
    assert_eq!(relay.next_line(Duration::from_secs(20)), "lied hash");
    common::until_line(&log, Duration::from_secs(20), |l| {
        l.contains("conflict: clip.mp4 was written here")
    });
    wait_until("both versions kept", Duration::from_secs(10), || {
        let misnamed = misnamed_copies(&worker, "clip");
        assert!(
            misnamed.is_empty(),
            "copies holding another version: {misnamed:?}"
        );
        versions(&worker, "clip").is_some_and(|(kept, _, copy)| {
            (kept == ours && copy == theirs) || (kept == theirs && copy == ours)
        })
    });
    assert!(misnamed_copies(&worker, "clip").is_empty());
    wait_until("no partial files", Duration::from_secs(10), || {
        leftovers(&[&worker]).is_empty()
    });
}

/// The first line of any of `rxs` that satisfies `pred`, within `timeout`.
fn line_of_any(
    rxs: &[&std::sync::mpsc::Receiver<String>],
    timeout: Duration,
    what: &str,
    mut pred: impl FnMut(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        for rx in rxs {
            while let Ok(line) = rx.try_recv() {
                if pred(&line) {
                    return line;
                }
                seen.push(line);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} within {timeout:?}; saw {seen:?}"
        );
        // Lines arrive on their own threads; wait a little on the first for more.
        if let Ok(line) = rxs[0].recv_timeout(Duration::from_millis(20)) {
            if pred(&line) {
                return line;
            }
            seen.push(line);
        }
    }
}

/// A camera recording a clip into the share: the file is created, written in a few bursts
/// and closed where it lies.
fn record(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = fs::File::create(path).unwrap();
    for chunk in bytes.chunks(bytes.len().div_ceil(4)) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
    }
}

/// Two running workers replicating each other; on each, a recorder writes the same clip at
/// the same moment (a barrier starts them), five clips in a row. Every clip ends with both
/// versions on both workers, one under the conflict name, announced by a `created:conflict`
/// event and a log line.
#[test]
fn two_live_writers_of_one_path_keep_both_versions_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = worker_dirs(tmp.path(), 2);
    let ports = [free_tcp_port(), free_tcp_port()];
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let (listen, peer) = (
                format!("127.0.0.1:{}", ports[i]),
                format!("127.0.0.1:{}", ports[1 - i]),
            );
            let name = format!("w{}", i + 1);
            common::logged(&[
                "node",
                dirs[i].to_str().unwrap(),
                "--listen",
                &listen,
                "--name",
                &name,
                "--no-web",
                "--cluster-peer",
                &peer,
            ])
        })
        .collect();
    // Both follow each other before the first clip.
    for (_, _, log) in &workers {
        common::until_line(log, Duration::from_secs(20), |l| {
            l.contains("following peer")
        });
    }
    let streams = [subscribe_reasons(ports[0]), subscribe_reasons(ports[1])];
    let logs: Vec<_> = workers.iter().map(|(_, _, log)| log).collect();
    let events: Vec<_> = streams.iter().collect();
    for round in 0..5u64 {
        let stem = format!("clip-{round}");
        let name = format!("{stem}.mp4");
        let versions_of: Vec<Vec<u8>> = (0..2)
            .map(|side| common::pattern(200_000 + side * 1000, round * 2 + side as u64))
            .collect();
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for side in 0..2 {
                let (dir, bytes, barrier, name) =
                    (&dirs[side], &versions_of[side], &barrier, &name);
                s.spawn(move || {
                    barrier.wait();
                    record(&dir.join(name), bytes);
                });
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !both_kept(&dirs, &stem, &versions_of[0], &versions_of[1]) {
            if std::time::Instant::now() > deadline {
                let logs: Vec<String> = logs.iter().flat_map(|l| l.try_iter()).collect();
                let short = |b: &[u8]| blake3::hash(b).to_hex()[..7].to_owned();
                panic!(
                    "{name}: versions {} (w1) and {} (w2) not both kept on both workers: \
                     w1 {:?}, w2 {:?}\n{}",
                    short(&versions_of[0]),
                    short(&versions_of[1]),
                    listing(&dirs[0], &stem),
                    listing(&dirs[1], &stem),
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let (_, copy, _) = versions(&dirs[0], &stem).unwrap();
        line_of_any(&events, Duration::from_secs(10), "conflict event", |l| {
            l.ends_with(&format!(" created:conflict {copy}"))
        });
        line_of_any(&logs, Duration::from_secs(10), "conflict log line", |l| {
            l.contains(&format!("conflict: {name} was written here")) && l.contains(&copy)
        });
        eprintln!("round {round}: both versions kept, the older as {copy}");
    }
    let all: Vec<&PathBuf> = dirs.iter().collect();
    wait_until("no partial files", Duration::from_secs(10), || {
        leftovers(&all).is_empty()
    });
}

/// The files of `dir` named after `stem`, each with the first digits of its BLAKE3.
fn listing(dir: &Path, stem: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(stem))
        .map(|n| {
            let hash = fs::read(dir.join(&n)).map(|b| blake3::hash(&b).to_hex()[..7].to_owned());
            format!("{n}={}", hash.unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

/// The clips (`c*.mp4`) in `dir`, sorted.
fn clips(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('c') && n.ends_with(".mp4"))
        .collect();
    out.sort();
    out
}

/// An archive with its own retention (`--max-size`) removes its oldest copies, and does not
/// fetch them back from the camera that still has them: not while it runs, nor when it
/// starts again (its catch-up pulls nothing), so the clips it kept stay.
#[test]
fn what_the_archives_retention_removes_is_not_fetched_back() {
    let tmp = tempfile::tempdir().unwrap();
    let [cam, archive, state] = ["cam", "archive", "state"].map(|n| made(tmp.path(), n));
    // Four clips of 100 KB (25 blocks of 4 KiB each on disk); the archive keeps at most 250 KB.
    for i in 0..4 {
        fs::write(cam.join(format!("c{i}.mp4")), common::pattern(100_000, i)).unwrap();
    }
    let (_cam, cam_addr) = common::named_node(&cam, "cam", &["--no-web"]);
    let start_archive = || {
        common::logged(&[
            "node",
            archive.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--name",
            "archive",
            "--no-web",
            "--state",
            state.to_str().unwrap(),
            "--cluster-peer",
            &cam_addr,
            "--archive",
            "--max-size",
            "250000",
            "--retain-every",
            "100ms",
        ])
    };
    let (first, _, log) = start_archive();
    common::until_line(&log, Duration::from_secs(20), |l| {
        l.contains("caught up") && l.contains("pulled=4")
    });
    wait_until(
        "retention down to two clips",
        Duration::from_secs(10),
        || clips(&archive).len() == 2,
    );
    let kept = clips(&archive);
    drop(first);

    let (_again, _, log) = start_archive();
    let lines = common::until_line(&log, Duration::from_secs(20), |l| l.contains("caught up"));
    let caught_up = lines.last().unwrap();
    assert!(caught_up.contains("pulled=0"), "{caught_up}");
    // Retention has nothing to do: the clips kept are the same ones.
    assert_eq!(clips(&archive), kept);
    assert_eq!(clips(&cam).len(), 4);
}

/// A try that gave our losing version its conflict name (a hard link) and then failed to
/// put the peer's in its place leaves that name behind: the next try takes it as made (it is
/// the same file) and decides the conflict, instead of failing on it every time.
#[test]
fn a_conflict_name_left_by_a_failed_try_is_taken_as_made() {
    let tmp = tempfile::tempdir().unwrap();
    let [cam, worker] = ["cam", "worker"].map(|n| made(tmp.path(), n));
    let (ours, theirs) = (common::pattern(200_000, 1), common::pattern(300_000, 2));
    // Ours is the older: it loses, and keeps the conflict name made from its time and hash.
    let second = 1_780_000_000; // 2026-05-28T20:26:40Z
    drop_file(&cam, "clip.mp4", &theirs);
    drop_file(&worker, "clip.mp4", &ours);
    set_mtime(&cam.join("clip.mp4"), second + 100);
    set_mtime(&worker.join("clip.mp4"), second);
    let hash = blake3::hash(&ours).to_hex();
    let copy = format!("clip.sync-conflict-20260528-202640-{}.mp4", &hash[..7]);
    fs::hard_link(worker.join("clip.mp4"), worker.join(&copy)).unwrap();

    let [p_cam, p_worker] = [free_tcp_port(), free_tcp_port()];
    let _cam = start(&cam, "cam", p_cam, &[], &[]);
    let _worker = start(&worker, "worker", p_worker, &[p_cam], &[]);
    wait_until("the conflict decided", Duration::from_secs(20), || {
        versions(&worker, "clip").is_some_and(|(kept, name, copied)| {
            assert_eq!(name, copy, "one conflict copy, under the name left behind");
            kept == theirs && copied == ours
        })
    });
    wait_until("no partial files", Duration::from_secs(10), || {
        leftovers(&[&worker]).is_empty()
    });
}
