//! `Throttle`: failed logins per client address, one table for every door of a node (the file
//! server's `auth` and `pake`, FTP `PASS`, the web login), and the only count of them: a door
//! keeps no count of its own per connection. After [`MAX_FAILURES`] failures within
//! [`WINDOW`], that address is refused (even with the right password; web `429`, FTP `421`, file
//! server code 6 and a closed connection) for [`LOCKOUT`]: guessing a password costs minutes per
//! handful of tries, whichever door and however many connections it is tried through.
//!
//! An attempt is counted when it *starts* ([`Throttle::begin`] gives an [`Attempt`]), not when
//! its answer is known: a login for a remote node waits on that node, and counting only
//! afterwards would let a thousand concurrent guesses from one address all pass the check.
//! So the failures so far plus the attempts in flight are bounded by [`MAX_FAILURES`]; an
//! attempt that ends without a verdict (bad request, unreachable node, client gone) is given
//! back when its [`Attempt`] drops. Addresses are counted by [`client_key`] (an IPv6 client by
//! its /64).
//!
//! At most [`MAX_CLIENTS`] addresses are tracked. When full, records with nothing left to
//! count go first, then the oldest one neither locked out nor in flight. A locked-out
//! address is never forgotten early: when every record is locked (or in flight), a new
//! address is refused with `429` until a lockout ends. Pure bookkeeping on explicit
//! instants, so the timing is tested without clocks.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failures allowed from one address before it is locked out.
pub const MAX_FAILURES: u32 = 5;
/// Failures older than this are forgotten.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long a locked-out address is refused.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Most client addresses tracked.
pub const MAX_CLIENTS: usize = 4096;
/// The key `ip` is counted under: an IPv4 address itself, an IPv6 address's /64.
///
/// An IPv6 host usually owns a whole /64 (SLAAC, privacy addresses): keyed by its full address,
/// it could take a fresh one for each guess and never be locked out. So an IPv6 client counts
/// by its /64, and an IPv4-mapped IPv6 address (a dual-stack listener) as the IPv4 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// `Retry-After` when the attempts in flight use up an address's allowance (they end within
/// a node timeout; the wait is only a hint).
const BUSY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    /// Attempts begun and not yet ended.
    in_flight: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

impl Record {
    fn new(now: Instant) -> Record {
        Record {
            failures: 0,
            in_flight: 0,
            first: now,
            locked_until: None,
        }
    }

    /// Forget failures whose window or lockout is over (attempts in flight stay counted).
    fn refresh(&mut self, now: Instant) {
        let over = match self.locked_until {
            Some(until) => until <= now,
            None => now.duration_since(self.first) >= WINDOW,
        };
        if over {
            *self = Record {
                in_flight: self.in_flight,
                ..Record::new(now)
            };
        }
    }

    /// Nothing left to count: the record may go.
    fn idle(&self) -> bool {
        self.failures == 0 && self.in_flight == 0 && self.locked_until.is_none()
    }
}

/// Failed logins per client address. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Throttle {
    inner: Arc<Mutex<HashMap<IpAddr, Record>>>,
}

impl Throttle {
    /// Start a login attempt from `ip`, counted until it ends; `Err(wait)` while the address
    /// is locked out, while its attempts in flight could lock it out, or while the table is
    /// full of locked-out addresses.
    pub fn begin(&self, ip: IpAddr, now: Instant) -> Result<Attempt, Duration> {
        let key = client_key(ip);
        let mut map = self.lock();
        if !map.contains_key(&key) && map.len() >= MAX_CLIENTS {
            make_room(&mut map, now)?;
        }
        let r = map.entry(key).or_insert(Record::new(now));
        r.refresh(now);
        if let Some(until) = r.locked_until {
            return Err(until - now);
        }
        if r.failures + r.in_flight >= MAX_FAILURES {
            return Err(BUSY);
        }
        r.in_flight += 1;
        Ok(Attempt {
            throttle: self.clone(),
            ip,
            key,
            ended: false,
        })
    }

    /// [`begin`](Throttle::begin) at `door`, now; a refusal is logged (at debug: a flood of
    /// refused guesses must not flood the log, the lockout itself was logged once).
    pub fn begin_at(&self, door: &str, ip: IpAddr) -> Result<Attempt, Duration> {
        self.begin(ip, Instant::now()).inspect_err(|wait| {
            tracing::debug!(%ip, door, "login refused: address locked out for {}s more", wait.as_secs())
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Make room for one more address in a full table, or say how long until there is some.
fn make_room(map: &mut HashMap<IpAddr, Record>, now: Instant) -> Result<(), Duration> {
    map.retain(|_, r| {
        r.refresh(now);
        !r.idle()
    });
    if map.len() < MAX_CLIENTS {
        return Ok(());
    }
    let evictable = map
        .iter()
        .filter(|(_, r)| r.locked_until.is_none() && r.in_flight == 0)
        .min_by_key(|(_, r)| r.first)
        .map(|(k, _)| *k);
    match evictable {
        Some(k) => {
            map.remove(&k);
            Ok(())
        }
        None => Err(map
            .values()
            .filter_map(|r| r.locked_until)
            .min()
            .map_or(BUSY, |until| (until - now).max(BUSY))),
    }
}

/// One login attempt in flight, counted against its address until it ends: [`failed`],
/// [`succeeded`], or dropped without a verdict (given back).
///
/// [`failed`]: Attempt::failed
/// [`succeeded`]: Attempt::succeeded
#[derive(Debug)]
pub struct Attempt {
    throttle: Throttle,
    /// The address as seen, for the log.
    ip: IpAddr,
    key: IpAddr,
    ended: bool,
}

impl Attempt {
    /// A wrong password; returns the lockout if this failure started it.
    pub fn failed(mut self, now: Instant) -> Option<Duration> {
        self.ended = true;
        let mut map = self.throttle.lock();
        // Gone only when the table was full when the attempt began.
        let r = map.get_mut(&self.key)?;
        r.in_flight = r.in_flight.saturating_sub(1);
        r.refresh(now);
        r.failures += 1;
        if r.failures >= MAX_FAILURES && r.locked_until.is_none() {
            r.locked_until = Some(now + LOCKOUT);
            return Some(LOCKOUT);
        }
        None
    }

    /// A wrong password at `door`, now, logged with the address: each one at info, the one
    /// that starts a lockout at warn. Returns whether the address is locked out now (by this
    /// failure or a concurrent one): a door that keeps its connection open across logins (the
    /// file server) closes it then, as no login on it can succeed for a while.
    pub fn failed_at(self, door: &str) -> bool {
        let (ip, key, throttle) = (self.ip, self.key, self.throttle.clone());
        let now = Instant::now();
        match self.failed(now) {
            Some(lockout) => {
                tracing::warn!(
                    %ip,
                    door,
                    "{MAX_FAILURES} wrong passwords from {ip}: its logins are refused for {}s",
                    lockout.as_secs()
                );
                true
            }
            None => {
                tracing::info!(%ip, door, "wrong password from {ip}");
                throttle
                    .lock()
                    .get(&key)
                    .is_some_and(|r| r.locked_until.is_some_and(|until| until > now))
            }
        }
    }

    /// The right password: the attempt's slot is given back, and the address's failures
    /// stay until they age out of the window. Clearing them would let whoever knows one
    /// password (an offered file's, one FTP user's) reset their guesses at every other after
    /// each four, and would drop the count of attempts still in flight.
    pub fn succeeded(self) {
        // `Drop` gives the slot back, as for an attempt without a verdict.
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let mut map = self.throttle.lock();
        if let Some(r) = map.get_mut(&self.key) {
            r.in_flight = r.in_flight.saturating_sub(1);
            if r.idle() {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        client_key(s.parse().unwrap()).to_string()
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("10.1.2.3"), "10.1.2.3");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.168.1.7"), "192.168.1.7");
        assert_eq!(key("::1"), "::");
    }

    fn fail(t: &Throttle, ip: IpAddr, now: Instant) -> Option<Duration> {
        t.begin(ip, now).expect("not locked out").failed(now)
    }

    #[test]
    fn lockout_after_max_failures_then_release() {
        let t = Throttle::default();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let other: IpAddr = "10.0.0.10".parse().unwrap();
        let t0 = Instant::now();
        for i in 1..MAX_FAILURES {
            assert_eq!(fail(&t, ip, t0 + Duration::from_secs(i as u64)), None);
        }
        let now = t0 + Duration::from_secs(10);
        assert_eq!(fail(&t, ip, now), Some(LOCKOUT));
        assert_eq!(t.begin(ip, now).unwrap_err(), LOCKOUT);
        assert!(
            t.begin(other, now).is_ok(),
            "other clients are not affected"
        );
        // After the lockout, a fresh count.
        assert_eq!(fail(&t, ip, now + LOCKOUT), None);

        // Failures spread wider than the window never add up to a lockout.
        let slow: IpAddr = "10.0.0.11".parse().unwrap();
        for i in 0..MAX_FAILURES * 2 {
            assert_eq!(fail(&t, slow, t0 + WINDOW * i), None);
        }
        // A success does not clear the count: knowing one password resets no guesses.
        for _ in 1..MAX_FAILURES {
            fail(&t, other, t0);
        }
        t.begin(other, t0).unwrap().succeeded();
        assert_eq!(fail(&t, other, t0), Some(LOCKOUT));
    }

    /// Attempts count from their start: concurrent ones are bounded like sequential ones,
    /// and one that ends without a verdict is given back.
    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let t = Throttle::default();
        let ip: IpAddr = "10.0.0.20".parse().unwrap();
        let t0 = Instant::now();
        let mut flying: Vec<Attempt> = (0..MAX_FAILURES)
            .map(|_| t.begin(ip, t0).expect("within the limit"))
            .collect();
        for _ in 0..100 {
            assert_eq!(t.begin(ip, t0).unwrap_err(), BUSY);
        }
        // One ends without a verdict (the node was unreachable): its slot comes back.
        drop(flying.pop());
        flying.push(t.begin(ip, t0).expect("a slot given back"));
        assert!(t.begin(ip, t0).is_err());
        // All fail: the last failure locks the address.
        let verdicts: Vec<_> = flying.into_iter().map(|a| a.failed(t0)).collect();
        assert_eq!(verdicts.last(), Some(&Some(LOCKOUT)));
        assert_eq!(t.begin(ip, t0).unwrap_err(), LOCKOUT);

        // Dropped attempts alone leave nothing behind.
        let quiet: IpAddr = "10.0.0.21".parse().unwrap();
        drop(t.begin(quiet, t0).unwrap());
        assert!(!t.lock().contains_key(&quiet));
    }

    #[test]
    fn bounded_in_clients() {
        let t = Throttle::default();
        let t0 = Instant::now();
        for i in 0..MAX_CLIENTS as u32 + 100 {
            let _ = fail(&t, IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(t.lock().len(), MAX_CLIENTS);
    }

    /// A full table never forgets a locked-out address: an unlocked one goes, and when all
    /// are locked a new address is refused until the first lockout ends.
    #[test]
    fn locked_addresses_are_never_evicted() {
        let t = Throttle::default();
        let t0 = Instant::now();
        let addr = |i: u32| IpAddr::from((i + 1).to_be_bytes());
        let attacker = addr(0);
        for _ in 0..MAX_FAILURES {
            fail(&t, attacker, t0);
        }
        // The rest of the table: one failure each, all newer than the attacker's record.
        let later = t0 + Duration::from_secs(1);
        for i in 1..MAX_CLIENTS as u32 {
            assert_eq!(fail(&t, addr(i), later), None);
        }
        // Full: a newcomer evicts the oldest unlocked record, never the attacker's.
        let newcomer = addr(MAX_CLIENTS as u32);
        assert_eq!(fail(&t, newcomer, later), None);
        assert_eq!(t.lock().len(), MAX_CLIENTS);
        assert_eq!(
            t.begin(attacker, later).unwrap_err(),
            LOCKOUT - Duration::from_secs(1)
        );

        // A table full of locked addresses refuses newcomers until a lockout ends.
        let t = Throttle::default();
        for i in 0..MAX_CLIENTS as u32 {
            for _ in 0..MAX_FAILURES {
                fail(&t, addr(i), t0);
            }
        }
        let stranger = addr(MAX_CLIENTS as u32 + 7);
        assert_eq!(
            t.begin(stranger, later).unwrap_err(),
            LOCKOUT - Duration::from_secs(1)
        );
        assert_eq!(
            t.begin(addr(0), later).unwrap_err(),
            LOCKOUT - Duration::from_secs(1)
        );
        assert!(
            t.begin(stranger, t0 + LOCKOUT).is_ok(),
            "the lockouts are over"
        );
    }

    /// Fresh addresses from one IPv6 /64 are one client: they share one count.
    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let t = Throttle::default();
        let t0 = Instant::now();
        for i in 1..=MAX_FAILURES {
            let ip: IpAddr = format!("2001:db8:7:7::{i:x}").parse().unwrap();
            fail(&t, ip, t0);
        }
        let fresh: IpAddr = "2001:db8:7:7:dead:beef:1:2".parse().unwrap();
        assert_eq!(t.begin(fresh, t0).unwrap_err(), LOCKOUT);
        let neighbour: IpAddr = "2001:db8:7:8::1".parse().unwrap();
        assert!(t.begin(neighbour, t0).is_ok());
    }
}
