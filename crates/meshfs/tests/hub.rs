//! End to end: the real `meshfs hub` and `meshfs chat` with real FIFOs, against Python clients —
//! the seed's own reference clients (steps 1 and 2) and clients written from its description.
//! Every FIFO lives in a per-test temporary folder (the seed's clients pick `/tmp/client…<pid>`
//! themselves), so tests run in parallel. Synchronisation is on lines: the hub prints one line per
//! client event, the clients print what they receive.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Proc;

const WAIT: Duration = Duration::from_secs(15);

/// A process whose stdin we write and whose stdout lines we read; killed when dropped.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn spawn(program: &str, args: &[&str]) -> Peer {
        let mut command = Command::new(program);
        command.args(args);
        Peer::from_command(command)
    }

    fn from_command(mut command: Command) -> Peer {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Peer {
            child,
            stdin,
            lines,
        }
    }

    /// A Python script of `tests/python`.
    fn python(script: &str, args: &[&str]) -> Peer {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/python")
            .join(script);
        let mut all = vec![path.to_str().unwrap()];
        all.extend_from_slice(args);
        Peer::spawn("python3", &all)
    }

    fn say(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no line from client within {WAIT:?}: {e}"))
    }

    fn close_stdin(&mut self) {
        self.stdin.take();
    }

    fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "client did not exit within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `meshfs hub --fifo DIR/hub --mode MODE EXTRA…`, ready; returns it and its FIFO.
fn hub(dir: &Path, mode: &str, extra: &[&str]) -> (Proc, String) {
    let fifo = dir.join("hub");
    let fifo = fifo.to_str().unwrap().to_owned();
    let mut args = vec!["hub", "--fifo", &fifo, "--mode", mode];
    args.extend_from_slice(extra);
    let (proc, line) = common::spawn(&args);
    assert_eq!(line, fifo, "the hub prints its FIFO when ready");
    assert!(is_fifo(Path::new(&fifo)));
    (proc, fifo)
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Next event line of the hub.
fn event(hub: &Proc) -> String {
    hub.next_line(WAIT)
}

/// A step-3 client on `DIR/name`, registered (the hub said so).
fn select_client(hub_proc: &Proc, hub: &str, dir: &Path, name: &str) -> (Peer, PathBuf) {
    let me = dir.join(name);
    let peer = Peer::python("select_client.py", &[hub, me.to_str().unwrap()]);
    assert_eq!(event(hub_proc), format!("registered {}", me.display()));
    (peer, me)
}

/// `meshfs chat --hub HUB` with its FIFO at `DIR/name` (not waited for).
fn meshfs_chat(hub: &str, dir: &Path, name: &str) -> (Peer, PathBuf) {
    let fifo = dir.join(name);
    let peer = Peer::spawn(
        common::bin(),
        &["chat", "--hub", hub, "--fifo", fifo.to_str().unwrap()],
    );
    (peer, fifo)
}

/// End of input: the client says goodbye and exits 0, the hub says `disconnected`, and the
/// client's FIFO is gone.
fn says_goodbye_on_end_of_input(hub_proc: &Proc, client: &mut Peer, fifo: &Path) {
    client.close_stdin();
    assert!(client.wait().success());
    assert_eq!(event(hub_proc), format!("disconnected {}", fifo.display()));
    assert!(!fifo.exists());
}

/// The FIFO the seed's clients create for themselves.
fn seed_fifo(script: &str, peer: &Peer) -> String {
    format!("/tmp/client{script}{}", peer.pid())
}

#[test]
fn single_mode_runs_the_seed_step1_client_one_client_after_another() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "single", &[]);
    for round in 0..2 {
        let mut client = Peer::python("seed_step1_client.py", &[&hub]);
        let fifo = seed_fifo("seed_step1_client.py", &client);
        assert_eq!(event(&hub_proc), format!("registered {fifo}"));
        client.say(&format!("hello {round}\n"));
        assert_eq!(client.line(), format!("hello {round}"));
        client.say("ünïcode ¶ too\n");
        assert_eq!(client.line(), "ünïcode ¶ too");
        client.close_stdin();
        assert!(client.wait().success());
        // The client closed the hub FIFO: its session is over, the next client gets served.
        assert_eq!(event(&hub_proc), format!("disconnected {fifo}"));
        assert!(
            !Path::new(&fifo).exists(),
            "the seed's client removed its FIFO"
        );
    }
}

/// `meshfs hub --mode single`'s help suggests `meshfs chat --hub` next: the pair talks. The
/// chat registers with the framing of the other modes (`¶<fifo>`), so the hub serves it in that
/// framing (texts back without their prefix, its goodbye ends the session); a second framed
/// client meanwhile is refused with what to do; the seed's bare step-1 client still works after.
#[test]
fn single_mode_serves_meshfs_chat_one_client_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "single", &[]);
    let chat = |name: &str| meshfs_chat(&hub, dir.path(), name);
    let (mut one, one_fifo) = chat("one");
    assert_eq!(
        event(&hub_proc),
        format!("registered {}", one_fifo.display())
    );
    one.say("hello single\n");
    assert_eq!(one.line(), "hello single");
    one.say("ünïcode ¶ too\n");
    assert_eq!(one.line(), "ünïcode ¶ too");

    let (_two, two_fifo) = chat("two");
    let refused = event(&hub_proc);
    assert!(
        refused.starts_with(&format!(
            "refused {}: a single-mode hub serves one client",
            two_fifo.display()
        )) && refused.contains("--mode echo or broadcast"),
        "{refused}"
    );

    says_goodbye_on_end_of_input(&hub_proc, &mut one, &one_fifo);

    let mut seed = Peer::python("seed_step1_client.py", &[&hub]);
    let fifo = seed_fifo("seed_step1_client.py", &seed);
    assert_eq!(event(&hub_proc), format!("registered {fifo}"));
    seed.say("raw again\n");
    assert_eq!(seed.line(), "raw again");
}

#[test]
fn echo_mode_runs_the_seed_step2_clients_and_handles_their_ctrl_d_and_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "echo", &[]);
    let mut a = Peer::python("seed_step2_client.py", &[&hub]);
    let a_fifo = seed_fifo("seed_step2_client.py", &a);
    assert_eq!(event(&hub_proc), format!("registered {a_fifo}"));
    let mut b = Peer::python("seed_step2_client.py", &[&hub]);
    let b_fifo = seed_fifo("seed_step2_client.py", &b);
    assert_eq!(event(&hub_proc), format!("registered {b_fifo}"));

    a.say("from a\n");
    assert_eq!(a.line(), "from a");
    b.say("from b\n");
    assert_eq!(b.line(), "from b");
    a.say("again a\n");
    assert_eq!(a.line(), "again a");

    // ^D: the seed's client sends `path¶` and exits.
    a.close_stdin();
    assert!(a.wait().success());
    assert_eq!(event(&hub_proc), format!("disconnected {a_fifo}"));
    // ^C: its handler sends `path¶` and exits 130.
    b.signal(libc::SIGINT);
    assert_eq!(b.wait().code(), Some(130));
    assert_eq!(event(&hub_proc), format!("disconnected {b_fifo}"));
    assert!(!Path::new(&a_fifo).exists() && !Path::new(&b_fifo).exists());
}

#[test]
fn echo_mode_answers_the_sender_only() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "echo", &[]);
    let mut clients: Vec<Peer> = ["a", "b", "c"]
        .iter()
        .map(|n| select_client(&hub_proc, &hub, dir.path(), n).0)
        .collect();
    for round in 0..2 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.say(&format!("round {round} from {i}\n"));
        }
        // Each client's next line is its own text: nobody got another's.
        for (i, c) in clients.iter().enumerate() {
            assert_eq!(c.line(), format!("round {round} from {i}"));
        }
    }
}

#[test]
fn broadcast_mode_delivers_every_message_to_every_client() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "broadcast", &[]);
    let mut clients: Vec<(Peer, PathBuf)> = ["a", "b", "c"]
        .iter()
        .map(|n| select_client(&hub_proc, &hub, dir.path(), n))
        .collect();
    for i in 0..3 {
        clients[i].0.say(&format!("hello from {i}\n"));
        for (c, _) in &clients {
            assert_eq!(c.line(), format!("hello from {i}"));
        }
    }
    // Goodbye on end of input: the hub unregisters, the client removes its FIFO.
    let (mut a, a_fifo) = clients.remove(0);
    says_goodbye_on_end_of_input(&hub_proc, &mut a, &a_fifo);
    clients[0].0.say("still here\n");
    for (c, _) in &clients {
        assert_eq!(c.line(), "still here");
    }
}

#[test]
fn two_messages_read_at_once_are_both_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "broadcast", &[]);
    let (a, a_fifo) = select_client(&hub_proc, &hub, dir.path(), "a");
    let (b, b_fifo) = select_client(&hub_proc, &hub, dir.path(), "b");
    // Two clients' messages back to back in ONE write: the hub necessarily reads them at once.
    let both = format!("{}¶first\n{}¶second\n", a_fifo.display(), b_fifo.display());
    let writer = Peer::python("write_once.py", &[&hub, &both]);
    assert_eq!(writer.line(), both.len().to_string());
    for c in [&a, &b] {
        assert_eq!(c.line(), "first");
        assert_eq!(c.line(), "second");
    }
    // A registration, the new client's first text, another text and a goodbye: one write.
    let c_fifo = dir.path().join("c");
    assert!(
        Command::new("mkfifo")
            .arg(&c_fifo)
            .status()
            .unwrap()
            .success()
    );
    let c = read_lines(&c_fifo);
    let (a_p, b_p, c_p) = (a_fifo.display(), b_fifo.display(), c_fifo.display());
    let all = format!("¶{c_p}{c_p}¶hello from c\n{a_p}¶third\n{b_p}¶");
    Peer::python("write_once.py", &[&hub, &all]).line();
    assert_eq!(event(&hub_proc), format!("registered {c_p}"));
    for lines in [&a.lines, &b.lines, &c] {
        assert_eq!(lines.recv_timeout(WAIT).unwrap(), "hello from c");
        assert_eq!(lines.recv_timeout(WAIT).unwrap(), "third");
    }
    assert_eq!(event(&hub_proc), format!("disconnected {b_p}"));
}

/// Lines read from the FIFO `path` by a thread (its blocking open counts as a reader).
fn read_lines(path: &Path) -> mpsc::Receiver<String> {
    let path = path.to_owned();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok(file) = std::fs::File::open(&path) else {
            return;
        };
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn a_client_killed_with_sigkill_does_not_disturb_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "broadcast", &[]);
    let (mut a, _) = select_client(&hub_proc, &hub, dir.path(), "a");
    let (b, _) = select_client(&hub_proc, &hub, dir.path(), "b");
    let (mut k, k_fifo) = select_client(&hub_proc, &hub, dir.path(), "k");
    a.say("before\n");
    for c in [&a, &b, &k] {
        assert_eq!(c.line(), "before");
    }
    k.signal(libc::SIGKILL);
    k.wait();
    assert!(
        is_fifo(&k_fifo),
        "a killed client leaves its FIFO behind, nobody reading it"
    );

    a.say("after the kill\n");
    assert_eq!(a.line(), "after the kill");
    assert_eq!(b.line(), "after the kill");
    let dropped = event(&hub_proc);
    assert!(
        dropped.starts_with(&format!("dropped {}: ", k_fifo.display())),
        "{dropped}"
    );
    for i in 0..5 {
        a.say(&format!("chat {i}\n"));
        assert_eq!(a.line(), format!("chat {i}"));
        assert_eq!(b.line(), format!("chat {i}"));
    }
}

#[test]
fn a_client_that_never_reads_cannot_stall_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "broadcast", &["--queue", "4"]);
    let (mut a, _) = select_client(&hub_proc, &hub, dir.path(), "a");
    let (b, _) = select_client(&hub_proc, &hub, dir.path(), "b");
    let silent_fifo = dir.path().join("silent");
    let silent = Peer::python("silent_client.py", &[&hub, silent_fifo.to_str().unwrap()]);
    assert_eq!(silent.line(), "registered");
    assert_eq!(
        event(&hub_proc),
        format!("registered {}", silent_fifo.display())
    );

    // Far more than the silent client's pipe (64 KiB) and queue hold.
    let line = "x".repeat(900);
    for i in 0..300 {
        a.say(&format!("{i:03} {line}\n"));
        assert_eq!(a.line(), format!("{i:03} {line}"));
        assert_eq!(b.line(), format!("{i:03} {line}"));
    }
    let dropped = event(&hub_proc);
    assert!(
        dropped.starts_with(&format!("dropped {}: not reading", silent_fifo.display())),
        "{dropped}"
    );
}

#[test]
fn a_client_that_never_opens_its_fifo_is_dropped_after_the_open_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "broadcast", &["--open-timeout", "300ms"]);
    let (mut a, _) = select_client(&hub_proc, &hub, dir.path(), "a");
    // A FIFO nobody opens, registered by hand.
    let lonely = dir.path().join("lonely");
    assert!(
        Command::new("mkfifo")
            .arg(&lonely)
            .status()
            .unwrap()
            .success()
    );
    let registration = format!("¶{}", lonely.display());
    Peer::python("write_once.py", &[&hub, &registration]).line();
    assert_eq!(event(&hub_proc), format!("registered {}", lonely.display()));
    a.say("meanwhile\n");
    assert_eq!(a.line(), "meanwhile");
    let dropped = event(&hub_proc);
    assert!(
        dropped.starts_with(&format!("dropped {}: cannot open", lonely.display())),
        "{dropped}"
    );
    a.say("later\n");
    assert_eq!(a.line(), "later");
}

#[test]
fn hostile_input_is_refused_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "broadcast", &[]);
    let (mut a, _) = select_client(&hub_proc, &hub, dir.path(), "a");
    // A registration naming a regular file: the hub must never write into it.
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, "precious\n").unwrap();
    let registration = format!("¶{}\n", plain.display());
    Peer::python("write_once.py", &[&hub, &registration]).line();
    let refused = event(&hub_proc);
    assert_eq!(
        refused,
        format!(
            "refused {}: not a FIFO (or does not exist)",
            plain.display()
        )
    );
    // Garbage, a relative registration, a message from a stranger, a huge unframed blob.
    for junk in [
        "garbage without separator",
        "¶relative/path\n",
        "/tmp/stranger¶hi\n",
    ] {
        Peer::python("write_once.py", &[&hub, junk]).line();
    }
    Peer::python("write_once.py", &[&hub, &"z".repeat(20_000)]).line();
    a.say("still fine\n");
    assert_eq!(a.line(), "still fine");
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "precious\n");
}

#[test]
fn sigint_and_sigterm_remove_the_hub_fifo_and_exit_0() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let dir = tempfile::tempdir().unwrap();
        let (mut hub_proc, hub) = hub(dir.path(), "broadcast", &[]);
        let (mut a, _) = select_client(&hub_proc, &hub, dir.path(), "a");
        // Once it hears back, the hub holds its FIFO open (the seed's blocking open returned).
        a.say("ping\n");
        assert_eq!(a.line(), "ping");
        hub_proc.signal(sig);
        let status = hub_proc.wait_exit(WAIT);
        assert_eq!(status.code(), Some(0), "signal {sig}");
        assert!(
            !Path::new(&hub).exists(),
            "hub FIFO removed after signal {sig}"
        );
        // The hub closed the client's FIFO: the client sees end-of-file and stops.
        assert_eq!(a.wait().code(), Some(1));
    }
}

#[test]
fn the_hub_refuses_to_take_over_an_existing_path() {
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("hub");
    std::fs::write(&taken, "someone's file").unwrap();
    let out = Command::new(common::bin())
        .args(["hub", "--fifo", taken.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot create the hub FIFO") && stderr.contains("os error 17"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "someone's file");
}

#[test]
fn meshfs_chat_talks_through_the_hub_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "broadcast", &[]);
    let chat = |name: &str| {
        let (peer, fifo) = meshfs_chat(&hub, dir.path(), name);
        assert_eq!(event(&hub_proc), format!("registered {}", fifo.display()));
        (peer, fifo)
    };
    let (mut one, one_fifo) = chat("one");
    let (mut two, two_fifo) = chat("two");
    // A seed-style client in the same room.
    let (mut py, _) = select_client(&hub_proc, &hub, dir.path(), "py");

    one.say("hi from one\n");
    // `two` has typed nothing: it still hears `one` (keyboard and FIFO are watched at once).
    for c in [&one, &two, &py] {
        assert_eq!(c.line(), "hi from one");
    }
    py.say("hi from python\n");
    for c in [&one, &two, &py] {
        assert_eq!(c.line(), "hi from python");
    }

    // ^D: goodbye, FIFO removed, exit 0.
    says_goodbye_on_end_of_input(&hub_proc, &mut one, &one_fifo);
    // ^C: the same.
    two.signal(libc::SIGINT);
    assert!(two.wait().success());
    assert_eq!(
        event(&hub_proc),
        format!("disconnected {}", two_fifo.display())
    );
    assert!(!two_fifo.exists());
}

#[test]
fn meshfs_chat_reports_a_missing_hub() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("me");
    let out = Command::new(common::bin())
        .args(["chat", "--hub", dir.path().join("nohub").to_str().unwrap()])
        .args(["--fifo", fifo.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the hub"));
    assert!(!fifo.exists(), "its own FIFO is removed on failure too");
    // Without `--hub`, `meshfs chat` is the LAN group chat (tests/group.rs); `--fifo` alone
    // makes no sense there.
    let out = Command::new(common::bin())
        .args(["chat", "--fifo", fifo.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hub"));
}

#[test]
fn a_message_longer_than_the_pipe_is_joined_across_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "broadcast", &[]);
    let (a, a_fifo) = select_client(&hub_proc, &hub, dir.path(), "a");
    let (b, _) = select_client(&hub_proc, &hub, dir.path(), "b");
    // 100 kB in one write: more than a pipe holds, so the hub necessarily reads it in pieces.
    let long = "y".repeat(100_000);
    let message = format!("{}¶{long}\n", a_fifo.display());
    Peer::python("write_once.py", &[&hub, &message]).line();
    assert_eq!(a.line(), long);
    assert_eq!(b.line(), long);
}

#[test]
fn registrations_beyond_max_clients_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "broadcast", &["--max-clients", "1"]);
    let (mut a, _) = select_client(&hub_proc, &hub, dir.path(), "a");
    let extra = dir.path().join("extra");
    let _extra = Peer::python("silent_client.py", &[&hub, extra.to_str().unwrap()]);
    assert_eq!(
        event(&hub_proc),
        format!("refused {}: the hub already has 1 clients", extra.display())
    );
    a.say("alone\n");
    assert_eq!(a.line(), "alone");
}

#[test]
fn the_default_fifo_is_tmp_meshfs_hub_pid_and_is_removed() {
    let (mut hub_proc, line) = common::spawn(&["hub"]);
    assert_eq!(line, format!("/tmp/meshfs-hub-{}", hub_proc.child.id()));
    assert!(is_fifo(Path::new(&line)));
    hub_proc.signal(libc::SIGTERM);
    assert_eq!(hub_proc.wait_exit(WAIT).code(), Some(0));
    assert!(!Path::new(&line).exists());
}

#[test]
fn meshfs_chat_stops_with_an_error_when_the_hub_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub_proc, hub) = hub(dir.path(), "broadcast", &[]);
    let fifo = dir.path().join("me");
    let mut chat = Peer::spawn(
        common::bin(),
        &["chat", "--hub", &hub, "--fifo", fifo.to_str().unwrap()],
    );
    assert_eq!(event(&hub_proc), format!("registered {}", fifo.display()));
    hub_proc.signal(libc::SIGINT);
    assert_eq!(hub_proc.wait_exit(WAIT).code(), Some(0));
    let status = chat.wait();
    assert_eq!(
        status.code(),
        Some(1),
        "the chat notices the hub closed its FIFO"
    );
    assert!(!fifo.exists());
}

#[test]
fn meshfs_chat_notices_a_hub_that_dies_before_opening_its_fifo() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A "hub" that reads the registration and dies without ever opening the client's FIFO.
    let hub = dir.path().join("hub");
    assert!(Command::new("mkfifo").arg(&hub).status().unwrap().success());
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&hub)
        .unwrap();
    let fifo = dir.path().join("me");
    let mut chat = Peer::spawn(
        common::bin(),
        &[
            "chat",
            "--hub",
            hub.to_str().unwrap(),
            "--fifo",
            fifo.to_str().unwrap(),
        ],
    );
    let expected = format!("¶{}", fifo.display());
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < expected.len() {
        let mut buf = [0u8; 256];
        match reader.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        assert!(
            Instant::now() < deadline,
            "no registration from meshfs chat"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(String::from_utf8(got).unwrap(), expected);
    drop(reader);
    assert_eq!(chat.wait().code(), Some(1));
    assert!(!fifo.exists());
}

#[test]
fn a_client_fifo_deleted_before_the_hub_opens_it_drops_that_client_only() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_proc, hub) = hub(dir.path(), "broadcast", &[]);
    let (mut a, _) = select_client(&hub_proc, &hub, dir.path(), "a");
    let gone = dir.path().join("gone");
    assert!(
        Command::new("mkfifo")
            .arg(&gone)
            .status()
            .unwrap()
            .success()
    );
    Peer::python("write_once.py", &[&hub, &format!("¶{}", gone.display())]).line();
    assert_eq!(event(&hub_proc), format!("registered {}", gone.display()));
    std::fs::remove_file(&gone).unwrap();
    let dropped = event(&hub_proc);
    assert_eq!(
        dropped,
        format!(
            "dropped {}: cannot open its FIFO: no such FIFO",
            gone.display()
        )
    );
    a.say("unaffected\n");
    assert_eq!(a.line(), "unaffected");
}

#[test]
fn relative_paths_are_made_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Command::new(common::bin());
    hub.current_dir(dir.path())
        .args(["hub", "--fifo", "rel-hub"]);
    let hub = Peer::from_command(hub);
    assert_eq!(
        Path::new(&hub.line()),
        dir.path().join("rel-hub"),
        "the hub reports an absolute path"
    );
    let mut chat = Command::new(common::bin());
    chat.current_dir(dir.path())
        .args(["chat", "--hub", "rel-hub", "--fifo", "rel-me"]);
    let mut chat = Peer::from_command(chat);
    assert_eq!(
        hub.line(),
        format!("registered {}", dir.path().join("rel-me").display())
    );
    chat.say("relative\n");
    assert_eq!(chat.line(), "relative");
}
