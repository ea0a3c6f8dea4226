//! HTTP `Range` (RFC 9110 §14) and validators (`ETag`, `If-None-Match`, `If-Range`), as pure
//! functions over header values so they can be tested without a socket.
//!
//! Only single byte ranges are served as `206`: several ranges would need
//! `multipart/byteranges`, which no video player asks for, so such a request gets the whole
//! file (`200`), as the RFC allows a server to do.

/// Longest `Range` header we look at; anything longer is ignored (answered with `200`).
const MAX_RANGE_HEADER: usize = 256;

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send the whole file with `200`.
    Full,
    /// Bytes `start..=end` (inclusive, both within the file): `206`.
    Partial { start: u64, end: u64 },
    /// A well-formed range that misses the file: `416` with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Judge a `Range` header value against a file of `size` bytes.
pub fn parse_range(header: &str, size: u64) -> RangeRequest {
    if header.len() > MAX_RANGE_HEADER {
        return RangeRequest::Full;
    }
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let Some(n) = num(last) else {
            return RangeRequest::Full;
        };
        if n == 0 || size == 0 {
            return RangeRequest::Unsatisfiable;
        }
        let n = n.min(size);
        return RangeRequest::Partial {
            start: size - n,
            end: size - 1,
        };
    }
    let Some(start) = num(first) else {
        return RangeRequest::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match num(last) {
            Some(e) if e >= start => e,
            // "bytes=5-2" is invalid syntax: ignore it.
            _ => return RangeRequest::Full,
        }
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial {
        start,
        end: end.min(size - 1),
    }
}

/// A strong entity tag from what identifies a version of a file: its size and modification
/// time. A file that grows while a camera records gets a new tag with every write.
pub fn etag(size: u64, mtime_ns: i64) -> String {
    format!("\"{size:x}-{mtime_ns:x}\"")
}

/// Does an `If-None-Match` value match `tag`? (Weak comparison, as RFC 9110 §13.1.2 requires.)
pub fn none_match(header: &str, tag: &str) -> bool {
    let tag = tag.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
}

/// Does an `If-Range` value still name this version? A strong tag must match exactly; a date
/// must equal `Last-Modified`. Anything else means "send the whole file".
pub fn if_range_holds(header: &str, tag: &str, last_modified: &str) -> bool {
    let header = header.trim();
    if header.starts_with('"') {
        header == tag
    } else if header.starts_with("W/") {
        false
    } else {
        header == last_modified
    }
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::*;
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), Partial { start: 0, end: 0 });
        assert_eq!(parse_range("bytes=2-5", 10), Partial { start: 2, end: 5 });
        assert_eq!(parse_range("bytes=2-", 10), Partial { start: 2, end: 9 });
        assert_eq!(parse_range("bytes=8-100", 10), Partial { start: 8, end: 9 });
        assert_eq!(parse_range("bytes=-3", 10), Partial { start: 7, end: 9 });
        assert_eq!(parse_range("bytes=-500", 10), Partial { start: 0, end: 9 });
        assert_eq!(
            parse_range(" bytes= 1 - 2 ", 10),
            Partial { start: 1, end: 2 }
        );
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
        for ignored in [
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
            "bytes",
        ] {
            assert_eq!(parse_range(ignored, 10), Full, "{ignored}");
        }
        assert_eq!(
            parse_range(&format!("bytes=0-{}", "1".repeat(300)), 10),
            Full
        );
    }

    #[test]
    fn validators() {
        let tag = etag(1234, 5678);
        assert_eq!(tag, "\"4d2-162e\"");
        assert!(none_match(&tag, &tag));
        assert!(none_match(&format!("\"x\", W/{tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"other\"", &tag));
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert!(if_range_holds(&tag, &tag, date));
        assert!(!if_range_holds("\"old\"", &tag, date));
        assert!(!if_range_holds(&format!("W/{tag}"), &tag, date));
        assert!(if_range_holds(date, &tag, date));
        assert!(!if_range_holds("Mon, 07 Nov 1994 08:49:37 GMT", &tag, date));
    }
}
