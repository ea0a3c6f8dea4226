//! `meshfs get`'s guarantees, end to end with real nodes: a file still being recorded is saved
//! as a verified snapshot or followed until closed; progress on a file that only grew is kept;
//! a `.part` whose bytes are wrong (flipped, or the remote rewritten in place keeping its size
//! and time) never becomes the file; an unreadable file leaves nothing behind; an existing
//! destination is not replaced without `--force`.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use common::{bin, node, pattern, run as meshfs, spawn_piped, wait_until};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A share in a fresh folder; the folder is also where `get` runs.
fn share() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    (dir, share)
}

/// Bytes received, from `get`'s summary line.
fn received(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.split(" bytes received").next()?.parse().ok())
        .unwrap_or_else(|| panic!("no summary line in {text}"))
}

/// A camera recording `data` into `path`: `start` bytes at once, then 64 KiB every few
/// milliseconds from a thread, the file held open until [`Recorder::finish`].
struct Recorder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(File, usize)>>,
    data: Arc<Vec<u8>>,
}

impl Recorder {
    fn start(path: &Path, data: Vec<u8>, start: usize) -> Recorder {
        let mut file = File::create(path).unwrap();
        file.write_all(&data[..start]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let data = Arc::new(data);
        let (flag, bytes) = (stop.clone(), data.clone());
        let thread = std::thread::spawn(move || {
            let mut pos = start;
            // Pacing a producer, not waiting for a result: a camera writes at its own rate.
            while !flag.load(Ordering::Relaxed) && pos < bytes.len() {
                let end = (pos + (64 << 10)).min(bytes.len());
                file.write_all(&bytes[pos..end]).unwrap();
                pos = end;
                std::thread::sleep(Duration::from_millis(5));
            }
            (file, pos)
        });
        Recorder {
            stop,
            thread: Some(thread),
            data,
        }
    }

    /// Stop recording here, the file still open; returns it and how much it holds.
    fn pause(&mut self) -> (File, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }

    /// Write the rest of the recording and close the file (the node's `closed` event).
    fn finish(mut self) {
        let (mut file, pos) = self.pause();
        file.write_all(&self.data[pos..]).unwrap();
        drop(file);
    }
}

/// Breaks if: a growing file is verified against the hash of more than the snapshot taken
/// (the download fails and its progress is thrown away), or the user is not told.
#[test]
fn a_file_still_being_recorded_is_saved_as_a_verified_snapshot() {
    let (dir, share) = share();
    let data = pattern(96 << 20, 21);
    let (_node, addr) = node(&share, &[]);
    let mut camera = Recorder::start(&share.join("rec.mp4"), data.clone(), 6 << 20);
    // Throttled, so the recording grows while it is copied.
    let out = meshfs(
        &[
            "get",
            &format!("meshfs://{addr}/rec.mp4"),
            "--limit-rate",
            "24M",
        ],
        dir.path(),
    );
    let (_file, recorded) = camera.pause();
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let saved = std::fs::read(dir.path().join("rec.mp4")).unwrap();
    assert!(
        saved.len() >= 6 << 20 && saved.len() < recorded,
        "{}",
        saved.len()
    );
    assert!(saved[..] == data[..saved.len()], "the snapshot is a prefix");
    assert!(
        text.contains("a snapshot, the file is still being written"),
        "{text}"
    );
    assert!(text.contains("--follow"), "{text}");
    assert!(!dir.path().join("rec.mp4.part").exists());
}

/// Breaks if: `--follow` stops before the node reports the recording closed, or saves
/// anything but the whole recording.
#[test]
fn follow_fetches_a_recording_until_the_node_reports_it_closed() {
    let (dir, share) = share();
    let data = pattern(24 << 20, 22);
    let (_node, addr) = node(&share, &[]);
    let camera = Recorder::start(&share.join("rec.mp4"), data.clone(), 1 << 20);
    let part = dir.path().join("rec.mp4.part");
    let get = Command::new(bin())
        .args(["get", &format!("meshfs://{addr}/rec.mp4"), "--follow"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), "get to follow past 2 MiB", || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() >= 2 << 20)
    });
    camera.finish();
    let out = get.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("followed until the node reported the file closed"),
        "{text}"
    );
    assert!(std::fs::read(dir.path().join("rec.mp4")).unwrap() == data);
}

/// Write `DEST.part` and its record as an interrupted `get` of `url` leaves them, the remote
/// file being `remote` as it is now.
fn interrupted(dir: &Path, name: &str, url: &str, remote: &Path, part: &[u8]) {
    let md = std::fs::metadata(remote).unwrap();
    // `stat` tells the time to the second, and the record holds what `stat` told.
    let mtime_ns = md.mtime() * 1_000_000_000;
    std::fs::write(dir.join(format!("{name}.part")), part).unwrap();
    std::fs::write(
        dir.join(format!("{name}.part.resume")),
        format!(
            "meshfs-resume 1\nsource {url}\nsize {}\nmtime_ns {mtime_ns}\n",
            md.len()
        ),
    )
    .unwrap();
}

/// Breaks if: a resume of a file that only grew (a recording) starts over.
#[test]
fn a_resume_of_a_file_that_only_grew_continues() {
    let (dir, share) = share();
    let data = pattern(6 << 20, 23);
    let remote = share.join("rec.mp4");
    std::fs::write(&remote, &data[..3 << 20]).unwrap();
    let (_node, addr) = node(&share, &[]);
    let url = format!("meshfs://{addr}/rec.mp4");
    interrupted(dir.path(), "rec.mp4", &url, &remote, &data[..1 << 20]);
    let mut file = OpenOptions::new().append(true).open(&remote).unwrap();
    file.write_all(&data[3 << 20..]).unwrap();
    drop(file);

    let out = meshfs(&["get", &url], dir.path());
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains(&format!("resumed at byte {}", 1 << 20)),
        "{text}"
    );
    assert_eq!(received(&text), (data.len() - (1 << 20)) as u64, "{text}");
    assert!(std::fs::read(dir.path().join("rec.mp4")).unwrap() == data);
}

/// Breaks if: the final BLAKE3 comparison is skipped (the flipped byte, which the tail check
/// cannot see, ends up in the saved file), or a mismatch after a resume is not retried from
/// the start.
#[test]
fn a_byte_flipped_in_the_middle_of_the_part_never_reaches_the_file() {
    let (dir, share) = share();
    let data = pattern(4 << 20, 24);
    let remote = share.join("f.bin");
    std::fs::write(&remote, &data).unwrap();
    let (_node, addr) = node(&share, &[]);
    let url = format!("meshfs://{addr}/f.bin");
    let mut part = data[..2 << 20].to_vec();
    part[1 << 20] ^= 0x01;
    interrupted(dir.path(), "f.bin", &url, &remote, &part);

    let out = meshfs(&["get", &url], dir.path());
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("did not match the remote file"), "{text}");
    assert!(text.contains("started over"), "{text}");
    assert!(std::fs::read(dir.path().join("f.bin")).unwrap() == data);
}

/// Breaks if: a single-source download checks only the whole file at the end (the bad block
/// is found after every byte came, or the `.part` is removed), keeps unverified bytes past the
/// bad block in the `.part`, or does not name the block.
#[test]
fn a_node_sending_one_wrong_byte_is_caught_at_that_block_keeping_the_verified_ones() {
    const MIB: u64 = 1 << 20;
    let (dir, share) = share();
    let data = pattern(48 << 20, 26);
    std::fs::write(share.join("f.bin"), &data).unwrap();
    let (_node, addr) = node(&share, &[]);
    let (relay, liar) = common::relay::lying_relay(&addr);
    // In clear (the relay cannot see inside TLS); paced, so the whole file takes about two
    // seconds and stopping early shows.
    let out = meshfs(
        &[
            "--plaintext",
            "get",
            &format!("meshfs://{liar}/f.bin"),
            "--limit-rate",
            "24M",
        ],
        dir.path(),
    );
    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    let changed = common::relay::number_after(&relay, "changed ");
    let k = changed / MIB;
    let (start, end) = (k * MIB, ((k + 1) * MIB).min(data.len() as u64) - 1);
    let named = format!("sent block {k} (bytes {start}-{end}) of f.bin unlike its own BLAKE3");
    assert!(text.contains(&named), "{named:?} not in\n{text}");
    let part = std::fs::read(dir.path().join("f.bin.part")).unwrap();
    assert_eq!(
        part.len() as u64,
        start,
        "only the blocks before the bad one are kept"
    );
    assert!(part[..] == data[..part.len()]);
    assert!(!dir.path().join("f.bin").exists());
    let passed = common::relay::number_after(&relay, "read ");
    assert!(
        passed < data.len() as u64 / 2,
        "the download went on after the bad block: {passed} bytes read"
    );
}

/// Breaks if: a remote rewritten in place with its size and mtime kept is resumed into a
/// mix of the old and new bytes.
#[test]
fn a_remote_rewritten_in_place_keeping_size_and_mtime_is_fetched_again() {
    let (dir, share) = share();
    let data = pattern(4 << 20, 25);
    let remote = share.join("f.bin");
    std::fs::write(&remote, &data).unwrap();
    let (_node, addr) = node(&share, &[]);
    let url = format!("meshfs://{addr}/f.bin");
    interrupted(dir.path(), "f.bin", &url, &remote, &data[..2 << 20]);
    // Rewrite one byte inside the part already copied, then put the mtime back.
    let mtime: SystemTime = std::fs::metadata(&remote).unwrap().modified().unwrap();
    let mut changed = data.clone();
    changed[1 << 20] ^= 0xff;
    let mut file = OpenOptions::new().write(true).open(&remote).unwrap();
    file.write_all(&changed).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);

    let out = meshfs(&["get", &url], dir.path());
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("did not match the remote file"), "{text}");
    assert!(std::fs::read(dir.path().join("f.bin")).unwrap() == changed);
}

/// A node serving `share` that cannot read what `chmod 000` closed: as root (which reads
/// anything) it runs as `nobody`, with a state folder of its own.
fn unprivileged_node(dir: &Path, share: &Path) -> (common::Proc, String) {
    let state = dir.join("node-state");
    std::fs::create_dir(&state).unwrap();
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        for p in [dir, share, &state] {
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        }
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()])
            .env("XDG_CONFIG_HOME", &state);
        cmd
    } else {
        Command::new(bin())
    };
    cmd.args(["node", share.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--state", state.to_str().unwrap()])
        .args(["--name", "locked"])
        .stderr(Stdio::inherit());
    let node = spawn_piped(&mut cmd);
    let line = node.next_line(Duration::from_secs(20));
    (node, common::node_addr(&line))
}

/// Breaks if: a download that fails before its first byte leaves an empty `.part` and a
/// record behind.
#[test]
fn get_of_an_unreadable_file_leaves_no_part() {
    let (dir, share) = share();
    std::fs::write(share.join("secret.bin"), b"not for you").unwrap();
    std::fs::set_permissions(
        share.join("secret.bin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let (_node, addr) = unprivileged_node(dir.path(), &share);
    let here = tempfile::tempdir().unwrap();
    // A client config of its own: this node's key is new on every run.
    let out = Command::new(bin())
        .args(["get", &format!("meshfs://{addr}/secret.bin")])
        .current_dir(here.path())
        .env("XDG_CONFIG_HOME", dir.path().join("client-config"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{out:?}"
    );
    let left: Vec<_> = std::fs::read_dir(here.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Breaks if: `get` replaces an existing file without `--force`.
#[test]
fn get_refuses_to_replace_an_existing_file_without_force() {
    let (dir, share) = share();
    let data = pattern(1 << 20, 26);
    std::fs::write(share.join("a.bin"), &data).unwrap();
    let (_node, addr) = node(&share, &[]);
    let url = format!("meshfs://{addr}/a.bin");
    let dest = dir.path().join("a.bin");
    std::fs::write(&dest, b"mine").unwrap();

    let out = meshfs(&["get", &url], dir.path());
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&dest).unwrap(), b"mine");
    assert!(!dir.path().join("a.bin.part").exists());

    let out = meshfs(&["get", &url, "--force"], dir.path());
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::read(&dest).unwrap() == data);
}

/// Breaks if: `get -r` misses a file or a folder, does not resume an interrupted file from its
/// `.part`, fetches again a file already here and verified, or replaces a differing local file
/// without `--force`.
#[test]
fn get_r_fetches_a_folder_resuming_skipping_verified_files_and_refusing_to_replace() {
    let (dir, share) = share();
    std::fs::create_dir_all(share.join("clips/day1")).unwrap();
    std::fs::create_dir_all(share.join("clips/empty")).unwrap();
    let a = pattern(300_000, 31);
    let b = pattern(3 << 20, 32);
    std::fs::write(share.join("clips/a.bin"), &a).unwrap();
    std::fs::write(share.join("clips/day1/b.bin"), &b).unwrap();
    std::fs::write(share.join("clips/day1/c.txt"), b"").unwrap();
    let (_node, addr) = node(&share, &[]);
    let url = format!("meshfs://{addr}/clips");
    // An earlier run stopped one MiB into b.bin.
    let local = dir.path().join("clips");
    std::fs::create_dir_all(local.join("day1")).unwrap();
    let remote_b = share.join("clips/day1/b.bin");
    interrupted(
        &local.join("day1"),
        "b.bin",
        &format!("{url}/day1/b.bin"),
        &remote_b,
        &b[..1 << 20],
    );

    let out = meshfs(&["get", "-r", &url], dir.path());
    assert!(out.status.success(), "{out:?}");
    let fetched = a.len() + b.len() - (1 << 20);
    assert_eq!(
        stdout(&out).trim_end(),
        format!(
            "3 files in clips: 3 downloaded ({fetched} bytes, 1 resumed), 0 up to date, 0 failed"
        )
    );
    assert!(std::fs::read(local.join("a.bin")).unwrap() == a);
    assert!(std::fs::read(local.join("day1/b.bin")).unwrap() == b);
    assert_eq!(std::fs::read(local.join("day1/c.txt")).unwrap(), b"");
    assert!(local.join("empty").is_dir());
    assert!(!local.join("day1/b.bin.part").exists());

    // Again: everything is here and verified, nothing is fetched.
    let out = meshfs(&["get", "-r", &url], dir.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out).trim_end(),
        "3 files in clips: 0 downloaded (0 bytes), 3 up to date, 0 failed"
    );

    // A local file that differs (same size) is not replaced without --force.
    let mut mine = a.clone();
    mine[1000] ^= 0xff;
    std::fs::write(local.join("a.bin"), &mine).unwrap();
    let out = meshfs(&["get", "-r", &url], dir.path());
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a.bin: ") && err.contains("--force replaces it"),
        "{err}"
    );
    assert_eq!(
        stdout(&out).trim_end(),
        "3 files in clips: 0 downloaded (0 bytes), 2 up to date, 1 failed"
    );
    assert!(std::fs::read(local.join("a.bin")).unwrap() == mine);
    let out = meshfs(&["get", "-r", &url, "--force"], dir.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out).trim_end(),
        format!(
            "3 files in clips: 1 downloaded ({} bytes), 2 up to date, 0 failed",
            a.len()
        )
    );
    assert!(std::fs::read(local.join("a.bin")).unwrap() == a);
}

/// On a terminal, `get` draws a progress bar; the bar and the closing summary speak one unit
/// system (decimal: MB and MB/s, as curl), never MiB beside MB.
#[test]
fn the_bar_and_the_summary_use_the_same_units() {
    let (dir, share) = share();
    std::fs::write(share.join("clip.bin"), pattern(3_000_000, 41)).unwrap();
    let (_node, addr) = node(&share, &[]);
    let url = format!("meshfs://{addr}/clip.bin");
    // Held to 2 MB/s so the bar is drawn several times before the end.
    let out = Command::new("python3")
        .arg(common::group::python_script("tty_run.py"))
        .args(["unused-password", bin(), "get", &url, "--limit-rate", "2M"])
        .current_dir(dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .output()
        .unwrap();
    common::assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("eta"), "no progress bar drawn: {text:?}");
    // Some drawing once bytes flowed shows the rate in MB/s (the first may show 0 B/s).
    let bars: Vec<&str> = text
        .split(['\r', '\n'])
        .filter(|l| l.contains("eta"))
        .collect();
    assert!(
        bars.iter()
            .any(|b| b.contains("MB/s") && b.contains(" MB/")),
        "{bars:?}"
    );
    assert!(text.contains("MB/s)"), "summary: {text:?}");
    assert!(!text.contains("MiB") && !text.contains("KiB"), "{text:?}");
}
