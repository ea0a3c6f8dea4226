//! A long recording made from a short one: the clusters of a small WebM clip repeated, each
//! copy's timecodes shifted past the last, under the clip's own header and tracks. The result
//! is a real video of any length (every frame decodable, time always advancing), so a test can
//! put a camera-sized file in front of a browser without a video tool on the machine.

use std::io::Write;

const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const CLUSTER: u32 = 0x1F43_B675;
const TIMECODE: u32 = 0xE7;
const DURATION: u32 = 0x4489;

/// One EBML element: its ID, where its body starts and ends in the file.
struct Element {
    id: u32,
    start: usize,
    body: usize,
    end: usize,
}

/// An EBML variable-length integer at `at`: its value (with the length marker kept when
/// `raw`, as IDs are written) and its length in bytes.
fn vint(b: &[u8], at: usize, raw: bool) -> (u64, usize) {
    let first = b[at];
    let len = first.leading_zeros() as usize + 1;
    assert!(len <= 8, "not an EBML number at {at}");
    let mut v = if raw {
        u64::from(first)
    } else {
        u64::from(first) & (0xFF >> len)
    };
    for k in 1..len {
        v = (v << 8) | u64::from(b[at + k]);
    }
    (v, len)
}

/// The elements from `at` to `end`, each with a known size (as a muxer writes a file).
fn children(b: &[u8], mut at: usize, end: usize) -> Vec<Element> {
    let mut out = Vec::new();
    while at < end {
        let (id, n) = vint(b, at, true);
        let (size, m) = vint(b, at + n, false);
        assert!(size != (1 << (7 * m)) - 1, "unknown size at {at}");
        let body = at + n + m;
        let stop = body + usize::try_from(size).unwrap();
        out.push(Element {
            id: u32::try_from(id).unwrap(),
            start: at,
            body,
            end: stop,
        });
        at = stop;
    }
    out
}

/// `id` then `size` as an 8-byte EBML number.
fn header(id: u32, size: u64) -> Vec<u8> {
    let mut h: Vec<u8> = id
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    h.push(0x01);
    h.extend_from_slice(&size.to_be_bytes()[1..]);
    h
}

/// Write to `out` a video made of `clip` (a WebM file with known element sizes) repeated
/// until it is at least `min_len` bytes long; returns its length. The segment's size is
/// written as unknown (as a live recording's is), its duration as the new length.
pub fn lengthen(clip: &[u8], min_len: u64, out: &mut impl Write) -> u64 {
    let top = children(clip, 0, clip.len());
    let segment = top.iter().find(|e| e.id == SEGMENT).expect("a Segment");
    let parts = children(clip, segment.body, segment.end);
    let clusters: Vec<&Element> = parts.iter().filter(|e| e.id == CLUSTER).collect();
    // Each cluster's timecode (milliseconds at the default scale) and the rest of its body.
    let timed: Vec<(u64, &[u8])> = clusters
        .iter()
        .map(|c| {
            let first = &children(clip, c.body, c.end)[0];
            assert_eq!(first.id, TIMECODE, "a cluster starts with its timecode");
            let tc = clip[first.body..first.end]
                .iter()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b));
            (tc, &clip[first.end..c.end])
        })
        .collect();
    let [.., (before_last, _), (last, _)] = timed.as_slice() else {
        panic!("the clip needs two clusters");
    };
    // One copy lasts until the last cluster's end, taken as long as the one before it.
    let period = last + (last - before_last) - timed[0].0;
    // A cluster's header (12 bytes) and its timecode (6 bytes) before the rest of it.
    let copy_len: u64 = timed.iter().map(|(_, rest)| 18 + rest.len() as u64).sum();
    let copies = min_len.div_ceil(copy_len).max(1);

    let mut written = 0u64;
    let mut put = |bytes: &[u8]| {
        out.write_all(bytes).unwrap();
        written += bytes.len() as u64;
    };
    put(&clip[..segment.start]); // the EBML header
    put(&header(SEGMENT, u64::MAX >> 8)); // 0x01FF…FF: unknown size
    for part in parts.iter().filter(|e| e.id == INFO || e.id == TRACKS) {
        let mut bytes = clip[part.start..part.end].to_vec();
        if part.id == INFO {
            set_duration(&mut bytes, clip, part, (copies * period) as f64);
        }
        put(&bytes);
    }
    for copy in 0..copies {
        for (tc, rest) in &timed {
            let shifted = u32::try_from(tc + copy * period).unwrap();
            put(&header(CLUSTER, 4 + 2 + rest.len() as u64)[..]);
            put(&[TIMECODE as u8, 0x84]);
            put(&shifted.to_be_bytes());
            put(rest);
        }
    }
    written
}

/// Rewrite the Duration float of the Info element `info` (copied into `bytes`) to `ms`.
fn set_duration(bytes: &mut [u8], clip: &[u8], info: &Element, ms: f64) {
    for e in children(clip, info.body, info.end) {
        if e.id != DURATION {
            continue;
        }
        let at = e.body - info.start;
        match e.end - e.body {
            8 => bytes[at..at + 8].copy_from_slice(&ms.to_be_bytes()),
            4 => bytes[at..at + 4].copy_from_slice(&(ms as f32).to_be_bytes()),
            n => panic!("a Duration of {n} bytes"),
        }
    }
}
