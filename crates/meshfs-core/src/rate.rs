//! Bandwidth limits a node keeps (issue 19): a token bucket shared by every connection a limit
//! covers, and the per-connection handle each door charges its file bytes to.
//!
//! - [`UploadLimits`]: what the node serves under — one bucket for the whole node
//!   (`--max-upload-rate`) and one per client (`--max-upload-rate-per-client`), a client being
//!   the node or user ID its TLS certificate proves, else its IP address ([`ClientKey`]).
//! - [`Limiter`]: one connection's (or one replication's) handle: the buckets its bytes are
//!   charged to. Doors send file content in [`Limiter::slice`]-sized pieces and call
//!   [`Limiter::take`] before each; an unlimited limiter holds no bucket, answers at once and
//!   leaves the door's fast path (one `sendfile` for a whole payload) as it was.
//!
//! The bucket is a virtual-time scheduler (the generic cell rate algorithm): it keeps `due`,
//! the instant by which everything reserved so far would have gone at the rate. A caller
//! reserves its bytes under a short lock (never held across an await), moving `due` on by
//! `bytes / rate`, and sleeps until `due - burst`. So:
//! - callers are served in the order they asked, a slice each: connections sharing a bucket
//!   take turns, whatever their number (fair, and no busy loop: one timer per waiting slice);
//! - over any interval `T`, at most `rate × T + rate × BURST` bytes are let through (plus the
//!   slice in flight), because `due` never lags the clock by more than [`BURST`]: an idle
//!   bucket saves at most that much;
//! - timer lateness (tokio's timers fire on millisecond ticks) is absorbed by the burst, so
//!   the long-run rate is the limit, not less.
//!
//! A reservation whose caller gives up (the client left while it waited) is not refunded: the
//! bucket then under-spends by one slice, never over-spends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::NodeId;

/// How much an idle bucket saves: this long at its full rate.
pub const BURST: Duration = Duration::from_millis(100);
/// Smallest piece a limited door sends between two reservations.
const MIN_SLICE: u64 = 16 << 10;
/// Largest piece: at most about 1/16 of a second at the rate, and never more than this, so
/// connections sharing a bucket interleave finely.
const MAX_SLICE: u64 = 256 << 10;
/// Idle client buckets are forgotten once the table holds this many (and then whenever it
/// has doubled since the last sweep): a client that comes back after its bucket went idle
/// is exactly where a fresh bucket would be.
const SWEEP_AT: usize = 256;

/// A rate in bytes per second shared by everything charged to it.
#[derive(Debug)]
pub struct Bucket {
    /// Bytes per second (at least 1).
    rate: u64,
    /// When everything reserved so far would have gone at `rate`.
    due: Mutex<Instant>,
}

impl Bucket {
    pub fn new(rate: u64) -> Bucket {
        Bucket {
            rate: rate.max(1),
            due: Mutex::new(Instant::now()),
        }
    }

    /// Bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The piece a door sends between two reservations on this bucket.
    pub fn slice(&self) -> u64 {
        (self.rate / 16).clamp(MIN_SLICE, MAX_SLICE)
    }

    fn due(&self) -> MutexGuard<'_, Instant> {
        self.due.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserve `n` bytes asked for at `now`: the instant they may be sent (`now` or later).
    fn reserve(&self, n: u64, now: Instant) -> Instant {
        let cost = Duration::from_secs_f64(n as f64 / self.rate as f64);
        let mut due = self.due();
        // An idle bucket does not save more than BURST: it restarts from now.
        *due = (*due).max(now) + cost;
        let allowed = *due - BURST.min(*due - now);
        allowed.max(now)
    }

    /// Wait until `n` more bytes may be sent.
    pub async fn take(&self, n: u64) {
        let now = Instant::now();
        let at = self.reserve(n, now);
        if at > now {
            tokio::time::sleep_until(at).await;
        }
    }

    /// Nothing is reserved beyond `now`: the bucket is as a fresh one would be.
    fn idle(&self, now: Instant) -> bool {
        *self.due() <= now
    }
}

/// Who a per-client limit counts bytes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The node or user ID a client proved with its TLS certificate: every connection of that
    /// identity shares one bucket, from any address.
    Id(NodeId),
    /// The client's IP address, for clients in clear or without a certificate (an IPv4
    /// address mapped into IPv6 counts as the IPv4 address).
    Ip(IpAddr),
}

impl ClientKey {
    /// The ID when the client proved one, else its address.
    pub fn of(id: Option<NodeId>, ip: IpAddr) -> ClientKey {
        match id {
            Some(id) => ClientKey::Id(id),
            None => ClientKey::Ip(ip.to_canonical()),
        }
    }
}

/// The upload limits of a node, shared by all its doors (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct UploadLimits {
    node: Option<Arc<Bucket>>,
    per_client: Option<Arc<PerClient>>,
}

#[derive(Debug)]
struct PerClient {
    rate: u64,
    table: Mutex<ClientTable>,
}

#[derive(Debug, Default)]
struct ClientTable {
    buckets: HashMap<ClientKey, Arc<Bucket>>,
    sweep_at: usize,
}

impl UploadLimits {
    /// Limits in bytes per second for the whole node and for each client (`None`: none).
    pub fn new(node: Option<u64>, per_client: Option<u64>) -> UploadLimits {
        UploadLimits {
            node: node.map(|r| Arc::new(Bucket::new(r))),
            per_client: per_client.map(|rate| {
                Arc::new(PerClient {
                    rate,
                    table: Mutex::new(ClientTable {
                        buckets: HashMap::new(),
                        sweep_at: SWEEP_AT,
                    }),
                })
            }),
        }
    }

    /// No limit at all.
    pub fn unlimited() -> UploadLimits {
        UploadLimits::default()
    }

    /// The limiter of one connection from `client`: the node's bucket and the client's.
    pub fn client(&self, client: ClientKey) -> Limiter {
        Limiter {
            node: self.node.clone(),
            client: self.per_client.as_ref().map(|p| p.bucket(client)),
        }
    }
}

impl PerClient {
    fn bucket(&self, client: ClientKey) -> Arc<Bucket> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.buckets.len() >= table.sweep_at {
            let now = Instant::now();
            // Forgotten only when no connection holds it and it owes nothing.
            table
                .buckets
                .retain(|_, b| Arc::strong_count(b) > 1 || !b.idle(now));
            table.sweep_at = (table.buckets.len() * 2).max(SWEEP_AT);
        }
        table
            .buckets
            .entry(client)
            .or_insert_with(|| Arc::new(Bucket::new(self.rate)))
            .clone()
    }
}

/// The buckets one connection's file bytes are charged to (none: unlimited). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    node: Option<Arc<Bucket>>,
    client: Option<Arc<Bucket>>,
}

impl Limiter {
    /// No limit.
    pub fn unlimited() -> Limiter {
        Limiter::default()
    }

    /// A limiter with a bucket of its own, for everything it is cloned into (replication:
    /// every pull from every peer shares it).
    pub fn shared(rate: u64) -> Limiter {
        Limiter {
            node: Some(Arc::new(Bucket::new(rate))),
            client: None,
        }
    }

    /// Whether any bucket applies.
    #[cfg(test)]
    fn is_limited(&self) -> bool {
        self.node.is_some() || self.client.is_some()
    }

    /// The lowest rate that applies, in bytes per second.
    pub fn rate(&self) -> Option<u64> {
        self.buckets().map(Bucket::rate).min()
    }

    /// The piece to send between two [`take`](Limiter::take)s; `None` when unlimited (send
    /// as before, in one go).
    pub fn slice(&self) -> Option<u64> {
        self.buckets().map(Bucket::slice).min()
    }

    /// `buf` cut into pieces of [`slice`](Limiter::slice) bytes (one piece when unlimited).
    pub fn pieces<'a>(&self, buf: &'a [u8]) -> std::slice::Chunks<'a, u8> {
        let slice = self.slice().map_or(buf.len(), |s| s as usize);
        buf.chunks(slice.max(1))
    }

    /// Wait until `n` more bytes may be sent (at once when unlimited). The client's own
    /// bucket first, then the node's: a client held back by its own limit does not hold a
    /// place in the node's queue meanwhile.
    pub async fn take(&self, n: u64) {
        if let Some(client) = &self.client {
            client.take(n).await;
        }
        if let Some(node) = &self.node {
            node.take(n).await;
        }
    }

    fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.client.iter().chain(self.node.iter()).map(|b| &**b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    /// Sending as fast as allowed from `start` for `window`: the bytes let through.
    fn let_through(bucket: &Bucket, start: Instant, window: Duration, piece: u64) -> u64 {
        let mut now = start;
        let mut sent = 0;
        loop {
            let at = bucket.reserve(piece, now);
            if at > start + window {
                return sent;
            }
            sent += piece;
            now = at;
        }
    }

    #[test]
    fn a_busy_bucket_holds_its_rate_plus_at_most_one_burst() {
        let bucket = Bucket::new(10 * MB);
        let start = Instant::now() + Duration::from_secs(1);
        let sent = let_through(&bucket, start, Duration::from_secs(2), 64 << 10);
        let burst = 10 * MB / 10;
        assert!(sent <= 2 * 10 * MB + burst + (64 << 10), "{sent}");
        assert!(sent >= 2 * 10 * MB, "{sent}");
    }

    #[test]
    fn an_idle_bucket_saves_one_burst_not_more() {
        let bucket = Bucket::new(MB);
        let start = Instant::now();
        // A minute idle, then: the first 100 ms worth go at once, the next waits.
        let later = start + Duration::from_secs(60);
        assert_eq!(bucket.reserve(MB / 10, later), later);
        let next = bucket.reserve(MB / 10, later);
        assert_eq!(next - later, Duration::from_millis(100));
    }

    #[test]
    fn waiters_are_served_in_the_order_they_asked() {
        let bucket = Bucket::new(MB);
        let now = Instant::now();
        // Ten connections asking 100 kB each at once: 100 ms apart, none starved.
        let times: Vec<_> = (0..10).map(|_| bucket.reserve(MB / 10, now)).collect();
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(100));
        }
        assert_eq!(times[9] - now, Duration::from_millis(900));
    }

    #[test]
    fn clients_share_their_own_bucket_and_the_nodes() {
        let limits = UploadLimits::new(Some(50 * MB), Some(10 * MB));
        let ip = |s: &str| ClientKey::of(None, s.parse().unwrap());
        let a1 = limits.client(ip("10.0.0.1"));
        let a2 = limits.client(ip("::ffff:10.0.0.1"));
        let b = limits.client(ip("10.0.0.2"));
        let same = |x: &Limiter, y: &Limiter| {
            Arc::ptr_eq(x.client.as_ref().unwrap(), y.client.as_ref().unwrap())
        };
        assert!(same(&a1, &a2), "one address, one bucket");
        assert!(!same(&a1, &b));
        assert!(Arc::ptr_eq(
            a1.node.as_ref().unwrap(),
            b.node.as_ref().unwrap()
        ));
        assert_eq!(a1.rate(), Some(10 * MB));
        assert!(
            !UploadLimits::unlimited()
                .client(ip("10.0.0.1"))
                .is_limited()
        );
    }

    #[test]
    fn idle_client_buckets_are_forgotten_held_ones_kept() {
        let limits = UploadLimits::new(None, Some(MB));
        let held = limits.client(ClientKey::Ip([10, 0, 0, 1].into()));
        for i in 0..SWEEP_AT as u32 {
            drop(limits.client(ClientKey::Ip(std::net::Ipv4Addr::from(i + 100).into())));
        }
        let table = &limits.per_client.as_ref().unwrap().table;
        let len = table.lock().unwrap().buckets.len();
        assert!(len < SWEEP_AT, "swept: {len}");
        let again = limits.client(ClientKey::Ip([10, 0, 0, 1].into()));
        assert!(Arc::ptr_eq(
            held.client.as_ref().unwrap(),
            again.client.as_ref().unwrap()
        ));
    }

    #[test]
    fn slices_follow_the_rate_within_bounds() {
        assert_eq!(Limiter::unlimited().slice(), None);
        assert_eq!(Limiter::shared(1000).slice(), Some(MIN_SLICE));
        assert_eq!(Limiter::shared(1 << 30).slice(), Some(MAX_SLICE));
        assert_eq!(Limiter::shared(MB).slice(), Some(MB / 16));
        let buf = vec![0u8; 100_000];
        assert_eq!(Limiter::unlimited().pieces(&buf).count(), 1);
        assert_eq!(Limiter::shared(1000).pieces(&buf).count(), 7);
    }

    #[tokio::test]
    async fn take_sleeps_without_spinning() {
        let limiter = Limiter::shared(MB);
        let start = std::time::Instant::now();
        // The burst goes at once; 200 kB more need about 200 ms.
        limiter.take(MB / 10).await;
        limiter.take(MB / 5).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(150), "{took:?}");
    }
}
