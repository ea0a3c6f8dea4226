//! The group chat (protocols.md §4, port 4045): each datagram is one raw UTF-8 message, so the
//! seed's Python scripts and `socat` interoperate. Receivers show `<sender ip> :> <text>`.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::UdpSocket;

use crate::socket::{self, Group};

/// Longest message sent or shown, in bytes (one unfragmented datagram on most LANs).
pub const MAX_MESSAGE: usize = 1400;

/// A member of the group chat.
pub struct GroupChat {
    recv: UdpSocket,
    send: UdpSocket,
    dest: SocketAddr,
}

impl GroupChat {
    /// Join the chat of `group` on `port`.
    pub fn join(group: &Group, port: u16) -> io::Result<GroupChat> {
        Ok(GroupChat {
            recv: socket::bind_group(group, port)?,
            send: socket::sender(group)?,
            dest: SocketAddr::new(IpAddr::V4(group.addr), port),
        })
    }

    /// Send one message (refused when longer than [`MAX_MESSAGE`]).
    pub async fn send(&self, text: &str) -> io::Result<()> {
        if text.len() > MAX_MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("message longer than {MAX_MESSAGE} bytes"),
            ));
        }
        self.send
            .send_to(text.as_bytes(), self.dest)
            .await
            .map(drop)
    }

    /// The next message: sender and display lines (see [`display`]).
    pub async fn recv(&self) -> io::Result<(IpAddr, Vec<String>)> {
        let mut buf = vec![0u8; MAX_MESSAGE + 1];
        let (n, from) = self.recv.recv_from(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf[..n.min(MAX_MESSAGE)]);
        Ok((from.ip(), display(from.ip(), &text)))
    }
}

/// `<ip> :> <text>`, one line per line of the message, control characters replaced so a
/// datagram cannot drive the terminal; a trailing newline (socat, `echo`) is dropped.
pub fn display(ip: IpAddr, text: &str) -> Vec<String> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    text.split('\n')
        .map(|line| {
            let clean: String = line
                .chars()
                .map(|c| {
                    if c.is_control() && c != '\t' {
                        '\u{fffd}'
                    } else {
                        c
                    }
                })
                .collect();
            format!("{ip} :> {clean}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lines() {
        let ip: IpAddr = "132.227.64.88".parse().unwrap();
        assert_eq!(display(ip, "coucou !"), ["132.227.64.88 :> coucou !"]);
        assert_eq!(
            display(ip, "a\nb\n"),
            ["132.227.64.88 :> a", "132.227.64.88 :> b"]
        );
        assert_eq!(display(ip, "\x1b[2Jx"), ["132.227.64.88 :> \u{fffd}[2Jx"]);
    }
}
