//! A LAN group (seed 004) of one test's own, on loopback.
//!
//! Nodes announce themselves on a multicast group, and by default every node of every test
//! would share one: tests running at once would discover each other's nodes. So each test
//! makes a [`Group`] of its own (its own group address, announcement port, chat port and
//! DNS-SD port) and passes its flags to every process it starts; what that test's nodes
//! learn then comes from that test alone.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use super::Proc;
use super::ports::free_udp_port;

/// One test's private group: multicast on 127.0.0.1 (TTL 1), free ports of its own.
pub struct Group {
    /// The multicast address (`--group-addr`).
    pub addr: String,
    /// Where announcements go (`--group-port`).
    pub port: u16,
    /// Where chat messages go (`--chat-port`).
    pub chat: u16,
    /// The mDNS port of its nodes' DNS-SD (`--dnssd-port`).
    pub dnssd: u16,
}

impl Group {
    /// A new group whose address lies in `239.255.BLOCK+n.*`, `n` counting the groups this
    /// test binary made: each test file passes its own block, so files running at once never
    /// pick one address either, and the last byte follows the process id (nextest runs every
    /// test in a process of its own).
    pub fn new(block: u8) -> Group {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Group {
            addr: format!(
                "239.255.{}.{}",
                block.wrapping_add(n),
                std::process::id() % 250 + 1
            ),
            port: free_udp_port(),
            chat: free_udp_port(),
            dnssd: free_udp_port(),
        }
    }

    /// The flags every group command takes (`peers`, `offers`, `mount`, `get NAME:PATH`…):
    /// interface, address and announcement port.
    pub fn lan_args(&self) -> Vec<String> {
        vec![
            "--group-iface".into(),
            "127.0.0.1".into(),
            "--group-addr".into(),
            self.addr.clone(),
            "--group-port".into(),
            self.port.to_string(),
        ]
    }

    /// [`Group::lan_args`] and the chat port: what `meshfs node` and `meshfs chat` take.
    pub fn args(&self) -> Vec<String> {
        let mut args = self.lan_args();
        args.extend(["--chat-port".into(), self.chat.to_string()]);
        args
    }

    /// DNS-SD among this group's nodes only (they never answer other tests on 5353).
    pub fn dnssd_args(&self) -> [String; 2] {
        ["--dnssd-port".into(), self.dnssd.to_string()]
    }

    /// Where announcements are sent: `ADDR:PORT`.
    pub fn announce_dest(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }

    /// A socket that sends to the group through loopback (TTL 1) and receives unicast
    /// answers (read timeout 5 s).
    pub fn sender(&self) -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_multicast_ttl_v4(1).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // std has no IP_MULTICAST_IF: set it by hand, as the seed's Python scripts do.
        let lo = libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        };
        use std::os::fd::AsRawFd;
        // SAFETY: setsockopt on a valid socket with a correctly sized in_addr.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_IF,
                (&raw const lo).cast(),
                std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
            )
        };
        assert_eq!(
            rc,
            0,
            "IP_MULTICAST_IF: {}",
            std::io::Error::last_os_error()
        );
        s
    }

    /// The seed's plain Python chat receiver on this group, once it has joined (it prints
    /// `ready`): a third-party check of what our chat sends.
    pub fn python_receiver(&self) -> Proc {
        let mut child = Command::new("python3")
            .arg(python_script("group_chat_recv.py"))
            .args([&self.addr, &self.chat.to_string(), "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let lines = super::lines_of(child.stdout.take().unwrap());
        let p = Proc { child, lines };
        assert_eq!(p.next_line(Duration::from_secs(10)), "ready");
        p
    }

    /// Send `text` to the group's chat as the seed's plain Python client does.
    pub fn python_send(&self, text: &str) {
        let status = Command::new("python3")
            .arg(python_script("group_chat_send.py"))
            .args([&self.addr, &self.chat.to_string(), "127.0.0.1", text])
            .status()
            .expect("python3");
        assert!(status.success());
    }
}

/// `tests/python/`: the seed's plain Python peers and the scripts that drive a terminal.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// A script of [`python_dir`].
pub fn python_script(name: &str) -> PathBuf {
    python_dir().join(name)
}
