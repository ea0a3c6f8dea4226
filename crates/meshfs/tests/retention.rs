//! End-to-end tests of `meshfs node`'s retention flags with the real binary: `--dry-run`
//! prints and deletes nothing; a real run deletes expired files but not protected ones, and
//! says `deleted:retention` to subscribers that ask for reasons; a full disk is announced in
//! `hello` (`disk=full`) while the node keeps serving. (The recorder-on-a-small-disk test is
//! core's `retention_tmpfs`.)

mod common;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{no_line_for, node, spawn, until_line};

const DAY: Duration = Duration::from_secs(86_400);
const WAIT: Duration = Duration::from_secs(15);

fn write_aged(path: &Path, bytes: &[u8], age: Duration) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = File::create(path).unwrap();
    (&f).write_all(bytes).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

/// A file-server connection speaking the text protocol.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        Conn {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader
            .read_line(&mut l)
            .expect("a line within the timeout");
        l.trim_end().to_owned()
    }

    fn hello(addr: &str) -> String {
        let mut c = Conn::open(addr);
        c.send("hello");
        c.line()
    }
}

#[test]
fn dry_run_then_retention_deletes_expired_files_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("share");
    write_aged(&dir.join("old/a.mp4"), &[1; 5000], 2 * DAY);
    write_aged(&dir.join("keep/b.mp4"), &[2; 5000], 3 * DAY);
    write_aged(&dir.join("new.mp4"), &[3; 5000], Duration::ZERO);
    let flags = ["--no-web", "--retain", "1h", "--protect", "keep/**"];

    let mut dry = flags.to_vec();
    dry.push("--dry-run");
    let (proc, _) = node(&dir, &dry);
    let seen = until_line(&proc.lines, WAIT, |l| {
        l.starts_with("retention would delete")
    });
    let said = seen.last().unwrap();
    assert!(
        said.starts_with("retention would delete old/a.mp4 (retain, "),
        "{said}"
    );
    assert!(dir.join("old/a.mp4").exists(), "a dry run deletes nothing");
    drop(proc);

    let (proc, addr) = node(&dir, &flags);
    let hello = Conn::hello(&addr);
    assert!(hello.contains(" events=reasons"), "{hello}");
    let mut sub = Conn::open(&addr);
    sub.send("subscribe reasons");
    assert_eq!(sub.line(), "0 OK");
    // A recording closed with an old modification time: the close triggers a check.
    write_aged(&dir.join("c.mp4"), &[4; 5000], 2 * DAY);
    loop {
        let line = sub.line();
        if line.ends_with(" c.mp4") && line.contains(" deleted") {
            assert!(line.contains(" deleted:retention c.mp4"), "{line}");
            break;
        }
    }
    assert!(!dir.join("c.mp4").exists());
    // Checked at start, before `c.mp4` was written: gone by now.
    assert!(!dir.join("old/a.mp4").exists());
    assert!(dir.join("keep/b.mp4").exists(), "protected");
    assert!(dir.join("new.mp4").exists(), "not expired");
    // A client that did not ask sees the unchanged line.
    let mut plain = Conn::open(&addr);
    plain.send("subscribe");
    assert_eq!(plain.line(), "0 OK");
    write_aged(&dir.join("d.mp4"), &[5; 10], 2 * DAY);
    loop {
        let line = plain.line();
        if line.ends_with(" d.mp4") && line.contains(" deleted") {
            assert!(line.ends_with(" deleted d.mp4"), "{line}");
            break;
        }
    }
    drop(proc);
}

/// The retention flags set in the configuration file act as on the command line: `retain`,
/// `max-size`, `keep-free`, `protect` and `dry-run` from `meshfs.toml` decide, in a dry run,
/// which files would go and under which rule.
#[test]
fn retention_rules_come_from_the_configuration_file() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("share");
    let clip = [6u8; 8192];
    write_aged(&dir.join("keep/b.mp4"), &clip, 50 * DAY);
    write_aged(&dir.join("a.mp4"), &clip, 40 * DAY);
    write_aged(&dir.join("c.mp4"), &clip, 2 * DAY);
    write_aged(&dir.join("d.mp4"), &clip, DAY);
    // Retention counts what files take on the disk.
    let one = fs::metadata(dir.join("a.mp4")).unwrap().blocks() * 512;
    let run = |rules: &str, expected: &[&str], kept: &str| {
        let file = tmp.path().join("meshfs.toml");
        fs::write(
            &file,
            format!(
                "dir = {:?}\nname = \"cfg\"\nlisten = \"127.0.0.1:0\"\nno-web = true\n\
                 no-discovery = true\nprotect = [\"keep/**\"]\ndry-run = true\n{rules}",
                dir.display().to_string()
            ),
        )
        .unwrap();
        let (proc, first) = spawn(&["node", "--config", file.to_str().unwrap()]);
        assert!(first.starts_with("meshfs node cfg serving "), "{first}");
        for want in expected {
            let seen = until_line(&proc.lines, WAIT, |l| {
                l.starts_with("retention would delete")
            });
            let said = seen.last().unwrap();
            assert!(
                said.starts_with(want),
                "{rules}: {said:?}, expected {want:?}"
            );
        }
        // Files are judged oldest first: once the last expected one is said, the one after
        // it would follow at once.
        no_line_for(
            &proc.lines,
            Duration::from_secs(1),
            &format!("retention would delete {kept}"),
        );
    };
    // Oldest first: b is protected; a is past `retain`; then the share holds 3 files, more
    // than `max-size` (2½), so c goes; 2 files then fit, and d stays.
    run(
        &format!("retain = \"30d\"\nmax-size = \"{}\"\n", one * 5 / 2),
        &[
            "retention would delete a.mp4 (retain, ",
            "retention would delete c.mp4 (max-size, ",
        ],
        "d.mp4",
    );
    // A `keep-free` the disk never meets: everything but the protected file would go.
    run(
        "keep-free = \"100%\"\n",
        &[
            "retention would delete a.mp4 (keep-free, ",
            "retention would delete c.mp4 (keep-free, ",
            "retention would delete d.mp4 (keep-free, ",
        ],
        "keep/b.mp4",
    );
    assert!(dir.join("a.mp4").exists(), "a dry run deletes nothing");
}

#[test]
fn a_full_disk_is_said_in_hello_and_the_node_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let at = tmp.path().join("fs");
    let Some(_disk) = common::tmpfs::Tmpfs::mount(&at, "1m") else {
        return;
    };
    let dir = at.join("share");
    fs::create_dir_all(dir.join("keep")).unwrap();
    fs::write(dir.join("small.txt"), b"hello").unwrap();
    // Fill the disk with a protected file, until the file system refuses.
    let mut fill = File::create(dir.join("keep/fill")).unwrap();
    while fill.write_all(&[9; 4096]).is_ok() {}
    drop(fill);

    let (proc, addr, log) = common::logged_node(
        &dir,
        &["--no-web", "--keep-free", "10%", "--protect", "keep/**"],
    );
    // Said in the log once, with what the owner can do about it.
    until_line(&log, WAIT, |l| {
        l.contains("WARN") && l.contains("disk full: still serving") && l.contains("protected")
    });
    common::wait_until(WAIT, "hello saying disk=full", || {
        Conn::hello(&addr).contains(" disk=full")
    });
    // Still serving.
    let mut c = Conn::open(&addr);
    c.send("open small.txt");
    assert_eq!(c.line(), "0 OK");
    c.send("read 100");
    assert_eq!(c.line(), "0 5");
    let mut body = [0u8; 5];
    c.reader.read_exact(&mut body).unwrap();
    assert_eq!(&body, b"hello");
    assert!(
        dir.join("keep/fill").exists(),
        "protected, even on a full disk"
    );
    // Room again: hello stops saying it.
    fs::remove_file(dir.join("keep/fill")).unwrap();
    fs::write(dir.join("poke"), b"x").unwrap(); // a close: retention checks again
    common::wait_until(WAIT, "hello no longer saying disk=full", || {
        !Conn::hello(&addr).contains(" disk=full")
    });
    until_line(&log, WAIT, |l| l.contains("disk has room again"));
    drop(proc);
}
