//! Media types by file extension: a short table of what cameras and people put in a share,
//! shared by every door that names a type (HTTP `Content-Type`, directory descriptions).
//! Anything else is `application/octet-stream`, which browsers download rather than render.

/// The media type for a file name or path (text types carry `; charset=utf-8`).
pub fn content_type(name: &str) -> &'static str {
    let base = name.rsplit('/').next().unwrap_or(name);
    let ext = match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 8 => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream",
    };
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "mov" => "video/quicktime",
        "avi" => "video/x-msvideo",
        "ts" => "video/mp2t",
        "ogv" => "video/ogg",
        "h264" | "264" => "video/h264",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "ogg" | "oga" => "audio/ogg",
        "opus" => "audio/opus",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "svg" => "image/svg+xml",
        "avif" => "image/avif",
        "txt" | "log" | "md" | "srt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "vtt" => "text/vtt; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

/// The bare media type (no parameters), as a directory description shows it.
pub fn media_type(name: &str) -> &'static str {
    let full = content_type(name);
    full.split_once(';').map_or(full, |(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::{content_type, media_type};

    #[test]
    fn media_type_drops_the_charset() {
        assert_eq!(media_type("a/notes.TXT"), "text/plain");
        assert_eq!(media_type(".hidden"), "application/octet-stream");
        assert_eq!(media_type("dir.d/README"), "application/octet-stream");
    }

    #[test]
    fn by_extension() {
        assert_eq!(content_type("clip.MP4"), "video/mp4");
        assert_eq!(content_type("a/b.webm"), "video/webm");
        assert_eq!(content_type("x.jpeg"), "image/jpeg");
        assert_eq!(content_type("notes.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(
            content_type("weird.averyveryverylongext"),
            "application/octet-stream"
        );
    }
}
