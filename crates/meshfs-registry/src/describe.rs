//! The description a node publishes for each of its files: `"<size> bytes <type>"`, where the
//! type is a media type guessed from the extension (nodes are mostly cameras: videos, pictures
//! and logs), so a `LIST_CONTENT` reader can tell a clip from a log without fetching it.

/// `"<size> bytes <type>"` for a file named `name`.
pub fn describe(name: &str, size: u64) -> String {
    format!("{size} bytes {}", media_type(name))
}

/// Media type from the file name's extension (the table all doors share).
pub use meshfs_core::mime::media_type;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        assert_eq!(describe("cam/clip.MP4", 1024), "1024 bytes video/mp4");
        assert_eq!(describe("notes.txt", 0), "0 bytes text/plain");
        assert_eq!(describe(".hidden", 3), "3 bytes application/octet-stream");
        assert_eq!(describe("README", 3), "3 bytes application/octet-stream");
    }
}
