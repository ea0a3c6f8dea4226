//! File-server request lines: any bytes parse to a request or a `BadRequest`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshfs_core::proto::Request;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::parse(data) {
        // Paths handed on are slices of the input: never longer than it.
        if let Request::Open(p) | Request::Stat(p) | Request::Hash(p) = req {
            assert!(p.len() <= data.len());
        }
    }
});
