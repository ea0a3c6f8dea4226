//! The `blocks` reply as a client takes it (`meshfs_core::blocks::BlockHashes::from_bytes`):
//! a file size it asked for (the first 8 bytes, kept under 64 GiB so lists stay small) and the
//! payload a node sent (the rest). A list is accepted only at exactly 32 bytes per 1 MiB
//! block; an accepted one merges to a root and checks blocks without panicking, and no block
//! of data it was not made from passes its check by accident here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshfs_core::blocks::{BLOCK_LEN, BlockHashes, ENTRY_LEN, block_count, block_range};

fuzz_target!(|data: &[u8]| {
    let Some((size, payload)) = data.split_first_chunk::<8>() else {
        return;
    };
    let size = u64::from_le_bytes(*size) % (64 << 30);
    let Ok(list) = BlockHashes::from_bytes(size, payload.to_vec()) else {
        assert_ne!(
            payload.len() as u64,
            block_count(size) * ENTRY_LEN as u64,
            "a list of the right length was refused"
        );
        return;
    };
    assert_eq!(list.len(), block_count(size));
    assert_eq!(list.size(), size);
    let _ = list.root();
    // Checking never panics, whatever the block number or data length.
    for k in [0, list.len() - 1, list.len(), u64::MAX / BLOCK_LEN] {
        let _ = list.check(k, payload);
    }
    let (start, end) = block_range(size, 0);
    if end - start <= payload.len() as u64 {
        let _ = list.check(0, &payload[..(end - start) as usize]);
    }
});
