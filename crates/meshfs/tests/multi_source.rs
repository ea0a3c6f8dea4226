//! `meshfs get` from several nodes at once (`--from`), end to end with real nodes: every block
//! checked as it arrives (a lying source is dropped at its first bad block and named), sources
//! that die or hold another version, resume with another set of sources, a node announced on
//! the LAN group during the download.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::group::Group;
use common::relay::{lying_relay, number_after, relay_with};
use common::web::web_node;
use common::{bin, lines_of, named_node, pattern, run as meshfs, until_line, wait_until};

const MIB: usize = 1 << 20;

/// This file's block of group addresses (see [`Group::new`]).
const BLOCK: u8 = 130;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `n` shares holding `data` as `f.bin`, and the folder `get` runs in.
fn shares(n: usize, data: &[u8]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let shares = (0..n)
        .map(|i| {
            let share = dir.path().join(format!("share{i}"));
            std::fs::create_dir(&share).unwrap();
            std::fs::write(share.join("f.bin"), data).unwrap();
            share
        })
        .collect();
    let here = dir.path().join("here");
    std::fs::create_dir(&here).unwrap();
    (dir, shares)
}

fn here(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("here")
}

/// A node per share, named `n0`, `n1`, …, on no LAN group (the tests name them).
fn nodes(shares: &[PathBuf]) -> Vec<(common::Proc, String)> {
    shares
        .iter()
        .enumerate()
        .map(|(i, s)| named_node(s, &format!("n{i}"), &["--no-discovery", "--no-web"]))
        .collect()
}

/// `meshfs get` with `args` in `cwd`, running, its stdout and stderr on one channel each.
fn spawn_get(
    args: &[&str],
    cwd: &Path,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    (child, stderr)
}

/// `get --discover` of `f.bin` on the node at `addr`, listening on `group`, with `extra`.
fn discovering_get(group: &Group, addr: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "get".to_owned(),
        format!("meshfs://{addr}/f.bin"),
        "--discover".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([group.lan_args(), group.dnssd_args().into()].concat());
    args
}

/// Blocks the `.part.resume` record of a multi-source download marks verified.
fn blocks_done(record: &Path) -> u32 {
    let Ok(text) = std::fs::read_to_string(record) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("done "))
        .map(|bits| {
            bits.chars()
                .filter_map(|c| c.to_digit(16))
                .map(u32::count_ones)
                .sum()
        })
        .unwrap_or(0)
}

/// Blocks at the start of the file that the `.part.resume` record of a multi-source download
/// marks verified (its `done` bits: one hex digit per four blocks, the first block lowest).
fn leading_blocks_done(record: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(record) else {
        return 0;
    };
    let Some(bits) = text.lines().find_map(|l| l.strip_prefix("done ")) else {
        return 0;
    };
    bits.chars()
        .filter_map(|c| c.to_digit(16))
        .flat_map(|v| (0..4).map(move |i| v & (1 << i) != 0))
        .take_while(|&done| done)
        .count() as u64
}

/// Breaks if: blocks are not checked as they arrive (the lying source's block reaches the
/// file and only the final BLAKE3 sees it: the download fails instead of finishing from the
/// others), the source is not dropped at that block, or it is not named with its bytes.
#[test]
fn a_source_with_one_byte_changed_is_dropped_at_that_block() {
    let data = pattern(24 * MIB, 31);
    let (dir, shares) = shares(3, &data);
    let nodes = nodes(&shares);
    let (relay, liar) = lying_relay(&nodes[2].1);
    // In clear (the relay cannot see inside TLS), paced so that every source takes part.
    let out = meshfs(
        &[
            "--plaintext",
            "get",
            &format!("meshfs://{}/f.bin", nodes[0].1),
            "--from",
            &nodes[1].1,
            "--from",
            &liar,
            "--limit-rate",
            "24M",
        ],
        &here(&dir),
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let changed = number_after(&relay, "changed ");
    let k = changed / MIB as u64;
    let (start, end) = (
        k * MIB as u64,
        ((k + 1) * MIB as u64).min(data.len() as u64) - 1,
    );
    let dropped =
        format!("dropped {liar}: block {k} (bytes {start}-{end}) does not match the file's BLAKE3");
    assert!(all.contains(&dropped), "{dropped:?} not in\n{all}");
    assert!(!all.contains("started over"), "{all}");
    for (_, addr) in &nodes[..2] {
        assert!(all.contains(&format!("from {addr}: ")), "{all}");
    }
    assert!(std::fs::read(here(&dir).join("f.bin")).unwrap() == data);
}

/// Breaks if: the node that named the version, sending a first block unlike its own list (its
/// file changed right after it listed its blocks), is said to hold "another version" instead of
/// being dropped at that block, or the others do not finish the download.
#[test]
fn the_node_naming_the_version_is_dropped_when_its_first_block_is_bad() {
    let data = pattern(24 * MIB, 37);
    let (dir, shares) = shares(2, &data);
    let nodes = nodes(&shares);
    let (relay, liar) = relay_with(&nodes[0].1, &["--first-pread"]);
    // Paced, so the bad block (among the first four asked) is checked long before the end,
    // where another source may take over a block still in flight and its copy be discarded
    // unchecked as a duplicate.
    let out = meshfs(
        &[
            "--plaintext",
            "get",
            &format!("meshfs://{liar}/f.bin"),
            "--from",
            &nodes[1].1,
            "--limit-rate",
            "24M",
        ],
        &here(&dir),
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let k = number_after(&relay, "changed ") / MIB as u64;
    let (start, end) = (k * MIB as u64, (k + 1) * MIB as u64 - 1);
    let dropped =
        format!("dropped {liar}: block {k} (bytes {start}-{end}) does not match the file's BLAKE3");
    assert!(all.contains(&dropped), "{dropped:?} not in\n{all}");
    assert!(!all.contains("another version"), "{all}");
    assert!(std::fs::read(here(&dir).join("f.bin")).unwrap() == data);
}

/// Breaks if: a source that dies mid-transfer fails the download, or its blocks are not
/// taken over by the others.
#[test]
fn a_source_killed_mid_transfer_leaves_the_rest_to_finish() {
    let data = pattern(32 * MIB, 32);
    let (dir, shares) = shares(2, &data);
    let mut nodes = nodes(&shares);
    let (get, stderr) = spawn_get(
        &[
            "get",
            &format!("meshfs://{}/f.bin", nodes[0].1),
            "--from",
            &nodes[1].1,
            "--limit-rate",
            "16M",
        ],
        &here(&dir),
    );
    let killed = nodes[1].1.clone();
    until_line(&stderr, Duration::from_secs(20), |l| {
        l == format!("using {killed}")
    });
    let record = here(&dir).join("f.bin.part.resume");
    wait_until(Duration::from_secs(20), "4 blocks verified", || {
        blocks_done(&record) >= 4
    });
    let (mut node, _) = nodes.pop().unwrap();
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let out = get.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr.try_iter().collect::<Vec<_>>().join("\n")
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("lost {killed} after ")), "{all}");
    assert!(all.contains(&format!("from {}: ", nodes[0].1)), "{all}");
    assert!(std::fs::read(here(&dir).join("f.bin")).unwrap() == data);
}

/// Breaks if: the resume record ties a multi-source `.part` to its sources (a resume from
/// others starts over), or the blocks kept are not reused.
#[test]
fn a_download_resumes_with_a_different_set_of_sources() {
    let data = pattern(24 * MIB, 33);
    let (dir, shares) = shares(3, &data);
    let nodes = nodes(&shares);
    let (mut get, stderr) = spawn_get(
        &[
            "get",
            &format!("meshfs://{}/f.bin", nodes[0].1),
            "--from",
            &nodes[1].1,
            "--limit-rate",
            "8M",
        ],
        &here(&dir),
    );
    let record = here(&dir).join("f.bin.part.resume");
    wait_until(Duration::from_secs(30), "4 blocks verified", || {
        blocks_done(&record) >= 4
    });
    get.kill().unwrap();
    get.wait().unwrap();
    drop(stderr);
    let kept = blocks_done(&record) as u64;
    assert!(kept < 24, "killed before the end");

    // Neither of the first two nodes now: the third alone, then with the second.
    let out = meshfs(
        &[
            "get",
            &format!("meshfs://{}/f.bin", nodes[2].1),
            "--from",
            &nodes[1].1,
        ],
        &here(&dir),
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let reused = all
        .lines()
        .find_map(|l| {
            l.strip_prefix("kept ")?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no `kept N verified bytes` line in\n{all}"));
    assert!(
        reused >= kept * MIB as u64,
        "{reused} < {kept} blocks\n{all}"
    );
    assert!(!all.contains("started over"), "{all}");
    assert!(all.contains(&format!("from {}: ", nodes[2].1)), "{all}");
    assert!(std::fs::read(here(&dir).join("f.bin")).unwrap() == data);
}

/// Breaks if: a single-source run (`--follow` takes that path) over the `.part` of an
/// interrupted multi-source download starts over instead of going on from the verified blocks
/// at its start.
#[test]
fn a_follow_run_continues_the_verified_start_of_a_multi_source_part() {
    let data = pattern(24 * MIB, 38);
    let (dir, shares) = shares(2, &data);
    let nodes = nodes(&shares);
    let url = format!("meshfs://{}/f.bin", nodes[0].1);
    let (mut get, stderr) = spawn_get(
        &["get", &url, "--from", &nodes[1].1, "--limit-rate", "8M"],
        &here(&dir),
    );
    let record = here(&dir).join("f.bin.part.resume");
    wait_until(Duration::from_secs(30), "2 leading blocks verified", || {
        leading_blocks_done(&record) >= 2
    });
    get.kill().unwrap();
    get.wait().unwrap();
    drop(stderr);
    let kept = leading_blocks_done(&record);
    assert!(kept < 24, "killed before the end");

    let out = meshfs(&["get", &url, "--follow", "--timeout", "1s"], &here(&dir));
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains(&format!("resumed at byte {}", kept * MIB as u64)),
        "{kept} blocks kept\n{all}"
    );
    assert!(!all.contains("started over"), "{all}");
    assert!(std::fs::read(here(&dir).join("f.bin")).unwrap() == data);
    assert!(!record.exists());
}

/// Breaks if: a `--from` node without the file fails the download, or one holding another
/// version (same size) is used or said to have sent a bad block, or one that refuses connections is not
/// named with its cause (said once).
#[test]
fn sources_without_the_file_or_with_another_version_are_not_used() {
    let data = pattern(6 * MIB, 34);
    let (dir, shares) = shares(3, &data);
    std::fs::remove_file(shares[1].join("f.bin")).unwrap();
    // Another version of the same size: its first block (whichever is asked) tells.
    std::fs::write(shares[2].join("f.bin"), pattern(data.len(), 99)).unwrap();
    let nodes = nodes(&shares);
    let refused = common::RefusedPort::bind();
    let out = meshfs(
        &[
            "get",
            &format!("meshfs://{}/f.bin", nodes[0].1),
            "--from",
            &nodes[1].1,
            "--from",
            &nodes[2].1,
            "--from",
            &refused.addr,
            // Long enough (0.5 s) for every source to be judged before the end.
            "--limit-rate",
            "12M",
        ],
        &here(&dir),
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains(&format!("not using {}: ", nodes[1].1)) && all.contains("no such file"),
        "{all}"
    );
    let other = format!(
        "not using {}: it holds another version of the file (its first block, ",
        nodes[2].1
    );
    assert_eq!(all.matches(&other).count(), 1, "{all}");
    assert!(!all.contains("dropped"), "{all}");
    // A source that cannot be reached is named with its cause, said once.
    let line = all
        .lines()
        .find(|l| l.starts_with(&format!("not using {}: ", refused.addr)))
        .unwrap_or_else(|| panic!("the refused source is not named: {all}"));
    assert_eq!(line.matches("Connection refused").count(), 1, "{line}");
    assert!(
        all.contains(&format!(
            "from {}: {} bytes (100.0 %)",
            nodes[0].1,
            data.len()
        )),
        "{all}"
    );
    assert!(!all.contains(&format!("from {}", nodes[2].1)), "{all}");
    assert!(std::fs::read(here(&dir).join("f.bin")).unwrap() == data);
}

/// Breaks if: a node that appears on the LAN group during the download is not used.
#[test]
fn a_node_announced_during_the_download_is_used() {
    let data = pattern(24 * MIB, 35);
    let (dir, shares) = shares(2, &data);
    let group = Group::new(BLOCK);
    let flags = [group.args(), group.dnssd_args().into()].concat();
    let (_first, first_addr) = named_node(&shares[0], "n0", &flags);
    let args = discovering_get(&group, &first_addr, &["--limit-rate", "8M"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (get, stderr) = spawn_get(&args, &here(&dir));
    let record = here(&dir).join("f.bin.part.resume");
    wait_until(Duration::from_secs(20), "a block verified", || {
        blocks_done(&record) >= 1
    });
    let (_late, late_addr) = named_node(&shares[1], "n1", &flags);
    until_line(&stderr, Duration::from_secs(20), |l| {
        l == format!("using {late_addr}")
    });
    let out = get.wait_with_output().unwrap();
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("from {late_addr}: ")), "{all}");
    assert!(std::fs::read(here(&dir).join("f.bin")).unwrap() == data);
}

/// Breaks if: a node found on the LAN that asks for a password is tried without one and
/// left out, though `--password-file NODE=FILE` gives it.
#[test]
fn a_protected_node_found_on_the_lan_is_used_with_its_password() {
    let data = pattern(24 * MIB, 37);
    let (dir, shares) = shares(2, &data);
    let group = Group::new(BLOCK);
    let flags = [group.args(), group.dnssd_args().into()].concat();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let (_open, open_addr) = named_node(&shares[0], "n0", &flags);
    let mut locked = flags.clone();
    locked.extend(["--password-file".to_owned(), pw.display().to_string()]);
    let (_locked, locked_addr) = named_node(&shares[1], "n1", &locked);
    let for_n1 = format!("n1={}", pw.display());
    let extra = ["--limit-rate", "8M", "--password-file", &for_n1];
    let args = discovering_get(&group, &open_addr, &extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = meshfs(&args, &here(&dir));
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("from {locked_addr}: ")), "{all}");
    assert!(std::fs::read(here(&dir).join("f.bin")).unwrap() == data);
}

/// Breaks if: a download whose every source died waits forever (or spins) for another to
/// appear on the group instead of failing after `--timeout`, or throws its blocks away.
#[test]
fn when_every_source_is_gone_the_download_fails_and_keeps_its_blocks() {
    let data = pattern(24 * MIB, 36);
    let (dir, shares) = shares(1, &data);
    let group = Group::new(BLOCK);
    let flags = [group.args(), group.dnssd_args().into()].concat();
    let (mut node, addr) = named_node(&shares[0], "n0", &flags);
    let extra = ["--limit-rate", "8M", "--timeout", "2s", "--retries", "0"];
    let args = discovering_get(&group, &addr, &extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (get, stderr) = spawn_get(&args, &here(&dir));
    let record = here(&dir).join("f.bin.part.resume");
    wait_until(Duration::from_secs(20), "2 blocks verified", || {
        blocks_done(&record) >= 2
    });
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let gone = std::time::Instant::now();
    let out = get.wait_with_output().unwrap();
    let waited = gone.elapsed();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr.try_iter().collect::<Vec<_>>().join("\n")
    );
    assert!(!out.status.success(), "{all}");
    assert!(waited < Duration::from_secs(20), "{waited:?}\n{all}");
    assert!(all.contains(&format!("lost {addr} after ")), "{all}");
    assert!(blocks_done(&record) >= 2, "the verified blocks are kept");
    assert!(here(&dir).join("f.bin.part").exists());
}

/// Breaks if: the wait for the first source's `blocks` is the plain `--timeout` (a node still
/// reading a big file answers after it: the download fails), or extra sources are asked for a
/// hash before they are used (each would read the whole file first; here each is held past
/// `--timeout`, so such a source is never used).
#[test]
fn a_node_slow_to_hash_is_waited_for_and_other_sources_are_not_asked_to_hash() {
    let data = pattern(32 * MIB, 36);
    let (dir, shares) = shares(2, &data);
    let nodes = nodes(&shares);
    // Each relay holds hash replies 4 s: longer than --timeout, shorter than the wait for
    // 32 MiB (2 s + 8 s).
    let (first, first_addr) = relay_with(&nodes[0].1, &["--honest", "--slow-hash", "4"]);
    let (other, other_addr) = relay_with(&nodes[1].1, &["--honest", "--slow-hash", "4"]);
    let out = meshfs(
        &[
            "--plaintext",
            "get",
            &format!("meshfs://{first_addr}/f.bin"),
            "--from",
            &other_addr,
            "--timeout",
            "2s",
            "--retries",
            "0",
            // Long enough (2 s) for both sources to take part.
            "--limit-rate",
            "16M",
        ],
        &here(&dir),
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for addr in [&first_addr, &other_addr] {
        assert!(all.contains(&format!("from {addr}: ")), "{all}");
    }
    assert!(
        !all.contains("bytes (0.0 %)"),
        "a source brought nothing: {all}"
    );
    assert!(std::fs::read(here(&dir).join("f.bin")).unwrap() == data);
    let asked = |relay: &common::Proc| relay.lines.try_iter().collect::<Vec<_>>();
    assert_eq!(
        asked(&first),
        ["asked blocks"],
        "the first source: one read"
    );
    assert_eq!(
        asked(&other),
        [] as [String; 0],
        "the other source: no hash asked"
    );
}

/// `meshfs_hash_reads_total` of the node whose web door is `web`.
fn hash_reads(web: &str) -> u64 {
    let body = common::web::get(web, "/metrics").text();
    body.lines()
        .find_map(|l| l.strip_prefix("meshfs_hash_reads_total "))
        .unwrap_or_else(|| panic!("no meshfs_hash_reads_total in\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

/// One request on a connection of its own: its status line, and the payload a `0 N` status
/// of `blocks` announces.
fn ask(addr: &str, request: &str) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    if request.starts_with("blocks")
        && let Some(n) = status.strip_prefix("0 ")
    {
        let mut payload = vec![0; n.trim().parse().unwrap()];
        reader.read_exact(&mut payload).unwrap();
    }
    status.trim_end().to_owned()
}

/// Breaks if: a request for a file version the node is already reading to hash (a client's
/// retry, a second downloader) starts a second read of the whole file instead of waiting for
/// the first (single flight per version), or `hash` and `blocks` of one version do not share it.
#[test]
fn requests_for_a_version_being_hashed_share_one_read() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    // Sparse: nothing on disk, yet 2 GiB to read and hash, a second or more.
    let size: u64 = 2 << 30;
    std::fs::File::create(share.join("big.bin"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let node = web_node(&share, "n0", &[]);
    assert_eq!(hash_reads(&node.web), 0);
    let first = {
        let addr = node.addr.clone();
        std::thread::spawn(move || ask(&addr, &format!("blocks {size} big.bin")))
    };
    // The first read is under way (counted as it starts): ask again meanwhile.
    wait_until(Duration::from_secs(30), "the first read started", || {
        hash_reads(&node.web) == 1
    });
    let second = {
        let addr = node.addr.clone();
        std::thread::spawn(move || ask(&addr, "hash big.bin"))
    };
    let blocks = format!("0 {}", size / MIB as u64 * 32);
    assert_eq!(first.join().unwrap(), blocks);
    let hash = second.join().unwrap();
    assert!(hash.starts_with("0 ") && hash.len() == 66, "{hash}");
    assert_eq!(hash_reads(&node.web), 1, "the file was read more than once");
    // Remembered: asked again, nothing is read.
    assert_eq!(
        ask(&node.addr, &format!("hash-prefix {size} big.bin")),
        hash
    );
    assert_eq!(hash_reads(&node.web), 1);
}

/// Breaks if: `get --discover` does not ask the node it is given for its `--cluster-peer`s
/// (`cluster-peers`), so a replica that is not on the LAN group is never used: here the
/// camera an archive replica pulls from, found from the archive.
#[test]
fn the_cluster_peers_of_the_node_named_are_used() {
    let data = pattern(24 * MIB, 37);
    let (dir, shares) = shares(1, &data);
    let archive_share = dir.path().join("archive");
    std::fs::create_dir(&archive_share).unwrap();
    // Neither node is on any LAN group: only `cluster-peers` can tell of the camera.
    let (_cam, cam) = named_node(&shares[0], "cam", &["--no-discovery", "--no-web"]);
    let (_archive, archive) = named_node(
        &archive_share,
        "archive",
        &[
            "--no-discovery",
            "--no-web",
            "--cluster-peer",
            &cam,
            "--archive",
        ],
    );
    wait_until(Duration::from_secs(60), "the archive's copy", || {
        std::fs::read(archive_share.join("f.bin")).is_ok_and(|d| d == data)
    });
    let group = Group::new(BLOCK);
    let args = discovering_get(&group, &archive, &["--limit-rate", "12M"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = meshfs(&args, &here(&dir));
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("using {cam}")), "{all}");
    assert!(all.contains(&format!("from {cam}: ")), "{all}");
    assert!(!all.contains(&format!("from {cam}: 0 bytes")), "{all}");
    assert!(std::fs::read(here(&dir).join("f.bin")).unwrap() == data);
}
