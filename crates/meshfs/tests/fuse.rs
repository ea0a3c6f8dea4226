//! End-to-end FUSE: real nodes (the real binary), a real mount of them with `meshfs mount` in a
//! temporary folder, read through the kernel. Skipped (with a printed reason) only when
//! `/dev/fuse` is absent. Every mount is unmounted at the end of its test, even on panic.

mod common;

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::group::Group;
use common::mount::{Mounted, fuse_available, is_mounted};
use common::ports::free_udp_port;
use common::{Proc, named_node};

const MIB: usize = 1 << 20;

/// Deterministic pseudo-random bytes, different per seed.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Poll an observable condition until it holds or `timeout` passes; returns whether it held.
fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A node named `name` serving `dir` on `listen`; returns it and its address.
fn node_on(dir: &Path, name: &str, listen: &str) -> (Proc, String) {
    common::node_at::<&str>(dir, name, listen, &[])
}

fn node(dir: &Path, name: &str) -> (Proc, String) {
    node_on(dir, name, "127.0.0.1:0")
}

/// Compare two files chunk by chunk (never a whole big file in memory).
fn assert_same_file(a: &Path, b: &Path) {
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; MIB], vec![0u8; MIB]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        assert_eq!(
            na,
            nb,
            "{} and {} differ in length near {offset}",
            a.display(),
            b.display()
        );
        assert!(
            ba[..na] == bb[..nb],
            "{} and {} differ in [{offset}, +{na})",
            a.display(),
            b.display()
        );
        if na == 0 {
            return;
        }
        offset += na as u64;
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Every file under `root`, as relative paths, sorted.
fn walk(root: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                go(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_str().unwrap().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

fn write(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

#[test]
fn two_nodes_list_and_read_byte_for_byte() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let (a, b) = (src.path().join("a"), src.path().join("b"));
    let sizes = [0, 1, MIB - 1, MIB, MIB + 1, 4096 * 3 + 17];
    for (i, size) in sizes.iter().enumerate() {
        write(&a, &format!("f{size}.bin"), &pattern(*size, i as u64));
        write(&b, &format!("f{size}.bin"), &pattern(*size, 100 + i as u64));
    }
    write(&a, "clips/2024 05 01/big.mp4", &pattern(40 * MIB + 123, 7));
    write(&b, "deep/er/still/x.txt", b"x\n");
    std::fs::create_dir_all(b.join("empty dir")).unwrap();
    let (_na, addr_a) = node(&a, "alpha");
    let (_nb, addr_b) = node(&b, "beta");
    let m = Mounted::new(&[&addr_a, &addr_b], &[]);

    // The root holds one folder per node, named from `hello`.
    let mut top: Vec<String> = std::fs::read_dir(&m.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, vec!["alpha", "beta"]);

    // `ls -R` through the mount shows every file and folder.
    let out = Command::new("ls").arg("-R").arg(&m.dir).output().unwrap();
    assert!(
        out.status.success(),
        "ls -R failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    for name in [
        "f0.bin",
        "f1048577.bin",
        "big.mp4",
        "2024 05 01",
        "x.txt",
        "empty dir",
    ] {
        assert!(
            listing.contains(name),
            "{name} missing from ls -R:\n{listing}"
        );
    }
    let out = Command::new("ls").arg("-lR").arg(&m.dir).output().unwrap();
    assert!(out.status.success());

    for (node_dir, name) in [(&a, "alpha"), (&b, "beta")] {
        let mounted = m.path(name);
        assert_eq!(walk(&mounted), walk(node_dir), "file sets of {name} differ");
        for rel in walk(node_dir) {
            let (src_file, mnt_file) = (node_dir.join(&rel), mounted.join(&rel));
            let (ms, mm) = (src_file.metadata().unwrap(), mnt_file.metadata().unwrap());
            assert_eq!(ms.len(), mm.len(), "size of {name}/{rel}");
            assert!(
                mm.permissions().readonly(),
                "{name}/{rel} shows as writable"
            );
            assert_same_file(&src_file, &mnt_file);
        }
    }

    // Random preads (4 KiB and odd sizes) through the mount match the source.
    let src_big = File::open(a.join("clips/2024 05 01/big.mp4")).unwrap();
    let mnt_big = File::open(m.path("alpha/clips/2024 05 01/big.mp4")).unwrap();
    let len = src_big.metadata().unwrap().len();
    let mut rng = pattern(8 * 200, 99)
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect::<Vec<_>>();
    rng.push(len - 1);
    rng.push(len - 4096);
    for (i, r) in rng.iter().enumerate() {
        let offset = r % len;
        let size = if i % 3 == 0 {
            4096
        } else {
            (r >> 40) as usize % (300 << 10) + 1
        };
        let (mut x, mut y) = (vec![0; size], vec![0; size]);
        let nx = src_big.read_at(&mut x, offset).unwrap();
        let ny = read_at_full(&mnt_big, &mut y, offset);
        assert_eq!(nx.min(size), ny, "pread length at {offset}");
        assert!(x[..nx] == y[..ny], "pread bytes at {offset} (+{size})");
    }
}

fn read_at_full(f: &File, buf: &mut [u8], offset: u64) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

#[test]
fn a_new_file_appears_within_a_second_and_a_deleted_one_disappears() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "clips/old.mp4", b"old");
    let (_n, addr) = node(src.path(), "cam");
    let m = Mounted::new(&[&addr], &[]);
    let clips = m.path("cam/clips");
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    assert_eq!(names(&clips), vec!["old.mp4"]);
    // Probe the new name first, so a stale negative answer would show.
    assert!(!clips.join("new.mp4").exists());

    write(src.path(), "clips/new.mp4", b"fresh bytes");
    let start = Instant::now();
    assert!(
        eventually(Duration::from_secs(1), || names(&clips)
            .contains(&"new.mp4".to_string())),
        "new file not listed within 1 s"
    );
    assert!(eventually(Duration::from_secs(1), || {
        std::fs::read(clips.join("new.mp4")).is_ok_and(|d| d == b"fresh bytes")
    }));
    eprintln!("new file visible after {:?}", start.elapsed());

    std::fs::remove_file(src.path().join("clips/old.mp4")).unwrap();
    assert!(
        eventually(Duration::from_secs(1), || !names(&clips)
            .contains(&"old.mp4".to_string())
            && !clips.join("old.mp4").exists()),
        "deleted file still visible after 1 s"
    );
}

/// A camera recording `all` into `path`, which holds its first `seen.len()` bytes: the rest is
/// appended 64 KiB at a time, one piece every `pace`, while `reader` (which has read `seen`)
/// follows it with reads of `buf`'s size. Asserts the reader gets exactly what was written.
fn follow_recording(
    path: &Path,
    all: &[u8],
    pace: Duration,
    reader: &mut File,
    mut seen: Vec<u8>,
    buf: &mut [u8],
) {
    let writer = {
        let (path, all, from) = (path.to_owned(), all.to_vec(), seen.len());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = File::options().append(true).open(&path).unwrap();
            let mut pos = from;
            while pos < all.len() {
                let end = (pos + 64 * 1024).min(all.len());
                f.write_all(&all[pos..end]).unwrap();
                f.flush().unwrap();
                pos = end;
                std::thread::sleep(pace); // a camera writes at its own pace
            }
        })
    };
    let followed = eventually(Duration::from_secs(20), || {
        let n = reader.read(buf).unwrap();
        seen.extend_from_slice(&buf[..n]);
        seen.len() >= all.len()
    });
    writer.join().unwrap();
    assert!(followed, "reader saw {} of {} bytes", seen.len(), all.len());
    assert!(
        seen == all,
        "bytes read while the file grew differ from what was written"
    );
}

#[test]
fn a_growing_file_shows_its_new_bytes() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("rec.h264");
    let all = pattern(40 * 64 * 1024, 5);
    std::fs::write(&path, &all[..100_000]).unwrap();
    let (_n, addr) = node(src.path(), "cam");
    let m = Mounted::new(&[&addr], &[]);
    let mnt = m.path("cam/rec.h264");

    // A reader following the file through one open handle, like a player on a live recording.
    let mut reader = File::open(&mnt).unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 256 << 10];
    let n = read_full(&mut reader, &mut buf);
    seen.extend_from_slice(&buf[..n]);
    assert_eq!(seen.len(), 100_000);

    // The writer appends in a loop while the reader follows.
    follow_recording(
        &path,
        &all,
        Duration::from_millis(20),
        &mut reader,
        seen,
        &mut buf,
    );
    assert!(eventually(Duration::from_secs(2), || mnt
        .metadata()
        .unwrap()
        .len()
        == all.len() as u64));
}

#[test]
fn a_dead_node_fails_fast_with_eio_and_works_again_when_back() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.bin", &pattern(3 * MIB, 1));
    write(src.path(), "b.bin", &pattern(64 * MIB, 2));
    write(src.path(), "c.bin", &pattern(10_000, 3));
    let (node_proc, addr) = node(src.path(), "cam");
    let m = Mounted::new(&[&addr], &["--connect-timeout", "1s", "--timeout", "2s"]);
    assert_eq!(
        std::fs::read(m.path("cam/a.bin")).unwrap(),
        pattern(3 * MIB, 1)
    );

    // A reader in the middle of a big file when the node vanishes.
    let mut big = File::open(m.path("cam/b.bin")).unwrap();
    let mut buf = vec![0u8; MIB];
    read_full(&mut big, &mut buf);
    drop(node_proc); // kill -9
    let start = Instant::now();
    let mut failed = None;
    for _ in 0..64 {
        match big.read(&mut buf) {
            Ok(0) => panic!("unexpected end of file"),
            Ok(_) => {}
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let e = failed.expect("reads kept succeeding after the node died");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "EIO took {:?}",
        start.elapsed()
    );

    // A file never read before: EIO, fast.
    let start = Instant::now();
    let e = std::fs::read(m.path("cam/c.bin")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "EIO took {:?}",
        start.elapsed()
    );

    // The node comes back on the same port: reads work, without remounting.
    let (_back, addr2) = node_on(src.path(), "cam", &addr);
    assert_eq!(addr2, addr);
    assert!(
        eventually(Duration::from_secs(5), || std::fs::read(
            m.path("cam/c.bin")
        )
        .is_ok_and(|d| d == pattern(10_000, 3))),
        "reads did not recover after the node came back"
    );
    assert_same_file(&src.path().join("b.bin"), &m.path("cam/b.bin"));
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = File::options().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn tail_f_on_the_mount_survives_a_node_restart_and_continues_the_file() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let rec = src.path().join("rec.log");
    std::fs::write(&rec, "line 1\n").unwrap();
    let (node_proc, addr) = node(src.path(), "cam");
    let m = Mounted::new(&[&addr], &["--connect-timeout", "1s", "--timeout", "2s"]);
    let mnt = m.path("cam/rec.log");
    // The real `tail -f` (a FUSE mount is a remote file system to it: it polls `fstat`).
    let tail_err = tempfile::NamedTempFile::new().unwrap();
    let mut tail = common::spawn_piped(
        Command::new("tail")
            .args(["-f", "-s", "0.1"])
            .arg(&mnt)
            .stderr(tail_err.reopen().unwrap()),
    );
    let line = Duration::from_secs(10);
    assert_eq!(tail.next_line(line), "line 1");
    append(&rec, "line 2\n");
    assert_eq!(tail.next_line(line), "line 2");
    // The test's own reader, doing what `tail -f` does, so each step is checked.
    let mut f = File::open(&mnt).unwrap();
    let mut seen = String::new();
    f.read_to_string(&mut seen).unwrap();
    assert_eq!(seen, "line 1\nline 2\n");

    drop(node_proc); // kill -9, then down for longer than every cache's TTL
    let down = Instant::now();
    while down.elapsed() < Duration::from_millis(1500) {
        let size = f
            .metadata()
            .expect("fstat of an open file while its node is down");
        assert_eq!(size.len(), 14);
        let n = f
            .read(&mut [0u8; 64])
            .expect("read at the end while the node is down");
        assert_eq!(n, 0);
        std::thread::sleep(Duration::from_millis(100));
    }
    append(&rec, "line 3\n"); // recorded while the node was down

    // The same node (same ID, same share) back on its address: the same file continues.
    let (_back, addr2) = node_on(src.path(), "cam", &addr);
    assert_eq!(addr2, addr);
    assert_eq!(tail.next_line(line), "line 3");
    append(&rec, "line 4\n");
    assert_eq!(tail.next_line(line), "line 4");
    assert!(
        eventually(line, || {
            let mut more = String::new();
            f.read_to_string(&mut more).is_ok() && {
                seen.push_str(&more);
                seen.ends_with("line 4\n")
            }
        }),
        "the open file did not continue: {seen:?}"
    );
    assert_eq!(seen, "line 1\nline 2\nline 3\nline 4\n");
    assert!(tail.child.try_wait().unwrap().is_none(), "tail -f ended");
    let errors = std::fs::read_to_string(tail_err.path()).unwrap();
    assert!(errors.is_empty(), "tail -f complained: {errors}");
}

#[test]
fn eight_concurrent_readers_all_read_correct_bytes() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    for i in 0..8 {
        write(
            src.path(),
            &format!("v{i}.mp4"),
            &pattern(3 * MIB + i * 4099, i as u64),
        );
    }
    let (_n, addr) = node(src.path(), "cam");
    let m = Mounted::new(&[&addr], &[]);
    let readers: Vec<_> = (0..8)
        .map(|i| {
            let (s, t) = (
                src.path().join(format!("v{i}.mp4")),
                m.path(&format!("cam/v{i}.mp4")),
            );
            std::thread::spawn(move || assert_same_file(&s, &t))
        })
        .collect();
    for r in readers {
        r.join().expect("a reader saw wrong bytes");
    }
}

#[test]
fn writes_mkdir_unlink_and_rename_get_erofs() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "keep.txt", b"keep");
    let (_n, addr) = node(src.path(), "cam");
    let m = Mounted::new(&[&addr], &[]);
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
    };
    erofs(File::create(m.path("cam/new.txt")).map(drop), "create");
    erofs(
        std::fs::OpenOptions::new()
            .write(true)
            .open(m.path("cam/keep.txt"))
            .map(drop),
        "open for writing",
    );
    erofs(std::fs::create_dir(m.path("cam/d")), "mkdir");
    erofs(std::fs::remove_file(m.path("cam/keep.txt")), "unlink");
    erofs(
        std::fs::rename(m.path("cam/keep.txt"), m.path("cam/moved.txt")),
        "rename",
    );
    erofs(std::fs::create_dir(m.path("newnode")), "mkdir at the root");
    assert_eq!(std::fs::read(src.path().join("keep.txt")).unwrap(), b"keep");
    assert_eq!(std::fs::read(m.path("cam/keep.txt")).unwrap(), b"keep");
    assert_eq!(
        std::fs::read(m.path("cam/nope")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn sigint_and_sigterm_unmount_cleanly_and_exit_zero() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let (_n, addr) = node(src.path(), "cam");
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut m = Mounted::new(&[&addr], &[]);
        assert!(m.path("cam").is_dir());
        let proc = m.proc.as_mut().unwrap();
        proc.signal(sig);
        let status = proc.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "exit status {status} after signal {sig}");
        assert!(!is_mounted(&m.dir), "still mounted after signal {sig}");
    }
}

#[test]
fn fusermount3_u_unmounts_quietly_and_the_mount_exits_zero() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", b"a");
    let (_n, addr) = node(src.path(), "cam");
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut m = Mounted::with_stderr(&[&addr], &[], log.reopen().unwrap());
    assert_eq!(std::fs::read(m.path("cam/a.txt")).unwrap(), b"a");
    // The unmount the README and `--help` document.
    let out = Command::new("fusermount3")
        .arg("-u")
        .arg(&m.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "fusermount3 -u: {out:?}");
    let status = m.proc.as_mut().unwrap().wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    assert!(!is_mounted(&m.dir));
    let log = std::fs::read_to_string(log.path()).unwrap();
    for bad in ["WARN", "ERROR", "unmount failed", "Invalid argument"] {
        assert!(!log.contains(bad), "the mount logged {bad:?}:\n{log}");
    }
}

#[test]
fn an_unreachable_node_still_gets_a_folder_and_fails_with_eio() {
    if !fuse_available() {
        return;
    }
    // A port where connections are refused.
    let refused = common::RefusedPort::bind();
    let addr = refused.addr.clone();
    let src = tempfile::tempdir().unwrap();
    let (_n, good) = node(src.path(), "cam");
    // Several nodes in one --node, separated by commas.
    let both = format!("{good},{addr}");
    let m = Mounted::new(&[], &["--node", &both, "--connect-timeout", "1s"]);
    let folder = addr.replace(':', "_");
    assert!(m.path(&folder).is_dir());
    let start = Instant::now();
    let e = std::fs::read_dir(m.path(&folder))
        .and_then(|mut d| d.next().transpose())
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(m.path("cam").is_dir(), "the good node is unaffected");
}

/// A fake peer on loopback that accepts connections and answers each with `reply` (then holds
/// the connection open without reading on), for at most `max` connections.
fn fake_peer(reply: &'static [u8], max: usize) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(max) {
            let Ok(mut conn) = conn else { break };
            let _ = conn.write_all(reply);
            held.push(conn);
        }
    });
    addr
}

#[test]
fn stalled_and_garbled_peers_answer_eio_without_hanging_the_mount() {
    if !fuse_available() {
        return;
    }
    let stalled = fake_peer(b"", 64);
    let mut long_line = vec![b'7'; 20_000];
    long_line.push(b'\n');
    let garbled = fake_peer(Box::leak(long_line.into_boxed_slice()), 64);
    let nonsense = fake_peer(b"hello there\nnot a status line\n", 64);
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "ok.txt", b"fine");
    let (_n, good) = node(src.path(), "cam");
    let m = Mounted::new(
        &[&good, &stalled, &garbled, &nonsense],
        // The fake peers speak the text protocol only (and stall or garble it).
        &["--timeout", "2s", "--connect-timeout", "1s", "--plaintext"],
    );
    for peer in [&stalled, &garbled, &nonsense] {
        let folder = m.path(&peer.replace(':', "_"));
        let start = Instant::now();
        let e = std::fs::read_dir(&folder)
            .and_then(|mut d| d.next().transpose())
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{peer}: {e}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{peer}: took {:?}",
            start.elapsed()
        );
    }
    // While a reader waits on the stalled peer, the good node answers at once.
    let waiting = {
        let folder = m.path(&stalled.replace(':', "_")).join("x");
        std::thread::spawn(move || std::fs::metadata(folder).unwrap_err().raw_os_error())
    };
    assert_eq!(std::fs::read(m.path("cam/ok.txt")).unwrap(), b"fine");
    assert!(
        !waiting.is_finished(),
        "the stalled request should still be waiting (2 s timeout): the good node was slowed"
    );
    assert_eq!(waiting.join().unwrap(), Some(libc::EIO));
}

/// Connections to local `port` whose socket holds bytes the listener has not read yet: requests
/// sent to a stopped node (read from `/proc/net/tcp`).
fn unread_requests_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f[1].rsplit(':').next().unwrap();
            let rx_queue = f[4].split(':').nth(1).unwrap();
            u16::from_str_radix(local_port, 16) == Ok(port)
                && f[3] == "01"
                && u64::from_str_radix(rx_queue, 16).unwrap() > 0
        })
        .count()
}

#[test]
fn random_reads_stalled_on_one_node_leave_the_mount_free_for_the_others() {
    if !fuse_available() {
        return;
    }
    // A random read may wait on its node on the FUSE thread that took it (the fast path):
    // never on every FUSE thread at once.
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(a_dir.path(), "a.bin", &pattern(4 * MIB, 1));
    write(b_dir.path(), "x.bin", &pattern(4 * MIB, 2));
    write(b_dir.path(), "y.bin", &pattern(4 * MIB, 3));
    let (_a, a) = node(a_dir.path(), "cam");
    let (b_proc, b) = node(b_dir.path(), "cam2");
    // Long waits for the stopped node, so that a FUSE thread held by it would show.
    let m = Mounted::new(&[&a, &b], &["--timeout", "6s", "--connect-timeout", "6s"]);
    let a_file = File::open(m.path("cam/a.bin")).unwrap();
    let files = ["x.bin", "y.bin"].map(|f| File::open(m.path(&format!("cam2/{f}"))).unwrap());
    b_proc.signal(libc::SIGSTOP);
    let stalled = files.map(|f| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            f.read_at(&mut buf, 2 * MIB as u64 + 4096)
        })
    });
    let port: u16 = b.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || unread_requests_to(port) >= 2),
        "both reads should have reached the stopped node ({} connections hold requests)",
        unread_requests_to(port)
    );
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    assert_eq!(read_at_full(&a_file, &mut buf, 3 * MIB as u64), 4096);
    assert_eq!(buf[..], pattern(4 * MIB, 1)[3 * MIB..3 * MIB + 4096]);
    assert!(
        start.elapsed() < Duration::from_secs(3) && stalled.iter().all(|t| !t.is_finished()),
        "the other node's read waited {:?} for the stopped node's (6 s timeouts)",
        start.elapsed()
    );
    b_proc.signal(libc::SIGCONT);
    for t in stalled {
        let _ = t.join().unwrap(); // its bytes, or EIO after the timeout
    }
}

#[test]
fn a_changed_file_is_read_fresh_without_remounting() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("clip.mp4");
    let (v1, v2) = (pattern(300_000, 1), pattern(300_000, 2));
    std::fs::write(&path, &v1).unwrap();
    let (_n, addr) = node(src.path(), "cam");
    let m = Mounted::new(&[&addr], &[]);
    let mnt = m.path("cam/clip.mp4");
    assert!(std::fs::read(&mnt).unwrap() == v1);
    assert!(std::fs::read(&mnt).unwrap() == v1);

    // Same size, other bytes, a later mtime: the kernel's cached pages must not be served.
    std::fs::write(&path, &v2).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(10);
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let start = Instant::now();
    assert!(
        eventually(Duration::from_millis(1500), || std::fs::read(&mnt).unwrap()
            == v2),
        "changed file still read with its old bytes"
    );
    eprintln!("changed bytes visible after {:?}", start.elapsed());
}

#[test]
fn an_unchanged_file_is_served_from_the_kernel_page_cache() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let data = pattern(2 * MIB + 5, 4);
    write(src.path(), "clip.mp4", &data);
    let (node_proc, addr) = node(src.path(), "cam");
    // A long TTL so that the second open trusts its attributes without asking the node (and
    // no events: losing the event stream of a dead node drops the cached attributes).
    let m = Mounted::new(&[&addr], &["--ttl", "30s", "--no-events"]);
    let mnt = m.path("cam/clip.mp4");
    assert!(std::fs::read(&mnt).unwrap() == data);
    assert!(std::fs::read(&mnt).unwrap() == data);
    drop(node_proc);
    // Only the page cache (kept on reopen: same size and mtime) can answer now.
    assert!(
        std::fs::read(&mnt).unwrap() == data,
        "reopen dropped the page cache"
    );
}

/// Bytes of the file at `path` in the kernel's page cache, by cachestat(2) (Linux 6.5: no
/// mapping of the file, which for a file read past the page cache would itself drop its
/// pages); `None`, with a note, on a kernel without it.
fn page_cached(path: &Path) -> Option<u64> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    // The same number on every architecture (libc names it only for some).
    const SYS_CACHESTAT: libc::c_long = 451;
    let f = File::open(path).unwrap();
    let whole = Range { off: 0, len: 0 };
    let mut stat = Stat::default();
    // SAFETY: both structs live across the call and have the kernel's layout.
    let r = unsafe { libc::syscall(SYS_CACHESTAT, f.as_raw_fd(), &whole, &mut stat, 0) };
    if r != 0 {
        eprintln!("cachestat: {}", std::io::Error::last_os_error());
        return None;
    }
    // SAFETY: a plain getter.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    Some(stat.nr_cache * page)
}

/// `path` mapped shared and read only, handed to `check`.
fn with_shared_map(path: &Path, check: impl FnOnce(&[u8])) {
    use std::os::fd::AsRawFd;
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    // SAFETY: a fresh read-only shared mapping of an open file, unmapped below; nothing else
    // maps it in this process.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        p,
        libc::MAP_FAILED,
        "shared mmap of {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    // SAFETY: `len` readable bytes at `p` until the munmap below.
    check(unsafe { std::slice::from_raw_parts(p as *const u8, len) });
    // SAFETY: the mapping made above, no longer borrowed.
    unsafe { libc::munmap(p, len) };
}

#[test]
fn a_large_file_is_read_past_the_page_cache_byte_for_byte_and_maps_shared() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    // Above the mount's default of 16 MiB, and not a whole number of chunks.
    let (big, small) = (pattern(20 * MIB + 7, 6), pattern(2 * MIB, 7));
    write(src.path(), "rec.h264", &big);
    write(src.path(), "snap.jpg", &small);
    let (_n, addr) = node(src.path(), "cam");
    let m = Mounted::new(&[&addr], &[]);
    let (mnt_big, mnt_small) = (m.path("cam/rec.h264"), m.path("cam/snap.jpg"));

    assert_same_file(&src.path().join("rec.h264"), &mnt_big);
    assert!(std::fs::read(&mnt_small).unwrap() == small);
    let Some(small_cached) = page_cached(&mnt_small) else {
        return; // no cachestat(2) here: what the page cache holds cannot be seen
    };
    assert_eq!(
        small_cached,
        small.len() as u64,
        "a small file is page-cached"
    );
    assert_eq!(
        page_cached(&mnt_big),
        Some(0),
        "a large file read through leaves nothing in the page cache"
    );
    // Reads of any size at any offset, across chunk boundaries.
    let f = File::open(&mnt_big).unwrap();
    for (offset, len) in [
        (MIB - 3, 10),
        (5 * MIB + 1, 3 * MIB),
        (20 * MIB, 100),
        (7, 1),
    ] {
        let mut buf = vec![0u8; len];
        let n = read_at_full(&f, &mut buf, offset as u64);
        let want = &big[offset.min(big.len())..(offset + len).min(big.len())];
        assert!(buf[..n] == *want, "pread of {len} at {offset}");
    }
    // A shared mapping, which a file opened past the page cache allows only if asked for.
    with_shared_map(&mnt_big, |mapped| assert!(mapped == big, "mapped bytes"));

    // Changed on the node (same size, a later mtime): a new open reads, and maps, the new bytes.
    let v2 = pattern(big.len(), 8);
    std::fs::write(src.path().join("rec.h264"), &v2).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(10);
    File::options()
        .write(true)
        .open(src.path().join("rec.h264"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert!(
        eventually(Duration::from_millis(1500), || std::fs::read(&mnt_big)
            .unwrap()
            == v2),
        "changed file still read with its old bytes"
    );
    with_shared_map(&mnt_big, |mapped| {
        assert!(mapped == v2, "mapped bytes after the change")
    });
}

#[test]
fn a_large_file_growing_while_read_past_the_page_cache_is_read_to_its_end() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("rec.h264");
    let all = pattern(3 * MIB + 40 * 64 * 1024, 9);
    let first = MIB + 100_000;
    std::fs::write(&path, &all[..first]).unwrap();
    let (_n, addr) = node(src.path(), "cam");
    let m = Mounted::new(&[&addr], &["--direct-io-min-mib", "1"]);
    let mnt = m.path("cam/rec.h264");

    // A player on a live recording: one handle, large reads, past the page cache.
    let mut reader = File::open(&mnt).unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; MIB];
    while seen.len() < first {
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0, "end of file at {} of {first}", seen.len());
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(seen.len(), first);
    assert!(
        matches!(page_cached(&mnt), Some(0) | None),
        "read past the page cache"
    );
    follow_recording(
        &path,
        &all,
        Duration::from_millis(10),
        &mut reader,
        seen,
        &mut buf,
    );
}

#[test]
fn a_large_file_read_in_small_pieces_is_page_cached_from_its_next_open() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let data = pattern(2 * MIB, 10);
    write(src.path(), "db.sqlite", &data);
    let (_n, addr) = node(src.path(), "cam");
    let m = Mounted::new(&[&addr], &["--direct-io-min-mib", "1", "--ttl", "30s"]);
    let mnt = m.path("cam/db.sqlite");
    let read_in_pieces = || {
        let mut f = File::open(&mnt).unwrap();
        let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
        loop {
            match f.read(&mut buf).unwrap() {
                0 => break got,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    assert!(read_in_pieces() == data);
    let Some(first) = page_cached(&mnt) else {
        return; // no cachestat(2) here
    };
    assert_eq!(first, 0, "the first open reads past the page cache");
    assert!(read_in_pieces() == data);
    assert_eq!(
        page_cached(&mnt),
        Some(data.len() as u64),
        "read in 4 KiB pieces before: the next open goes through the page cache"
    );
}

#[test]
fn change_events_refresh_the_mount_long_before_the_ttl() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "clips/old.mp4", b"old");
    write(src.path(), "clips/edit.txt", b"version one");
    let (_n, addr) = node(src.path(), "cam");
    // With a 60 s TTL, only the node's events can make changes show within a second.
    let m = Mounted::new(&[&addr], &["--ttl", "60s"]);
    let clips = m.path("cam/clips");
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&clips), vec!["edit.txt", "old.mp4"]);
    assert_eq!(
        std::fs::read(clips.join("edit.txt")).unwrap(),
        b"version one"
    );
    assert!(clips.join("old.mp4").exists());

    write(src.path(), "clips/new.mp4", b"new");
    assert!(
        eventually(Duration::from_secs(1), || names(&clips)
            .contains(&"new.mp4".to_string())),
        "created file not listed within 1 s"
    );
    std::fs::remove_file(src.path().join("clips/old.mp4")).unwrap();
    assert!(
        eventually(Duration::from_secs(1), || !clips.join("old.mp4").exists()
            && !names(&clips).contains(&"old.mp4".to_string())),
        "deleted file still visible after 1 s"
    );
    write(src.path(), "clips/edit.txt", b"version two, longer");
    assert!(
        eventually(Duration::from_secs(1), || std::fs::read(
            clips.join("edit.txt")
        )
        .is_ok_and(|d| d == b"version two, longer")),
        "changed file not refreshed within 1 s"
    );
}

/// A protected node through a real mount: with `--password-file NODE=FILE` its files read
/// byte for byte (the password proven over TLS on each connection) and its events reach the
/// mount (a new file shows long before a 60 s TTL, which only the authenticated subscription
/// can do); without a password it is still mounted, its files answer `EACCES`, and the log says
/// which node asks and how to give the password; a wrong one is refused before mounting.
#[test]
fn a_protected_node_is_read_with_its_password_file_and_answers_eacces_without() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let share = src.path().join("share");
    let data = pattern(3 * MIB + 5, 21);
    write(&share, "clips/a.mp4", &data);
    let pw = src.path().join("pw");
    std::fs::write(&pw, "mount-pass-otter\n").unwrap();
    let pw_flag = ["--password-file", pw.to_str().unwrap()];
    let (_n, addr) = common::named_node(&share, "vault", &pw_flag);
    let no_env = |m: &mut Command| {
        m.env_remove("MESHFS_CLIENT_PASSWORD");
    };

    // With the password file for this node, named by its host as typed.
    let for_host = format!("127.0.0.1={}", pw.display());
    let m = Mounted::with_env(
        &[&addr],
        &["--ttl", "60s", "--password-file", &for_host],
        no_env,
    );
    let clips = m.path("vault/clips");
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&clips)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(), ["a.mp4"]);
    assert_same_file(&share.join("clips/a.mp4"), &clips.join("a.mp4"));
    // Twice: a refused subscription drops the caches once, which could show the first file.
    for n in 1..=2 {
        write(&share, &format!("clips/new{n}.mp4"), b"new");
        assert!(
            eventually(Duration::from_secs(5), || names().len() == n + 1),
            "the protected node's events did not reach the mount: {:?}",
            names()
        );
    }
    drop(m);

    // Without: mounted all the same, EACCES, and a log line that says what to do.
    let log_path = src.path().join("mount.log");
    let log = File::create(&log_path).unwrap();
    let m = Mounted::with_env(&[&addr], &[], |c| {
        no_env(c);
        c.stderr(log);
    });
    let err = std::fs::read_dir(m.path("vault/clips")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    let err = File::open(m.path("vault/clips/a.mp4")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    drop(m);
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logged.contains("127.0.0.1 asks for a password")
            && logged.contains("--password-file")
            && logged.contains("MESHFS_CLIENT_PASSWORD")
            && logged.contains("EACCES"),
        "{logged}"
    );

    // A wrong password is refused at once, naming the node.
    let wrong = src.path().join("wrong");
    std::fs::write(&wrong, "not-it\n").unwrap();
    let out = Command::new(common::bin())
        .args(["mount", src.path().to_str().unwrap(), "--no-discovery"])
        .args(["--node", &addr, "--password-file", wrong.to_str().unwrap()])
        .env_remove("MESHFS_CLIENT_PASSWORD")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("cannot mount {addr}")) && err.contains("(code 6)"),
        "{err}"
    );
}

/// A TCP relay in front of a node that counts the requests passing through it, by their
/// first word (`stat`, `ls`, `pread`, `subscribe`, …): what a mount asks, seen from outside.
/// The mount must speak in clear (`--plaintext`) for the lines to be readable.
struct CountingRelay {
    addr: String,
    counts: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl CountingRelay {
    fn new(node: &str) -> CountingRelay {
        use std::io::{BufRead, BufReader, Write};
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let counts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let (node, seen) = (node.to_owned(), counts.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(&node) else {
                    continue;
                };
                let (mut to_client, mut from_node) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut from_node, &mut to_client));
                let (mut to_node, seen) = (upstream, seen.clone());
                std::thread::spawn(move || {
                    let mut lines = BufReader::new(client);
                    let mut line = String::new();
                    while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                        let word = line.split_whitespace().next().unwrap_or("").to_owned();
                        *seen.lock().unwrap().entry(word).or_insert(0) += 1;
                        if to_node.write_all(line.as_bytes()).is_err() {
                            break;
                        }
                        line.clear();
                    }
                    let _ = to_node.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        CountingRelay { addr, counts }
    }

    fn count(&self, word: &str) -> usize {
        self.counts.lock().unwrap().get(word).copied().unwrap_or(0)
    }

    fn reset(&self) {
        self.counts.lock().unwrap().retain(|w, _| w == "subscribe");
    }
}

/// Whether process `pid` has `path` open.
fn holds_open(pid: u32, path: &Path) -> bool {
    let path = path.canonicalize().unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|target| target == path)
}

#[test]
fn random_reads_of_a_file_open_it_once_on_the_node_and_its_release_closes_it() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let want = pattern(8 * MIB, 5);
    write(src.path(), "big.bin", &want);
    let (node_proc, addr) = node(src.path(), "cam");
    let relay = CountingRelay::new(&addr);
    let m = Mounted::new(&[&relay.addr], &["--plaintext"]);
    let f = File::open(m.path("cam/big.bin")).unwrap();
    relay.reset();
    for i in 1..=16 {
        // Pages far apart and never in order: each read is a random one.
        let offset = (i * 517 % 2048) * 4096;
        let mut buf = [0u8; 4096];
        assert_eq!(read_at_full(&f, &mut buf, offset as u64), 4096);
        assert!(buf[..] == want[offset..offset + 4096], "bytes at {offset}");
    }
    assert_eq!(relay.count("pread"), 0, "no read by path");
    assert_eq!(
        relay.count("open"),
        1,
        "the file is opened once on the node"
    );
    assert_eq!(relay.count("read"), 16);
    let node_file = src.path().join("big.bin");
    assert!(holds_open(node_proc.child.id(), &node_file));
    drop(f);
    assert!(
        eventually(Duration::from_secs(5), || !holds_open(
            node_proc.child.id(),
            &node_file
        )),
        "the node still holds the file the mount released"
    );
}

#[test]
fn a_listed_folder_of_small_files_costs_one_request_per_file_and_changes_still_show() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let files = 20;
    write(src.path(), "snaps0/0.jpg", b"");
    let (_n, node_addr) = node(src.path(), "cam");
    let relay = CountingRelay::new(&node_addr);
    // A TTL far below the time the reads take: only the node's events can vouch for answers.
    let m = Mounted::new(&[&relay.addr], &["--plaintext", "--ttl", "50ms"]);
    let names = |dir: &Path| std::fs::read_dir(dir).map_or(0, |d| d.count());
    // A folder of files new to the kernel (nothing in its page cache): list it once its
    // creation events are in, let every TTL pass (the kernel's and ours), then read every
    // file and count the requests.
    let mut round = 0;
    let mut cycle = || {
        round += 1;
        for i in 0..files {
            write(
                src.path(),
                &format!("snaps{round}/{i}.jpg"),
                &pattern(10_000, i),
            );
        }
        let snaps = m.path(&format!("cam/snaps{round}"));
        assert!(eventually(Duration::from_secs(5), || names(&snaps) == files as usize));
        std::thread::sleep(Duration::from_millis(100)); // the events of the writes are in
        names(&m.path("cam"));
        assert_eq!(names(&snaps), files as usize);
        std::thread::sleep(Duration::from_millis(100)); // past every TTL
        relay.reset();
        for i in 0..files {
            let data = std::fs::read(snaps.join(format!("{i}.jpg"))).unwrap();
            assert!(data == pattern(10_000, i), "{i}.jpg read wrong");
        }
        (relay.count("stat"), relay.count("ls"), relay.count("pread"))
    };
    // The first rounds may run before the mount's event stream is up (nothing vouches for
    // answers then): wait, at most 5 s, for the round the stream makes cheap.
    let mut last = (0, 0, 0);
    assert!(
        eventually(Duration::from_secs(5), || {
            last = cycle();
            last == (0, 0, files as usize)
        }),
        "requests (stat, ls, pread) for {files} listed files: {last:?}, not one pread each"
    );
    let snaps = m.path(&format!("cam/snaps{round}"));

    // The events still make a change show at once, though the answers are trusted for long.
    let changed = src.path().join(format!("snaps{round}/3.jpg"));
    std::fs::write(&changed, pattern(10_000, 99)).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(10);
    File::options()
        .write(true)
        .open(&changed)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert!(
        eventually(Duration::from_secs(1), || std::fs::read(
            snaps.join("3.jpg")
        )
        .is_ok_and(|d| d == pattern(10_000, 99))),
        "a file changed on the node still read with its old bytes"
    );
}

#[test]
fn a_folder_read_in_order_is_fetched_ahead_and_a_change_still_shows() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let files = 24;
    let name = |i: u64| format!("s{i:02}.jpg");
    for i in 0..files {
        write(
            src.path(),
            &format!("snaps/{}", name(i)),
            &pattern(20_000, i),
        );
    }
    let (_n, node_addr) = node(src.path(), "cam");
    let relay = CountingRelay::new(&node_addr);
    // A TTL longer than the test: only the node's events can make the change below show.
    let m = Mounted::new(&[&relay.addr], &["--plaintext", "--ttl", "60s"]);
    let snaps = m.path("cam/snaps");
    let read = |i: u64| std::fs::read(snaps.join(name(i))).unwrap();
    // The node's event stream is up once a new file shows despite the long TTL (its connection
    // drops every cache: it must not happen in the middle of the counts below).
    assert_eq!(std::fs::read_dir(&snaps).unwrap().count(), files as usize);
    write(src.path(), "snaps/zz.txt", b"last in the listing");
    assert!(
        eventually(Duration::from_secs(5), || std::fs::read_dir(&snaps)
            .unwrap()
            .count()
            == files as usize + 1),
        "the node's events never reached the mount"
    );
    relay.reset();
    assert!(read(0) == pattern(20_000, 0));
    assert!(read(1) == pattern(20_000, 1));
    // Two files opened in listing order: the next eight are fetched before they are opened.
    let ahead = 2 + 8;
    assert!(
        eventually(Duration::from_secs(5), || relay.count("pread") == ahead),
        "preads after reading two files in order: {}, not {ahead}",
        relay.count("pread")
    );

    // A file fetched ahead changes on the node: once its event is in (its new size shows),
    // its new bytes are read, not the ones fetched before.
    std::fs::write(
        src.path().join(format!("snaps/{}", name(9))),
        pattern(30_000, 99),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || std::fs::metadata(
            snaps.join(name(9))
        )
        .unwrap()
        .len()
            == 30_000),
        "the change's event never reached the mount"
    );
    for i in 2..files {
        let want = if i == 9 {
            pattern(30_000, 99)
        } else {
            pattern(20_000, i)
        };
        assert!(read(i) == want, "{} read wrong", name(i));
    }
    // Each file fetched once; the changed one again (and once more ahead, from the folder's
    // listing of before the change, before its open saw the new size); zz.txt ahead of a
    // reader that never opens it.
    let preads = relay.count("pread");
    assert!(
        (files as usize..=files as usize + 3).contains(&preads),
        "{preads} preads for {files} files"
    );
}

#[test]
fn a_busy_mount_is_detached_on_sigterm_and_the_process_still_exits_zero() {
    if !fuse_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "clips/a.txt", b"a");
    let (_n, addr) = node(src.path(), "cam");
    let mut m = Mounted::new(&[&addr], &[]);
    // A process working inside the mount keeps it busy: a plain unmount would fail (EBUSY).
    let mut busy = Command::new("sleep")
        .arg("60")
        .current_dir(m.path("cam/clips"))
        .spawn()
        .unwrap();
    let proc = m.proc.as_mut().unwrap();
    proc.signal(libc::SIGTERM);
    let status = proc.wait_exit(Duration::from_secs(10));
    let _ = busy.kill();
    let _ = busy.wait();
    assert!(status.success(), "exit status {status}");
    assert!(!is_mounted(&m.dir), "busy mount was not detached");
}

/// This file's block of group addresses (see [`Group::new`]).
const BLOCK: u8 = 200;

/// `--group-*` flags for a LAN group of this test's own, on loopback (TTL 1), and a DNS-SD
/// port of its own (`dnssd`: one test may give two groups the same one).
fn own_group(dnssd: u16) -> Vec<String> {
    let mut flags = Group::new(BLOCK).lan_args();
    flags.extend(["--dnssd-port".into(), dnssd.to_string()]);
    flags
}

#[test]
fn discovered_nodes_appear_and_disappear_and_names_resolve() {
    if !fuse_available() {
        return;
    }
    let group = own_group(free_udp_port());
    let group: Vec<&str> = group.iter().map(String::as_str).collect();
    let src = tempfile::tempdir().unwrap();
    let (a, b) = (src.path().join("a"), src.path().join("b"));
    write(&a, "clip.mp4", &pattern(MIB + 7, 1));
    write(&b, "other.mp4", b"b\n");

    // No --node: the mount starts empty and shows nodes as the group announces them.
    let m = Mounted::new(&[], &group);
    let mount_out = &m.proc.as_ref().unwrap().lines;
    let node_in_group = |dir: &Path, name: &str| {
        let mut args = vec!["--no-web"];
        args.extend_from_slice(&group);
        named_node(dir, name, &args)
    };
    let (mut na, addr_a) = node_in_group(&a, "cam1");
    common::until_line(mount_out, Duration::from_secs(5), |l| {
        l == format!("node up cam1 {addr_a}")
    });
    assert_same_file(&a.join("clip.mp4"), &m.path("cam1/clip.mp4"));

    // A node started later is learned at once (it says hello; the mount hears it).
    let (_nb, addr_b) = node_in_group(&b, "cam2");
    common::until_line(mount_out, Duration::from_secs(5), |l| {
        l == format!("node up cam2 {addr_b}")
    });
    assert_eq!(std::fs::read(m.path("cam2/other.mp4")).unwrap(), b"b\n");

    // A node that stops says bye: its folder leaves the root at once.
    na.signal(libc::SIGTERM);
    na.wait_exit(Duration::from_secs(10));
    common::until_line(mount_out, Duration::from_secs(5), |l| l == "node down cam1");
    assert!(
        eventually(Duration::from_secs(2), || !m.path("cam1").exists()),
        "cam1 still shown after its bye"
    );
    let mut top: Vec<String> = std::fs::read_dir(&m.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["cam2"]);

    // Back (on another port): shown again under the same folder.
    let (mut na, addr_a) = node_in_group(&a, "cam1");
    common::until_line(mount_out, Duration::from_secs(5), |l| {
        l == format!("node up cam1 {addr_a}")
    });
    assert_same_file(&a.join("clip.mp4"), &m.path("cam1/clip.mp4"));

    // Killed (no bye) and back at yet another port before it expired: the same folder moves
    // to the new address, no dead `cam1` beside a `cam1-2`.
    na.signal(libc::SIGKILL);
    na.wait_exit(Duration::from_secs(10));
    let (_na, moved) = node_in_group(&a, "cam1");
    common::until_line(mount_out, Duration::from_secs(5), |l| {
        l == format!("node up cam1 {moved}")
    });
    let mut top: Vec<String> = std::fs::read_dir(&m.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["cam1", "cam2"]);
    assert_same_file(&a.join("clip.mp4"), &m.path("cam1/clip.mp4"));

    // `--node NAME`: a name that is no host is looked up on the group.
    let mut args = vec!["--node", "cam2", "--no-events"];
    args.extend_from_slice(&group);
    let named = Mounted::new(&[], &args);
    assert_eq!(std::fs::read(named.path("cam2/other.mp4")).unwrap(), b"b\n");
}

#[test]
fn a_node_the_multicast_group_cannot_reach_is_found_through_dns_sd() {
    if !fuse_available() {
        return;
    }
    // Two multicast groups that never hear each other, one DNS-SD port: as on a network that
    // drops our group but lets mDNS through.
    let dnssd = free_udp_port();
    let (mount_group, node_group) = (own_group(dnssd), own_group(dnssd));
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "seen.txt", b"over mDNS\n");
    let mut args = vec!["--no-web".to_owned()];
    args.extend(node_group);
    let (_node, addr) = named_node(src.path(), "far", &args);

    let extra: Vec<&str> = mount_group.iter().map(String::as_str).collect();
    let m = Mounted::new(&[], &extra);
    let mount_out = &m.proc.as_ref().unwrap().lines;
    common::until_line(mount_out, Duration::from_secs(10), |l| {
        l == format!("node up far {addr}")
    });
    assert_eq!(
        std::fs::read(m.path("far/seen.txt")).unwrap(),
        b"over mDNS\n"
    );
}
