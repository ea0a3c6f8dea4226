//! The file-server protocol (protocols.md §1): status codes, request parsing and the text
//! formats of `stat` and `ls`, shared by the server (which writes them) and the [`Client`]
//! (which reads them), so the two can never drift apart.
//!
//! [`Client`]: crate::client::Client

use std::fmt::Write as _;

use crate::share::{Entry, Kind};

/// Longest request line, in bytes, not counting the line break.
pub const MAX_LINE: usize = 8192;

/// Largest payload one `read`/`pread` reply carries; larger requests are capped.
pub const MAX_READ: u64 = 16 << 20;

/// Protocol version announced by `hello`.
pub const PROTO_VERSION: u32 = 1;

/// Reply status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    NotFound = 1,
    Denied = 2,
    AlreadyOpen = 3,
    NotOpen = 4,
    BadRequest = 5,
    AuthFailed = 6,
    NotAFile = 7,
    /// The share (or file) is protected and this connection has proven no password yet: a
    /// client that has one proves it and asks again. Distinct from [`Code::Denied`], which no
    /// password changes.
    AuthRequired = 8,
    Internal = 9,
}

impl Code {
    pub fn from_u8(n: u8) -> Option<Code> {
        Some(match n {
            0 => Code::Ok,
            1 => Code::NotFound,
            2 => Code::Denied,
            3 => Code::AlreadyOpen,
            4 => Code::NotOpen,
            5 => Code::BadRequest,
            6 => Code::AuthFailed,
            7 => Code::NotAFile,
            8 => Code::AuthRequired,
            9 => Code::Internal,
            _ => return None,
        })
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// One parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    Open(&'a str),
    Read(u64),
    Close,
    List(&'a str),
    Stat(&'a str),
    Hello,
    Seek(u64),
    Pread {
        offset: u64,
        size: u64,
        path: &'a str,
    },
    Ls(&'a str),
    Hash(&'a str),
    /// `hash-prefix <size> <path>`: BLAKE3 of the file's first `size` bytes, so a client that
    /// copied a file still being written can verify the snapshot it took (protocols.md §1).
    HashPrefix {
        size: u64,
        path: &'a str,
    },
    /// `blocks <size> <path>`: the chaining values of the 1 MiB blocks of the file's first
    /// `size` bytes, checked by a downloader as each block arrives ([`crate::blocks`]).
    Blocks {
        size: u64,
        path: &'a str,
    },
    Auth(&'a str),
    /// `cluster-peers`: the nodes this one keeps in step with (`--cluster-peer`), so a
    /// downloader finds the other copies of a file (protocols.md §1).
    ClusterPeers,
    /// `pake <base64>[ <path>]`: start a password proof (see [`crate::pake`]).
    Pake(&'a str),
    /// `pake-confirm <base64>`: finish it.
    PakeConfirm(&'a str),
    /// `subscribe [SINCE] [reasons]`: `reasons` asks for `KIND:REASON` on the event lines
    /// meshfs itself caused (protocols.md §1).
    Subscribe {
        since: Option<u64>,
        reasons: bool,
    },
    /// `status`: the node's state for `meshfs status` ([`crate::status`]).
    Status,
    Quit,
    Help,
}

/// A request that could not be parsed: answered with code 5 and this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub &'static str);

impl<'a> Request<'a> {
    /// Parse one line (without its line break; a trailing `\r` is accepted).
    ///
    /// The command word is case-insensitive; the argument is the rest of the line after one
    /// space and may itself contain spaces.
    pub fn parse(line: &'a [u8]) -> Result<Request<'a>, BadRequest> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = std::str::from_utf8(line).map_err(|_| BadRequest("request is not UTF-8"))?;
        let (word, arg) = match line.split_once(' ') {
            Some((w, a)) => (w, Some(a)),
            None => (line, None),
        };
        let path = |a: Option<&'a str>| a.unwrap_or("");
        let need = |a: Option<&'a str>| {
            a.filter(|s| !s.is_empty())
                .ok_or(BadRequest("missing argument"))
        };
        let number = |a: Option<&'a str>| -> Result<u64, BadRequest> {
            need(a)?
                .trim()
                .parse()
                .map_err(|_| BadRequest("malformed number"))
        };
        let no_arg = |a: Option<&'a str>| match a {
            Some(s) if !s.trim().is_empty() => Err(BadRequest("unexpected argument")),
            _ => Ok(()),
        };
        let req = match word.to_ascii_lowercase().as_str() {
            "open" => Request::Open(need(arg)?),
            "read" => Request::Read(number(arg)?),
            "close" => no_arg(arg).map(|_| Request::Close)?,
            "list" => Request::List(path(arg)),
            "stat" => Request::Stat(need(arg)?),
            "hello" => Request::Hello,
            "seek" => Request::Seek(number(arg)?),
            "pread" => {
                const USAGE: BadRequest = BadRequest("usage: pread <offset> <size> <path>");
                let ([offset, size], path) = numbers_then_path(need(arg)?).ok_or(USAGE)?;
                Request::Pread { offset, size, path }
            }
            "hash-prefix" => {
                const USAGE: BadRequest = BadRequest("usage: hash-prefix <size> <path>");
                let ([size], path) = numbers_then_path(need(arg)?).ok_or(USAGE)?;
                Request::HashPrefix { size, path }
            }
            "blocks" => {
                const USAGE: BadRequest = BadRequest("usage: blocks <size> <path>");
                let ([size], path) = numbers_then_path(need(arg)?).ok_or(USAGE)?;
                Request::Blocks { size, path }
            }
            "ls" => Request::Ls(path(arg)),
            "hash" => Request::Hash(need(arg)?),
            "auth" => Request::Auth(arg.unwrap_or("")),
            "pake" => Request::Pake(need(arg)?),
            "pake-confirm" => Request::PakeConfirm(need(arg)?),
            "subscribe" => {
                let (mut since, mut reasons) = (None, false);
                for word in arg.unwrap_or("").split_whitespace() {
                    if word == "reasons" && !reasons {
                        reasons = true;
                    } else if since.is_none() && !reasons {
                        since = Some(
                            word.parse()
                                .map_err(|_| BadRequest("malformed sequence number"))?,
                        );
                    } else {
                        return Err(BadRequest("usage: subscribe [<since>] [reasons]"));
                    }
                }
                Request::Subscribe { since, reasons }
            }
            "status" => no_arg(arg).map(|_| Request::Status)?,
            "cluster-peers" => no_arg(arg).map(|_| Request::ClusterPeers)?,
            "quit" => Request::Quit,
            "help" => Request::Help,
            "" => return Err(BadRequest("empty request")),
            _ => return Err(BadRequest("unknown command")),
        };
        Ok(req)
    }
}

/// `N1 N2 … PATH`: `K` decimal numbers, then a path that may hold spaces (`pread`,
/// `hash-prefix`).
fn numbers_then_path<const K: usize>(arg: &str) -> Option<([u64; K], &str)> {
    let mut parts = arg.splitn(K + 1, ' ');
    let mut numbers = [0; K];
    for n in &mut numbers {
        *n = parts.next()?.parse().ok()?;
    }
    let path = parts.next().filter(|p| !p.is_empty())?;
    Some((numbers, path))
}

/// The `help` text: one line per command, as the reply body.
pub const HELP: &str = "\
open <path>                  open a file for reading (one per connection)
read <size>                  read up to size bytes from the open file: 0 <n> then n bytes
seek <offset>                move the open file's position
close                        close the open file
list [<dir>]                 names, one per line, directories end with /, then two empty lines
ls [<dir>]                   <f|d> <size> <mtime-ns> <mode-octal> <name> lines, then one empty line
stat <path>                  size, modified, mode and type lines, then one empty line
pread <offset> <size> <path> read at an offset without open: 0 <n> then n bytes
hash <path>                  BLAKE3 of the whole file
hash-prefix <size> <path>    BLAKE3 of the file's first size bytes
blocks <size> <path>         BLAKE3 chaining values of the first size bytes' 1 MiB
                             blocks: 0 <n> then n bytes, 32 per block
hello                        node name, version and protocol
auth <password>              unlock a protected share or file (in clear: only over TLS, or
                             on a node started with --allow-plaintext-auth)
pake <msg> [<path>]          prove a password without sending it (over TLS; SPAKE2)
pake-confirm <msg>           finish the proof
subscribe [<since>] [reasons]  stream <seq> <kind> <path> file events
status                       key: value lines (uptime, share size, free space, last
                             recording, connections), then one empty line
cluster-peers                this node's --cluster-peers, one host:port per line, then one
                             empty line
quit                         close the connection
help                         this text
";

/// Append the body of a `stat` reply (after `0 OK\n`): four `key: value` lines and one empty
/// line.
pub fn write_stat(out: &mut Vec<u8>, e: &Entry) {
    let mut s = String::with_capacity(96);
    let _ = write!(
        s,
        "size: {}\nmodified: {}\nmode: {}\ntype: {}\n\n",
        e.size,
        humantime::format_rfc3339_seconds(e.modified()),
        e.mode_string(),
        match e.kind {
            Kind::File => "file",
            Kind::Dir => "dir",
        }
    );
    out.extend_from_slice(s.as_bytes());
}

/// Append one `ls` line: `<type> <size> <mtime-unix-nanos> <mode-octal> <name>\n`.
pub fn write_ls_line(out: &mut Vec<u8>, e: &Entry) {
    let kind = match e.kind {
        Kind::File => 'f',
        Kind::Dir => 'd',
    };
    let mut s = String::with_capacity(48 + e.name.len());
    let _ = writeln!(
        s,
        "{kind} {} {} {:o} {}",
        e.size, e.mtime_ns, e.mode, e.name
    );
    out.extend_from_slice(s.as_bytes());
}

/// Parse one `ls` line (without its line break).
pub fn parse_ls_line(line: &str) -> Option<Entry> {
    let mut parts = line.splitn(5, ' ');
    let kind = match parts.next()? {
        "f" => Kind::File,
        "d" => Kind::Dir,
        _ => return None,
    };
    let size = parts.next()?.parse().ok()?;
    let mtime_ns = parts.next()?.parse().ok()?;
    let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
    let name = parts.next()?.to_owned();
    Some(Entry {
        name,
        kind,
        size,
        mtime_ns,
        mode,
    })
}

/// Parse the `key: value` lines of a `stat` reply body into an entry named `name`.
pub fn parse_stat(name: &str, lines: &[String]) -> Option<Entry> {
    let mut size = None;
    let mut modified = None;
    let mut mode = None;
    let mut kind = None;
    for line in lines {
        let (k, v) = line.split_once(": ")?;
        match k {
            "size" => size = v.parse().ok(),
            "modified" => modified = humantime::parse_rfc3339(v).ok(),
            "mode" => mode = parse_mode_string(v),
            "type" => {
                kind = match v {
                    "file" => Some(Kind::File),
                    "dir" => Some(Kind::Dir),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    let modified = modified?;
    let mtime_ns = match modified.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    };
    Some(Entry {
        name: name.to_owned(),
        kind: kind?,
        size: size?,
        mtime_ns,
        mode: mode?,
    })
}

fn parse_mode_string(s: &str) -> Option<u32> {
    let bytes = s.as_bytes();
    if bytes.len() != 10 {
        return None;
    }
    let mut mode = 0;
    for &b in &bytes[1..] {
        mode = (mode << 1) | u32::from(b != b'-');
    }
    Some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(
            Request::parse(b"OPEN a b.txt\r"),
            Ok(Request::Open("a b.txt"))
        );
        assert_eq!(Request::parse(b"read 10"), Ok(Request::Read(10)));
        assert_eq!(Request::parse(b"list"), Ok(Request::List("")));
        assert_eq!(
            Request::parse(b"pread 5 10 x y"),
            Ok(Request::Pread {
                offset: 5,
                size: 10,
                path: "x y"
            })
        );
        assert_eq!(
            Request::parse(b"subscribe 7"),
            Ok(Request::Subscribe {
                since: Some(7),
                reasons: false
            })
        );
        assert_eq!(
            Request::parse(b"subscribe 7 reasons"),
            Ok(Request::Subscribe {
                since: Some(7),
                reasons: true
            })
        );
        assert_eq!(
            Request::parse(b"subscribe reasons"),
            Ok(Request::Subscribe {
                since: None,
                reasons: true
            })
        );
        assert_eq!(
            Request::parse(b"hash-prefix 10 x y"),
            Ok(Request::HashPrefix {
                size: 10,
                path: "x y"
            })
        );
        assert!(Request::parse(b"hash-prefix 10").is_err());
        assert!(Request::parse(b"hash-prefix x y").is_err());
        assert_eq!(
            Request::parse(b"blocks 10 a b"),
            Ok(Request::Blocks {
                size: 10,
                path: "a b"
            })
        );
        assert!(Request::parse(b"blocks 10").is_err());
        assert_eq!(Request::parse(b"CLUSTER-PEERS"), Ok(Request::ClusterPeers));
        assert!(Request::parse(b"cluster-peers x").is_err());
        assert!(Request::parse(b"pread 1 y").is_err());
        assert!(Request::parse(b"subscribe reasons 7").is_err());
        assert!(Request::parse(b"subscribe 7 8").is_err());
        assert_eq!(
            Request::parse(b"subscribe"),
            Ok(Request::Subscribe {
                since: None,
                reasons: false
            })
        );
        assert_eq!(
            Request::parse(b"PAKE QUFB clips/a b.mp4"),
            Ok(Request::Pake("QUFB clips/a b.mp4"))
        );
        assert_eq!(
            Request::parse(b"pake-confirm QUFB"),
            Ok(Request::PakeConfirm("QUFB"))
        );
        assert!(Request::parse(b"pake").is_err() && Request::parse(b"pake-confirm ").is_err());
        assert!(Request::parse(b"read").is_err());
        assert!(Request::parse(b"read -1").is_err());
        assert!(Request::parse(b"frobnicate").is_err());
        assert!(Request::parse(b"").is_err());
        assert!(Request::parse(b"\xff").is_err());
        assert!(Request::parse(b"pread 1 x").is_err());
    }

    #[test]
    fn ls_and_stat_round_trip() {
        let e = Entry {
            name: "with space.mp4".into(),
            kind: Kind::File,
            size: 42,
            mtime_ns: 1_700_000_000_000_000_000,
            mode: 0o644,
        };
        let mut out = Vec::new();
        write_ls_line(&mut out, &e);
        let line = std::str::from_utf8(&out).unwrap().trim_end_matches('\n');
        assert_eq!(line, "f 42 1700000000000000000 644 with space.mp4");
        assert_eq!(parse_ls_line(line), Some(e.clone()));

        out.clear();
        write_stat(&mut out, &e);
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            "size: 42\nmodified: 2023-11-14T22:13:20Z\nmode: -rw-r--r--\ntype: file\n\n"
        );
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        let parsed = parse_stat("with space.mp4", &lines).unwrap();
        assert_eq!(parsed.size, 42);
        assert_eq!(parsed.mode, 0o644);
    }
}
