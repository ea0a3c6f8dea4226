//! Splitting the hub's byte stream into messages (protocols.md §3, the seed's framing).
//!
//! Every client writes into the one hub FIFO, so the hub reads a single byte stream made of:
//! - registrations `¶<path of the client's FIFO>` (no terminator: the seed relies on one message
//!   per `read`),
//! - messages `<client path>¶<text>`; an empty text is a disconnect.
//!
//! The seed assumes one message per `read`. A real hub cannot: two clients writing back to back
//! land in one `read`, and a long or slowly written message is cut across reads. So the framer
//! recognises where a message starts — `¶/` (a registration: client paths are absolute) or
//! `<known client path>¶` — and everything between two starts belongs to the first one. A message
//! start may only be recognised for paths registered before (or earlier in the same read), which
//! is why the framer keeps its own bounded set of known paths.
//!
//! Where the end of a read is ambiguous (a possible start cut in two, `path¶` whose text may still
//! come, a registration whose FIFO does not exist yet) the framer holds those few bytes back; the
//! hub calls [`Framer::flush`] when no more bytes arrived for a short while, which decides.
//! Held bytes are bounded by [`MAX_ID_LEN`]; a text is passed on as it arrives, never accumulated.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::client_id::ClientId;

/// The seed's separator, `¶` (U+00B6) in UTF-8.
pub const SEPARATOR: &[u8] = "¶".as_bytes();
/// Longest client path accepted (Linux `PATH_MAX`).
pub const MAX_ID_LEN: usize = 4096;
/// How many client paths the framer remembers to recognise message starts (oldest forgotten).
pub const MAX_KNOWN_IDS: usize = 1024;

/// One unit of the hub protocol, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `¶path`: a client asks to receive messages on its FIFO at `path`.
    Register(ClientId),
    /// Text sent by a client. A message cut across reads arrives as several `Text` frames from the
    /// same sender, in order.
    Text { from: ClientId, text: Bytes },
    /// `path¶` with nothing after it: the client leaves.
    Disconnect(ClientId),
    /// Bytes that belong to no valid message; they are dropped.
    Invalid { len: usize, reason: String },
}

/// Incremental framer: feed it each `read` with [`Framer::push`].
#[derive(Debug, Default)]
pub struct Framer {
    /// Bytes of the end of the previous read whose meaning depends on what follows.
    pending: Vec<u8>,
    /// Sender of the last text if that text may continue in the next read (it did not end a
    /// line). Unprefixed bytes at the start of a read continue it, however late they come: a
    /// writer of a long message may be descheduled mid-write.
    open: Option<ClientId>,
    known: KnownIds,
}

/// What the parser does after one step.
enum Step {
    /// Continue at this position.
    Next(usize),
    /// Keep `buf[pos..]` for the next read.
    Hold(usize),
    /// Everything consumed.
    Done,
}

impl Framer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Splits the bytes of one `read`. `registration_complete` tells whether a registration that
    /// ends exactly at the end of the read names a FIFO that exists (else it may be cut, and is
    /// held back until the next read or [`Framer::flush`]).
    pub fn push(
        &mut self,
        data: &[u8],
        registration_complete: impl Fn(&ClientId) -> bool,
    ) -> Vec<Frame> {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(data);
        self.run(&buf, false, &registration_complete)
    }

    /// Nothing more arrived for a while: decide on whatever was held back.
    pub fn flush(&mut self) -> Vec<Frame> {
        let buf = std::mem::take(&mut self.pending);
        self.run(&buf, true, &|_: &ClientId| true)
    }

    /// True when nothing is held back: no flush is needed.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Remember `id` as a message start without a registration frame (the single-client mode and
    /// tests use it).
    pub fn learn(&mut self, id: ClientId) {
        self.known.insert(id);
    }

    fn run(&mut self, buf: &[u8], last: bool, complete: &dyn Fn(&ClientId) -> bool) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut pos = 0;
        // (Nothing read: the open message stays open.)
        if !buf.is_empty()
            && let Some(from) = self.open.take()
            && !self.boundary_at(buf, 0)
        {
            match self.text(buf, 0, 0, from, false, last, &mut out) {
                Step::Next(p) => pos = p,
                Step::Hold(p) => {
                    self.pending = buf[p..].to_vec();
                    return out;
                }
                Step::Done => return out,
            }
        }
        while pos < buf.len() {
            match self.message(buf, pos, last, complete, &mut out) {
                Step::Next(p) => pos = p,
                Step::Hold(p) => {
                    self.pending = buf[p..].to_vec();
                    break;
                }
                Step::Done => break,
            }
        }
        out
    }

    /// Parses the message starting at `pos`.
    fn message(
        &mut self,
        buf: &[u8],
        pos: usize,
        last: bool,
        complete: &dyn Fn(&ClientId) -> bool,
        out: &mut Vec<Frame>,
    ) -> Step {
        let rest = &buf[pos..];
        if rest.starts_with(SEPARATOR) {
            return self.registration(buf, pos, last, complete, out);
        }
        if SEPARATOR.starts_with(rest) {
            // Half a separator at the very end.
            if last {
                out.push(invalid(rest.len(), "half a separator"));
                return Step::Done;
            }
            return Step::Hold(pos);
        }
        let Some(q) = find_sep(buf, pos, (pos + MAX_ID_LEN + 1).min(buf.len())) else {
            if !last && buf.len() - pos <= MAX_ID_LEN + 1 {
                // Maybe the start of `path¶` cut by the end of the read.
                return Step::Hold(pos);
            }
            let next = self.next_boundary(buf, pos + 1);
            out.push(invalid(
                next - pos,
                "bytes outside any message (no `path¶` prefix)",
            ));
            return Step::Next(next);
        };
        // Stray bytes followed by a real message start: drop the stray part only.
        let next = self.next_boundary(buf, pos + 1);
        if next < q {
            out.push(invalid(next - pos, "bytes outside any message"));
            return Step::Next(next);
        }
        match ClientId::new(&buf[pos..q]) {
            Ok(from) => self.text(buf, pos, q + SEPARATOR.len(), from, true, last, out),
            Err(e) => {
                // `junk¶/path`: the separator starts a registration, keep it.
                let next = if self.boundary_at(buf, q) {
                    q
                } else {
                    self.next_boundary(buf, q + SEPARATOR.len())
                };
                out.push(invalid(next - pos, &format!("bad message prefix: {e}")));
                Step::Next(next)
            }
        }
    }

    /// The text of `from` starting at `start` (`fresh`: its `path¶` prefix began at `msg_start`
    /// in this buffer; otherwise it continues a text of the previous read).
    #[allow(clippy::too_many_arguments)]
    fn text(
        &mut self,
        buf: &[u8],
        msg_start: usize,
        start: usize,
        from: ClientId,
        fresh: bool,
        last: bool,
        out: &mut Vec<Frame>,
    ) -> Step {
        let end = self.next_boundary(buf, start);
        if end < buf.len() {
            emit(out, from, &buf[start..end], fresh);
            return Step::Next(end);
        }
        if last {
            let text = &buf[start..end];
            if !text.is_empty() && !text.ends_with(b"\n") {
                self.open = Some(from.clone());
            }
            emit(out, from, text, fresh);
            return Step::Done;
        }
        // The text runs to the end of the read: it may continue in the next one.
        let held = self.ambiguous_tail(buf, start);
        if held == start && fresh {
            // `path¶` and nothing sure yet: a disconnect, or a text still to come.
            return Step::Hold(msg_start);
        }
        let text = &buf[start..held];
        if !text.is_empty() {
            emit(out, from.clone(), text, false);
        }
        // A text ending a line is complete (what a terminal sends); otherwise more may follow.
        if held < buf.len() || !text.ends_with(b"\n") {
            self.open = Some(from);
        }
        Step::Hold(held)
    }

    /// The registration `¶path…` at `pos`.
    fn registration(
        &mut self,
        buf: &[u8],
        pos: usize,
        last: bool,
        complete: &dyn Fn(&ClientId) -> bool,
        out: &mut Vec<Frame>,
    ) -> Step {
        let start = pos + SEPARATOR.len();
        let (end, next) = self.registration_end(buf, start);
        if next >= buf.len() && !last {
            // Ends with the read: complete only if it names an existing FIFO.
            let cut = buf.ends_with(&SEPARATOR[..1]);
            let whole = !cut && ClientId::new(&buf[start..end]).is_ok_and(|id| complete(&id));
            if !whole && buf.len() - pos <= MAX_ID_LEN + SEPARATOR.len() {
                return Step::Hold(pos);
            }
        }
        match ClientId::new(&buf[start..end]) {
            Ok(id) => {
                self.known.insert(id.clone());
                out.push(Frame::Register(id));
            }
            Err(e) => out.push(invalid(next - pos, &format!("bad registration: {e}"))),
        }
        if next >= buf.len() {
            Step::Done
        } else {
            Step::Next(next)
        }
    }

    /// End of the path of a registration starting at `start`, and where the next message starts.
    /// The path ends at a newline (`echo ¶/path > hub`), at the next message start, or where the
    /// client's own first message follows (`¶/a/a¶hi`: the path repeated then `¶`).
    fn registration_end(&self, buf: &[u8], start: usize) -> (usize, usize) {
        let boundary = self.next_boundary(buf, start + 1);
        // A path is at most MAX_ID_LEN bytes: look no further for its newline.
        let window = boundary.min(start + MAX_ID_LEN + 1);
        let newline = buf[start..window]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| start + i);
        let end = newline.map_or(boundary, |n| n.min(boundary));
        // Paths hold no separator, so only the first one can close `path path¶`.
        if let Some(sep) = find_sep(buf, start, end) {
            let len = sep - start;
            if len % 2 == 0 && len > 0 && buf[start..start + len / 2] == buf[start + len / 2..sep] {
                return (start + len / 2, start + len / 2);
            }
        }
        if newline == Some(end) {
            return (end, end + 1);
        }
        (end, end)
    }

    /// Is `buf[p..]` the start of a message: `¶/` or `<known path>¶`?
    fn boundary_at(&self, buf: &[u8], p: usize) -> bool {
        let rest = &buf[p..];
        if rest.starts_with(SEPARATOR) && rest.get(SEPARATOR.len()) == Some(&b'/') {
            return true;
        }
        rest.first() == Some(&b'/')
            && find_sep(buf, p, (p + MAX_ID_LEN + 1).min(buf.len()))
                .is_some_and(|q| self.known.contains(&buf[p..q]))
    }

    /// The first message start at or after `from`, or `buf.len()`.
    fn next_boundary(&self, buf: &[u8], from: usize) -> usize {
        // Scan the separators: a start is a known path just before one, or `¶/`. Paths never
        // contain the separator, so the first separator with a candidate gives the first start.
        let mut q = from;
        while let Some(sep) = find_sep(buf, q, buf.len()) {
            if let Some(p) = self.known.ending_at(buf, sep, from) {
                return p;
            }
            if sep >= from && buf.get(sep + SEPARATOR.len()) == Some(&b'/') {
                return sep;
            }
            q = sep + 1;
        }
        buf.len()
    }

    /// Where the bytes that could still become a message start begin, in the text `buf[start..]`
    /// that runs to the end of the read (`buf.len()` if none).
    fn ambiguous_tail(&self, buf: &[u8], start: usize) -> usize {
        let len = buf.len();
        let mut held = len;
        if buf[start..].ends_with(SEPARATOR) {
            held = len - SEPARATOR.len(); // `¶` then maybe `/`
        } else if buf[start..].ends_with(&SEPARATOR[..1]) {
            held = len - 1;
        }
        let from = start.max(len.saturating_sub(self.known.max_len() + SEPARATOR.len()));
        for t in from..len {
            if buf[t] != b'/' || t >= held {
                continue;
            }
            let mut tail = &buf[t..];
            let cut_sep = tail.ends_with(&SEPARATOR[..1]);
            if cut_sep {
                tail = &tail[..tail.len() - 1];
            }
            if self.known.has_prefix(tail, cut_sep) {
                held = t;
                break;
            }
        }
        held
    }
}

/// Pushes the frame for `text` from `from`: an empty fresh message is a disconnect.
fn emit(out: &mut Vec<Frame>, from: ClientId, text: &[u8], fresh: bool) {
    if text.is_empty() {
        if fresh {
            out.push(Frame::Disconnect(from));
        }
    } else {
        out.push(Frame::Text {
            from,
            text: Bytes::copy_from_slice(text),
        });
    }
}

fn invalid(len: usize, reason: &str) -> Frame {
    Frame::Invalid {
        len,
        reason: reason.to_owned(),
    }
}

/// First separator starting in `buf[from..limit]` (it may extend past `limit`).
fn find_sep(buf: &[u8], from: usize, limit: usize) -> Option<usize> {
    let end = limit.min(buf.len().saturating_sub(1));
    (from..end).find(|&i| buf[i] == SEPARATOR[0] && buf[i + 1] == SEPARATOR[1])
}

/// The bounded set of client paths that start messages.
///
/// Finding which known path ends right before a separator must stay cheap whatever the input:
/// a text full of separators, hundreds of paths of different lengths. So each path also has a
/// fingerprint (a polynomial hash of its bytes read backwards, mixed with its length) and
/// [`KnownIds::ending_at`] walks back from the separator once, updating the hash byte by byte and
/// stopping at the previous separator (paths never contain one): linear in the input overall.
#[derive(Debug, Default)]
struct KnownIds {
    /// Ordered, so "is this the start of a known path" is one range lookup.
    set: BTreeSet<ClientId>,
    order: VecDeque<ClientId>,
    /// Path length → how many known paths have it.
    lengths: BTreeMap<usize, usize>,
    /// Fingerprint → how many known paths have it.
    fingerprints: BTreeMap<u64, usize>,
}

/// Base of the backwards polynomial hash.
const HASH_BASE: u64 = 0x0000_0100_0000_01b3;

/// One step of the backwards hash: the hash of `b` followed by the `k - 1` bytes hashed so far
/// (`pow` = `HASH_BASE^(k-1)`).
fn hash_step(hash: u64, pow: u64, b: u8) -> u64 {
    hash.wrapping_add(u64::from(b).wrapping_add(1).wrapping_mul(pow))
}

fn fingerprint(hash: u64, len: usize) -> u64 {
    hash ^ (len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn fingerprint_of(bytes: &[u8]) -> u64 {
    let (mut hash, mut pow) = (0u64, 1u64);
    for &b in bytes.iter().rev() {
        hash = hash_step(hash, pow, b);
        pow = pow.wrapping_mul(HASH_BASE);
    }
    fingerprint(hash, bytes.len())
}

impl KnownIds {
    fn insert(&mut self, id: ClientId) {
        if self.set.contains(&id) {
            return;
        }
        if self.order.len() >= MAX_KNOWN_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
            decrement(&mut self.lengths, old.as_bytes().len());
            decrement(&mut self.fingerprints, fingerprint_of(old.as_bytes()));
        }
        *self.lengths.entry(id.as_bytes().len()).or_default() += 1;
        *self
            .fingerprints
            .entry(fingerprint_of(id.as_bytes()))
            .or_default() += 1;
        self.order.push_back(id.clone());
        self.set.insert(id);
    }

    fn contains(&self, bytes: &[u8]) -> bool {
        self.set.contains(bytes)
    }

    fn max_len(&self) -> usize {
        self.lengths.keys().next_back().copied().unwrap_or(0)
    }

    /// Start of the longest known path that ends right before the separator at `sep` and starts at
    /// or after `from`.
    fn ending_at(&self, buf: &[u8], sep: usize, from: usize) -> Option<usize> {
        let longest = self.max_len().min(sep.saturating_sub(from));
        let (mut hash, mut pow) = (0u64, 1u64);
        let mut found = None;
        for k in 1..=longest {
            let p = sep - k;
            if buf[p..].starts_with(SEPARATOR) {
                break; // no path spans a separator
            }
            hash = hash_step(hash, pow, buf[p]);
            pow = pow.wrapping_mul(HASH_BASE);
            if buf[p] == b'/'
                && self.fingerprints.contains_key(&fingerprint(hash, k))
                && self.set.contains(&buf[p..sep])
            {
                found = Some(p);
            }
        }
        found
    }

    /// Could `tail` be the start of `<known path>¶`? (`whole`: it must be a full path, the
    /// separator having begun after it.)
    fn has_prefix(&self, tail: &[u8], whole: bool) -> bool {
        if whole {
            return self.set.contains(tail);
        }
        use std::ops::Bound;
        self.set
            .range::<[u8], _>((Bound::Included(tail), Bound::Unbounded))
            .next()
            .is_some_and(|id| id.as_bytes().starts_with(tail))
    }
}

/// Counts one key less, forgetting it at zero.
fn decrement<K: Ord>(map: &mut BTreeMap<K, usize>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id(s: &str) -> ClientId {
        ClientId::new(s.as_bytes()).unwrap()
    }

    fn text(from: &str, t: &str) -> Frame {
        Frame::Text {
            from: id(from),
            text: Bytes::copy_from_slice(t.as_bytes()),
        }
    }

    fn push(f: &mut Framer, s: &str) -> Vec<Frame> {
        f.push(s.as_bytes(), |_| true)
    }

    /// A framer that already knows the given clients.
    fn knowing(ids: &[&str]) -> Framer {
        let mut f = Framer::new();
        for i in ids {
            f.learn(id(i));
        }
        f
    }

    #[test]
    fn seed_messages_one_per_read() {
        let mut f = Framer::new();
        assert_eq!(
            push(&mut f, "¶/tmp/clienta1"),
            vec![Frame::Register(id("/tmp/clienta1"))]
        );
        assert_eq!(
            push(&mut f, "/tmp/clienta1¶hello\n"),
            vec![text("/tmp/clienta1", "hello\n")]
        );
        assert!(f.is_idle());
        // The seed's ^D / ^C: prefix and nothing else. Held until we know nothing follows.
        assert_eq!(push(&mut f, "/tmp/clienta1¶"), vec![]);
        assert!(!f.is_idle());
        assert_eq!(f.flush(), vec![Frame::Disconnect(id("/tmp/clienta1"))]);
        assert!(f.is_idle());
    }

    #[test]
    fn two_messages_in_one_read() {
        let mut f = knowing(&["/tmp/a", "/tmp/b"]);
        assert_eq!(
            push(&mut f, "/tmp/a¶one\n/tmp/b¶two\n"),
            vec![text("/tmp/a", "one\n"), text("/tmp/b", "two\n")]
        );
        // Without trailing newlines too (the message ends where the next prefix starts).
        assert_eq!(
            push(&mut f, "/tmp/b¶x/tmp/a¶y\n"),
            vec![text("/tmp/b", "x"), text("/tmp/a", "y\n")]
        );
    }

    #[test]
    fn disconnect_followed_by_other_message() {
        let mut f = knowing(&["/tmp/a", "/tmp/b"]);
        assert_eq!(
            push(&mut f, "/tmp/a¶/tmp/b¶hi\n"),
            vec![Frame::Disconnect(id("/tmp/a")), text("/tmp/b", "hi\n")]
        );
    }

    #[test]
    fn registrations_back_to_back_and_with_first_message() {
        let mut f = knowing(&["/tmp/b"]);
        assert_eq!(
            push(&mut f, "¶/tmp/a¶/tmp/c/tmp/b¶yo\n"),
            vec![
                Frame::Register(id("/tmp/a")),
                Frame::Register(id("/tmp/c")),
                text("/tmp/b", "yo\n")
            ]
        );
        // Register then immediately talk, in one write.
        let mut f = Framer::new();
        assert_eq!(
            push(&mut f, "¶/tmp/d/tmp/d¶hi\n"),
            vec![Frame::Register(id("/tmp/d")), text("/tmp/d", "hi\n")]
        );
        // A newline ends a registration (`echo ¶/path > hub`).
        assert_eq!(
            push(&mut f, "¶/tmp/e\n/tmp/e¶x\n"),
            vec![Frame::Register(id("/tmp/e")), text("/tmp/e", "x\n")]
        );
    }

    #[test]
    fn message_cut_across_reads_is_joined() {
        let mut f = knowing(&["/tmp/a", "/tmp/b"]);
        // Text cut: the first part goes out at once, the rest continues the same sender.
        assert_eq!(push(&mut f, "/tmp/a¶hel"), vec![text("/tmp/a", "hel")]);
        assert_eq!(
            push(&mut f, "lo\n/tmp/b¶x\n"),
            vec![text("/tmp/a", "lo\n"), text("/tmp/b", "x\n")]
        );
        // Prefix cut.
        assert_eq!(push(&mut f, "/tmp/"), vec![]);
        assert_eq!(push(&mut f, "b¶yes\n"), vec![text("/tmp/b", "yes\n")]);
        // Separator cut in the middle of its two bytes.
        let sep = SEPARATOR;
        let mut first = b"/tmp/a".to_vec();
        first.push(sep[0]);
        assert_eq!(f.push(&first, |_| true), vec![]);
        let mut second = vec![sep[1]];
        second.extend_from_slice(b"ok\n");
        assert_eq!(f.push(&second, |_| true), vec![text("/tmp/a", "ok\n")]);
        // The next sender's prefix cut after a text.
        assert_eq!(
            push(&mut f, "/tmp/a¶one\n/tmp/"),
            vec![text("/tmp/a", "one\n")]
        );
        assert_eq!(push(&mut f, "b¶two\n"), vec![text("/tmp/b", "two\n")]);
        // Prefix complete but text not yet: not a disconnect.
        assert_eq!(push(&mut f, "/tmp/b¶"), vec![]);
        assert_eq!(push(&mut f, "later\n"), vec![text("/tmp/b", "later\n")]);
        assert!(f.is_idle());
    }

    #[test]
    fn open_text_continues_even_after_a_flush() {
        let mut f = knowing(&["/tmp/a"]);
        assert_eq!(
            push(&mut f, "/tmp/a¶no newline"),
            vec![text("/tmp/a", "no newline")]
        );
        assert_eq!(push(&mut f, " yet\n"), vec![text("/tmp/a", " yet\n")]);
        assert_eq!(push(&mut f, "/tmp/a¶abc"), vec![text("/tmp/a", "abc")]);
        assert!(f.is_idle(), "nothing held back: no flush needed");
        assert_eq!(f.flush(), vec![]);
        // A long write resumed late: still the same message.
        assert_eq!(push(&mut f, "def\n"), vec![text("/tmp/a", "def\n")]);
        // After a complete line, unprefixed bytes belong to nobody.
        assert_eq!(push(&mut f, "stray"), vec![]);
        assert!(!f.is_idle());
        assert!(matches!(
            f.flush().as_slice(),
            [Frame::Invalid { len: 5, .. }]
        ));
        // A held tail decided by a flush keeps the message open too.
        assert_eq!(push(&mut f, "/tmp/a¶x /tmp/"), vec![text("/tmp/a", "x ")]);
        assert_eq!(f.flush(), vec![text("/tmp/a", "/tmp/")]);
        assert_eq!(push(&mut f, "z\n"), vec![text("/tmp/a", "z\n")]);
    }

    #[test]
    fn registration_cut_across_reads() {
        let mut f = Framer::new();
        // The FIFO does not exist (yet): the path may be cut, hold it.
        assert_eq!(f.push("¶/tmp/cli".as_bytes(), |_| false), vec![]);
        assert_eq!(
            f.push(b"ent9", |i| i.as_bytes() == b"/tmp/client9"),
            vec![Frame::Register(id("/tmp/client9"))]
        );
        // A flush decides for a registration that never completes.
        assert_eq!(f.push("¶/tmp/none".as_bytes(), |_| false), vec![]);
        assert_eq!(f.flush(), vec![Frame::Register(id("/tmp/none"))]);
    }

    #[test]
    fn separator_inside_text_is_text() {
        let mut f = knowing(&["/tmp/a"]);
        assert_eq!(
            push(&mut f, "/tmp/a¶price¶ 5 ¶x /unknown¶y\n"),
            vec![text("/tmp/a", "price¶ 5 ¶x /unknown¶y\n")]
        );
    }

    #[test]
    fn bad_input_is_reported_and_skipped() {
        let mut f = knowing(&["/tmp/a"]);
        // Garbage before a real message: only the garbage is dropped.
        let frames = push(&mut f, "garbage/tmp/a¶hi\n");
        assert!(
            matches!(&frames[0], Frame::Invalid { len: 7, .. }),
            "{frames:?}"
        );
        assert_eq!(frames[1], text("/tmp/a", "hi\n"));
        // Relative registration.
        let frames = push(&mut f, "¶relative\n/tmp/a¶x\n");
        assert!(matches!(&frames[0], Frame::Invalid { .. }), "{frames:?}");
        assert_eq!(frames[1], text("/tmp/a", "x\n"));
        // Junk glued to a registration: the registration survives.
        let frames = push(&mut f, "junk¶/tmp/b\n");
        assert!(
            matches!(&frames[0], Frame::Invalid { len: 4, .. }),
            "{frames:?}"
        );
        assert_eq!(frames[1], Frame::Register(id("/tmp/b")));
        // A message from a path never registered is still framed (the hub ignores it).
        assert_eq!(push(&mut f, "/tmp/zz¶q\n"), vec![text("/tmp/zz", "q\n")]);
        // No separator at all, longer than any path: dropped at once, nothing held.
        let junk = "x".repeat(MAX_ID_LEN + 10);
        let frames = push(&mut f, &junk);
        assert!(
            matches!(frames.as_slice(), [Frame::Invalid { .. }]),
            "{frames:?}"
        );
        assert!(f.is_idle());
        // Overlong registration.
        let long = format!("¶/{}", "x".repeat(MAX_ID_LEN + 10));
        let frames = push(&mut f, &long);
        assert!(
            matches!(frames.as_slice(), [Frame::Invalid { .. }]),
            "{frames:?}"
        );
        assert!(f.is_idle());
    }

    #[test]
    fn held_bytes_stay_bounded() {
        let mut f = Framer::new();
        for _ in 0..100 {
            let _ = f.push(&[b'/'; 1000], |_| true);
            assert!(f.pending.len() <= MAX_ID_LEN + SEPARATOR.len());
        }
    }

    #[test]
    fn hostile_reads_cost_linear_time() {
        // Many known paths of different lengths, and reads built to make a naive matcher
        // quadratic: separators everywhere, slashes everywhere, registrations without end.
        let mut f = Framer::new();
        for n in 1..MAX_KNOWN_IDS {
            f.learn(id(&format!("/{}", "a".repeat(n))));
        }
        let hostile = [
            "/¶".repeat(20_000),
            format!("/{}¶", "a".repeat(500)).repeat(120),
            "/".repeat(64 * 1024),
            "¶/a".repeat(20_000),
            format!("/{}¶{}", "a".repeat(10), "¶x/".repeat(20_000)),
        ];
        let started = std::time::Instant::now();
        for input in &hostile {
            for _ in 0..10 {
                let _ = f.push(input.as_bytes(), |_| true);
                let _ = f.flush();
                assert!(f.pending.len() <= MAX_ID_LEN + SEPARATOR.len());
            }
        }
        // Linear work is milliseconds even unoptimised; a quadratic matcher takes minutes.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn random_streams_never_panic_and_hold_little() {
        // Pieces that make the parser's corners meet: separators, half separators, paths
        // (known or not), newlines, registrations.
        let pieces: [&[u8]; 10] = [
            "¶".as_bytes(),
            &[0xC2],
            &[0xB6],
            b"/tmp/a",
            b"/tmp/b",
            b"/tmp/",
            b"\n",
            b"x",
            "¶/tmp/c".as_bytes(),
            b"/",
        ];
        let mut seed: u64 = 0x5eed;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % n
        };
        for _ in 0..2000 {
            let mut f = knowing(&["/tmp/a", "/tmp/b"]);
            let mut stream = Vec::new();
            for _ in 0..next(40) {
                stream.extend_from_slice(pieces[next(pieces.len())]);
            }
            let mut at = 0;
            while at < stream.len() {
                let len = 1 + next(stream.len() - at);
                let complete = next(2) == 0;
                let _ = f.push(&stream[at..at + len], |_| complete);
                assert!(f.pending.len() <= MAX_ID_LEN + SEPARATOR.len());
                if next(3) == 0 {
                    let _ = f.flush();
                }
                at += len;
            }
            let _ = f.flush();
            assert!(f.is_idle());
        }
    }

    #[test]
    fn known_ids_are_bounded() {
        let mut k = KnownIds::default();
        for i in 0..MAX_KNOWN_IDS + 10 {
            k.insert(id(&format!("/tmp/c{i}")));
        }
        assert_eq!(k.set.len(), MAX_KNOWN_IDS);
        assert!(!k.contains(b"/tmp/c0"));
        assert!(k.contains(format!("/tmp/c{}", MAX_KNOWN_IDS + 9).as_bytes()));
    }

    #[test]
    fn every_split_point_gives_the_same_messages() {
        let stream = "¶/tmp/a/tmp/a¶héllo\n¶/tmp/b/tmp/b¶wörld\n/tmp/a¶\n/tmp/b¶";
        let mut whole = Framer::new();
        let mut expected = whole.push(stream.as_bytes(), |_| true);
        expected.extend(whole.flush());
        assert_eq!(
            expected,
            vec![
                Frame::Register(id("/tmp/a")),
                text("/tmp/a", "héllo\n"),
                Frame::Register(id("/tmp/b")),
                text("/tmp/b", "wörld\n"),
                text("/tmp/a", "\n"),
                Frame::Disconnect(id("/tmp/b")),
            ]
        );
        let bytes = stream.as_bytes();
        for cut in 1..bytes.len() {
            let mut f = Framer::new();
            let mut got = f.push(&bytes[..cut], |_| false);
            got.extend(f.push(&bytes[cut..], |_| false));
            got.extend(f.flush());
            assert_eq!(merge(got), merge(expected.clone()), "cut at {cut}");
        }
    }

    /// Joins consecutive texts of the same sender (a cut text arrives in pieces).
    fn merge(frames: Vec<Frame>) -> Vec<Frame> {
        let mut out: Vec<Frame> = Vec::new();
        for f in frames {
            if let (Some(Frame::Text { from: a, text: t }), Frame::Text { from: b, text: u }) =
                (out.last_mut(), &f)
                && a == b
            {
                let mut joined = t.to_vec();
                joined.extend_from_slice(u);
                *t = Bytes::from(joined);
                continue;
            }
            out.push(f);
        }
        out
    }
}
