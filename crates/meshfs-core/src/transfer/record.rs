//! `DEST.part.resume`: what a `.part` was started against, so a later run knows whether it
//! may continue it.

use std::io::{self, Read};

use crate::dir::{Dir, TempFile};

/// Longest record read back (it holds a URL, a size and a time).
const MAX_RECORD: u64 = 16 << 10;

/// Identity of the remote file a `.part` was started against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResumeRecord {
    pub(super) source: String,
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
}

impl ResumeRecord {
    pub(super) fn encode(&self) -> String {
        format!(
            "meshfs-resume 1\nsource {}\nsize {}\nmtime_ns {}\n",
            self.source, self.size, self.mtime_ns
        )
    }

    pub(super) fn decode(text: &str) -> Option<ResumeRecord> {
        let mut lines = text.lines();
        if lines.next()? != "meshfs-resume 1" {
            return None;
        }
        let source = lines.next()?.strip_prefix("source ")?.to_owned();
        let size = lines.next()?.strip_prefix("size ")?.parse().ok()?;
        let mtime_ns = lines.next()?.strip_prefix("mtime_ns ")?.parse().ok()?;
        Some(ResumeRecord {
            source,
            size,
            mtime_ns,
        })
    }

    pub(super) fn load(dir: &Dir, name: &str) -> Option<ResumeRecord> {
        let file = dir
            .open_file(name, libc::O_RDONLY | libc::O_NONBLOCK)
            .ok()?;
        let mut text = String::new();
        file.take(MAX_RECORD).read_to_string(&mut text).ok()?;
        Self::decode(&text)
    }

    /// Write atomically: a crash leaves either the old record or the new one.
    pub(super) fn store(&self, dir: &Dir, name: &str) -> io::Result<()> {
        TempFile::write_all_to(dir, name, self.encode().as_bytes())
    }

    /// May a `.part` started against `earlier` be continued now that the remote file is
    /// `self`? Yes if it is the same file version, or the same source that only grew (a
    /// recording): the bytes kept are then still a prefix, which the tail check and the final
    /// hash of that prefix confirm.
    pub(super) fn continues(&self, earlier: &ResumeRecord) -> bool {
        self.source == earlier.source && (self == earlier || self.size > earlier.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: u64, mtime_ns: i64) -> ResumeRecord {
        ResumeRecord {
            source: "meshfs://h:1/a b".into(),
            size,
            mtime_ns,
        }
    }

    #[test]
    fn round_trip() {
        let r = record(5, -3);
        assert_eq!(ResumeRecord::decode(&r.encode()), Some(r));
        assert_eq!(ResumeRecord::decode("junk"), None);
    }

    #[test]
    fn a_part_continues_the_same_version_or_a_grown_file_only() {
        let earlier = record(100, 7);
        assert!(record(100, 7).continues(&earlier));
        assert!(record(150, 9).continues(&earlier), "grew");
        assert!(!record(100, 9).continues(&earlier), "rewritten, same size");
        assert!(!record(50, 9).continues(&earlier), "shrank");
        let elsewhere = ResumeRecord {
            source: "meshfs://h:2/a b".into(),
            ..earlier.clone()
        };
        assert!(!record(100, 7).continues(&elsewhere));
    }
}
