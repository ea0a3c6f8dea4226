//! `DEST.part.resume`: what a `.part` was started against, so a later run knows whether it
//! may continue it. A single-source download's `.part` is a prefix ([`ResumeRecord`]); a
//! multi-source one holds verified blocks anywhere in the file ([`BlockRecord`]).

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
        Self::decode(&read_record(dir, name, MAX_RECORD)?)
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

/// Longest multi-source record read back: a bit per block of the largest file checked by
/// block, in hex, and a few lines.
const MAX_BLOCK_RECORD: u64 = crate::blocks::MAX_BLOCKS / 4 + 1024;

/// What a multi-source `.part` holds: blocks of the file version named by its BLAKE3 and size,
/// whichever sources they came from (so a resume may use any others). Each block marked done
/// was checked as it arrived; a resume checks it again from disk, since a crash may lose
/// writes the record already names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BlockRecord {
    pub(super) blake3: String,
    pub(super) size: u64,
    /// One flag per block.
    pub(super) done: Vec<bool>,
}

impl BlockRecord {
    pub(super) fn encode(&self) -> String {
        let mut bits = String::with_capacity(self.done.len() / 4 + 1);
        for nibble in self.done.chunks(4) {
            let v = nibble
                .iter()
                .enumerate()
                .fold(0u32, |v, (i, &d)| v | (u32::from(d) << i));
            bits.push(char::from_digit(v, 16).unwrap_or('0'));
        }
        format!(
            "meshfs-resume 2\nblake3 {}\nsize {}\nblocks {}\ndone {bits}\n",
            self.blake3,
            self.size,
            self.done.len()
        )
    }

    pub(super) fn decode(text: &str) -> Option<BlockRecord> {
        let mut lines = text.lines();
        if lines.next()? != "meshfs-resume 2" {
            return None;
        }
        let blake3 = lines.next()?.strip_prefix("blake3 ")?.to_owned();
        let size = lines.next()?.strip_prefix("size ")?.parse().ok()?;
        let n: usize = lines.next()?.strip_prefix("blocks ")?.parse().ok()?;
        let bits = lines.next()?.strip_prefix("done ")?;
        if n as u64 > crate::blocks::MAX_BLOCKS || bits.len() != n.div_ceil(4) {
            return None;
        }
        let mut done = Vec::with_capacity(n);
        for c in bits.chars() {
            let v = c.to_digit(16)?;
            done.extend((0..4).map(|i| v & (1 << i) != 0));
        }
        done.truncate(n);
        Some(BlockRecord { blake3, size, done })
    }

    pub(super) fn load(dir: &Dir, name: &str) -> Option<BlockRecord> {
        Self::decode(&read_record(dir, name, MAX_BLOCK_RECORD)?)
    }

    /// Write atomically: a crash leaves either the old record or the new one.
    pub(super) fn store(&self, dir: &Dir, name: &str) -> io::Result<()> {
        TempFile::write_all_to(dir, name, self.encode().as_bytes())
    }
}

/// The text of a record, at most `max` bytes of it.
fn read_record(dir: &Dir, name: &str, max: u64) -> Option<String> {
    let file = dir
        .open_file(name, libc::O_RDONLY | libc::O_NONBLOCK)
        .ok()?;
    let mut text = String::new();
    file.take(max).read_to_string(&mut text).ok()?;
    Some(text)
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

    #[test]
    fn block_records_round_trip() {
        let r = BlockRecord {
            blake3: "ab".repeat(32),
            size: 7 << 20,
            done: vec![true, false, true, true, false, false, true],
        };
        assert_eq!(BlockRecord::decode(&r.encode()), Some(r.clone()));
        assert!(r.encode().contains("done d4\n"), "{}", r.encode());
        assert_eq!(BlockRecord::decode(&record(5, 1).encode()), None);
        assert_eq!(ResumeRecord::decode(&r.encode()), None);
        let bad = r.encode().replace("blocks 7", "blocks 70");
        assert_eq!(BlockRecord::decode(&bad), None);
    }
}
