//! On the nodes themselves (issue 17): `meshfs.toml` read by the real binary (precedence,
//! errors naming file, line and key), systemd's notification protocol on a real unix datagram
//! socket, and the completions and man pages the packages ship.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, assert_success, bin, node_addr, spawn_piped};

const READY: Duration = Duration::from_secs(20);

/// `meshfs` with a configuration home of its own (no user file of the developer's leaks in)
/// and none of the `MESHFS_*` variables a test does not set.
fn meshfs(home: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env_remove("MESHFS_NAME")
        .env_remove("MESHFS_DIR")
        .env_remove("MESHFS_LISTEN")
        .env_remove("MESHFS_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stderr(Stdio::piped());
    cmd
}

/// Flags every node of these tests needs: loopback, no multicast, no web.
const QUIET: [&str; 4] = ["--listen", "127.0.0.1:0", "--no-discovery", "--no-web"];

/// Start a node and return it with its readiness line.
fn start(cmd: &mut Command) -> (Proc, String) {
    let proc = spawn_piped(cmd.stderr(Stdio::inherit()));
    let line = proc.next_line(READY);
    (proc, line)
}

/// The precedence table of issue 17: flag, then environment, then file, then default; for a
/// flag with a variable (`--name`/MESHFS_NAME) and the positional folder (MESHFS_DIR).
#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("config/meshfs/meshfs.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let dir = |what: &str| home.path().join(what).to_str().unwrap().to_owned();
    std::fs::write(
        &file,
        format!(
            "# the user's default file\nname = \"from-file\"\ndir = \"{}\"\n",
            dir("file-share")
        ),
    )
    .unwrap();
    // (flag, environment, expected name, expected folder); a source is a name and a folder.
    type Source<'a> = Option<(&'a str, String)>;
    let table: [(Source, Source, &str, String); 4] = [
        (None, None, "from-file", dir("file-share")),
        (
            None,
            Some(("from-env", dir("env-share"))),
            "from-env",
            dir("env-share"),
        ),
        (
            Some(("from-flag", dir("flag-share"))),
            Some(("from-env", dir("env-share"))),
            "from-flag",
            dir("flag-share"),
        ),
        (
            Some(("from-flag", dir("flag-share"))),
            None,
            "from-flag",
            dir("flag-share"),
        ),
    ];
    for (flag, env, name, folder) in table {
        let mut cmd = meshfs(home.path());
        cmd.arg("node").args(QUIET);
        if let Some((name, folder)) = &flag {
            cmd.args(["--name", name, folder]);
        }
        if let Some((name, folder)) = &env {
            cmd.env("MESHFS_NAME", name).env("MESHFS_DIR", folder);
        }
        let (_node, line) = start(&mut cmd);
        assert!(
            line.starts_with(&format!(
                "meshfs node {name} serving {folder} on 127.0.0.1:"
            )),
            "flag {flag:?}, environment {env:?}: {line}"
        );
    }
    // No file at all: the defaults (the host name; ./share under the working folder).
    std::fs::remove_file(&file).unwrap();
    let cwd = home.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let (_node, line) = start(
        meshfs(home.path())
            .current_dir(&cwd)
            .arg("node")
            .args(QUIET),
    );
    let share = cwd.join("share");
    assert!(
        line.ends_with(&format!(
            " serving {} on {}",
            share.display(),
            node_addr(&line)
        )) && !line.contains("from-"),
        "{line}"
    );
}

/// `--config` (and MESHFS_CONFIG) name the file; every kind of flag is set from it: a value
/// (`listen`), a switch (`no-web`), a repeatable list (`protect`), a duration.
#[test]
fn config_flag_names_the_file_and_every_kind_of_flag_is_set_there() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("node.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\nname = \"cfg\"\nno-web = true\nno-discovery = true\n\
             idle-timeout = \"2m\"\nprotect = [\"keep/**\", \"*.keep\"]\nretain = \"7d\"\n\
             dry-run = true\ndir = \"{}\"\n",
            home.path().join("s").display()
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    for how in ["flag", "environment"] {
        let mut cmd = meshfs(home.path());
        cmd.arg("node");
        if how == "flag" {
            cmd.args(["--config", file]);
        } else {
            cmd.env("MESHFS_CONFIG", file);
        }
        let (node, line) = start(&mut cmd);
        assert!(
            line.starts_with("meshfs node cfg serving "),
            "{how}: {line}"
        );
        // --no-web from the file: no web line follows, the ID comes next.
        let next = node.next_line(READY);
        assert!(next.starts_with("id "), "{how}: {next}");
    }
}

/// Unknown keys, bad values and conflicts are errors naming the file, the line and the key,
/// from `meshfs config check` and from `meshfs node` alike; nothing starts.
#[test]
fn bad_files_are_refused_with_file_line_and_key() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("meshfs.toml");
    let p = path.display();
    let cases = [
        (
            "listen = \"127.0.0.1:0\"\n# a comment\nidle-timout = \"10m\"\n",
            format!("{p}:3: unknown key `idle-timout`"),
        ),
        (
            "\n\ngrace = \"soon\"\n",
            format!("{p}:3: key `grace`: invalid value 'soon' for '--grace <GRACE>'"),
        ),
        (
            "max-connections = -4\n",
            format!("{p}:1: key `max-connections`: invalid value '-4'"),
        ),
        (
            "no-web = 1\n",
            format!("{p}:1: key `no-web`: expected true or false"),
        ),
        ("name = \"a\"\nname = \"b\"\n", format!("{p}:2: ")),
        (
            "web = \"127.0.0.1:0\"\nno-web = true\n",
            format!("{p}: the argument"),
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&path, text).unwrap();
        let out = meshfs(home.path())
            .args(["config", "check", path.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} passed the check");
        assert!(
            err.starts_with(&format!("error: {want}")),
            "{text:?}: {err}"
        );
        // The node refuses the same file before serving anything.
        let out = meshfs(home.path())
            .args(["node", "--config", path.to_str().unwrap()])
            .args(QUIET)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text:?}");
        assert!(out.stdout.is_empty(), "{text:?}: the node started");
    }
    // A missing --config file is an error; a good file passes the check.
    let out = meshfs(home.path())
        .args(["node", "--config", "/nonexistent/meshfs.toml"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read the configuration file /nonexistent/meshfs.toml"),
        "{out:?}"
    );
    std::fs::write(&path, "name = \"ok\"\npeer = [\"cam1:4044\"]\n").unwrap();
    let out = meshfs(home.path())
        .args(["config", "check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{p}: ok\n"));
}

/// The example file the package ships passes the check.
#[test]
fn packaged_example_configuration_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/meshfs.toml");
    let home = tempfile::tempdir().unwrap();
    let out = meshfs(home.path())
        .args(["config", "check", example.to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&out);
}

/// A datagram from the node on the test's notification socket, as text.
fn datagram(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("no notification from the node in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// systemd's `Type=notify`: READY=1 is sent only once the doors accept. The test first fills
/// the notification socket's queue, so the node's READY=1 send blocks right where it is
/// made: the file server's and the web UI's address lines must still come, and both must
/// complete a TCP handshake, while the node waits there. WATCHDOG=1 pings follow while
/// WATCHDOG_USEC asks; SIGTERM sends STOPPING=1 and the node exits 0.
#[test]
fn notify_socket_hears_ready_only_when_doors_accept() {
    let home = tempfile::tempdir().unwrap();
    let socket_path = home.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(READY)).unwrap();
    let filler = UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut queued = 0;
    while filler.send_to(b"FILL", &socket_path).is_ok() {
        queued += 1;
    }
    assert!(queued > 0, "could not fill the notification queue");
    let mut cmd = meshfs(home.path());
    cmd.args(["node", home.path().join("s").to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--no-discovery"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stderr(Stdio::inherit());
    let mut node = spawn_piped(&mut cmd);
    let server = node_addr(&node.next_line(READY));
    let web = node.next_line(READY);
    let web = web.rsplit('/').nth(1).expect("web address").to_owned();
    for addr in [&server, &web] {
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), READY)
            .unwrap_or_else(|e| panic!("{addr} not accepting before READY=1: {e}"));
    }
    for _ in 0..queued {
        assert_eq!(datagram(&socket), "FILL");
    }
    let ready = datagram(&socket);
    assert!(ready.starts_with("READY=1\nSTATUS=serving "), "{ready:?}");
    assert_eq!(datagram(&socket), "WATCHDOG=1");
    assert_eq!(datagram(&socket), "WATCHDOG=1");
    node.signal(libc::SIGTERM);
    // Pings may still be in the socket's queue: the drain's STOPPING=1 follows them.
    let mut stopping = datagram(&socket);
    while stopping == "WATCHDOG=1" {
        stopping = datagram(&socket);
    }
    assert_eq!(stopping, "STOPPING=1");
    assert!(node.wait_exit(READY).success());
}

/// The hidden `meshfs generate` writes the completions and man pages the packages ship, and
/// they describe the real flags (bash parses the script; the node's page has --config).
#[test]
fn completions_and_man_pages_are_generated() {
    let out_dir = tempfile::tempdir().unwrap();
    let dir = out_dir.path().to_str().unwrap();
    for what in ["completions", "man"] {
        let out = Command::new(bin())
            .args(["generate", what, dir])
            .output()
            .unwrap();
        assert_success(&out);
    }
    let bash = out_dir.path().join("meshfs.bash");
    let text = std::fs::read_to_string(&bash).unwrap();
    assert!(text.contains("--config") && text.contains("--idle-timeout"));
    assert_success(&Command::new("bash").arg("-n").arg(&bash).output().unwrap());
    for file in ["_meshfs", "meshfs.fish", "meshfs.1"] {
        assert!(out_dir.path().join(file).is_file(), "{file} missing");
    }
    let page = std::fs::read_to_string(out_dir.path().join("meshfs-node.1")).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    assert!(page.contains("config"), "meshfs-node.1 lacks --config");
    assert!(
        !out_dir.path().join("meshfs-help.1").exists(),
        "a page for `help`"
    );
    // `generate` is for packaging: not in the help users read.
    let help = Command::new(bin()).arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("generate"));
}

/// The packaged units, as shipped.
fn unit(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging/systemd")
        .join(name)
}

/// `systemd-analyze security --offline=true` scores meshfs.service's sandbox at most 2.0
/// ("OK"), and the unit is the notify service the node speaks to.
#[test]
fn service_unit_exposure_is_at_most_2() {
    let path = unit("meshfs.service");
    let out = match Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "SKIPPED: systemd-analyze is missing (Debian package systemd; .ci/install-deps installs it)"
            );
            return;
        }
        Err(e) => panic!("systemd-analyze: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("→ Overall exposure level for meshfs.service: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure score in: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
    let service = std::fs::read_to_string(&path).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "User=meshfs",
        "ExecStart=/usr/bin/meshfs node --config /etc/meshfs/meshfs.toml",
        "ReadWritePaths=/srv/meshfs",
    ] {
        assert!(
            service.lines().any(|l| l.starts_with(line)),
            "meshfs.service lacks {line}"
        );
    }
    let mount = std::fs::read_to_string(unit("meshfs-mount.service")).unwrap();
    assert!(mount.contains("fusermount3") && mount.contains("ExecStart=/usr/bin/meshfs mount "));
}

/// The amd64 package, built by `packaging/build-deb.sh` around this test's binary, installed
/// by dpkg into a throw-away root (`dpkg --root`, maintainer scripts run chrootless), then
/// started from there with the packaged configuration: it serves a file that a client
/// downloads and verifies.
#[test]
fn package_installs_into_a_throwaway_root_and_serves() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        eprintln!("SKIPPED: dpkg-deb is missing (Debian's dpkg): the package cannot be built");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/build-deb.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("amd64")
        .env("MESHFS_BIN", bin())
        // xz takes minutes on a debug binary; what is tested is the package's contents.
        .env("DEB_COMPRESSION", "none")
        .env("OUT", work.path().join("debs"))
        .output()
        .unwrap();
    assert_success(&out);
    let deb = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(deb.ends_with("_amd64.deb"), "{deb}");

    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let dpkg = |args: &[&str]| {
        Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args([
                "--force-not-root",
                "--force-script-chrootless",
                "--log=/dev/null",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    // The throw-away root has no libc6 or adduser package: the host provides them.
    assert_success(&dpkg(&["--force-depends", "-i", &deb]));
    let status = String::from_utf8(dpkg(&["-s", "meshfs"]).stdout).unwrap();
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(
        status.contains("Conffiles:\n /etc/meshfs/meshfs.toml"),
        "{status}"
    );
    for file in [
        "usr/bin/meshfs",
        "etc/meshfs/meshfs.toml",
        "lib/systemd/system/meshfs.service",
        "lib/systemd/system/meshfs-mount.service",
        "usr/share/man/man1/meshfs-node.1.gz",
        "usr/share/bash-completion/completions/meshfs",
        "usr/share/zsh/vendor-completions/_meshfs",
        "usr/share/fish/vendor_completions.d/meshfs.fish",
        "usr/share/doc/meshfs/copyright",
    ] {
        assert!(root.join(file).is_file(), "{file} not installed");
    }
    assert!(
        root.join("srv/meshfs").is_dir(),
        "postinst made no /srv/meshfs"
    );

    // Start the installed binary on the installed configuration; the flags move what a
    // test cannot use (the real /srv and /var/lib, port 4044) into the throw-away root.
    let share = root.join("srv/meshfs");
    let data = common::pattern(300_000, 17);
    std::fs::write(share.join("clip.bin"), &data).unwrap();
    let installed = root.join("usr/bin/meshfs");
    let mut cmd = Command::new(&installed);
    cmd.env("XDG_CONFIG_HOME", work.path().join("config"))
        .args(["node", "--config"])
        .arg(root.join("etc/meshfs/meshfs.toml"))
        .arg(&share)
        .arg("--state")
        .arg(root.join("var/lib/meshfs"))
        .args(QUIET);
    let (_node, line) = start(&mut cmd);
    let addr = node_addr(&line);
    let got = work.path().join("got.bin");
    let out = meshfs(work.path())
        .args(["get", &format!("meshfs://{addr}/clip.bin")])
        .arg(&got)
        .output()
        .unwrap();
    assert_success(&out);
    assert!(
        std::fs::read(&got).unwrap() == data,
        "downloaded bytes differ"
    );
}
