//! The MQTT bridge against a real `mosquitto` broker on a loopback port, observed with the real
//! `mosquitto_sub`: events arrive as JSON, presence is retained, and events that happen while the
//! broker is down arrive once it is back.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::ports::free_tcp_port;
use common::{Proc, named_node, spawn_piped, until_line};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Start mosquitto with persistence in `dir`, and wait until it accepts connections.
fn broker(dir: &Path, port: u16) -> Killed {
    broker_with(dir, port, "allow_anonymous true\n")
}

/// [`broker`] with `listener` lines after the `listener` line (TLS, logins). `user root`: run
/// as root, mosquitto would otherwise become user `mosquitto`, who cannot read the test's
/// files (ignored when not run as root).
fn broker_with(dir: &Path, port: u16, listener: &str) -> Killed {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nlistener {port} 127.0.0.1\n{listener}persistence true\npersistence_location {}/\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mosquitto");
    common::wait_until(Duration::from_secs(10), "mosquitto to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Killed(child)
}

/// `mosquitto_sub -v` on `topic`, its lines readable from the returned process.
fn mosquitto_sub(port: u16, topic: &str, extra: &[&str]) -> Proc {
    spawn_piped(
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                topic,
                "-v",
            ])
            .args(extra)
            .stderr(Stdio::null()),
    )
}

/// A subscriber to every meshfs topic with a persistent QoS 1 session (so it is sent what it
/// missed while offline).
fn subscriber(port: u16) -> Proc {
    mosquitto_sub(
        port,
        "meshfs/#",
        &["-q", "1", "-c", "-i", "meshfs-test-sub"],
    )
}

fn until(rx: &mpsc::Receiver<String>, what: &str) -> Vec<String> {
    until_line(rx, Duration::from_secs(20), |l| l.contains(what))
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: plain syscall on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[test]
fn events_reach_mqtt_and_survive_a_broker_restart() {
    if !have("mosquitto") || !have("mosquitto_sub") {
        eprintln!(
            "SKIP: mosquitto and mosquitto_sub are not installed (.ci/install-deps installs them)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let port = free_tcp_port();
    let mut mosquitto = broker(dir.path(), port);

    let broker_url = format!("mqtt://127.0.0.1:{port}");
    let (mut node, _) = named_node(&share, "cam7", &["--mqtt", &broker_url]);
    let sub = subscriber(port);
    let lines = &sub.lines;
    // The retained presence doubles as the sign that both sides are connected.
    until(lines, "meshfs/cam7/status online");

    std::fs::write(share.join("a.mp4"), b"a").unwrap();
    let seen = until(lines, "\"path\":\"a.mp4\"");
    let event = seen.last().unwrap();
    let json = event
        .strip_prefix("meshfs/cam7/events ")
        .expect("events topic");
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["node"], "cam7");
    assert!(v["seq"].is_u64());
    until(
        lines,
        "\"kind\":\"closed\",\"node\":\"cam7\",\"path\":\"a.mp4\"",
    );

    // The broker goes down (saving its sessions); a recording finishes meanwhile.
    drop(sub);
    signal(&mosquitto.0, libc::SIGTERM);
    mosquitto.0.wait().unwrap();
    std::fs::write(share.join("during-outage.mp4"), b"b").unwrap();
    let mosquitto = broker(dir.path(), port);
    let sub = subscriber(port);
    let lines = &sub.lines;
    until(
        lines,
        "\"kind\":\"closed\",\"node\":\"cam7\",\"path\":\"during-outage.mp4\"",
    );

    // A clean stop of the node says `offline` (retained).
    node.signal(libc::SIGTERM);
    assert!(node.wait_exit(Duration::from_secs(10)).success());
    until(lines, "meshfs/cam7/status offline");
    drop(mosquitto);
}

/// Home Assistant discovery (issue 21): with `--mqtt`, a fresh HA would find the node's
/// device and its four entities, each config carrying the fields HA's MQTT discovery schema
/// requires; the state they read is published; a clean stop removes the configs (empty
/// retained messages).
#[test]
fn home_assistant_discovery_appears_and_is_removed_on_stop() {
    if !have("mosquitto") || !have("mosquitto_sub") {
        eprintln!("SKIP: mosquitto and mosquitto_sub are not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("old.mp4"), vec![0u8; 2048]).unwrap();
    let port = free_tcp_port();
    let _mosquitto = broker(dir.path(), port);
    let state = dir.path().join("state");
    let url = format!("mqtt://127.0.0.1:{port}");
    let extra = [
        "--no-web",
        "--no-discovery",
        "--mqtt",
        &url,
        "--state",
        state.to_str().unwrap(),
    ];
    let (mut node, _) = named_node(&share, "cam1", &extra);
    let id = String::from_utf8(
        Command::new(common::bin())
            .args(["id", "--node", "--state", state.to_str().unwrap()])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();

    // What a Home Assistant that starts now is sent: every retained config.
    let sub = |topic: &str| mosquitto_sub(port, topic, &[]);
    let ha = sub("homeassistant/#");
    let mut configs = std::collections::BTreeMap::new();
    while configs.len() < 4 {
        let line = ha.next_line(Duration::from_secs(20));
        let (topic, payload) = line.split_once(' ').expect("topic and payload");
        let config: serde_json::Value = serde_json::from_str(payload).unwrap();
        configs.insert(topic.to_owned(), config);
    }
    let expected: Vec<String> = [
        "binary_sensor/{}/online",
        "sensor/{}/free_space",
        "sensor/{}/last_recording",
        "sensor/{}/share_size",
    ]
    .iter()
    .map(|t| format!("homeassistant/{}/config", t.replace("{}", &id)))
    .collect();
    assert_eq!(configs.keys().cloned().collect::<Vec<_>>(), expected);
    for (topic, c) in &configs {
        // HA's MQTT discovery: a state topic, a unique ID (so entities can be edited), the
        // device by identifiers with a name.
        for field in ["name", "unique_id", "state_topic", "device_class"] {
            assert!(c[field].is_string(), "{topic}: no {field} in {c}");
        }
        assert_eq!(
            c["device"]["identifiers"][0],
            format!("meshfs_{id}"),
            "{topic}"
        );
        assert_eq!(c["device"]["name"], "cam1");
        assert_eq!(c["device"]["sw_version"], env!("CARGO_PKG_VERSION"));
        assert!(c["origin"]["name"].is_string(), "{topic}: no origin");
    }
    let free = &configs[&expected[1]];
    assert_eq!(free["unit_of_measurement"], "B");
    assert_eq!(free["device_class"], "data_size");
    assert_eq!(free["state_topic"], "meshfs/cam1/state");
    assert_eq!(free["value_template"], "{{ value_json.free_bytes }}");
    assert_eq!(free["availability_topic"], "meshfs/cam1/status");
    let online = &configs[&expected[0]];
    assert_eq!(online["state_topic"], "meshfs/cam1/status");
    assert_eq!(
        (&online["payload_on"], &online["payload_off"]),
        (&"online".into(), &"offline".into())
    );
    assert_eq!(configs[&expected[2]]["device_class"], "timestamp");

    // The state the sensors read: the share measured, then a recording's time.
    let states = sub("meshfs/cam1/state");
    let lines = until_line(&states.lines, Duration::from_secs(30), |l| {
        l.contains("\"share_bytes\":2048")
    });
    assert!(
        lines.last().unwrap().contains("\"free_bytes\":"),
        "{lines:?}"
    );
    std::fs::write(share.join("clip.mp4"), b"frames").unwrap();
    let lines = until_line(&states.lines, Duration::from_secs(30), |l| {
        !l.contains("\"last_recording\":null")
    });
    assert!(
        lines.last().unwrap().contains("\"last_recording\":\"20"),
        "{lines:?}"
    );

    // A clean stop empties every config: HA removes the device.
    node.signal(libc::SIGTERM);
    node.wait_exit(Duration::from_secs(10));
    let mut removed = Vec::new();
    while removed.len() < 4 {
        let line = ha.next_line(Duration::from_secs(20));
        if let Some(topic) = line.strip_suffix(" (null)").or(line.strip_suffix(' ')) {
            removed.push(topic.to_owned());
        } else if !line.contains(' ') {
            removed.push(line);
        }
    }
    removed.sort();
    assert_eq!(removed, expected);
    // And a Home Assistant that starts now finds nothing retained.
    let late = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "homeassistant/#",
            "-v",
            "-W",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&late.stdout), "");
}

/// `openssl ARGS` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA of the test's own (`ca.pem`) and a certificate it signed for 127.0.0.1
/// (`broker.pem`, `broker.key`), in `dir`.
fn test_ca(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ca = ["req", "-x509", "-days", "1", "-subj", "/CN=meshfs test CA"];
    openssl(
        dir,
        &[&ca[..], &ec, &["-keyout", "ca.key", "-out", "ca.pem"]].concat(),
    );
    let csr = ["req", "-subj", "/CN=127.0.0.1", "-keyout", "broker.key"];
    openssl(dir, &[&csr[..], &ec, &["-out", "broker.csr"]].concat());
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "broker.pem",
        ],
    );
}

/// Issue 15 item 5, end to end: a broker that takes only TLS (a private CA the node is told
/// with --mqtt-ca) and logins (mosquitto_passwd). The node publishes over mqtts:// as its
/// user, with the password from a file; a node with a wrong password says so once at the
/// default level, with the reason, while it keeps retrying.
#[test]
fn mqtts_with_a_login_publishes_and_a_wrong_password_is_said_once() {
    if !have("mosquitto") || !have("mosquitto_sub") || !have("mosquitto_passwd") {
        eprintln!("SKIP: mosquitto, mosquitto_sub and mosquitto_passwd are not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    test_ca(d);
    let passwd = d.join("passwd");
    let made = Command::new("mosquitto_passwd")
        .args([
            "-c",
            "-b",
            passwd.to_str().unwrap(),
            "cam",
            "broker-pass-wren",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = free_tcp_port();
    let listener = format!(
        "allow_anonymous false\npassword_file {}\ncafile {}\ncertfile {}\nkeyfile {}\n",
        passwd.display(),
        d.join("ca.pem").display(),
        d.join("broker.pem").display(),
        d.join("broker.key").display(),
    );
    let _mosquitto = broker_with(d, port, &listener);
    let ca = d.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let login = ["--cafile", ca, "-u", "cam", "-P", "broker-pass-wren"];
    let sub = mosquitto_sub(port, "meshfs/cam8/#", &login);

    let share = d.join("share");
    std::fs::create_dir(&share).unwrap();
    let (right, wrong) = (d.join("right"), d.join("wrong"));
    std::fs::write(&right, "broker-pass-wren\n").unwrap();
    std::fs::write(&wrong, "not-the-pass\n").unwrap();
    let url = format!("mqtts://cam@127.0.0.1:{port}");
    let node_flags = |pw: &Path| {
        let flags = [
            "--no-web",
            "--no-discovery",
            "--mqtt",
            &url,
            "--mqtt-ca",
            ca,
            "--mqtt-password-file",
        ];
        let mut flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        flags.push(pw.to_str().unwrap().to_owned());
        flags
    };
    let (_node, _) = named_node(&share, "cam8", &node_flags(&right));
    until(&sub.lines, "meshfs/cam8/status online");
    std::fs::write(share.join("clip.mp4"), b"frames").unwrap();
    until(
        &sub.lines,
        r#""kind":"closed","node":"cam8","path":"clip.mp4""#,
    );

    // The wrong password: logged once at the default level while retries go on (they show
    // at debug level, asked for here only to count them).
    let log_path = d.join("wrong.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(common::bin());
    cmd.args(["node", share.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--name", "cam9"])
        .args(node_flags(&wrong))
        .env("RUST_LOG", "info,meshfs_mqtt=debug")
        .stderr(log);
    let _wrong_node = spawn_piped(&mut cmd);
    let read = || std::fs::read_to_string(&log_path).unwrap();
    common::wait_until(Duration::from_secs(30), "three attempts", || {
        let log = read();
        let tries = [
            "MQTT broker still unreachable",
            "cannot connect to the MQTT broker",
        ];
        tries.iter().map(|t| log.matches(t).count()).sum::<usize>() >= 3
    });
    let logged = read();
    let said: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("cannot connect to the MQTT broker"))
        .collect();
    assert_eq!(said.len(), 1, "{logged}");
    assert!(
        said[0].contains("WARN")
            && said[0].contains("the broker refused the login")
            && said[0].contains("--mqtt-password-file"),
        "{logged}"
    );
    assert!(
        !logged.contains("not-the-pass"),
        "the password in the log: {logged}"
    );
}
