//! `KnownNodes`: the IDs a user has pinned for node names, as SSH's `known_hosts`.
//!
//! A name is only a claim; the first time a client meets a name it records the key's
//! [`NodeId`] (trust on first use), and from then on that name must present that key. A changed
//! key is a hard error that names both IDs and the command that re-pins
//! ([`KnownNodesError::KeyChanged`]): either someone is impersonating the node, or it was
//! reinstalled, and only the user can tell which. `meshfs trust NAME ID` pins ahead of time, so
//! even the first contact is checked.
//!
//! The file (`$XDG_CONFIG_HOME/meshfs/known_nodes`, mode 0600) holds `NAME ID` lines; `#`
//! comments and blank lines are kept. It is parsed with bounds (size, line length, entries)
//! and a malformed line is an error, never skipped: a pin silently dropped would reopen trust on
//! first use for that name. Every change re-reads the file, applies itself and replaces the file
//! atomically (temporary file, then rename), so concurrent commands lose nothing but a pin made
//! at the very same instant, which the next contact makes again.

use std::path::{Path, PathBuf};

use crate::identity::{self, IdentityError, NodeId};

/// File name inside the user's config folder.
pub const FILE_NAME: &str = "known_nodes";
/// Largest file read.
const MAX_FILE: usize = 1 << 20;
/// Longest line.
const MAX_LINE: usize = 1024;
/// Most entries.
const MAX_ENTRIES: usize = 10_000;
/// Longest node name (a name is one token of a line).
pub const MAX_NAME: usize = 255;

/// What can go wrong reading, checking or changing the pins.
#[derive(Debug, thiserror::Error)]
pub enum KnownNodesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {what}")]
    Parse {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("{path}: {what}")]
    Limit { path: PathBuf, what: String },
    #[error("not a node name: {0:?} (1 to {MAX_NAME} bytes, no spaces or control characters)")]
    BadName(String),
    #[error(
        "the key of node {name} has changed: pinned {pinned}, presented {presented}.\n\
         Someone may be impersonating {name} (a man in the middle), or {name} was reinstalled.\n\
         Check the ID that `meshfs id` prints on {name} itself; if it is {presented}, re-pin it:\n\
         \x20   meshfs trust {name} {presented}"
    )]
    KeyChanged {
        name: String,
        pinned: NodeId,
        presented: NodeId,
    },
}

/// How a name and key checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The name was pinned to this key already.
    Known,
    /// The name was new; it is now pinned to this key (trust on first use).
    Pinned,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Pin {
        name: String,
        id: NodeId,
    },
    /// A comment or blank line, kept as written.
    Other(String),
}

/// The pins of one user.
#[derive(Debug, Clone)]
pub struct KnownNodes {
    /// Where changes are written; `None` keeps them in memory only.
    path: Option<PathBuf>,
    lines: Vec<Line>,
}

impl KnownNodes {
    /// The user's file: [`identity::user_dir`]`/known_nodes`.
    pub fn default_path() -> Option<PathBuf> {
        identity::user_dir().map(|d| d.join(FILE_NAME))
    }

    /// Pins kept in memory only (tests, `--no-known-nodes`-style one-offs).
    pub fn in_memory() -> KnownNodes {
        KnownNodes {
            path: None,
            lines: Vec::new(),
        }
    }

    /// Read the pins in `path` (none when the file does not exist yet); changes go back there.
    pub fn load(path: &Path) -> Result<KnownNodes, KnownNodesError> {
        Ok(KnownNodes {
            lines: read(path)?,
            path: Some(path.to_owned()),
        })
    }

    /// The file changes are written to.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The ID pinned for `name`.
    pub fn get(&self, name: &str) -> Option<NodeId> {
        self.pins().find(|(n, _)| *n == name).map(|(_, id)| id)
    }

    /// The names pinned to `id` (a node may be known under several names).
    pub fn names_of(&self, id: NodeId) -> Vec<&str> {
        self.pins()
            .filter(|(_, i)| *i == id)
            .map(|(n, _)| n)
            .collect()
    }

    /// Every pin, in file order.
    pub fn pins(&self) -> impl Iterator<Item = (&str, NodeId)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Pin { name, id } => Some((name.as_str(), *id)),
            Line::Other(_) => None,
        })
    }

    /// Check `name` presenting `id` without changing anything: `Ok(Some(Known))` when pinned
    /// to it, `Ok(None)` when the name is unknown, [`KnownNodesError::KeyChanged`] otherwise.
    pub fn check(&self, name: &str, id: NodeId) -> Result<Option<Seen>, KnownNodesError> {
        match self.get(name) {
            Some(pinned) if pinned == id => Ok(Some(Seen::Known)),
            Some(pinned) => Err(KnownNodesError::KeyChanged {
                name: name.to_owned(),
                pinned,
                presented: id,
            }),
            None => Ok(None),
        }
    }

    /// Trust on first use: accept `id` for `name` if it is the pinned one, pin it if `name` is
    /// new (and save), refuse it if another key is pinned.
    pub fn verify_or_pin(&mut self, name: &str, id: NodeId) -> Result<Seen, KnownNodesError> {
        if let Some(seen) = self.check(name, id)? {
            return Ok(seen);
        }
        check_name(name)?;
        self.update(|lines| {
            // Another process may have pinned the name since we read the file.
            match lines.iter().find_map(|l| match l {
                Line::Pin { name: n, id } if n == name => Some(*id),
                _ => None,
            }) {
                Some(pinned) if pinned != id => Err(KnownNodesError::KeyChanged {
                    name: name.to_owned(),
                    pinned,
                    presented: id,
                }),
                Some(_) => Ok(()),
                None => {
                    lines.push(Line::Pin {
                        name: name.to_owned(),
                        id,
                    });
                    Ok(())
                }
            }
        })?;
        Ok(Seen::Pinned)
    }

    /// `meshfs trust NAME ID`: pin `id` for `name`, replacing any earlier pin (returned).
    pub fn trust(&mut self, name: &str, id: NodeId) -> Result<Option<NodeId>, KnownNodesError> {
        check_name(name)?;
        let mut previous = None;
        self.update(|lines| {
            let mut placed = false;
            lines.retain_mut(|l| match l {
                Line::Pin { name: n, id: old } if n == name => {
                    previous = Some(*old);
                    if placed {
                        false
                    } else {
                        *old = id;
                        placed = true;
                        true
                    }
                }
                _ => true,
            });
            if !placed {
                lines.push(Line::Pin {
                    name: name.to_owned(),
                    id,
                });
            }
            Ok(())
        })?;
        Ok(previous.filter(|p| *p != id))
    }

    /// Drop the pin of `name` (returned when there was one).
    pub fn forget(&mut self, name: &str) -> Result<Option<NodeId>, KnownNodesError> {
        let mut previous = None;
        self.update(|lines| {
            lines.retain(|l| match l {
                Line::Pin { name: n, id } if n == name => {
                    previous = Some(*id);
                    false
                }
                _ => true,
            });
            Ok(())
        })?;
        Ok(previous)
    }

    /// Re-read the file, apply `change`, write the result atomically, and keep it.
    fn update(
        &mut self,
        change: impl FnOnce(&mut Vec<Line>) -> Result<(), KnownNodesError>,
    ) -> Result<(), KnownNodesError> {
        let Some(path) = self.path.clone() else {
            return change(&mut self.lines);
        };
        let mut lines = read(&path)?;
        change(&mut lines)?;
        if lines
            .iter()
            .filter(|l| matches!(l, Line::Pin { .. }))
            .count()
            > MAX_ENTRIES
        {
            return Err(KnownNodesError::Limit {
                path,
                what: format!("more than {MAX_ENTRIES} pins"),
            });
        }
        let mut text = String::new();
        if lines.is_empty() || !matches!(lines.first(), Some(Line::Other(_))) {
            text.push_str("# meshfs known nodes: NAME ID per line (see `meshfs trust`)\n");
        }
        for line in &lines {
            match line {
                Line::Pin { name, id } => text.push_str(&format!("{name} {id}\n")),
                Line::Other(raw) => {
                    text.push_str(raw);
                    text.push('\n');
                }
            }
        }
        let io = |e: IdentityError| match e {
            IdentityError::Io { path, source } => KnownNodesError::Io { path, source },
            other => KnownNodesError::Io {
                path: path.clone(),
                source: std::io::Error::other(other.to_string()),
            },
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            identity::create_dir_private(dir).map_err(io)?;
        }
        identity::replace_file(&path, text.as_bytes(), 0o600).map_err(io)?;
        self.lines = lines;
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), KnownNodesError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('#')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(KnownNodesError::BadName(name.to_owned()))
    }
}

/// Read and parse the file; a missing file holds no pins.
fn read(path: &Path) -> Result<Vec<Line>, KnownNodesError> {
    use std::io::Read;
    let io = |source| KnownNodesError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > MAX_FILE {
        return Err(KnownNodesError::Limit {
            path: path.to_owned(),
            what: format!("larger than {MAX_FILE} bytes"),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| KnownNodesError::Limit {
        path: path.to_owned(),
        what: "not UTF-8 text".into(),
    })?;
    parse(&text).map_err(|(line, what)| KnownNodesError::Parse {
        path: path.to_owned(),
        line,
        what,
    })
}

/// Parse the file's text; an error gives the 1-based line number and what is wrong.
fn parse(text: &str) -> Result<Vec<Line>, (usize, String)> {
    let mut lines = Vec::new();
    let mut pins = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.len() > MAX_LINE {
            return Err((n, format!("line longer than {MAX_LINE} bytes")));
        }
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            lines.push(Line::Other(raw.to_owned()));
            continue;
        }
        let mut fields = trimmed.split_whitespace();
        let (Some(name), Some(id), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err((n, "expected `NAME ID`".into()));
        };
        check_name(name).map_err(|e| (n, e.to_string()))?;
        let id: NodeId = id.parse().map_err(|e: IdentityError| (n, e.to_string()))?;
        let earlier = lines.iter().find_map(|l| match l {
            Line::Pin { name: other, id } if other == name => Some(*id),
            _ => None,
        });
        match earlier {
            Some(e) if e == id => continue,
            Some(e) => {
                return Err((
                    n,
                    format!("{name} is pinned twice, to {e} and to {id}: keep one"),
                ));
            }
            None => {}
        }
        pins += 1;
        if pins > MAX_ENTRIES {
            return Err((n, format!("more than {MAX_ENTRIES} pins")));
        }
        lines.push(Line::Pin {
            name: name.to_owned(),
            id,
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn id(seed: u8) -> NodeId {
        NodeId::from_bytes([seed; 32])
    }

    #[test]
    fn first_use_pins_then_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/meshfs/known_nodes");
        let mut known = KnownNodes::load(&path).unwrap();
        assert_eq!(known.get("cam1"), None);
        assert_eq!(known.verify_or_pin("cam1", id(1)).unwrap(), Seen::Pinned);
        assert_eq!(known.verify_or_pin("cam1", id(1)).unwrap(), Seen::Known);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // Another process (a new load) sees the pin and refuses another key.
        let mut again = KnownNodes::load(&path).unwrap();
        assert_eq!(again.get("cam1"), Some(id(1)));
        let err = again.verify_or_pin("cam1", id(2)).unwrap_err();
        assert!(matches!(err, KnownNodesError::KeyChanged { .. }));
    }

    #[test]
    fn changed_key_error_names_both_ids_and_the_fix() {
        let mut known = KnownNodes::in_memory();
        known.verify_or_pin("cam1", id(1)).unwrap();
        let text = known.verify_or_pin("cam1", id(2)).unwrap_err().to_string();
        assert!(text.contains(&id(1).to_string()), "{text}");
        assert!(text.contains(&id(2).to_string()), "{text}");
        assert!(
            text.contains(&format!("meshfs trust cam1 {}", id(2))),
            "{text}"
        );
        // Nothing was changed by the refusal.
        assert_eq!(known.get("cam1"), Some(id(1)));
    }

    #[test]
    fn trust_ahead_replaces_and_forget_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_nodes");
        std::fs::write(
            &path,
            "# my cameras\n\ncam1 ".to_owned() + &id(1).to_string() + "\n",
        )
        .unwrap();
        let mut known = KnownNodes::load(&path).unwrap();
        assert_eq!(known.trust("cam2", id(2)).unwrap(), None);
        assert_eq!(known.trust("cam1", id(3)).unwrap(), Some(id(1)));
        assert_eq!(known.trust("cam1", id(3)).unwrap(), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# my cameras\n\ncam1 "),
            "comments kept: {text}"
        );
        let reread = KnownNodes::load(&path).unwrap();
        assert_eq!(reread.get("cam1"), Some(id(3)));
        assert_eq!(reread.get("cam2"), Some(id(2)));
        assert_eq!(reread.names_of(id(3)), vec!["cam1"]);
        let mut known = reread;
        assert_eq!(known.forget("cam1").unwrap(), Some(id(3)));
        assert_eq!(KnownNodes::load(&path).unwrap().get("cam1"), None);
    }

    #[test]
    fn concurrent_pins_are_merged_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_nodes");
        let mut a = KnownNodes::load(&path).unwrap();
        let mut b = KnownNodes::load(&path).unwrap();
        a.verify_or_pin("cam1", id(1)).unwrap();
        // b read the file before a's pin; its change re-reads and keeps it.
        b.verify_or_pin("cam2", id(2)).unwrap();
        // …and b cannot pin cam1 to another key behind a's back.
        assert!(b.verify_or_pin("cam1", id(9)).is_err());
        let c = KnownNodes::load(&path).unwrap();
        assert_eq!(c.get("cam1"), Some(id(1)));
        assert_eq!(c.get("cam2"), Some(id(2)));
    }

    #[test]
    fn malformed_files_are_refused_with_a_line_number() {
        let good = id(1).to_string();
        let cases: Vec<(String, usize)> = vec![
            ("cam1\n".into(), 1),
            (format!("# c\ncam1 {good} extra\n"), 2),
            ("cam1 NOT-AN-ID\n".into(), 1),
            (format!("cam1 {good}\ncam1 {}\n", id(2)), 2),
            (format!("{} {good}\n", "n".repeat(MAX_NAME + 1)), 1),
            ("x".repeat(MAX_LINE + 1), 1),
        ];
        for (text, line) in cases {
            let err = parse(&text).unwrap_err();
            assert_eq!(err.0, line, "{text:?}: {err:?}");
        }
        // The same pin twice is harmless.
        assert_eq!(parse(&format!("a {good}\na {good}\n")).unwrap().len(), 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_nodes");
        std::fs::write(&path, vec![b'#'; MAX_FILE + 1]).unwrap();
        assert!(matches!(
            KnownNodes::load(&path),
            Err(KnownNodesError::Limit { .. })
        ));
    }

    #[test]
    fn names_are_single_tokens() {
        let mut known = KnownNodes::in_memory();
        for bad in ["", "two words", "tab\there", "#comment", "nl\n"] {
            assert!(known.trust(bad, id(1)).is_err(), "{bad:?}");
        }
        assert!(known.trust("raspberrypi.local:4044", id(1)).is_ok());
    }
}
