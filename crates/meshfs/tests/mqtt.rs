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

/// `mosquitto_sub` with a persistent session (so it is sent what it missed while offline).
fn subscriber(port: u16) -> Proc {
    spawn_piped(
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "meshfs/#",
                "-v",
                "-q",
                "1",
            ])
            .args(["-c", "-i", "meshfs-test-sub"])
            .stderr(Stdio::null()),
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
