//! Naming remote files: `meshfs://HOST[:PORT]/PATH`.
//!
//! Node names learned from discovery (`NAME:PATH`) are resolved by the caller into the same
//! [`RemotePath`] once a peer directory exists.

use std::fmt;
use std::str::FromStr;

/// Default port of the file server.
pub const DEFAULT_PORT: u16 = 4044;

/// A file or folder on a node: where the node listens, and the path inside its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePath {
    /// `host:port`, ready for `TcpStream::connect`.
    pub addr: String,
    /// Path inside the share, without a leading `/` (empty for the root).
    pub path: String,
}

/// A string that does not name a remote file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a meshfs URL ({why}); expected meshfs://HOST[:PORT]/PATH")]
pub struct BadUrl {
    input: String,
    why: &'static str,
}

impl FromStr for RemotePath {
    type Err = BadUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadUrl {
            input: s.to_owned(),
            why,
        };
        let rest = s
            .strip_prefix("meshfs://")
            .ok_or_else(|| bad("no meshfs:// prefix"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let addr = if let Some(v6) = authority.strip_prefix('[') {
            // [::1]:4044 or [::1]
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after.strip_prefix(':') {
                Some(port) => format!(
                    "[{host}]:{}",
                    parse_port(port).ok_or_else(|| bad("bad port"))?
                ),
                None if after.is_empty() => format!("[{host}]:{DEFAULT_PORT}"),
                None => return Err(bad("junk after ']'")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => {
                    format!(
                        "{host}:{}",
                        parse_port(port).ok_or_else(|| bad("bad port"))?
                    )
                }
                None => format!("{authority}:{DEFAULT_PORT}"),
            }
        };
        Ok(RemotePath {
            addr,
            path: path.trim_start_matches('/').to_owned(),
        })
    }
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse().ok().filter(|p| *p != 0)
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "meshfs://{}/{}", self.addr, self.path)
    }
}

impl RemotePath {
    /// Last component of the path (the default local name of a download).
    pub fn file_name(&self) -> Option<&str> {
        self.path.rsplit('/').find(|c| !c.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let r: RemotePath = "meshfs://127.0.0.1:9/a/b c.mp4".parse().unwrap();
        assert_eq!(r.addr, "127.0.0.1:9");
        assert_eq!(r.path, "a/b c.mp4");
        assert_eq!(r.file_name(), Some("b c.mp4"));
        let r: RemotePath = "meshfs://cam2".parse().unwrap();
        assert_eq!(r.addr, "cam2:4044");
        assert_eq!(r.path, "");
        let r: RemotePath = "meshfs://[::1]:7/x".parse().unwrap();
        assert_eq!(r.addr, "[::1]:7");
        assert!("http://x/y".parse::<RemotePath>().is_err());
        assert!("meshfs://h:0/y".parse::<RemotePath>().is_err());
        assert!("meshfs:///y".parse::<RemotePath>().is_err());
    }
}
