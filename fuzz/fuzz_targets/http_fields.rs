//! What the web door parses from peers: the HTTP `Range` header (judged against a file size)
//! and the event lines a node streams to it. Any input gives an answer, never a panic; a
//! partial range always lies inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshfs_web::{RangeRequest, SubscribeLine, parse_line, parse_range};

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes are the file size, the rest the header (or the event line).
    let (size, rest) = match data.split_first_chunk::<8>() {
        Some((size, rest)) => (u64::from_le_bytes(*size), rest),
        None => (0, data),
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match parse_range(text, size) {
        RangeRequest::Partial { start, end } => {
            assert!(start <= end, "{text:?} over {size}: {start}..={end}");
            assert!(end < size, "{text:?} over {size}: {start}..={end}");
        }
        RangeRequest::Full | RangeRequest::Unsatisfiable => {}
    }
    match parse_line(text) {
        Some(SubscribeLine::Event { kind, path, .. }) => {
            assert!(!kind.is_empty() && !kind.contains(' '));
            assert!(!path.starts_with('/'));
        }
        Some(SubscribeLine::Ping(_) | SubscribeLine::Resync(_)) | None => {}
    }
});
