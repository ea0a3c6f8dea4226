//! Free loopback ports for the few places where a test must name a port before the process
//! that uses it starts: a multicast group (every member binds the same port), cluster peers
//! that list each other, a broker the node is told about.
//!
//! Everywhere else a test binds port 0 and reads the real address from the readiness line.
//! A port found here is free when asked; the window until the process binds it is short, and
//! each caller picks its own, so tests running at once do not share one.

use std::net::{TcpListener, UdpSocket};

/// A loopback TCP port that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
