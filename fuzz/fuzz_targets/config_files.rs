//! The config files a node reads: the FTP users file (`NAME:HASH` lines, argon2 PHC strings)
//! and password files (first line). Any bytes give a value or a clean error, never a panic;
//! what the users file accepts respects its bounds, and a password is never empty nor holds
//! a line break or NUL.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use meshfs_ftp::Users;
use meshfs_ftp::users::{MAX_LINE, MAX_USERS};
use meshfs_group::password;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(users) = Users::parse(text) {
            assert!(users.len() <= MAX_USERS);
            assert!(text.lines().all(|l| l.len() <= MAX_LINE));
            // Verification with an unknown user never matches (and never hashes).
            assert!(!users.verify("\u{0}nobody", "x"));
        }
    }

    // Password files are read from disk: one scratch file per fuzzing process, in memory when
    // /dev/shm exists (ext4 flushes a truncated-and-rewritten file on close: 100x slower).
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("meshfs-fuzz-pw-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("scratch file");
    f.write_all(data).expect("write scratch file");
    drop(f);
    if let Ok(p) = password::from_file(&path) {
        assert!(!p.is_empty());
        assert!(!p.contains(['\n', '\0']));
        assert!(!p.ends_with('\r'));
    }
});
