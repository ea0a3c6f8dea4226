//! Single flight: one computation per key at a time, its result handed to every caller that
//! asked for the same key while it ran.
//!
//! Why: a node hashes a file version (`hash`, `hash-prefix`, `blocks`) by reading it whole,
//! which for a 4 GB recording on a Pi takes minutes. A client that gives up and asks again,
//! or several clients starting a multi-source download together, would each start another
//! full read of the same bytes, each slowing the others and the camera's own writes. With
//! this, the later callers wait for the read under way and get its result.
//!
//! The callers block (they run on blocking threads, as the reads themselves do). A computation
//! that fails (or panics) hands its followers nothing: each then computes for itself, so an
//! error is reported to every caller by its own attempt, never a copy of another's.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The computations under way, by key.
pub(crate) struct Flights<K, V> {
    running: Mutex<HashMap<K, Arc<Slot<V>>>>,
}

/// Where a computation's result is left for those waiting on it.
struct Slot<V> {
    /// `None` while it runs; then `Some(Some(value))`, or `Some(None)` if it failed.
    result: Mutex<Option<Option<V>>>,
    ready: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: Eq + Hash + Clone, V: Clone> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    /// The value for `key`: `compute`d here, unless a computation of `key` is under way, whose
    /// value is then waited for and returned (or, if it failed, `compute`d here after all).
    pub(crate) fn run<E>(&self, key: K, compute: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        let mut running = lock(&self.running);
        if let Some(slot) = running.get(&key).cloned() {
            drop(running);
            let mut result = lock(&slot.result);
            while result.is_none() {
                result = slot.ready.wait(result).unwrap_or_else(|e| e.into_inner());
            }
            let value = result.clone().flatten();
            drop(result);
            return match value {
                Some(value) => Ok(value),
                None => compute(),
            };
        }
        let slot = Arc::new(Slot {
            result: Mutex::new(None),
            ready: Condvar::new(),
        });
        running.insert(key.clone(), slot.clone());
        drop(running);
        let mut lead = Lead {
            flights: self,
            key,
            slot,
            value: None,
        };
        let result = compute();
        lead.value = result.as_ref().ok().cloned();
        result
    }
}

/// The caller computing a key: when it ends (also by a panic), its result is left in the slot,
/// the key is no longer under way, and the followers are woken.
struct Lead<'a, K: Eq + Hash, V> {
    flights: &'a Flights<K, V>,
    key: K,
    slot: Arc<Slot<V>>,
    value: Option<V>,
}

impl<K: Eq + Hash, V> Drop for Lead<'_, K, V> {
    fn drop(&mut self) {
        *lock(&self.slot.result) = Some(self.value.take());
        lock(&self.flights.running).remove(&self.key);
        self.slot.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::mpsc;

    #[test]
    fn callers_during_a_computation_share_it() {
        let flights: Arc<Flights<u32, u64>> = Arc::default();
        let runs = Arc::new(AtomicU32::new(0));
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let leader = {
            let (flights, runs) = (flights.clone(), runs.clone());
            std::thread::spawn(move || {
                flights.run(7, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    Ok::<_, ()>(42)
                })
            })
        };
        started.recv().unwrap();
        let follower = {
            let (flights, runs) = (flights.clone(), runs.clone());
            std::thread::spawn(move || {
                flights.run(7, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ()>(0)
                })
            })
        };
        // The follower is waiting on the slot (or has not looked yet: then it computes).
        while lock(&flights.running)
            .get(&7)
            .is_some_and(|s| Arc::strong_count(s) < 3)
        {
            std::thread::yield_now();
        }
        release.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), Ok(42));
        assert_eq!(follower.join().unwrap(), Ok(42));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(lock(&flights.running).is_empty());
    }

    #[test]
    fn a_failed_computation_leaves_each_follower_its_own() {
        let flights: Flights<u32, u64> = Flights::default();
        assert_eq!(flights.run(1, || Err::<u64, _>("disk")), Err("disk"));
        assert_eq!(flights.run(1, || Ok::<_, &str>(5)), Ok(5));
    }
}
