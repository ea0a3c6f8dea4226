//! What a client parses from a node: `ls` lines, `stat` bodies, event lines, and URLs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshfs_core::RemotePath;
use meshfs_core::events::StreamLine;
use meshfs_core::proto::{parse_ls_line, parse_stat};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_ls_line(text);
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let _ = parse_stat("x", &lines);
    let _ = StreamLine::parse(text);
    if let Ok(url) = text.parse::<RemotePath>() {
        // Display and parse agree.
        assert_eq!(url.to_string().parse::<RemotePath>().as_ref(), Ok(&url));
    }
});
