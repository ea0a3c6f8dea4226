//! `Throttle`: failed logins per client address. After [`MAX_FAILURES`] failures within
//! [`WINDOW`], that address is refused (`429`, even with the right password) for
//! [`LOCKOUT`]: guessing a password through the web UI costs minutes per handful of tries.
//!
//! At most [`MAX_CLIENTS`] addresses are tracked; when full, entries whose window and lockout
//! are over go first, then the oldest. Pure bookkeeping on explicit instants, so the timing is
//! tested without clocks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failures allowed from one address before it is locked out.
pub const MAX_FAILURES: u32 = meshfs_core::access::MAX_AUTH_FAILURES;
/// Failures older than this are forgotten.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long a locked-out address is refused.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Most client addresses tracked.
pub const MAX_CLIENTS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

impl Record {
    fn stale(&self, now: Instant) -> bool {
        now.duration_since(self.first) >= WINDOW && self.locked_until.is_none_or(|u| u <= now)
    }
}

/// Failed logins per client address. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Throttle {
    inner: Arc<Mutex<HashMap<IpAddr, Record>>>,
}

impl Throttle {
    /// `Err(wait)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut map = self.lock();
        match map.get(&ip).and_then(|r| r.locked_until) {
            Some(until) if until > now => Err(until - now),
            Some(_) => {
                // The lockout is over: a fresh start.
                map.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Count a failure from `ip`; returns the lockout if this one started it.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.lock();
        if !map.contains_key(&ip) && map.len() >= MAX_CLIENTS {
            map.retain(|_, r| !r.stale(now));
            if map.len() >= MAX_CLIENTS
                && let Some(oldest) = map.iter().min_by_key(|(_, r)| r.first).map(|(ip, _)| *ip)
            {
                map.remove(&oldest);
            }
        }
        let r = map.entry(ip).or_insert(Record {
            failures: 0,
            first: now,
            locked_until: None,
        });
        if r.stale(now) {
            *r = Record {
                failures: 0,
                first: now,
                locked_until: None,
            };
        }
        r.failures += 1;
        if r.failures >= MAX_FAILURES {
            r.locked_until = Some(now + LOCKOUT);
            return Some(LOCKOUT);
        }
        None
    }

    /// A successful login clears the address's record.
    pub fn succeeded(&self, ip: IpAddr) {
        self.lock().remove(&ip);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_after_max_failures_then_release() {
        let t = Throttle::default();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let other: IpAddr = "10.0.0.10".parse().unwrap();
        let t0 = Instant::now();
        for i in 1..MAX_FAILURES {
            assert_eq!(t.check(ip, t0), Ok(()));
            assert_eq!(t.failed(ip, t0 + Duration::from_secs(i as u64)), None);
        }
        let now = t0 + Duration::from_secs(10);
        assert_eq!(t.failed(ip, now), Some(LOCKOUT));
        assert_eq!(t.check(ip, now), Err(LOCKOUT));
        assert_eq!(
            t.check(other, now),
            Ok(()),
            "other clients are not affected"
        );
        assert_eq!(t.check(ip, now + LOCKOUT), Ok(()));
        // After the lockout, a fresh count.
        assert_eq!(t.failed(ip, now + LOCKOUT), None);

        // Failures spread wider than the window never add up to a lockout.
        let slow: IpAddr = "10.0.0.11".parse().unwrap();
        for i in 0..MAX_FAILURES * 2 {
            assert_eq!(t.failed(slow, t0 + WINDOW * i), None);
        }
        // A success clears the count.
        for _ in 1..MAX_FAILURES {
            t.failed(other, t0);
        }
        t.succeeded(other);
        assert_eq!(t.failed(other, t0), None);
    }

    #[test]
    fn bounded_in_clients() {
        let t = Throttle::default();
        let t0 = Instant::now();
        for i in 0..MAX_CLIENTS as u32 + 100 {
            t.failed(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(t.lock().len(), MAX_CLIENTS);
    }
}
