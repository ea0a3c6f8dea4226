//! Turning the raw (still percent-encoded) URL path after `/files/` or `/api/ls/` into a node
//! name and a share-relative path, refusing anything hostile before a source sees it.
//!
//! We decode the URL ourselves, one segment at a time, instead of using a router's decoded
//! wildcard: once `%2F` has become `/` nobody can tell `a%2F..%2Fb` from `a/../b` apart any
//! more, and a decoded `..` must never reach a door. `Share` refuses `..` and NUL again, so this
//! is a second fence, not the only one.

use crate::error::WebError;

/// Longest URL path we accept (Linux's `PATH_MAX` plus room for the node name).
pub const MAX_URL_PATH: usize = 4096 + 256;

/// A request target split into node and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The node's name or `host:port`, as the URL names it.
    pub node: String,
    /// Path inside that node's share, `a/b/c`, empty for the root.
    pub path: String,
}

/// Split `node/seg/seg…` (percent-encoded) into a [`Target`].
///
/// Refused with 403: a segment that decodes to `.`/`..`, or holds `/` (`%2F`), NUL, a line
/// break or other control character; an empty segment in the middle (`a//b`, which is how an
/// absolute path like `/files/n//etc/passwd` arrives); malformed escapes or non-UTF-8 bytes.
/// A trailing `/` is allowed (folders are linked that way).
pub fn split(raw: &str) -> Result<Target, WebError> {
    if raw.len() > MAX_URL_PATH {
        return Err(WebError::NotFound("path too long".into()));
    }
    let trimmed = raw.strip_suffix('/').unwrap_or(raw);
    let mut segments = trimmed.split('/');
    let node = decode_segment(segments.next().unwrap_or_default())?;
    if node.is_empty() {
        return Err(WebError::NotFound("no node named".into()));
    }
    let mut path = String::with_capacity(trimmed.len());
    for seg in segments {
        let seg = decode_segment(seg)?;
        if seg.is_empty() {
            return Err(WebError::Forbidden("empty path component"));
        }
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&seg);
    }
    Ok(Target { node, path })
}

/// Decode one percent-encoded segment and judge it.
pub(crate) fn decode_segment(seg: &str) -> Result<String, WebError> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(WebError::Forbidden("malformed percent-encoding"))?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let s = String::from_utf8(out).map_err(|_| WebError::Forbidden("path is not UTF-8"))?;
    if s == "." || s == ".." {
        return Err(WebError::Forbidden("'.' and '..' are not allowed"));
    }
    if s.contains('/') {
        return Err(WebError::Forbidden("encoded '/' in a path component"));
    }
    if s.chars().any(char::is_control) {
        return Err(WebError::Forbidden("control character in path"));
    }
    Ok(s)
}

/// Percent-encode a path for a URL: every byte except unreserved characters and `/`.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (String, String) {
        let t = split(raw).unwrap();
        (t.node, t.path)
    }

    fn forbidden(raw: &str) {
        assert!(
            matches!(split(raw), Err(WebError::Forbidden(_))),
            "{raw:?} was not refused: {:?}",
            split(raw)
        );
    }

    #[test]
    fn plain_paths() {
        assert_eq!(ok("cam1"), ("cam1".into(), "".into()));
        assert_eq!(ok("cam1/"), ("cam1".into(), "".into()));
        assert_eq!(ok("cam1/a/b.mp4"), ("cam1".into(), "a/b.mp4".into()));
        assert_eq!(ok("cam1/dir/"), ("cam1".into(), "dir".into()));
        assert_eq!(
            ok("127.0.0.1%3A4044/x%20y"),
            ("127.0.0.1:4044".into(), "x y".into())
        );
        assert_eq!(ok("n/%3Cb%3E.txt"), ("n".into(), "<b>.txt".into()));
    }

    #[test]
    fn hostile_paths() {
        for raw in [
            "n/../secret",
            "n/a/%2e%2e/b",
            "n/%2E%2E",
            "n/.",
            "n/..%2Fetc%2Fpasswd",
            "n/a%2Fb",
            "n/a%00b",
            "n//etc/passwd",
            "n/a//b",
            "n/a%0Ab",
            "n/%zz",
            "n/%4",
            "n/%ff%fe",
            "..",
        ] {
            forbidden(raw);
        }
        assert!(matches!(split(""), Err(WebError::NotFound(_))));
        assert!(matches!(
            split(&"a/".repeat(3000)),
            Err(WebError::NotFound(_))
        ));
    }

    #[test]
    fn encode_round_trip() {
        let name = "a b/<img src=x>.txt";
        let enc = encode_path(name);
        assert_eq!(enc, "a%20b/%3Cimg%20src%3Dx%3E.txt");
        assert_eq!(ok(&format!("n/{enc}")).1, name);
    }
}
