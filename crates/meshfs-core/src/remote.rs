//! Naming nodes and remote files: [`NodeAddr`] (`HOST[:PORT]`, `[V6]:PORT`,
//! `meshfs://HOST[:PORT]`) and [`RemotePath`] (`meshfs://HOST[:PORT]/PATH`).
//!
//! Every flag and command that names a node (`--node`, `--peer`, `--cluster-peer`, mount
//! arguments, `meshfs watch`) parses it with [`NodeAddr::from_str`], so they all accept the
//! same forms and refuse the same mistakes with the same words. The rules, in the order they
//! are applied:
//! 1. at most [`MAX_ADDR`] bytes; no whitespace or control characters;
//! 2. an optional `meshfs://` prefix, which may be followed by one `/` and nothing more: a path
//!    where a node is expected (`meshfs://h/clips`) is refused, never silently dropped;
//! 3. a bracketed IPv6 address (`[::1]`, `[::1]:7`), a bare IPv6 address (`fe80::1`, default
//!    port), or `HOST` / `HOST:PORT`;
//! 4. a port is 1–65535 in decimal digits (`cam2:notaport` and `cam2:0` are errors); without
//!    one the port is [`DEFAULT_PORT`];
//! 5. a host is not empty and holds none of `/ ? # @ [ ] \`.
//!
//! Node names learned from discovery (`NAME:PATH`) are resolved by the caller into the same
//! types; [`NodeAddr::lookup_name`] tells a word that may be such a name.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Default port of the file server.
pub const DEFAULT_PORT: u16 = 4044;
/// Longest node address accepted (a DNS name is at most 253 bytes; room for scheme and port).
pub const MAX_ADDR: usize = 300;

/// Where a node's file server listens: a host (name or IP address) and a port.
///
/// Displays as `host:port` (`[v6]:port` for IPv6), ready for `TcpStream::connect`. Two
/// addresses are equal when host and port are, however they were written.
#[derive(Debug, Clone)]
pub struct NodeAddr {
    /// Host name or IP address, without IPv6 brackets.
    host: String,
    port: u16,
    /// Written as one bare word: no scheme, no port (see [`NodeAddr::lookup_name`]).
    bare: bool,
}

/// A string that does not name a node. One type and one text for every flag and command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a node address ({why}); expected HOST, HOST:PORT, [IPv6]:PORT or \
     meshfs://HOST[:PORT]"
)]
pub struct BadNodeAddr {
    input: String,
    why: &'static str,
}

impl BadNodeAddr {
    /// What was wrong, in a few words.
    pub fn why(&self) -> &'static str {
        self.why
    }
}

impl NodeAddr {
    /// `host` and `port` as given (an IPv6 host without brackets).
    pub fn new(host: impl Into<String>, port: u16) -> NodeAddr {
        NodeAddr {
            host: host.into(),
            port,
            bare: false,
        }
    }

    /// Host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// `Some(word)` when the address was written as one bare word that is not an IP address
    /// (`cam2`, `cam2.local`: no scheme, no port): it may be a node's name to look up by
    /// discovery when it does not resolve as a host name. Callers try DNS first, as the mount
    /// always has, so a dotted host name keeps working.
    pub fn lookup_name(&self) -> Option<&str> {
        (self.bare && self.ip().is_none()).then_some(self.host.as_str())
    }

    /// The address as `host:port` (what [`Client::connect`](crate::Client::connect) takes).
    pub fn to_addr_string(&self) -> String {
        self.to_string()
    }

    /// Parse the part of a URL between `meshfs://` and the path (no path allowed here).
    fn parse_authority(input: &str, authority: &str) -> Result<NodeAddr, BadNodeAddr> {
        let bad = |why| BadNodeAddr {
            input: input.to_owned(),
            why,
        };
        if authority.is_empty() {
            return Err(bad("empty host"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address inside [ ]"));
            }
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(bad("junk after ']'")),
            }
        } else if authority.parse::<Ipv6Addr>().is_ok() {
            // A bare IPv6 address: every ':' belongs to it, the port is the default.
            (authority, None)
        } else if authority.matches(':').count() > 1 {
            return Err(bad("IPv6 addresses with a port go in brackets: [V6]:PORT"));
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if host.contains(['/', '?', '#', '@', '[', ']', '\\']) {
            return Err(bad("a host holds none of / ? # @ [ ] \\"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => {
                parse_port(p).ok_or_else(|| bad("the port is not a number from 1 to 65535"))?
            }
        };
        Ok(NodeAddr {
            host: host.to_owned(),
            port,
            bare: false,
        })
    }
}

impl FromStr for NodeAddr {
    type Err = BadNodeAddr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadNodeAddr {
            input: s.chars().take(MAX_ADDR).collect(),
            why,
        };
        if s.len() > MAX_ADDR {
            return Err(bad("too long"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("spaces or control characters"));
        }
        let (authority, scheme) = match s.strip_prefix("meshfs://") {
            Some(rest) => (rest.strip_suffix('/').unwrap_or(rest), true),
            None if s.contains("://") => return Err(bad("only meshfs:// URLs name a node")),
            None => (s, false),
        };
        if authority.contains('/') {
            return Err(bad(
                "a path where a node is expected: name the node alone, meshfs://HOST[:PORT]",
            ));
        }
        let mut addr = NodeAddr::parse_authority(s, authority)?;
        addr.bare = !scheme && !authority.contains(':');
        Ok(addr)
    }
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|p| *p != 0)
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl PartialEq for NodeAddr {
    fn eq(&self, other: &Self) -> bool {
        self.host == other.host && self.port == other.port
    }
}

impl Eq for NodeAddr {}

impl std::hash::Hash for NodeAddr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.host.hash(state);
        self.port.hash(state);
    }
}

impl From<SocketAddr> for NodeAddr {
    fn from(addr: SocketAddr) -> NodeAddr {
        NodeAddr::new(addr.ip().to_string(), addr.port())
    }
}

impl From<NodeAddr> for String {
    fn from(addr: NodeAddr) -> String {
        addr.to_string()
    }
}

impl From<&NodeAddr> for String {
    fn from(addr: &NodeAddr) -> String {
        addr.to_string()
    }
}

/// A file or folder on a node: where the node listens, and the path inside its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePath {
    /// `host:port`, ready for `TcpStream::connect` (a [`NodeAddr`] displayed; see
    /// [`RemotePath::node`]).
    pub addr: String,
    /// Path inside the share, without a leading `/` (empty for the root).
    pub path: String,
}

/// A string that does not name a remote file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadUrl {
    #[error("{input:?} is not a meshfs URL ({why}); expected meshfs://HOST[:PORT]/PATH")]
    Url { input: String, why: &'static str },
    /// The node part broke the rules every node address follows.
    #[error(transparent)]
    Node(#[from] BadNodeAddr),
}

impl FromStr for RemotePath {
    type Err = BadUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix("meshfs://").ok_or_else(|| BadUrl::Url {
            input: s.to_owned(),
            why: "no meshfs:// prefix",
        })?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let node = NodeAddr::from_str(&format!("meshfs://{authority}"))?;
        Ok(RemotePath::new(&node, path))
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "meshfs://{}/{}", self.addr, self.path)
    }
}

impl RemotePath {
    /// `path` (leading `/`s dropped) on `node`.
    pub fn new(node: &NodeAddr, path: &str) -> RemotePath {
        RemotePath {
            addr: node.to_string(),
            path: path.trim_start_matches('/').to_owned(),
        }
    }

    /// The node, parsed back from [`RemotePath::addr`]. `None` only if `addr` was set by hand
    /// to something that is not a node address.
    pub fn node(&self) -> Option<NodeAddr> {
        self.addr.parse().ok()
    }

    /// Last component of the path (the default local name of a download).
    pub fn file_name(&self) -> Option<&str> {
        self.path.rsplit('/').find(|c| !c.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form a node may be written in, and what it means (`Err(why)` for refusals).
    #[test]
    fn node_addresses_as_a_table() {
        let path = "a path where a node is expected: name the node alone, meshfs://HOST[:PORT]";
        let port = "the port is not a number from 1 to 65535";
        let table: &[(&str, Result<&str, &str>)] = &[
            ("cam2", Ok("cam2:4044")),
            ("cam2:5000", Ok("cam2:5000")),
            ("cam2.local", Ok("cam2.local:4044")),
            ("10.0.0.7", Ok("10.0.0.7:4044")),
            ("10.0.0.7:4044", Ok("10.0.0.7:4044")),
            ("[::1]:7", Ok("[::1]:7")),
            ("[::1]", Ok("[::1]:4044")),
            ("fe80::1", Ok("[fe80::1]:4044")),
            ("meshfs://cam2", Ok("cam2:4044")),
            ("meshfs://cam2/", Ok("cam2:4044")),
            ("meshfs://cam2:5000", Ok("cam2:5000")),
            ("meshfs://[::1]:7/", Ok("[::1]:7")),
            ("cam2:notaport", Err(port)),
            ("cam2:0", Err(port)),
            ("cam2:65536", Err(port)),
            ("cam2:", Err(port)),
            ("cam2:+80", Err(port)),
            ("meshfs://h/clips", Err(path)),
            ("meshfs://h//", Err(path)),
            ("cam2/clips", Err(path)),
            ("", Err("empty host")),
            (":4044", Err("empty host")),
            ("meshfs://", Err("empty host")),
            ("meshfs:///", Err("empty host")),
            ("a b", Err("spaces or control characters")),
            ("http://h", Err("only meshfs:// URLs name a node")),
            ("[::1", Err("unclosed '['")),
            ("[::1]x", Err("junk after ']'")),
            ("[cam2]:1", Err("not an IPv6 address inside [ ]")),
            (
                "a:b:c",
                Err("IPv6 addresses with a port go in brackets: [V6]:PORT"),
            ),
            ("user@cam2", Err("a host holds none of / ? # @ [ ] \\")),
        ];
        for (input, want) in table {
            let got = input.parse::<NodeAddr>();
            match (want, &got) {
                (Ok(addr), Ok(a)) => assert_eq!(&a.to_string(), addr, "{input:?}"),
                (Err(why), Err(e)) => {
                    assert_eq!(e.why(), *why, "{input:?}");
                    assert!(e.to_string().contains("is not a node address"), "{e}");
                }
                _ => panic!("{input:?}: want {want:?}, got {got:?}"),
            }
        }
        let long = "a".repeat(MAX_ADDR + 1);
        assert_eq!(long.parse::<NodeAddr>().unwrap_err().why(), "too long");
    }

    #[test]
    fn a_bare_word_may_be_a_name_to_look_up() {
        let name = |s: &str| {
            s.parse::<NodeAddr>()
                .unwrap()
                .lookup_name()
                .map(str::to_owned)
        };
        assert_eq!(name("cam2").as_deref(), Some("cam2"));
        assert_eq!(name("cam2.local").as_deref(), Some("cam2.local"));
        assert_eq!(name("cam2:4044"), None, "a port: an address");
        assert_eq!(name("meshfs://cam2"), None, "a URL: an address");
        assert_eq!(name("10.0.0.7"), None);
        assert_eq!(name("fe80::1"), None);
        assert_eq!(
            "cam2".parse::<NodeAddr>().unwrap(),
            "meshfs://cam2:4044".parse::<NodeAddr>().unwrap(),
            "equal however written"
        );
        let sock: SocketAddr = "[::1]:9".parse().unwrap();
        assert_eq!(NodeAddr::from(sock).to_string(), "[::1]:9");
    }

    #[test]
    fn parses_urls() {
        let r: RemotePath = "meshfs://127.0.0.1:9/a/b c.mp4".parse().unwrap();
        assert_eq!(r.addr, "127.0.0.1:9");
        assert_eq!(r.path, "a/b c.mp4");
        assert_eq!(r.file_name(), Some("b c.mp4"));
        let r: RemotePath = "meshfs://cam2".parse().unwrap();
        assert_eq!(r.addr, "cam2:4044");
        assert_eq!(r.path, "");
        assert_eq!(r.node().unwrap(), NodeAddr::new("cam2", 4044));
        let r: RemotePath = "meshfs://[::1]:7/x".parse().unwrap();
        assert_eq!(r.addr, "[::1]:7");
        let r: RemotePath = "meshfs://h//x".parse().unwrap();
        assert_eq!(r.path, "x");
        assert!("http://x/y".parse::<RemotePath>().is_err());
        assert!(matches!(
            "meshfs://h:0/y".parse::<RemotePath>(),
            Err(BadUrl::Node(_))
        ));
        assert!("meshfs:///y".parse::<RemotePath>().is_err());
        assert!("meshfs://h:x/y".parse::<RemotePath>().is_err());
    }
}
