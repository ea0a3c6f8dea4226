//! `meshfs hub --group`: FIFO clients and the LAN group chat hear each other. The group side
//! is a plain Python multicast socket on loopback (TTL 1), on a group address of this test's own.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{lines_of, spawn, until_line, wait_until};

const GROUP: &str = "239.255.77.31";

fn python(script: &str, args: &[&str]) -> std::process::Child {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3")
}

#[test]
fn fifo_clients_and_the_group_chat_hear_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let hub_fifo = dir.path().join("hub");
    let (hub, first) = spawn(&[
        "hub",
        "--fifo",
        hub_fifo.to_str().unwrap(),
        "--group",
        "--group-addr",
        GROUP,
        "--chat-port",
        &port,
        "--group-iface",
        "127.0.0.1",
    ]);
    assert!(first.ends_with("/hub"), "{first}");

    // A group member that prints every datagram it receives.
    let mut receiver = python(
        r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton(sys.argv[1]) + socket.inet_aton("127.0.0.1"))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(2000)
    print(data.decode(), flush=True)
"#,
        &[GROUP, &port],
    );
    let heard = lines_of(receiver.stdout.take().unwrap());
    until_line(&heard, Duration::from_secs(10), |l| l == "ready");

    // A FIFO client, as the seed's: its own FIFO, registered with `¶path`.
    let mine = dir.path().join("client");
    let c = std::ffi::CString::new(mine.to_str().unwrap()).unwrap();
    // SAFETY: plain syscall with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut inbox = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&mine)
        .unwrap();
    let mut to_hub = std::fs::OpenOptions::new()
        .write(true)
        .open(&hub_fifo)
        .unwrap();
    to_hub
        .write_all(format!("¶{}", mine.display()).as_bytes())
        .unwrap();
    until_line(&hub.lines, Duration::from_secs(10), |l| {
        l.starts_with("registered")
    });

    // FIFO → group.
    to_hub
        .write_all(format!("{}¶hello group\n", mine.display()).as_bytes())
        .unwrap();
    until_line(&heard, Duration::from_secs(10), |l| l == "hello group");

    // Group → FIFO clients, as `<ip> :> <text>`.
    let status = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.sendto(b"from the lan", (sys.argv[1], int(sys.argv[2])))
"#,
        )
        .args([GROUP, &port])
        .status()
        .unwrap();
    assert!(status.success());
    let mut got = Vec::new();
    wait_until(
        Duration::from_secs(10),
        "the group message in the FIFO",
        || {
            let mut buf = [0u8; 512];
            if let Ok(n) = inbox.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&got).contains(":> from the lan\n")
        },
    );
    // Our own message came back from the group (multicast loop) but was not handed to the
    // clients a second time (they had it from the hub's own broadcast).
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains(":> hello group"), "{text:?}");
    let _ = receiver.kill();
    let _ = receiver.wait();
}
