//! A file's BLAKE3 cut into fixed blocks, so that each block can be checked as it arrives
//! (protocols.md §1, `blocks`; the multi-source download in [`crate::transfer`]).
//!
//! BLAKE3 is a tree: the file is hashed in 1 KiB chunks, pairs of subtrees are merged into
//! parents, and the root is the file's hash. A [`BLOCK_LEN`] block (1 MiB = 1024 chunks, a
//! power of two) that starts at a multiple of its length is one whole subtree of that tree, so
//! its *chaining value* (the subtree's 32-byte non-root hash, [`blake3::hazmat`]) depends on
//! its bytes and offset alone. A node sends the chaining values of every block of a file
//! version; the client merges them in BLAKE3's left-balanced order ([`BlockHashes::root`]) and
//! checks that the result is the file's BLAKE3, the identity every source agreed on. From then
//! on each block is checked on arrival against its own value: a lying source is caught at its
//! first bad block, not after the whole file.
//!
//! Why this and not `bao-tree`/`abao`: no new dependency (the `blake3` crate already hashes
//! every download), no outboard file on the node (the list is 32 bytes per MiB, computed in
//! the same single read as `hash` and cached per file version), and the root is the plain
//! BLAKE3 the protocol already speaks (`hash`), so old and new clients agree on one identity.
//! What it gives up: a range smaller than a block cannot be checked on its own, which a
//! downloader fetching whole blocks never needs.
//!
//! A file of at most one block (the empty file too) has one entry: its BLAKE3 itself.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

use crate::proto::MAX_READ;

/// Bytes per block: 1 MiB, 1024 BLAKE3 chunks.
pub const BLOCK_LEN: u64 = 1 << 20;

/// Bytes per entry of the list.
pub const ENTRY_LEN: usize = 32;

/// Most entries a `blocks` reply carries (one payload, [`MAX_READ`]): files up to 512 GiB.
pub const MAX_BLOCKS: u64 = MAX_READ / ENTRY_LEN as u64;

/// How many blocks a file of `size` bytes has (at least one: the empty file's).
pub fn block_count(size: u64) -> u64 {
    size.div_ceil(BLOCK_LEN).max(1)
}

/// True when a file of `size` bytes can be listed by block (at most [`MAX_BLOCKS`]).
pub fn fits(size: u64) -> bool {
    checked_count(size).is_ok()
}

/// The bytes `start..end` block `k` covers in a file of `size` bytes.
pub fn block_range(size: u64, k: u64) -> (u64, u64) {
    let start = k * BLOCK_LEN;
    (start, (start + BLOCK_LEN).min(size))
}

/// Why a block list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("{got} bytes of block hashes where {want} were expected for {size} bytes")]
    WrongLength { got: usize, want: u64, size: u64 },
    #[error(
        "a file of {size} bytes has more than {MAX_BLOCKS} blocks: too large to check by block"
    )]
    TooLarge { size: u64 },
}

/// The chaining values of every block of one file version of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHashes {
    size: u64,
    /// `block_count(size)` entries of [`ENTRY_LEN`] bytes, as sent on the wire.
    bytes: Vec<u8>,
}

impl BlockHashes {
    /// A list as received for a file of `size` bytes; its length must fit the size.
    pub fn from_bytes(size: u64, bytes: Vec<u8>) -> Result<BlockHashes, BlockError> {
        let want = checked_count(size)? * ENTRY_LEN as u64;
        if bytes.len() as u64 != want {
            return Err(BlockError::WrongLength {
                got: bytes.len(),
                want,
                size,
            });
        }
        Ok(BlockHashes { size, bytes })
    }

    /// The file size the list describes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of blocks.
    pub fn len(&self) -> u64 {
        (self.bytes.len() / ENTRY_LEN) as u64
    }

    /// Never true: even the empty file has one block.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The wire form: the entries one after the other.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn entry(&self, k: u64) -> ChainingValue {
        let at = k as usize * ENTRY_LEN;
        let mut cv = [0; ENTRY_LEN];
        cv.copy_from_slice(&self.bytes[at..at + ENTRY_LEN]);
        cv
    }

    /// The BLAKE3 of the whole file the list describes: the entries merged in the tree's
    /// order. Equal to the file's `hash` exactly when the list is the file's.
    pub fn root(&self) -> blake3::Hash {
        let n = self.len();
        if n == 1 {
            return blake3::Hash::from_bytes(self.entry(0));
        }
        let left = left_blocks(n);
        merge_subtrees_root(&self.merge(0, left), &self.merge(left, n), Mode::Hash)
    }

    /// The non-root chaining value of the subtree of blocks `from..to` (a valid subtree).
    fn merge(&self, from: u64, to: u64) -> ChainingValue {
        if to - from == 1 {
            return self.entry(from);
        }
        let mid = from + left_blocks(to - from);
        merge_subtrees_non_root(&self.merge(from, mid), &self.merge(mid, to), Mode::Hash)
    }

    /// The first block from `from` on whose entry in `entries` (the first blocks of another
    /// list, in wire form: a list still being built) differs from this list's; `None` when
    /// all those given agree. A download checks the blocks it hashed against the node's list
    /// with it: 32 bytes compared per block, no byte hashed twice.
    pub fn first_difference(&self, entries: &[u8], from: u64) -> Option<u64> {
        let start = from as usize * ENTRY_LEN;
        let upto = entries.len().min(self.bytes.len());
        if start >= upto {
            return None;
        }
        entries[start..upto]
            .chunks(ENTRY_LEN)
            .zip(self.bytes[start..upto].chunks(ENTRY_LEN))
            .position(|(a, b)| a != b)
            .map(|i| from + i as u64)
    }

    /// Do `data` match block `k`? (`data` must be the whole block: a short one never does.)
    pub fn check(&self, k: u64, data: &[u8]) -> bool {
        k < self.len() && block_value(self.len(), k, data) == self.entry(k)
    }
}

/// Blocks in the left subtree of `n ≥ 2` blocks: the largest power of two below `n`
/// (BLAKE3's left subtree holds the largest power-of-two number of chunks below the total,
/// which for aligned power-of-two blocks is whole blocks).
fn left_blocks(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

fn checked_count(size: u64) -> Result<u64, BlockError> {
    let n = block_count(size);
    if n > MAX_BLOCKS {
        return Err(BlockError::TooLarge { size });
    }
    Ok(n)
}

/// The entry of block `k` of a file of `n` blocks whose bytes are `data`.
fn block_value(n: u64, k: u64, data: &[u8]) -> ChainingValue {
    if n == 1 {
        return *blake3::hash(data).as_bytes();
    }
    blake3::Hasher::new()
        .set_input_offset(k * BLOCK_LEN)
        .update(data)
        .finalize_non_root()
}

/// Builds a [`BlockHashes`] from a file's bytes read once, in order, in pieces of any size.
pub struct BlockHasher {
    size: u64,
    n: u64,
    /// Where the next byte fed belongs.
    pos: u64,
    current: blake3::Hasher,
    bytes: Vec<u8>,
}

impl BlockHasher {
    /// For the first `size` bytes of a file.
    pub fn new(size: u64) -> Result<BlockHasher, BlockError> {
        let n = checked_count(size)?;
        Ok(BlockHasher {
            size,
            n,
            pos: 0,
            current: blake3::Hasher::new(),
            bytes: Vec::with_capacity(n as usize * ENTRY_LEN),
        })
    }

    /// Feed the next bytes (never more than `size` in all: the excess is ignored).
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.pos < self.size {
            let block_end = (self.pos / BLOCK_LEN + 1) * BLOCK_LEN;
            let take = (block_end.min(self.size) - self.pos).min(data.len() as u64) as usize;
            self.current.update(&data[..take]);
            self.pos += take as u64;
            data = &data[take..];
            if self.pos == block_end.min(self.size) {
                self.end_block();
            }
        }
    }

    fn end_block(&mut self) {
        let k = (self.pos - 1) / BLOCK_LEN;
        let cv = match self.n {
            1 => *self.current.finalize().as_bytes(),
            _ => self.current.finalize_non_root(),
        };
        self.bytes.extend_from_slice(&cv);
        self.current = blake3::Hasher::new();
        if k + 1 < self.n {
            self.current.set_input_offset((k + 1) * BLOCK_LEN);
        }
    }

    /// The entries of the blocks finished so far, in wire form (the single entry of a file of
    /// one block appears once all its bytes were fed, the empty file's at [`Self::finish`]).
    pub fn finished(&self) -> &[u8] {
        &self.bytes
    }

    /// The list, once all `size` bytes were fed; `None` if fewer came.
    pub fn finish(mut self) -> Option<BlockHashes> {
        if self.pos < self.size {
            return None;
        }
        if self.size == 0 {
            self.bytes.extend_from_slice(blake3::hash(b"").as_bytes());
        }
        Some(BlockHashes {
            size: self.size,
            bytes: self.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 1000) as u8).collect()
    }

    fn list_of(bytes: &[u8], piece: usize) -> BlockHashes {
        let mut h = BlockHasher::new(bytes.len() as u64).unwrap();
        for part in bytes.chunks(piece.max(1)) {
            h.update(part);
        }
        h.finish().unwrap()
    }

    #[test]
    fn the_merged_root_is_the_files_blake3() {
        let b = BLOCK_LEN as usize;
        for len in [
            0,
            1,
            1024,
            b - 1,
            b,
            b + 1,
            2 * b,
            3 * b + 5,
            4 * b,
            5 * b - 3,
            8 * b + 1,
        ] {
            let bytes = data(len);
            let list = list_of(&bytes, 300_000);
            assert_eq!(list.len(), block_count(len as u64), "len {len}");
            assert_eq!(list.root(), blake3::hash(&bytes), "len {len}");
            assert_eq!(
                list,
                list_of(&bytes, b),
                "piece size does not matter, len {len}"
            );
            for k in 0..list.len() {
                let (s, e) = block_range(len as u64, k);
                assert!(
                    list.check(k, &bytes[s as usize..e as usize]),
                    "len {len} k {k}"
                );
            }
        }
    }

    #[test]
    fn a_changed_byte_fails_its_block_only() {
        let b = BLOCK_LEN as usize;
        let mut bytes = data(3 * b + 100);
        let list = list_of(&bytes, b);
        bytes[b + 17] ^= 1;
        assert!(list.check(0, &bytes[..b]));
        assert!(!list.check(1, &bytes[b..2 * b]));
        assert!(list.check(2, &bytes[2 * b..3 * b]));
        assert!(
            !list.check(3, &bytes[3 * b..3 * b + 99]),
            "short last block"
        );
        assert!(!list.check(4, &bytes[..0]), "no such block");
    }

    #[test]
    fn the_first_difference_is_found_in_a_list_still_being_built() {
        let b = BLOCK_LEN as usize;
        let bytes = data(5 * b + 3);
        let list = list_of(&bytes, b);
        let mut changed = bytes.clone();
        changed[3 * b + 1] ^= 0x80;
        let mut h = BlockHasher::new(changed.len() as u64).unwrap();
        h.update(&changed[..2 * b + 5]);
        assert_eq!(h.finished().len(), 2 * ENTRY_LEN);
        assert_eq!(
            list.first_difference(h.finished(), 0),
            None,
            "blocks 0-1 agree"
        );
        h.update(&changed[2 * b + 5..4 * b]);
        assert_eq!(list.first_difference(h.finished(), 0), Some(3));
        assert_eq!(
            list.first_difference(h.finished(), 4),
            None,
            "nothing past 4 yet"
        );
        h.update(&changed[4 * b..]);
        let ours = h.finish().unwrap();
        assert_eq!(list.first_difference(ours.as_bytes(), 0), Some(3));
        assert_eq!(list.first_difference(list.as_bytes(), 0), None);
        let small = list_of(&bytes[..10], 4);
        assert_eq!(
            small.first_difference(list_of(&bytes[1..11], 4).as_bytes(), 0),
            Some(0)
        );
    }

    #[test]
    fn lists_of_the_wrong_length_are_refused() {
        let err = BlockHashes::from_bytes(3 * BLOCK_LEN, vec![0; 64]).unwrap_err();
        assert!(matches!(err, BlockError::WrongLength { want: 96, .. }));
        assert!(BlockHasher::new(MAX_BLOCKS * BLOCK_LEN + 1).is_err());
        let mut short = BlockHasher::new(10).unwrap();
        short.update(b"12345");
        assert!(short.finish().is_none());
    }
}
