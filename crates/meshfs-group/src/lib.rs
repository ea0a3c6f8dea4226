//! The decentralised side of meshfs (seed 004): nodes find each other by IP multicast, talk on
//! a group chat and offer files, some behind a password.
//!
//! - [`announce`]: the JSON datagrams on the announcement port (`hello`, `bye`, `offer`) and
//!   their bounded parser.
//! - [`peers`]: who is out there (name → address, ports, last seen), with expiry.
//! - [`offers`]: the index of files other nodes offer.
//! - [`socket`]: multicast sockets (interface, TTL, loop, reuse) built with `socket2`.
//! - [`discovery`]: the announcer/listener a node runs, plus polling of static `--peer`s.
//! - [`dnssd`]: DNS-SD `_meshfs._tcp` beside the group (Avahi/Bonjour see us; mDNS-only LANs).
//! - [`probe`]: one-shot questions to the group (`meshfs peers`, `meshfs offers`).
//! - [`chat`]: the raw UTF-8 group chat.
//! - [`args`] / [`password`]: the `meshfs node` flags and where passwords come from.

pub mod announce;
pub mod args;
pub mod chat;
pub mod discovery;
pub mod dnssd;
pub mod offers;
pub mod password;
pub mod peers;
pub mod probe;
pub mod socket;

pub use announce::{Announcement, Ignored};
pub use args::{GroupAddr, GroupArgs, ThisNode};
pub use discovery::{Change, Discovery};
pub use offers::{Offer, Offers};
pub use peers::{Peer, Peers};
