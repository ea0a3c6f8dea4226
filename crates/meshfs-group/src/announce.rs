//! Announcement datagrams (protocols.md §4): one JSON object per datagram, at most
//! [`MAX_DATAGRAM`] bytes, `"v":1`, `"kind"` one of `hello`, `bye`, `offer`.
//!
//! Anything else a socket hears — truncated JSON, a newer version, an unknown kind, a datagram
//! too large — is an [`Ignored`] reason, never an error that stops the listener: the group
//! port is open to the whole LAN.

use serde::{Deserialize, Serialize};

/// Largest announcement, in bytes (fits one unfragmented Ethernet frame with room to spare).
pub const MAX_DATAGRAM: usize = 1200;
/// Longest node name accepted.
pub const MAX_NAME: usize = 64;
/// Longest offered path accepted (the datagram bound applies too).
pub const MAX_PATH: usize = 1000;
/// The only version of the format.
pub const VERSION: u32 = 1;

/// One announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// "I am here": sent at start, every interval, and by unicast to a node heard for the
    /// first time. `port == 0` means a browser (`meshfs peers`) that serves no files: nodes
    /// answer it but do not list it.
    Hello {
        node: String,
        /// Random per process, so a node recognises its own datagrams (multicast loop is on)
        /// and a restarted node is seen as new.
        id: String,
        port: u16,
        web: Option<u16>,
    },
    /// "I am leaving": sent on shutdown.
    Bye { node: String, id: String },
    /// A file offered by `node` (served by its file server on `port`).
    Offer {
        node: String,
        id: String,
        port: u16,
        path: String,
        size: u64,
        protected: bool,
    },
}

/// Why a datagram was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// More than [`MAX_DATAGRAM`] bytes.
    Oversized,
    /// Not JSON, not an object, a missing or ill-typed field, a bad name or path.
    Malformed,
    /// A `kind` (or `v`) this version does not know.
    Unknown,
}

impl Ignored {
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::Oversized => "oversized",
            Ignored::Malformed => "malformed",
            Ignored::Unknown => "unknown",
        }
    }
}

/// The wire form: every field optional so the kind decides what is required.
#[derive(Serialize, Deserialize, Default)]
struct Wire {
    v: u32,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    web: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protected: Option<bool>,
    /// In `hello`: the sender's meshfs version and file-server protocol (older nodes omit them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meshfs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proto: Option<u32>,
}

/// A node name usable in `NAME:PATH` and on one display line.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '/')
}

fn valid_path(path: &str) -> bool {
    !path.is_empty() && path.len() <= MAX_PATH && !path.chars().any(char::is_control)
}

/// The meshfs version and file-server protocol a `hello` datagram announces, when it says
/// (bounded like [`Announcement::parse`]).
pub fn hello_versions(datagram: &[u8]) -> Option<(Option<String>, u32)> {
    if datagram.len() > MAX_DATAGRAM {
        return None;
    }
    let w: Wire = serde_json::from_slice(datagram).ok()?;
    let version = w
        .meshfs
        .filter(|v| v.len() <= MAX_NAME && !v.contains(char::is_control));
    Some((version, w.proto?))
}

impl Announcement {
    /// Parse one datagram. Bounded: the size is checked before any parsing.
    pub fn parse(datagram: &[u8]) -> Result<Announcement, Ignored> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(Ignored::Oversized);
        }
        let w: Wire = serde_json::from_slice(datagram).map_err(|_| Ignored::Malformed)?;
        if w.v != VERSION {
            return Err(Ignored::Unknown);
        }
        let node = w.node.filter(|n| valid_name(n)).ok_or(Ignored::Malformed);
        let id =
            w.id.filter(|i| !i.is_empty() && i.len() <= MAX_NAME)
                .ok_or(Ignored::Malformed);
        match w.kind.as_str() {
            "hello" => Ok(Announcement::Hello {
                node: node?,
                id: id?,
                port: w.port.ok_or(Ignored::Malformed)?,
                web: w.web,
            }),
            "bye" => Ok(Announcement::Bye {
                node: node?,
                id: id?,
            }),
            "offer" => Ok(Announcement::Offer {
                node: node?,
                id: id?,
                port: w.port.filter(|p| *p != 0).ok_or(Ignored::Malformed)?,
                path: w.path.filter(|p| valid_path(p)).ok_or(Ignored::Malformed)?,
                size: w.size.ok_or(Ignored::Malformed)?,
                protected: w.protected.unwrap_or(false),
            }),
            _ => Err(Ignored::Unknown),
        }
    }

    /// The datagram. Offers whose path would not fit are refused when the offer is made
    /// (see [`Announcement::fits`]).
    pub fn encode(&self) -> Vec<u8> {
        let w = match self.clone() {
            Announcement::Hello {
                node,
                id,
                port,
                web,
            } => Wire {
                v: VERSION,
                kind: "hello".into(),
                node: Some(node),
                id: Some(id),
                port: Some(port),
                web,
                meshfs: Some(meshfs_core::VERSION.to_owned()),
                proto: Some(meshfs_core::proto::PROTO_VERSION),
                ..Wire::default()
            },
            Announcement::Bye { node, id } => Wire {
                v: VERSION,
                kind: "bye".into(),
                node: Some(node),
                id: Some(id),
                ..Wire::default()
            },
            Announcement::Offer {
                node,
                id,
                port,
                path,
                size,
                protected,
            } => Wire {
                v: VERSION,
                kind: "offer".into(),
                node: Some(node),
                id: Some(id),
                port: Some(port),
                path: Some(path),
                size: Some(size),
                protected: Some(protected),
                ..Wire::default()
            },
        };
        serde_json::to_vec(&w).expect("plain struct serialises")
    }

    /// True when the encoded datagram stays within [`MAX_DATAGRAM`] and parses back.
    pub fn fits(&self) -> bool {
        let d = self.encode();
        d.len() <= MAX_DATAGRAM && Announcement::parse(&d).as_ref() == Ok(self)
    }

    /// The sender's node name.
    pub fn node(&self) -> &str {
        match self {
            Announcement::Hello { node, .. }
            | Announcement::Bye { node, .. }
            | Announcement::Offer { node, .. } => node,
        }
    }

    /// The sender's process id (see [`Announcement::Hello`]).
    pub fn id(&self) -> &str {
        match self {
            Announcement::Hello { id, .. }
            | Announcement::Bye { id, .. }
            | Announcement::Offer { id, .. } => id,
        }
    }
}

/// A random id for this process: distinguishes our own looped-back datagrams and restarts.
pub fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let all = [
            Announcement::Hello {
                node: "cam2".into(),
                id: "a1".into(),
                port: 4044,
                web: Some(8044),
            },
            Announcement::Bye {
                node: "cam2".into(),
                id: "a1".into(),
            },
            Announcement::Offer {
                node: "cam2".into(),
                id: "a1".into(),
                port: 4044,
                path: "clips/a b.mp4".into(),
                size: 12,
                protected: true,
            },
        ];
        for a in all {
            assert!(a.fits());
            assert_eq!(Announcement::parse(&a.encode()), Ok(a));
        }
    }

    #[test]
    fn bad_datagrams_are_classified() {
        let p = |s: &str| Announcement::parse(s.as_bytes());
        assert_eq!(p("not json"), Err(Ignored::Malformed));
        assert_eq!(p("{\"v\":1"), Err(Ignored::Malformed));
        assert_eq!(p("[1,2]"), Err(Ignored::Malformed));
        for bad in [
            r#"{"v":1,"kind":"hello","node":"a b","id":"x","port":1}"#,
            r#"{"v":1,"kind":"hello","node":"a","id":"x"}"#,
            r#"{"v":1,"kind":"hello","node":"a","id":"x","port":70000}"#,
            r#"{"v":1,"kind":"offer","node":"a","id":"x","port":1,"size":3}"#,
        ] {
            assert_eq!(p(bad), Err(Ignored::Malformed), "{bad}");
        }
        for unknown in [
            r#"{"v":1,"kind":"dance","node":"a","id":"x"}"#,
            r#"{"v":2,"kind":"hello","node":"a","id":"x","port":1}"#,
        ] {
            assert_eq!(p(unknown), Err(Ignored::Unknown), "{unknown}");
        }
        let big = format!(
            r#"{{"v":1,"kind":"hello","node":"a","id":"x","port":1,"pad":"{}"}}"#,
            "x".repeat(1200)
        );
        assert_eq!(p(&big), Err(Ignored::Oversized));
        // Deep nesting stays bounded by the size limit and serde_json's recursion limit.
        assert_eq!(p(&"[".repeat(1100)), Err(Ignored::Malformed));
    }

    #[test]
    fn long_paths_do_not_fit() {
        let a = Announcement::Offer {
            node: "n".into(),
            id: "i".into(),
            port: 1,
            path: "p".repeat(1190),
            size: 1,
            protected: false,
        };
        assert!(!a.fits());
    }
}
