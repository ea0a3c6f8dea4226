//! `Share::normalize`: whatever a peer sends, an accepted path has no `..`, no NUL, no empty
//! component and no leading `/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshfs_core::Share;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(norm) = Share::normalize(path) {
        assert!(!norm.contains('\0'));
        assert!(!norm.starts_with('/'));
        if !norm.is_empty() {
            assert!(
                norm.split('/')
                    .all(|c| !c.is_empty() && c != "." && c != "..")
            );
        }
    }
});
