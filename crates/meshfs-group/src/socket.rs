//! Multicast sockets, set up with `socket2` before tokio takes them over.
//!
//! Two sockets per group port and process:
//! - the *group* socket binds the group address and port with SO_REUSEADDR/SO_REUSEPORT, so
//!   several nodes (and the seed's Python scripts) on one host all receive every datagram, and
//!   joins the group on the chosen interface. Binding the group address, not 0.0.0.0, keeps
//!   out datagrams for other groups that share the port number.
//! - the *sender* socket binds an ephemeral port on the interface: multicast leaves through it
//!   (IP_MULTICAST_IF, TTL, loop on so other nodes on this host hear us), and unicast replies
//!   come back to it — to this process only, unlike the shared group port.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Where a group lives: its address, the interface to use and the TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub addr: Ipv4Addr,
    /// Interface address (`0.0.0.0`: let the kernel choose by its routes).
    pub iface: Ipv4Addr,
    pub ttl: u32,
}

fn udp() -> io::Result<Socket> {
    Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
}

/// The receiving socket of `group` on `port`.
pub fn bind_group(group: &Group, port: u16) -> io::Result<UdpSocket> {
    if !group.addr.is_multicast() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a multicast address", group.addr),
        ));
    }
    let s = udp()?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(group.addr, port)).into())?;
    s.join_multicast_v4(&group.addr, &group.iface)?;
    s.set_multicast_loop_v4(true)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// The sending socket for `group` (also receives unicast replies).
pub fn sender(group: &Group) -> io::Result<UdpSocket> {
    let s = udp()?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(group.iface, 0)).into())?;
    if !group.iface.is_unspecified() {
        s.set_multicast_if_v4(&group.iface)?;
    }
    s.set_multicast_ttl_v4(group.ttl)?;
    s.set_multicast_loop_v4(true)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}
