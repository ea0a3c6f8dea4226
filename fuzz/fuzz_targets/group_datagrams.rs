//! What the LAN group ports hear from anyone on the LAN: announcement datagrams (port 4046) and
//! chat messages (port 4045). Any bytes give an announcement or an `Ignored` reason, never a
//! panic; whatever parses re-encodes into a datagram that fits and parses to the same value;
//! chat display lines never carry a control character to the terminal.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use meshfs_group::Announcement;
use meshfs_group::announce::MAX_DATAGRAM;
use meshfs_group::chat::{MAX_MESSAGE, display};

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Announcement::parse(data) {
        let again = a.encode();
        assert!(
            again.len() <= MAX_DATAGRAM,
            "re-encoded {} bytes",
            again.len()
        );
        assert_eq!(Announcement::parse(&again).as_ref(), Ok(&a));
        assert!(a.fits());
    }

    // The chat receiver's path: at most MAX_MESSAGE bytes, lossy UTF-8, then display.
    let text = String::from_utf8_lossy(&data[..data.len().min(MAX_MESSAGE)]);
    let ip = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 7));
    let lines = display(ip, &text);
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(line.starts_with("192.168.1.7 :> "));
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "control character shown: {line:?}"
        );
    }
});
