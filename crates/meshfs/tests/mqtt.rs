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
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
