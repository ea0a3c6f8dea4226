//! The queue between the OS watcher's callback and the ingest thread.
//!
//! Bounded, because a burst of changes must not grow memory without limit (what does not fit
//! becomes one `resync`), but allocated only as it fills: `std::sync::mpsc::sync_channel(N)`
//! builds and touches all N slots at once, which for the 65,536 raw events a burst may need was
//! 4 MiB of resident memory in every idle node (a fifth of its RSS). An unbounded channel
//! allocates in small blocks as events arrive and frees them as they are taken; a counter gives
//! it its bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// The sending half, owned by the watcher's callback. Never blocks.
pub(super) struct RawSender<T> {
    tx: mpsc::Sender<T>,
    shared: Arc<Shared>,
}

/// The receiving half, owned by the ingest thread.
pub(super) struct RawReceiver<T> {
    rx: mpsc::Receiver<T>,
    shared: Arc<Shared>,
}

struct Shared {
    capacity: usize,
    /// Items sent and not yet received.
    queued: AtomicUsize,
    /// Set when an item was dropped because the queue was full; taken by the receiver.
    overflowed: AtomicBool,
}

/// A queue holding at most `capacity` items at a time.
pub(super) fn raw_queue<T>(capacity: usize) -> (RawSender<T>, RawReceiver<T>) {
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        capacity,
        queued: AtomicUsize::new(0),
        overflowed: AtomicBool::new(false),
    });
    (
        RawSender {
            tx,
            shared: shared.clone(),
        },
        RawReceiver { rx, shared },
    )
}

impl<T> RawSender<T> {
    /// Queue `item`, or drop it and remember the loss when the queue is full (or the receiver
    /// is gone).
    pub(super) fn send_or_drop(&self, item: T) {
        let shared = &self.shared;
        if shared.queued.fetch_add(1, Ordering::AcqRel) >= shared.capacity {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            shared.overflowed.store(true, Ordering::Relaxed);
        } else if self.tx.send(item).is_err() {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What [`RawReceiver::next`] found.
pub(super) enum Next<T> {
    Item(T),
    /// Everything queued before a loss has been taken: the caller reports the loss now, so
    /// nothing older follows it.
    Lost,
    /// The sender is gone and the queue is empty.
    Closed,
}

impl<T> RawReceiver<T> {
    /// Whether nothing is queued now.
    pub(super) fn drained(&self) -> bool {
        self.shared.queued.load(Ordering::Acquire) == 0
    }

    /// Forget a loss not yet reported: the caller has made up for it (see `Ingest::run`).
    pub(super) fn take_loss(&self) {
        self.shared.overflowed.store(false, Ordering::Relaxed);
    }

    /// The next item, waiting for one if the queue is empty.
    pub(super) fn next(&self) -> Next<T> {
        let item = match self.rx.try_recv() {
            Ok(item) => item,
            Err(mpsc::TryRecvError::Disconnected) => return Next::Closed,
            Err(mpsc::TryRecvError::Empty) => {
                if self.shared.overflowed.swap(false, Ordering::Relaxed) {
                    return Next::Lost;
                }
                match self.rx.recv() {
                    Ok(item) => item,
                    Err(_) => return Next::Closed,
                }
            }
        };
        self.shared.queued.fetch_sub(1, Ordering::AcqRel);
        Next::Item(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(next: Next<u32>) -> Option<u32> {
        match next {
            Next::Item(i) => Some(i),
            _ => None,
        }
    }

    #[test]
    fn holds_its_capacity_then_reports_one_loss_after_what_came_before() {
        let (tx, rx) = raw_queue(3);
        for i in 0..5 {
            tx.send_or_drop(i);
        }
        assert_eq!(item(rx.next()), Some(0));
        assert_eq!(item(rx.next()), Some(1));
        assert_eq!(item(rx.next()), Some(2));
        assert!(matches!(rx.next(), Next::Lost));
        // Taking items made room again.
        tx.send_or_drop(7);
        assert_eq!(item(rx.next()), Some(7));
        drop(tx);
        assert!(matches!(rx.next(), Next::Closed));
    }

    #[test]
    fn room_comes_back_as_items_are_taken() {
        let (tx, rx) = raw_queue(2);
        for round in 0..100 {
            tx.send_or_drop(round);
            tx.send_or_drop(round + 1000);
            assert_eq!(item(rx.next()), Some(round));
            assert_eq!(item(rx.next()), Some(round + 1000));
        }
        drop(tx);
        assert!(matches!(rx.next(), Next::Closed), "no loss was reported");
    }
}
