//! End-to-end: the real `meshfs` binary as node and as client (`ls`, `stat`, `cat`, `get`),
//! including crash/resume and clean shutdown.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::group::Group;
use common::{bin, named_node, node, pattern, run as meshfs, wait_until};

/// This file's block of group addresses (see [`Group::new`]).
const BLOCK: u8 = 60;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ls_stat_cat_against_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir_all(share.join("clips")).unwrap();
    std::fs::write(share.join("clips/a b.txt"), b"some text\n").unwrap();
    let (_node, addr) = node(&share, &[]);

    let out = meshfs(&["ls", &format!("meshfs://{addr}/")], dir.path());
    assert!(out.status.success());
    assert!(stdout(&out).contains(" clips/"), "{}", stdout(&out));

    let out = meshfs(&["ls", &format!("meshfs://{addr}/clips")], dir.path());
    assert!(stdout(&out).contains("a b.txt"));

    let out = meshfs(
        &["stat", &format!("meshfs://{addr}/clips/a b.txt")],
        dir.path(),
    );
    let text = stdout(&out);
    assert!(
        text.contains("size: 10\n") && text.contains("type: file\n"),
        "{text}"
    );

    let out = meshfs(
        &["cat", &format!("meshfs://{addr}/clips/a b.txt")],
        dir.path(),
    );
    assert_eq!(out.stdout, b"some text\n");

    // A file of many TLS records and several 1 MiB reads, in TLS (the default) and in clear.
    let big = pattern((5 << 20) + 12_345, 3);
    std::fs::write(share.join("clips/big.bin"), &big).unwrap();
    for plain in [&[][..], &["--plaintext"][..]] {
        let url = format!("meshfs://{addr}/clips/big.bin");
        let out = meshfs(&[&["cat", url.as_str()][..], plain].concat(), dir.path());
        assert!(out.status.success(), "{plain:?}: {out:?}");
        assert!(out.stdout == big, "{plain:?}: cat gave other bytes");
    }

    let out = meshfs(&["cat", &format!("meshfs://{addr}/nope")], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));

    let out = meshfs(&["ls", "http://example/"], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("meshfs://HOST"));
}

#[test]
fn get_downloads_verifies_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let data = pattern(9 << 20, 1);
    std::fs::write(share.join("video.mp4"), &data).unwrap();
    std::fs::write(share.join("empty"), b"").unwrap();
    let (_node, addr) = node(&share, &[]);

    let out = meshfs(&["get", &format!("meshfs://{addr}/video.mp4")], dir.path());
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{} bytes received in ", data.len())),
        "{text}"
    );
    assert!(std::fs::read(dir.path().join("video.mp4")).unwrap() == data);
    assert!(!dir.path().join("video.mp4.part").exists());
    assert!(!dir.path().join("video.mp4.part.resume").exists());

    let dest = dir.path().join("e");
    let out = meshfs(
        &[
            "get",
            &format!("meshfs://{addr}/empty"),
            dest.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(out.status.success());
    assert_eq!(std::fs::read(&dest).unwrap(), b"");

    let out = meshfs(&["get", &format!("meshfs://{addr}/missing")], dir.path());
    assert!(!out.status.success());
    assert!(!dir.path().join("missing.part").exists());
}

#[test]
fn get_killed_mid_transfer_resumes_and_restarts_when_remote_changed() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let data = pattern(48 << 20, 2);
    std::fs::write(share.join("clip.bin"), &data).unwrap();
    let (_node, addr) = node(&share, &[]);
    let url = format!("meshfs://{addr}/clip.bin");
    let dest = dir.path().join("clip.bin");
    let part = dir.path().join("clip.bin.part");

    // First attempt: throttled so it is still running when killed.
    let kill_mid_transfer = || {
        let mut child = Command::new(bin())
            .args(["get", &url, dest.to_str().unwrap(), "--limit-rate", "24M"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(20), "partial download", || {
            std::fs::metadata(&part)
                .map(|m| m.len() >= 8 << 20)
                .unwrap_or(false)
        });
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let kept = std::fs::metadata(&part).unwrap().len();
        assert!(kept > 0 && kept < data.len() as u64, "kept {kept}");
        kept
    };
    let kept = kill_mid_transfer();

    let out = meshfs(&["get", &url, dest.to_str().unwrap()], dir.path());
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains(&format!("resumed at byte {kept}")), "{text}");
    let received: u64 = text
        .lines()
        .find_map(|l| l.split(" bytes received").next()?.parse().ok())
        .expect("summary line");
    assert_eq!(received, data.len() as u64 - kept);
    assert!(std::fs::read(&dest).unwrap() == data);

    // Again, but the remote file changes between the two runs: start over, still correct.
    std::fs::remove_file(&dest).unwrap();
    kill_mid_transfer();
    let changed = pattern(20 << 20, 3);
    std::fs::write(share.join("clip.bin"), &changed).unwrap();
    let out = meshfs(&["get", &url, dest.to_str().unwrap()], dir.path());
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("started over"), "{}", stdout(&out));
    assert!(std::fs::read(&dest).unwrap() == changed);
}

#[test]
fn damaged_partial_file_is_detected_by_the_tail_check() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let data = pattern(4 << 20, 4);
    std::fs::write(share.join("f"), &data).unwrap();
    let (_node, addr) = node(&share, &[]);
    let url = format!("meshfs://{addr}/f");
    let dest = dir.path().join("f");
    // A complete download, then fake an interrupted one whose tail is garbage.
    assert!(meshfs(&["get", &url], dir.path()).status.success());
    let md = std::fs::metadata(share.join("f")).unwrap();
    // `stat` tells the time to the second, and the record holds what `stat` told.
    let mtime_ns = std::os::unix::fs::MetadataExt::mtime(&md) * 1_000_000_000;
    let mut torn = data[..1 << 20].to_vec();
    torn[(1 << 20) - 10..].fill(0);
    std::fs::write(dir.path().join("f.part"), &torn).unwrap();
    std::fs::write(
        dir.path().join("f.part.resume"),
        format!(
            "meshfs-resume 1\nsource {url}\nsize {}\nmtime_ns {mtime_ns}\n",
            data.len()
        ),
    )
    .unwrap();
    std::fs::remove_file(&dest).unwrap();
    let out = meshfs(&["get", &url], dir.path());
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("started over"));
    // Caught before resuming: nothing was fetched twice.
    assert!(
        stdout(&out).contains(&format!("{} bytes received", data.len())),
        "{}",
        stdout(&out)
    );
    assert!(std::fs::read(&dest).unwrap() == data);
}

#[test]
fn sigint_during_a_transfer_exits_zero_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("big"), pattern(32 << 20, 5)).unwrap();
    let (mut node, addr) = node(&share, &["--grace", "2s"]);
    let part = dir.path().join("big.part");
    let mut client = Command::new(bin())
        .args(["get", &format!("meshfs://{addr}/big"), "--limit-rate", "8M"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), "transfer under way", || {
        std::fs::metadata(&part)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    });
    let started = Instant::now();
    node.signal(libc::SIGINT);
    let status = node.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "node exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    // The client sees the cut and fails, keeping its partial file for a later resume.
    let status = client.wait().unwrap();
    assert!(!status.success());
    assert!(part.exists());
}

#[test]
fn node_creates_its_folder_and_stops_cleanly_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    // Only the last part of the path is created (a mistyped parent is an error: tests/node.rs).
    let share = dir.path().join("new");
    let (mut node, addr) = node(&share, &[]);
    assert!(share.is_dir());
    let out = meshfs(&["ls", &format!("meshfs://{addr}/")], dir.path());
    assert!(out.status.success());
    node.signal(libc::SIGTERM);
    assert!(node.wait_exit(Duration::from_secs(5)).success());
}

#[test]
fn name_colon_path_finds_the_node_on_the_lan_group() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("clip.mp4"), b"named node").unwrap();
    // A group, and a DNS-SD port, of this test's own, on loopback.
    let net = Group::new(BLOCK);
    let group = [net.lan_args(), net.dnssd_args().into()].concat();
    let group: Vec<&str> = group.iter().map(String::as_str).collect();
    let mut args = vec!["--no-web"];
    args.extend_from_slice(&group);
    let (_node, _) = named_node(&share, "cam9", &args);

    let mut get = vec!["get", "cam9:clip.mp4"];
    get.extend_from_slice(&group);
    let out = meshfs(&get, dir.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(dir.path().join("clip.mp4")).unwrap(),
        b"named node"
    );

    let mut cat = vec!["cat", "cam9:/clip.mp4"];
    cat.extend_from_slice(&group);
    assert_eq!(meshfs(&cat, dir.path()).stdout, b"named node");

    let mut missing = vec!["ls", "nosuchnode:", "--lookup-wait", "300ms"];
    missing.extend_from_slice(&group);
    let out = meshfs(&missing, dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node named \"nosuchnode\""));

    // A multicast group that reaches nobody: the name is found through DNS-SD alone.
    let other = [Group::new(BLOCK).lan_args(), net.dnssd_args().into()].concat();
    let mut cat = vec!["cat", "cam9:clip.mp4", "--lookup-wait", "3s"];
    cat.extend(other.iter().map(String::as_str));
    let out = meshfs(&cat, dir.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"named node");
}
