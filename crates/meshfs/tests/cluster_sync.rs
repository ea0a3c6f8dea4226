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

#[test]
fn workers_converge_on_uploads_deletions_and_after_an_outage() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (1..=3).map(|i| tmp.path().join(format!("w{i}"))).collect();
    for d in &dirs {
        fs::create_dir_all(d).unwrap();
    }
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
