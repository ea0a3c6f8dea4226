//! End-to-end tests of the FTP door (`meshfs node --ftp`) with real clients: curl, lftp and
//! Python's ftplib, all on loopback against the real binary.

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Proc, pattern};

const PASSWORD: &str = "correct horse";

/// A node serving `share` with FTP on a free loopback port and `alice` as a writer.
struct FtpNode {
    proc: Proc,
    /// `127.0.0.1:PORT` of the FTP server.
    ftp: String,
    /// `127.0.0.1:PORT` of the node's file server.
    files: String,
}

/// The users file of every test here: `alice` may write, with [`PASSWORD`].
fn users_file(dir: &Path) -> std::path::PathBuf {
    common::ftp_users(dir, "alice", PASSWORD)
}

fn ftp_node(share: &Path, users: &Path, extra: &[&str]) -> FtpNode {
    let (proc, files) = common::node(share, &ftp_args(users, extra));
    ftp_door(proc, files)
}

/// [`ftp_node`] with the node's log on a channel.
fn logged_ftp_node(
    share: &Path,
    users: &Path,
    extra: &[&str],
) -> (FtpNode, std::sync::mpsc::Receiver<String>) {
    let (proc, files, log) = common::logged_node(share, &ftp_args(users, extra));
    (ftp_door(proc, files), log)
}

fn ftp_args<'a>(users: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--ftp",
        "127.0.0.1:0",
        "--ftp-users",
        users.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

/// The node's FTP address, from the line after its readiness line.
fn ftp_door(proc: Proc, files: String) -> FtpNode {
    let ftp = loop {
        let line = proc.next_line(Duration::from_secs(20));
        if let Some(addr) = line.strip_prefix("ftp ") {
            break addr.to_owned();
        }
    };
    FtpNode { proc, ftp, files }
}

/// A share with a few files, a folder, and symlinks inside and outside; returns (tmp, share).
fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(share.join("clips/day1")).unwrap();
    fs::write(share.join("hello.txt"), b"hello ftp\n").unwrap();
    fs::write(share.join("big.bin"), pattern(8 << 20, 1)).unwrap();
    fs::write(share.join("clips/a.bin"), pattern(300_000, 2)).unwrap();
    fs::write(share.join("clips/day1/b.bin"), pattern(70_000, 3)).unwrap();
    fs::write(share.join("clips/day1/empty"), b"").unwrap();
    fs::create_dir(tmp.path().join("outside")).unwrap();
    fs::write(tmp.path().join("outside/secret"), b"top secret").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("outside/secret"), share.join("leak")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("outside"), share.join("leakdir")).unwrap();
    std::os::unix::fs::symlink("hello.txt", share.join("alias.txt")).unwrap();
    (tmp, share)
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(args)
        .output()
        .expect("run curl")
}

fn python(script: &str, args: &[&str]) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Python ftplib download that writes each block as it arrives and paces itself (a slow
/// reader), started once it printed `started` after `after` bytes.
const SLOW_SCRIPT: &str = r#"
import ftplib, sys, time
host, port = sys.argv[1].rsplit(":", 1)
out = open(sys.argv[3], "wb")
after = int(sys.argv[4])
state = {"n": 0, "told": False}
def block(data):
    out.write(data); out.flush()
    state["n"] += len(data)
    if not state["told"] and state["n"] >= after:
        print("started", flush=True); state["told"] = True
    time.sleep(0.004)
f = ftplib.FTP()
f.connect(host, int(port), timeout=60)
f.login()
f.retrbinary("RETR " + sys.argv[2], block, blocksize=65536)
out.close()
print("done", flush=True)
f.close()
"#;

fn slow_download(ftp: &str, path: &str, dest: &Path, after: u64) -> std::process::Child {
    let mut child = Command::new("python3")
        .args([
            "-c",
            SLOW_SCRIPT,
            ftp,
            path,
            dest.to_str().unwrap(),
            &after.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "started");
    child
}

fn wait_for(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    common::wait_until(timeout, what, cond);
}

#[test]
fn curl_lists_downloads_and_resumes_after_a_cut() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let node = ftp_node(&share, &users, &[]);
    let url = format!("ftp://{}", node.ftp);

    // LIST (curl's default for a folder URL), NLST (--list-only).
    let list = ok(&curl(&[&format!("{url}/")]));
    assert!(
        list.contains("hello.txt") && list.contains("clips"),
        "{list}"
    );
    assert!(
        !list.contains("leak"),
        "links leaving the share are not listed: {list}"
    );
    let names = ok(&curl(&["--list-only", &format!("{url}/clips/")]));
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["a.bin", "day1"]);

    // Plain download, through an in-share symlink too.
    let out = tmp.path().join("hello");
    ok(&curl(&[
        "-o",
        out.to_str().unwrap(),
        &format!("{url}/hello.txt"),
    ]));
    assert_eq!(fs::read(&out).unwrap(), b"hello ftp\n");
    assert_eq!(ok(&curl(&[&format!("{url}/alias.txt")])), "hello ftp\n");

    // A slow client writes the file as it arrives and is killed (SIGKILL) half-way; curl
    // then resumes the partial file with `-C -` (REST).
    let dest = tmp.path().join("big.bin");
    let mut slow = slow_download(&node.ftp, "big.bin", &dest, 1 << 20);
    slow.kill().unwrap();
    slow.wait().unwrap();
    let partial = fs::metadata(&dest).unwrap().len();
    assert!((1 << 20..8 << 20).contains(&partial), "cut at {partial}");
    ok(&curl(&[
        "-C",
        "-",
        "-o",
        dest.to_str().unwrap(),
        &format!("{url}/big.bin"),
    ]));
    assert!(fs::read(&dest).unwrap() == fs::read(share.join("big.bin")).unwrap());
}

#[test]
fn curl_uploads_need_a_user() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let node = ftp_node(&share, &users, &[]);
    let url = format!("ftp://{}", node.ftp);
    let src = tmp.path().join("upload.bin");
    fs::write(&src, pattern(1 << 20, 9)).unwrap();
    let src = src.to_str().unwrap();

    // Anonymous: refused, nothing lands.
    let out = curl(&["-T", src, &format!("{url}/clips/new.bin")]);
    assert!(!out.status.success());
    assert!(!share.join("clips/new.bin").exists());
    // Wrong password: refused.
    let out = curl(&[
        "-u",
        "alice:wrong",
        "-T",
        src,
        &format!("{url}/clips/new.bin"),
    ]);
    assert!(!out.status.success());
    assert!(!share.join("clips/new.bin").exists());

    // Uploads are file events like any other change: follow them with `subscribe`.
    let events = TcpStream::connect(&node.files).unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (&events).write_all(b"subscribe\n").unwrap();
    let mut events = std::io::BufReader::new(events);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut events, &mut line).unwrap();
    assert_eq!(line.trim_end(), "0 OK");

    // Alice: lands whole, no temporary file left, and replaces atomically on a second upload.
    let auth = format!("alice:{PASSWORD}");
    ok(&curl(&[
        "-u",
        &auth,
        "-T",
        src,
        &format!("{url}/clips/new.bin"),
    ]));
    assert!(fs::read(share.join("clips/new.bin")).unwrap() == fs::read(src).unwrap());
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut events, &mut line).expect("an event for the upload");
        if line.trim_end().ends_with(" created clips/new.bin") {
            break;
        }
    }
    ok(&curl(&[
        "-u",
        &auth,
        "-T",
        "/dev/null",
        &format!("{url}/clips/new.bin"),
    ]));
    assert_eq!(fs::read(share.join("clips/new.bin")).unwrap(), b"");
    let leftovers: Vec<_> = fs::read_dir(share.join("clips"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // MKD, RNFR/RNTO, DELE, RMD through curl's -Q.
    ok(&curl(&[
        "-u",
        &auth,
        "-Q",
        "MKD /made",
        "-Q",
        "RNFR /clips/new.bin",
        "-Q",
        "RNTO /made/moved.bin",
        &format!("{url}/"),
    ]));
    assert!(share.join("made/moved.bin").is_file());
    ok(&curl(&[
        "-u",
        &auth,
        "-Q",
        "DELE /made/moved.bin",
        "-Q",
        "RMD /made",
        &format!("{url}/"),
    ]));
    assert!(!share.join("made").exists());
    // Anonymous users cannot do any of it.
    let out = curl(&["-Q", "DELE /hello.txt", &format!("{url}/")]);
    assert!(!out.status.success());
    let out = curl(&["-Q", "MKD /x", &format!("{url}/")]);
    assert!(!out.status.success());
    assert!(share.join("hello.txt").exists() && !share.join("x").exists());
}

/// RETR after REST, SIZE, MDTM, FEAT, MLSD and NLST with Python's ftplib.
const FTPLIB_SCRIPT: &str = r#"
import ftplib, sys, hashlib
host, port = sys.argv[1].rsplit(":", 1)
f = ftplib.FTP()
f.connect(host, int(port), timeout=30)
f.login()
feat = f.sendcmd("FEAT")
for word in ["SIZE", "MDTM", "REST STREAM", "MLSD", "EPSV"]:
    assert word in feat, (word, feat)
f.voidcmd("TYPE I")
assert f.size("big.bin") == 8 << 20
assert f.sendcmd("MDTM big.bin").startswith("213 ")
chunks = []
f.retrbinary("RETR big.bin", chunks.append, rest=5_000_000)
print(hashlib.sha256(b"".join(chunks)).hexdigest())
facts = dict(f.mlsd("clips"))
assert facts["a.bin"]["type"] == "file" and facts["a.bin"]["size"] == "300000", facts
assert facts["day1"]["type"] == "dir", facts
assert sorted(f.nlst("clips/day1")) == ["b.bin", "empty"], f.nlst("clips/day1")
f.set_pasv(True)
f.af = 0  # everything above used PASV (IPv4); any other family makes ftplib use EPSV
assert "hello.txt" in f.nlst()
f.quit()
"#;

#[test]
fn ftplib_resumes_with_rest_and_reads_metadata() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let node = ftp_node(&share, &users, &[]);
    let out = ok(&python(FTPLIB_SCRIPT, &[&node.ftp]));
    let whole = fs::read(share.join("big.bin")).unwrap();
    let want = sha256_hex(&whole[5_000_000..]);
    assert_eq!(out.trim(), want);
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys,hashlib;print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    ok(&child.wait_with_output().unwrap()).trim().to_owned()
}

/// Hostile requests: each must fail with a 5xx reply, and the share's neighbours stay unread.
const HOSTILE_SCRIPT: &str = r#"
import ftplib, sys
host, port = sys.argv[1].rsplit(":", 1)
def session(user="anonymous", pw="x"):
    f = ftplib.FTP()
    f.connect(host, int(port), timeout=30)
    f.login(user, pw)
    return f
f = session()
def refused(fn, *a):
    try:
        fn(*a)
    except ftplib.error_perm as e:
        return str(e)
    raise AssertionError("not refused: %r %r" % (fn.__name__, a))
refused(f.sendcmd, "CWD ..")
refused(f.cwd, "../..")
f.cwd("..")  # ftplib sends CDUP: at the root it stays there
assert f.pwd() == "/", f.pwd()
refused(f.cwd, "/../../etc")
refused(f.cwd, "leakdir")
got = []
refused(f.retrbinary, "RETR ../../etc/passwd", got.append)
refused(f.retrbinary, "RETR /../outside/secret", got.append)
refused(f.retrbinary, "RETR leak", got.append)
refused(f.retrbinary, "RETR leakdir/secret", got.append)
refused(f.retrbinary, "RETR clips", got.append)
refused(f.size, "leak")
refused(f.sendcmd, "MDTM ../outside/secret")
refused(f.nlst, "leakdir")
refused(f.nlst, "../")
assert got == [], got
assert f.pwd() == "/"
f.quit()
w = session("alice", sys.argv[2])
refused(w.storbinary, "STOR ../escaped", open("/dev/null", "rb"))
refused(w.storbinary, "STOR leakdir/planted", open("/dev/null", "rb"))
refused(w.delete, "leakdir/secret")
refused(w.rename, "leak", "../stolen")
refused(w.mkd, "../evil")
refused(w.rmd, "leakdir")
w.quit()
print("ok")
"#;

#[test]
fn hostile_paths_are_refused() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let node = ftp_node(&share, &users, &[]);
    assert_eq!(
        ok(&python(HOSTILE_SCRIPT, &[&node.ftp, PASSWORD])).trim(),
        "ok"
    );
    assert_eq!(
        fs::read(tmp.path().join("outside/secret")).unwrap(),
        b"top secret"
    );
    assert_eq!(fs::read_dir(tmp.path().join("outside")).unwrap().count(), 1);
    assert!(!tmp.path().join("escaped").exists() && !tmp.path().join("evil").exists());
    // curl's own path handling: an encoded `..` is sent as `CWD ..` and refused.
    let out = curl(&[&format!("ftp://{}/%2e%2e/%2e%2e/etc/passwd", node.ftp)]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn lftp_mirrors_a_folder() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let node = ftp_node(&share, &users, &[]);
    let dest = tmp.path().join("mirror");
    let (host, port) = node.ftp.rsplit_once(':').unwrap();
    let script = format!(
        "set net:max-retries 1; set net:timeout 20; open -p {port} -u anonymous,x {host}; \
         mirror --parallel=3 /clips {}",
        dest.display()
    );
    ok(&Command::new("lftp")
        .args(["-c", &script])
        .output()
        .expect("run lftp"));
    for rel in ["a.bin", "day1/b.bin", "day1/empty"] {
        assert!(
            fs::read(dest.join(rel)).unwrap() == fs::read(share.join("clips").join(rel)).unwrap(),
            "{rel}"
        );
    }
}

/// 50 simultaneous downloads of the same file (one thread each), all byte-identical.
const CONCURRENT_SCRIPT: &str = r#"
import ftplib, sys, hashlib, threading
host, port = sys.argv[1].rsplit(":", 1)
results, errors = [], []
def one():
    try:
        f = ftplib.FTP()
        f.connect(host, int(port), timeout=60)
        f.login()
        h = hashlib.sha256()
        f.retrbinary("RETR big.bin", h.update, blocksize=65536)
        f.quit()
        results.append(h.hexdigest())
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=one) for _ in range(50)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
assert len(results) == 50
print("\n".join(results))
"#;

#[test]
fn fifty_concurrent_downloads_are_identical() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let node = ftp_node(&share, &users, &[]);
    let want = sha256_hex(&fs::read(share.join("big.bin")).unwrap());
    let out = ok(&python(CONCURRENT_SCRIPT, &[&node.ftp]));
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 50);
    assert!(got.iter().all(|h| *h == want));
}

#[test]
fn sigint_lets_a_running_download_finish_then_exits_zero() {
    let (tmp, share) = setup();
    // Larger than what loopback socket buffers can hold, so the server is still sending.
    fs::write(share.join("huge.bin"), pattern(48 << 20, 5)).unwrap();
    let users = users_file(tmp.path());
    let mut node = ftp_node(&share, &users, &["--grace", "60s"]);
    let dest = tmp.path().join("during-shutdown.bin");
    let mut slow = slow_download(&node.ftp, "huge.bin", &dest, 1 << 20);
    node.proc.signal(libc::SIGINT);
    // New connections are refused while the transfer goes on.
    wait_for("the listener to close", Duration::from_secs(10), || {
        TcpStream::connect(&node.ftp).is_err()
    });
    assert!(
        slow.try_wait().unwrap().is_none(),
        "the download should still be running"
    );
    assert!(
        node.proc.child.try_wait().unwrap().is_none(),
        "the node should wait for it"
    );
    let status = slow.wait().unwrap();
    assert!(status.success());
    assert!(fs::read(&dest).unwrap() == fs::read(share.join("huge.bin")).unwrap());
    let status = node.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn users_file_errors_stop_the_node_with_a_message() {
    let (tmp, share) = setup();
    let users = tmp.path().join("bad-users");
    fs::write(&users, "alice:not-a-hash\n").unwrap();
    let out = Command::new(common::bin())
        .args([
            "node",
            share.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--ftp",
            "127.0.0.1:0",
        ])
        .arg("--ftp-users")
        .arg(&users)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn an_endless_command_line_is_cut_off() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let node = ftp_node(&share, &users, &[]);
    let stream = TcpStream::connect(&node.ftp).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut read = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut read, &mut line).unwrap();
    assert!(line.starts_with("220 "), "{line}");
    // 1 MiB without a line break; the server may close before it has all of it.
    let mut w = &stream;
    let _ = w.write_all(&vec![b'A'; 1 << 20]);
    line.clear();
    std::io::BufRead::read_line(&mut read, &mut line).unwrap();
    assert!(line.starts_with("500 "), "{line:?}");
    line.clear();
    assert_eq!(
        std::io::BufRead::read_line(&mut read, &mut line).unwrap_or(0),
        0
    );
    // The server goes on serving.
    assert_eq!(
        ok(&curl(&[&format!("ftp://{}/hello.txt", node.ftp)])),
        "hello ftp\n"
    );
}

#[test]
fn passwords_of_the_node_hold_for_anonymous_ftp() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let pw = tmp.path().join("pw");
    fs::write(&pw, "node secret\n").unwrap();
    let auth = format!("alice:{PASSWORD}");

    // A protected share: anonymous users see nothing; the operator's named users do.
    let node = ftp_node(&share, &users, &["--password-file", pw.to_str().unwrap()]);
    let url = format!("ftp://{}", node.ftp);
    assert!(!curl(&[&format!("{url}/")]).status.success());
    assert!(!curl(&[&format!("{url}/hello.txt")]).status.success());
    assert!(ok(&curl(&["-u", &auth, &format!("{url}/")])).contains("hello.txt"));
    assert_eq!(
        ok(&curl(&["-u", &auth, &format!("{url}/hello.txt")])),
        "hello ftp\n"
    );
    drop(node);

    // A protected file: listed, but its bytes are not served to anonymous users.
    let offer = format!("clips/a.bin:{}", pw.display());
    let node = ftp_node(&share, &users, &["--offer", &offer]);
    let url = format!("ftp://{}", node.ftp);
    assert!(ok(&curl(&[&format!("{url}/clips/")])).contains("a.bin"));
    let out = curl(&[&format!("{url}/clips/a.bin")]);
    assert!(!out.status.success() && out.stdout.is_empty());
    assert_eq!(ok(&curl(&[&format!("{url}/hello.txt")])), "hello ftp\n");
}

// ---- Explicit FTPS (AUTH TLS, RFC 4217) with the node's certificate ----

/// A node with FTP whose identity lives in `tmp/state`; returns it with the key's pin in the
/// form `curl --pinnedpubkey` takes and the path of its certificate.
fn ftps_node(tmp: &Path, share: &Path, extra: &[&str]) -> (FtpNode, String, std::path::PathBuf) {
    let state = tmp.join("state");
    let users = users_file(tmp);
    let mut args = vec!["--state", state.to_str().unwrap(), "--ftp-tls"];
    args.extend_from_slice(extra);
    let node = ftp_node(share, &users, &args);
    let pin = ok(&Command::new(common::bin())
        .args(["id", "--node", "--curl", "--state", state.to_str().unwrap()])
        .output()
        .unwrap())
    .trim()
    .to_owned();
    assert!(pin.starts_with("sha256//"), "{pin}");
    (node, pin, state.join("identity/cert.pem"))
}

/// Python's `ftplib.FTP_TLS`: checks the node presents exactly its certificate (argv[2]),
/// then logs in (argv[3], argv[4]; empty: anonymous), protects data, downloads argv[5] to
/// stdout's first line, uploads argv[6] as argv[7] when given.
const FTPS_SCRIPT: &str = r#"
import ftplib, ssl, sys, io
host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
f = ftplib.FTP_TLS(context=ctx, timeout=30)
f.connect(host, int(port))
f.auth()
want = ssl.PEM_cert_to_DER_cert(open(sys.argv[2]).read())
assert f.sock.getpeercert(binary_form=True) == want, "not the node's certificate"
print(f.sock.version(), flush=True)
if sys.argv[3]:
    f.login(sys.argv[3], sys.argv[4])
else:
    f.login()
f.prot_p()
data = io.BytesIO()
f.retrbinary("RETR " + sys.argv[5], data.write)
print(data.getvalue().decode().strip(), flush=True)
if len(sys.argv) > 7:
    try:
        f.storbinary("STOR " + sys.argv[7], open(sys.argv[6], "rb"))
    except ssl.SSLEOFError:
        # libunftp closes an upload's data connection without TLS close_notify, which
        # ftplib's unwrap() reports; the reply on the control channel is what counts.
        f.voidresp()
    print("stored", flush=True)
f.quit()
"#;

#[test]
fn ftps_curl_downloads_with_the_pinned_key() {
    let (tmp, share) = setup();
    let (node, pin, _) = ftps_node(tmp.path(), &share, &[]);
    let url = format!("ftp://{}", node.ftp);
    let tls = ["--ftp-ssl-reqd", "-k", "--pinnedpubkey", &pin];

    let mut args = tls.to_vec();
    let hello = format!("{url}/hello.txt");
    args.push(&hello);
    assert_eq!(ok(&curl(&args)), "hello ftp\n");

    // A large file through a PROT P data channel arrives whole.
    let dest = tmp.path().join("big.bin");
    let big = format!("{url}/big.bin");
    let mut args = tls.to_vec();
    args.extend(["-o", dest.to_str().unwrap(), &big]);
    ok(&curl(&args));
    assert!(fs::read(&dest).unwrap() == fs::read(share.join("big.bin")).unwrap());

    // Uploads inside TLS: ftps_curl_uploads_every_time.

    // Another key is not this node.
    let wrong = format!("sha256//{}", "A".repeat(43) + "=");
    let out = curl(&["--ftp-ssl-reqd", "-k", "--pinnedpubkey", &wrong, &hello]);
    assert!(!out.status.success(), "a wrong pin must fail");

    // Plain FTP still works beside FTPS (seed 002's cameras).
    assert_eq!(ok(&curl(&[&hello])), "hello ftp\n");
}

/// curl's FTPS uploads used to fail now and then with `426`: the node's TLS 1.3 session
/// tickets sat unread in curl's buffer on the data channel, so curl's close was a reset that
/// could drop the end of the upload (see `FtpTls::new`). Twenty in a row must all arrive.
#[test]
fn ftps_curl_uploads_every_time() {
    let (tmp, share) = setup();
    let (node, pin, _) = ftps_node(tmp.path(), &share, &[]);
    let auth = format!("alice:{PASSWORD}");
    for i in 0..20 {
        let src = tmp.path().join(format!("up{i}.bin"));
        let body = pattern(200_000 + i * 1000, 10 + i as u64);
        fs::write(&src, &body).unwrap();
        let url = format!("ftp://{}/clips/up{i}.bin", node.ftp);
        let args = [
            "--ftp-ssl-reqd",
            "-k",
            "--pinnedpubkey",
            &pin,
            "--user",
            &auth,
            "-T",
            src.to_str().unwrap(),
            &url,
        ];
        let out = curl(&args);
        assert!(
            out.status.success(),
            "upload {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            fs::read(share.join(format!("clips/up{i}.bin"))).unwrap() == body,
            "upload {i}"
        );
    }
}

#[test]
fn ftps_ftplib_downloads_and_uploads() {
    let (tmp, share) = setup();
    let (node, _, cert) = ftps_node(tmp.path(), &share, &[]);
    let src = tmp.path().join("py.bin");
    fs::write(&src, pattern(100_000, 4)).unwrap();
    let out = ok(&python(
        FTPS_SCRIPT,
        &[
            &node.ftp,
            cert.to_str().unwrap(),
            "alice",
            PASSWORD,
            "hello.txt",
            src.to_str().unwrap(),
            "py.bin",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["TLSv1.3", "hello ftp", "stored"], "{out}");
    assert!(fs::read(share.join("py.bin")).unwrap() == fs::read(&src).unwrap());
}

#[test]
fn ftp_require_tls_refuses_plain_logins() {
    let (tmp, share) = setup();
    let (node, pin, cert) = ftps_node(tmp.path(), &share, &["--ftp-require-tls"]);
    let hello = format!("ftp://{}/hello.txt", node.ftp);

    // Plain login: refused before the password is sent.
    let out = python(
        r#"
import ftplib, sys
host, port = sys.argv[1].rsplit(":", 1)
f = ftplib.FTP()
f.connect(host, int(port), timeout=30)
try:
    f.sendcmd("USER alice")
    print("accepted")
except ftplib.error_perm as e:
    print(e)
"#,
        &[&node.ftp],
    );
    let said = ok(&out);
    assert!(said.starts_with("534"), "{said}");
    assert!(!curl(&[&hello]).status.success(), "plain curl must fail");

    // With TLS, anonymous and alice both get through.
    assert_eq!(
        ok(&curl(&[
            "--ftp-ssl-reqd",
            "-k",
            "--pinnedpubkey",
            &pin,
            &hello
        ])),
        "hello ftp\n"
    );
    let out = ok(&python(
        FTPS_SCRIPT,
        &[&node.ftp, cert.to_str().unwrap(), "", "", "hello.txt"],
    ));
    assert!(out.contains("hello ftp"), "{out}");
}

#[test]
fn an_endless_command_line_is_cut_off_inside_tls() {
    let (tmp, share) = setup();
    let (node, _, _) = ftps_node(tmp.path(), &share, &[]);
    let out = ok(&python(
        r#"
import ftplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
f = ftplib.FTP_TLS(context=ctx, timeout=30)
f.connect(host, int(port))
f.auth()
try:
    f.sock.sendall(b"A" * (1 << 20))
except OSError:
    pass
print(f.file.readline().strip())
"#,
        &[&node.ftp],
    ));
    assert!(out.starts_with("500 "), "{out:?}");
}

// ---- Refusals said in time and for what they are; one login throttle per address ----

/// An anonymous ftplib upload whose source counts what ftplib read of it: the reply to STOR,
/// and how many bytes were read (sent) before it.
const ANONYMOUS_STOR: &str = r#"
import ftplib, io, sys
host, port = sys.argv[1].rsplit(":", 1)
class Source(io.RawIOBase):
    read_bytes = 0
    def readable(self): return True
    def readinto(self, b):
        Source.read_bytes += len(b)
        b[:] = b"x" * len(b)
        return len(b)
f = ftplib.FTP()
f.connect(host, int(port), timeout=30)
f.login()
try:
    f.storbinary("STOR up.bin", Source(), blocksize=65536)
    print("stored")
except ftplib.error_perm as e:
    print(e)
print("read", Source.read_bytes)
# A protected file: 530 (log in), not 550 (refused whatever the login).
try:
    f.retrbinary("RETR clips/a.bin", lambda _: None)
    print("served")
except ftplib.error_perm as e:
    print(e)
try:
    f.retrbinary("RETR leak", lambda _: None)
    print("served")
except ftplib.error_perm as e:
    print(e)
f.quit()
"#;

/// Anonymous users only read: an upload is refused at STOR (no `150`, not one byte of the
/// source read by ftplib, nothing sent by curl), with `530` saying to log in as a named user,
/// as the file server's code 8 does; a password-protected file is `530` too; what no login
/// could read (a symlink out of the share) stays `550`.
#[test]
fn anonymous_uploads_are_refused_before_the_data_and_logins_are_asked_for_with_530() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let pw = tmp.path().join("pw");
    fs::write(&pw, "node secret\n").unwrap();
    let offer = format!("clips/a.bin:{}", pw.display());
    let node = ftp_node(&share, &users, &["--offer", &offer]);

    let out = ok(&python(ANONYMOUS_STOR, &[&node.ftp]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("530 Anonymous users only read: log in as a user of"),
        "{out}"
    );
    assert_eq!(lines[1], "read 0", "{out}");
    assert!(lines[2].starts_with("530 Password required"), "{out}");
    assert!(lines[3].starts_with("550 "), "{out}");
    assert!(!share.join("up.bin").exists());

    let src = tmp.path().join("upload.bin");
    fs::write(&src, pattern(4 << 20, 5)).unwrap();
    let out = curl(&[
        "-v",
        "-T",
        src.to_str().unwrap(),
        &format!("ftp://{}/curl.bin", node.ftp),
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("< 530 Anonymous users only read"), "{log}");
    assert!(!log.contains("< 150"), "{log}");
    assert!(!share.join("curl.bin").exists());
}

/// 20 wrong FTP passwords in a second: after the fifth, the address is refused (even the right
/// password), the node logs the address, and the lockout holds at every door of the node:
/// the file server's `auth` from the same address is refused too.
#[test]
fn wrong_ftp_passwords_lock_the_address_out_at_every_door() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let pw = tmp.path().join("pw");
    fs::write(&pw, "node secret\n").unwrap();
    let (node, log) = logged_ftp_node(
        &share,
        &users,
        &[
            "--password-file",
            pw.to_str().unwrap(),
            "--allow-plaintext-auth",
        ],
    );
    let script = r#"
import ftplib, sys
host, port = sys.argv[1].rsplit(":", 1)
for i in range(20):
    f = ftplib.FTP()
    f.connect(host, int(port), timeout=30)
    try:
        f.login("alice", "wrong%d" % i)
        print("logged in")
    except ftplib.error_perm as e:
        print(e)
    f.close()
f = ftplib.FTP()
f.connect(host, int(port), timeout=30)
try:
    f.login("alice", sys.argv[2])
    print("logged in")
except ftplib.error_perm as e:
    print(e)
"#;
    let out = ok(&python(script, &[&node.ftp, PASSWORD]));
    let replies: Vec<&str> = out.lines().collect();
    assert_eq!(replies.len(), 21, "{out}");
    for r in &replies[..5] {
        assert!(r.starts_with("530 Authentication failed"), "{out}");
    }
    for r in &replies[5..] {
        assert!(
            r.starts_with("530 Too many wrong passwords from 127.0.0.1: logins refused for "),
            "{out}"
        );
    }
    common::until_line(&log, Duration::from_secs(10), |l| {
        l.contains("5 wrong passwords from 127.0.0.1") && l.contains("FTP")
    });

    let mut s = TcpStream::connect(&node.files).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"auth node secret\n").unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut s, &mut reply).unwrap();
    assert!(
        reply.starts_with("6 too many wrong passwords from 127.0.0.1"),
        "{reply}"
    );
}

/// The completion replies (the last line of each reply, `1xx` left out) a client reads after
/// sending `batch` at once, until the server closes.
fn pipelined(stream: &TcpStream, batch: &str) -> Vec<String> {
    let mut w = stream;
    w.write_all(batch.as_bytes()).unwrap();
    let mut replies = Vec::new();
    let mut read = std::io::BufReader::new(stream);
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut read, &mut line).unwrap() > 0 {
        let b = line.as_bytes();
        if b.len() > 3 && b[..3].iter().all(u8::is_ascii_digit) && b[0] != b'1' && b[3] == b' ' {
            replies.push(line.trim_end().to_owned());
        }
        line.clear();
    }
    replies
}

/// A client pipelining its commands reads the replies in the order of its commands, also the
/// ones the node's relay gives itself (an anonymous `STOR`'s `530`): with the login in the
/// same batch (the relay cannot know yet who is logged in, and libunftp alone would answer the
/// `PWD` behind `PASS` before `PASS`) and after it.
#[test]
fn pipelined_commands_are_answered_in_order() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let node = ftp_node(&share, &users, &[]);
    let codes =
        |replies: &[String]| -> Vec<String> { replies.iter().map(|r| r[..3].to_owned()).collect() };

    let stream = TcpStream::connect(&node.ftp).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let replies = pipelined(
        &stream,
        "USER anonymous\r\nPASS guest\r\nPWD\r\nSTOR up.bin\r\nNOOP\r\nSTOR again.bin\r\nQUIT\r\n",
    );
    assert_eq!(
        codes(&replies),
        ["220", "331", "230", "257", "530", "200", "530", "221"],
        "{replies:#?}"
    );
    assert!(
        replies[4].starts_with("530 Anonymous users only read"),
        "{replies:#?}"
    );

    let stream = TcpStream::connect(&node.ftp).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut read = std::io::BufReader::new(&stream);
    let mut w = &stream;
    w.write_all(b"USER anonymous\r\nPASS guest\r\n").unwrap();
    let mut line = String::new();
    while !line.starts_with("230") {
        line.clear();
        std::io::BufRead::read_line(&mut read, &mut line).unwrap();
    }
    let replies = pipelined(
        &stream,
        "CWD clips\r\nPWD\r\nSIZE a.bin\r\nSTOR b.bin\r\nPWD\r\nQUIT\r\n",
    );
    assert_eq!(
        codes(&replies),
        ["250", "257", "213", "530", "257", "221"],
        "{replies:#?}"
    );
    assert!(!share.join("up.bin").exists() && !share.join("clips/b.bin").exists());
}

/// A resumed upload (`REST` then `STOR`) is refused with `502`, and the file keeps its whole
/// old content: an atomic upload replaces the whole file, so it cannot start in the middle.
#[test]
fn a_resumed_upload_is_refused_and_the_file_is_untouched() {
    let (tmp, share) = setup();
    let users = users_file(tmp.path());
    let node = ftp_node(&share, &users, &[]);
    let script = r#"
import ftplib, io, sys
host, port = sys.argv[1].rsplit(":", 1)
f = ftplib.FTP()
f.connect(host, int(port), timeout=30)
f.login("alice", sys.argv[2])
f.storbinary("STOR keep.txt", io.BytesIO(b"the whole file\n"))
try:
    f.storbinary("STOR keep.txt", io.BytesIO(b"TAIL"), rest=4)
    print("stored")
except ftplib.all_errors as e:
    print(e)
f.quit()
"#;
    let out = ok(&python(script, &[&node.ftp, PASSWORD]));
    assert!(out.starts_with("502 "), "{out}");
    assert_eq!(
        fs::read_to_string(share.join("keep.txt")).unwrap(),
        "the whole file\n"
    );
}
