//! End-to-end tests of the web UI made for recordings (issue 16 §3) with the real binary:
//! folder and selection zips checked by Python's `zipfile`, a zip streamed rather than staged,
//! the node list following the peer table and a full disk, and the page in headless Chromium
//! (`crates/meshfs-web/e2e/recordings.mjs`: gallery, file page, events, zips, a phone screen).

mod common;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::group::Group;
use common::tmpfs::Tmpfs;
use common::web::*;
use common::{named_node, pattern, wait_until};

/// Check `zip` with Python's `zipfile` against `dir`: `testzip()` (every CRC) passes and the
/// archive holds exactly `expected` (name in the archive → file under `dir`, or `None` for a
/// folder), byte for byte.
fn python_checks_zip(zip: &Path, dir: &Path, expected: &[(&str, Option<&str>)]) {
    let spec: Vec<String> = expected
        .iter()
        .map(|(name, file)| {
            let file = file.map_or("null".into(), |f| {
                format!("{:?}", dir.join(f).display().to_string())
            });
            format!("[{name:?}, {file}]")
        })
        .collect();
    let script = r#"
import json, sys, zipfile, zlib
zip_path, spec = sys.argv[1], json.loads(sys.argv[2])
z = zipfile.ZipFile(zip_path)
bad = z.testzip()
assert bad is None, "CRC mismatch in " + str(bad)
names = sorted(i.filename for i in z.infolist())
want = sorted(n for n, _ in spec)
assert names == want, "members %r, expected %r" % (names, want)
for name, path in spec:
    info = z.getinfo(name)
    if path is None:
        assert info.is_dir(), name + " should be a folder"
        continue
    data = open(path, "rb").read()
    assert z.read(name) == data, name + " differs from " + path
    assert info.CRC == zlib.crc32(data), name + ": CRC"
    assert info.compress_type == zipfile.ZIP_STORED
print("zip ok:", len(names), "members")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(zip)
        .arg(format!("[{}]", spec.join(",")))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "Python's zipfile refused {}: {}{}",
        zip.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = std::str::from_utf8(&raw[..eol]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[eol + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n", "chunk end");
        raw = &raw[size + 2..];
    }
}

/// A folder, a selection of it, and a folder on another node, each as a zip that Python's
/// zipfile reads back exactly (names in UTF-8, every CRC); bad selections get clear errors.
#[test]
fn zips_of_folders_and_selections() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir_all(a_dir.join("clips/night")).unwrap();
    fs::create_dir_all(a_dir.join("clips/empty")).unwrap();
    fs::create_dir_all(&b_dir).unwrap();
    // Bigger than a read chunk (256 KiB), so a file spans several reads.
    fs::write(a_dir.join("clips/front.mp4"), pattern(700_000, 1)).unwrap();
    fs::write(a_dir.join("clips/night/été 22h.mp4"), pattern(5_000, 2)).unwrap();
    fs::write(a_dir.join("clips/notes.txt"), b"seen at 8\n").unwrap();
    fs::write(a_dir.join("clips/zero"), b"").unwrap();
    fs::write(b_dir.join("remote.bin"), pattern(300_000, 3)).unwrap();
    let b = web_node(&b_dir, "camb", &[]);
    let a = web_node(&a_dir, "cama", &["--node", &b.addr]);
    let out = tempfile::tempdir().unwrap();
    let fetch = |target: &str, file: &str| {
        let r = get(&a.web, target);
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/zip"));
        assert_eq!(
            r.header("transfer-encoding"),
            Some("chunked"),
            "streamed, no length known"
        );
        let path = out.path().join(file);
        fs::write(&path, dechunk(&r.body)).unwrap();
        (r, path)
    };

    let (folder, zip) = fetch("/api/zip/cama/clips/", "clips.zip");
    assert!(
        folder
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment; filename=\"clips.zip\""),
        "{:?}",
        folder.header("content-disposition")
    );
    python_checks_zip(
        &zip,
        &a_dir,
        &[
            ("clips/", None),
            ("clips/empty/", None),
            ("clips/front.mp4", Some("clips/front.mp4")),
            ("clips/night/", None),
            ("clips/night/été 22h.mp4", Some("clips/night/été 22h.mp4")),
            ("clips/notes.txt", Some("clips/notes.txt")),
            ("clips/zero", Some("clips/zero")),
        ],
    );

    // A selection: a file and a folder, names percent-encoded as the page sends them.
    let (_, zip) = fetch(
        "/api/zip/cama/clips?name=front.mp4&name=night",
        "selection.zip",
    );
    python_checks_zip(
        &zip,
        &a_dir,
        &[
            ("clips/front.mp4", Some("clips/front.mp4")),
            ("clips/night/", None),
            ("clips/night/été 22h.mp4", Some("clips/night/été 22h.mp4")),
        ],
    );
    let (_, zip) = fetch(
        "/api/zip/cama/clips/night?name=%C3%A9t%C3%A9%2022h.mp4",
        "one.zip",
    );
    python_checks_zip(
        &zip,
        &a_dir,
        &[("night/été 22h.mp4", Some("clips/night/été 22h.mp4"))],
    );

    // The share's root of another node, through this one: named after the node.
    let (remote, zip) = fetch("/api/zip/camb/", "camb.zip");
    assert!(
        remote
            .header("content-disposition")
            .unwrap()
            .contains("filename=\"camb.zip\"")
    );
    python_checks_zip(
        &zip,
        &b_dir,
        &[("camb/", None), ("camb/remote.bin", Some("remote.bin"))],
    );

    // Refused before any byte, with what was wrong.
    let missing = get(&a.web, "/api/zip/cama/clips?name=gone.mp4");
    assert_eq!(missing.status, 404);
    assert!(
        missing.text().contains("clips/gone.mp4"),
        "{}",
        missing.text()
    );
    assert_eq!(get(&a.web, "/api/zip/cama/clips?name=..").status, 403);
    assert_eq!(get(&a.web, "/api/zip/cama/clips?name=a%2Fb").status, 403);
    assert_eq!(get(&a.web, "/api/zip/cama/../a").status, 403);
    assert_eq!(get(&a.web, "/api/zip/cama/nowhere/").status, 404);
    assert_eq!(get(&a.web, "/api/zip/nobody/").status, 404);
}

/// Resident memory of a process, in bytes (`VmRSS`).
fn rss(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Bytes a process has read and written so far, through any file or socket (`rchar` and
/// `wchar` of `/proc/PID/io`).
fn io_bytes(pid: u32) -> (u64, u64) {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    let field = |name: &str| -> u64 {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/io"))
    };
    (field("rchar:"), field("wchar:"))
}

/// A zip is streamed as it is made, never staged: with an 8 GiB (sparse) recording in the
/// folder and a browser that reads only the first megabyte, the node soon stops reading and
/// writing and holds a few MiB more than before. A writer that ran ahead of the browser (an
/// unbounded queue) or staged the archive in memory or on disk would read, write or hold
/// far more, or never stop; whatever the machine's speed, one of these is seen: the node must
/// settle (no more than 256 KiB read or written in a second) within 30 s, below 32 MiB each.
#[test]
fn a_zip_is_streamed_not_staged() {
    const BIG: u64 = 8 << 30;
    const BOUND: u64 = 32 << 20;
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("rec")).unwrap();
    // Sparse: no disk used, but every byte is read (as zeros) when archived.
    File::create(tmp.path().join("rec/long.mkv"))
        .unwrap()
        .set_len(BIG)
        .unwrap();
    let n = web_node(tmp.path(), "cam", &[]);
    let pid = n.proc.child.id();
    let (rss_before, (read_before, written_before)) = (rss(pid), io_bytes(pid));
    let (_, mut s) = connect(&n.web);
    s.write_all(b"GET /api/zip/cam/rec/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The first megabyte comes at once (a staging writer sends nothing before it is done).
    let mut got = vec![0u8; 1 << 20];
    s.read_exact(&mut got).unwrap();
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "{:?}", &got[..40]);
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    // Chunked: the chunk size line, then the first local header.
    let body = &got[head_end..];
    let first = body.iter().position(|&b| b == b'\n').unwrap() + 1;
    assert_eq!(
        &body[first..first + 4],
        b"PK\x03\x04",
        "a local file header first"
    );
    // Now the browser reads nothing more: the node may fill the channel (4 × 256 KiB) and the
    // socket's buffers, then must wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = (u64::MAX, std::time::Instant::now());
    loop {
        let (read, written) = io_bytes(pid);
        let (read, written) = (read - read_before, written - written_before);
        let held = rss(pid).saturating_sub(rss_before);
        assert!(
            read < BOUND && written < BOUND && held < BOUND,
            "while the zip of an 8 GiB file waits for the browser, the node read {} MiB, wrote \
             {} MiB and holds {} MiB more: it does not wait for the browser",
            read >> 20,
            written >> 20,
            held >> 20
        );
        let moved = read + written;
        if moved > last.0.saturating_add(256 << 10) || last.0 == u64::MAX {
            last = (moved, std::time::Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "settled: read {} KiB, wrote {} KiB, holds {} KiB more",
                read >> 10,
                written >> 10,
                held >> 10
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node kept reading or writing for 30 s ({} MiB read) while the browser read \
             nothing",
            read >> 20
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(s);
}

/// The page in headless Chromium (`crates/meshfs-web/e2e/recordings.mjs`): the gallery's
/// poster frames, the file page, the events feed across a reload, zip downloads (checked here
/// with Python's zipfile), a 390 px phone screen and, when this test may mount a tmpfs, a
/// node on a full disk. Skipped, saying so, only when chromium is absent.
#[test]
fn browser_recordings_ui() {
    let Some((chromium, e2e)) = browser("browser_recordings_ui") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("share");
    fs::create_dir_all(dir.join("clips")).unwrap();
    fs::write(dir.join("notes.txt"), b"camera notes: <b>not markup</b>\n").unwrap();
    const BIG: u64 = 5_000;
    fs::create_dir_all(dir.join("big")).unwrap();
    for i in 0..BIG {
        File::create(dir.join(format!("big/f{i:05}")))
            .unwrap()
            .set_len(i)
            .unwrap();
    }
    let big = BIG.to_string();
    let n = web_node(&dir, "cama", &[]);
    let full = full_disk_node(tmp.path());
    let full_url = full.as_ref().map(|(f, _)| format!("http://{}/", f.web));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-e2e-recordings");
    let _ = fs::remove_dir_all(&out);
    let url = format!("http://{}/", n.web);
    let mut env: Vec<(&str, &std::ffi::OsStr)> = vec![
        ("WEB_URL", url.as_ref()),
        ("LOCAL", "cama".as_ref()),
        ("LOCAL_DIR", dir.as_os_str()),
        ("OUT_DIR", out.as_os_str()),
        ("BIG", big.as_ref()),
    ];
    if let Some(u) = &full_url {
        env.push(("FULL_URL", u.as_ref()));
    }
    run_browser_script(&e2e, "recordings.mjs", &chromium, &env);
    let clips = [
        "cam-door.webm",
        "cam-front.webm",
        "cam-garden.webm",
        "late-clip.txt",
        "motion.log",
        "snapshot.png",
    ];
    let mut expected: Vec<(String, Option<String>)> = vec![("clips/".into(), None)];
    for c in clips {
        if dir.join("clips").join(c).exists() {
            expected.push((format!("clips/{c}"), Some(format!("clips/{c}"))));
        }
    }
    let borrowed: Vec<(&str, Option<&str>)> = expected
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_deref()))
        .collect();
    python_checks_zip(&out.join("folder.zip"), &dir, &borrowed);
    python_checks_zip(
        &out.join("selection.zip"),
        &dir,
        &[
            ("clips/cam-front.webm", Some("clips/cam-front.webm")),
            ("clips/snapshot.png", Some("clips/snapshot.png")),
        ],
    );
    eprintln!("screenshots: {}", out.display());
}

/// The gallery draws a long recording's poster from its first frame only: a 256 MiB video
/// (a real one, `common::webm` lengthens the fixture clip to 2½ hours), shown through a relay
/// that counts what the node sends, costs the browser a few MiB at most, also while the page
/// stays open after the poster. A poster made by reading the whole file would need it all.
#[test]
fn a_gallery_poster_reads_a_small_part_of_a_long_video() {
    const LONG: u64 = 256 << 20;
    const BOUND: u64 = 24 << 20;
    let Some((chromium, e2e)) = browser("a_gallery_poster_reads_a_small_part_of_a_long_video")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("share");
    fs::create_dir_all(dir.join("long")).unwrap();
    let clip = fs::read(e2e.join("fixtures/clip.webm")).unwrap();
    let mut out = std::io::BufWriter::new(File::create(dir.join("long/night.webm")).unwrap());
    let len = common::webm::lengthen(&clip, LONG, &mut out);
    out.flush().unwrap();
    drop(out);
    let n = web_node(&dir, "cam", &[]);
    let relay = ByteRelay::new(&n.web);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-e2e-poster");
    fs::create_dir_all(&out).unwrap();
    let url = format!("http://{}/", relay.addr);
    run_browser_script(
        &e2e,
        "poster.mjs",
        &chromium,
        &[
            ("WEB_URL", url.as_ref()),
            ("NODE", "cam".as_ref()),
            ("VIDEO", "night.webm".as_ref()),
            ("OUT_DIR", out.as_os_str()),
        ],
    );
    let sent = relay.sent();
    eprintln!(
        "the page and the poster of a {} MiB video: {} KiB from the node",
        len >> 20,
        sent >> 10
    );
    assert!(
        sent < BOUND,
        "drawing the poster of a {} MiB video took {} MiB from the node (bound {} MiB)",
        len >> 20,
        sent >> 20,
        BOUND >> 20
    );
}

/// A web node whose share lies on a small tmpfs filled to the brim (its retention measures
/// the disk: `--keep-free` with everything protected), once `/api/nodes` says so; `None`
/// when this process may not mount (not root).
fn full_disk_node(tmp: &Path) -> Option<(WebNode, Tmpfs)> {
    let at = tmp.join("fs");
    let disk = Tmpfs::mount(&at, "1m")?;
    let dir = at.join("share");
    fs::create_dir_all(dir.join("keep")).unwrap();
    let mut fill = File::create(dir.join("keep/fill")).unwrap();
    while fill.write_all(&[9; 4096]).is_ok() {}
    drop(fill);
    let node = web_node(
        &dir,
        "camfull",
        &["--keep-free", "10%", "--protect", "keep/**"],
    );
    wait_until(
        Duration::from_secs(10),
        "the node list saying disk full",
        || {
            get(&node.web, "/api/nodes")
                .text()
                .contains("\"disk_full\":true")
        },
    );
    Some((node, disk))
}

/// This node's own disk filling up shows in `/api/nodes`, and clears when there is room again.
#[test]
fn a_full_disk_shows_in_the_node_list() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((node, _disk)) = full_disk_node(tmp.path()) else {
        return;
    };
    let nodes = get(&node.web, "/api/nodes").text();
    assert!(nodes.contains("\"name\":\"camfull\""), "{nodes}");
    let share = tmp.path().join("fs/share");
    fs::remove_file(share.join("keep/fill")).unwrap();
    fs::write(share.join("poke"), b"x").unwrap(); // a close: retention measures again
    wait_until(Duration::from_secs(10), "disk_full cleared", || {
        get(&node.web, "/api/nodes")
            .text()
            .contains("\"disk_full\":false")
    });
}

/// This test file's block of multicast groups (see `common::group`).
const BLOCK: u8 = 230;

/// The node list follows the peer table: a node that says `bye` (stopped) leaves it at once,
/// one that goes silent (killed) once it expires; this node stays.
#[test]
fn nodes_that_say_bye_or_expire_leave_the_node_list() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Group::new(BLOCK);
    let group_node = |name: &str| {
        let dir = tmp.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        let mut args = net.args();
        args.extend(net.dnssd_args());
        args.extend(["--peer-expiry".to_owned(), "2s".to_owned()]);
        let (proc, addr) = named_node(&dir, name, &args);
        let web = web_addr(&proc);
        WebNode::new(proc, addr, web)
    };
    let a = group_node("a");
    let b = group_node("b");
    let mut c = group_node("c");
    let listed = |addr: &str| {
        get(&a.web, "/api/nodes")
            .text()
            .contains(&format!("\"addr\":\"{addr}\""))
    };
    wait_until(Duration::from_secs(10), "b and c listed", || {
        listed(&b.addr) && listed(&c.addr)
    });
    b.proc.signal(libc::SIGTERM);
    wait_until(Duration::from_secs(5), "b (said bye) dropped", || {
        !listed(&b.addr)
    });
    c.proc.child.kill().unwrap();
    c.proc.child.wait().unwrap();
    wait_until(Duration::from_secs(10), "c (expired) dropped", || {
        !listed(&c.addr)
    });
    assert!(listed(&a.addr), "this node stays listed");
}
