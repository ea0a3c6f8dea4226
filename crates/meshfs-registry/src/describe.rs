//! The description a node publishes for each of its files: `"<size> bytes <type>"`, where the
//! type is a media type guessed from the extension (nodes are mostly cameras: videos, pictures
//! and logs), so a `LIST_CONTENT` reader can tell a clip from a log without fetching it.

/// `"<size> bytes <type>"` for a file named `name`.
pub fn describe(name: &str, size: u64) -> String {
    format!("{size} bytes {}", media_type(name))
}

/// Media type from the file name's extension; `application/octet-stream` when unknown.
pub fn media_type(name: &str) -> &'static str {
    let base = name.rsplit('/').next().unwrap_or(name);
    let ext = match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream",
    };
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "mov" => "video/quicktime",
        "h264" | "264" => "video/h264",
        "ts" => "video/mp2t",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

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
