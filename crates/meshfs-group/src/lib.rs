//! The decentralised side of meshfs (seed 004): nodes find each other by IP multicast, talk on
//! a group chat and offer files, some behind a password.
//!
//! - [`announce`]: the JSON datagrams on the announcement port (`hello`, `bye`, `offer`) and
//!   their bounded parser.
//! - [`offers`]: the index of files other nodes offer.
//! - [`socket`]: multicast sockets (interface, TTL, loop, reuse) built with `socket2`.
//! - [`discovery`]: the announcer/listener a node runs, plus polling of static `--peer`s.
//! - [`dnssd`]: DNS-SD `_meshfs._tcp` beside the group (Avahi/Bonjour see us; mDNS-only LANs).
//! - [`lan`]: both at once, as a node or a mount starts them.
//! - [`probe`]: one-shot questions to the group (`meshfs peers`, `meshfs offers`).
//! - [`chat`]: the raw UTF-8 group chat.
//!
//! Who is out there lives in the caller's [`meshfs_core::Peers`] (the one table of nodes, also
//! fed by static `--node`s and read by the web UI and the mount): discovery and DNS-SD write
//! it, they keep no table of their own.
//!
//! The crate takes plain configs; the flags that build them live in the `meshfs` binary.
#![forbid(unsafe_code)]

pub mod announce;
pub mod chat;
pub mod discovery;
pub mod dnssd;
pub mod lan;
pub mod offers;
pub mod probe;
pub mod socket;
pub mod versions;

pub use announce::{Announcement, Ignored};
pub use discovery::{Change, Discovery};
pub use offers::{Offer, Offers};

/// The group's address (protocols.md §4).
pub const GROUP_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(239, 255, 40, 44);
/// The announcement port.
pub const ANNOUNCE_PORT: u16 = 4046;
/// The chat port.
pub const CHAT_PORT: u16 = 4045;
