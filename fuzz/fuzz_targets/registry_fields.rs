//! Directory protocol fields (NUL-terminated, bounded): any byte stream yields fields or a
//! clean error, never a panic or an unbounded read.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use meshfs_registry::wire::FieldReader;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut reader = FieldReader::new(data, Duration::from_secs(1));
        for _ in 0..64 {
            match reader.read_field().await {
                Ok(f) => assert!(f.len() <= 256),
                Err(_) => break,
            }
        }
    });
});
