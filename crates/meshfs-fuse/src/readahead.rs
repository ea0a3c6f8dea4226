//! Sequential read-ahead with a growing window, per open file.
//!
//! The failure this beats is sshfs's: one small read per round trip, so a video plays at
//! (read size / RTT). Here, once reads are contiguous, the file is fetched in 1 MiB-aligned
//! chunks ahead of the reader, several in flight at once over the node's connection pool, and
//! the window doubles (like rclone's chunked reader) from [`INITIAL_WINDOW`] up to the
//! configured maximum. A read that is not contiguous stops the read-ahead and drops its chunks,
//! so a random 4 KiB read costs exactly one `pread` of 4 KiB, not a window.
//!
//! This module only decides; the filesystem runs the fetches ([`Plan::fetch`]) and waits on
//! the chunks ([`Chunk::wait`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fuser::Errno;
use tokio::sync::watch;

/// Size and alignment of a read-ahead chunk (also the largest read the kernel sends).
pub const CHUNK: u64 = 1 << 20;
/// Read-ahead window when a sequential read is first detected.
pub const INITIAL_WINDOW: u64 = 2 * CHUNK;
/// Default largest window.
pub const DEFAULT_MAX_WINDOW: u64 = 16 * CHUNK;
/// Default cap on chunks alive in the whole mount (fetched or in flight), in chunks.
pub const DEFAULT_BUDGET: usize = 256;

/// A cap on read-ahead memory shared by every open file of a mount: many players reading at
/// once must not hold `files × window` bytes. Over budget, reads fetch only what they need.
#[derive(Debug)]
pub struct Budget {
    live: AtomicUsize,
    max: usize,
}

impl Budget {
    pub fn new(max_chunks: usize) -> Arc<Budget> {
        Arc::new(Budget {
            live: AtomicUsize::new(0),
            max: max_chunks,
        })
    }

    /// Chunks alive now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub(crate) fn has_room(&self) -> bool {
        self.live() < self.max
    }
}

type ChunkResult = Result<Arc<Vec<u8>>, Errno>;

/// One aligned chunk of the file, being fetched or fetched.
#[derive(Debug)]
pub struct Chunk {
    index: u64,
    state: watch::Sender<Option<ChunkResult>>,
    budget: Arc<Budget>,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.budget.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Chunk {
    /// Chunk `index` of a file, counted in `budget` while it lives.
    pub(crate) fn new(index: u64, budget: &Arc<Budget>) -> Arc<Chunk> {
        budget.live.fetch_add(1, Ordering::Relaxed);
        Arc::new(Chunk {
            index,
            state: watch::Sender::new(None),
            budget: budget.clone(),
        })
    }

    /// File offset of the chunk's first byte.
    pub fn start(&self) -> u64 {
        self.index * CHUNK
    }

    /// Record the fetch's outcome and wake every reader waiting on it.
    pub fn complete(&self, result: ChunkResult) {
        self.state.send_replace(Some(result));
    }

    /// Whether its fetch failed.
    pub fn failed(&self) -> bool {
        matches!(*self.state.borrow(), Some(Err(_)))
    }

    /// The chunk's bytes if its fetch completed, without waiting.
    pub fn fetched(&self) -> Option<Arc<Vec<u8>>> {
        match &*self.state.borrow() {
            Some(Ok(data)) => Some(data.clone()),
            _ => None,
        }
    }

    /// The chunk's bytes (fewer than [`CHUNK`] at the end of the file) once fetched.
    pub async fn wait(&self) -> ChunkResult {
        let mut rx = self.state.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(state) => state.clone().expect("waited for Some"),
            // The sender lives in `self`: it cannot be dropped while we borrow it.
            Err(_) => Err(Errno::EIO),
        }
    }
}

/// Where the bytes of one read come from.
#[derive(Debug)]
pub enum Source {
    /// One `pread` of exactly the requested range.
    Direct,
    /// These chunks, in order, cover the requested range.
    Chunks(Vec<Arc<Chunk>>),
}

/// What to do for one read.
#[derive(Debug)]
pub struct Plan {
    pub source: Source,
    /// New chunks to fetch now (each `CHUNK` bytes at [`Chunk::start`]).
    pub fetch: Vec<Arc<Chunk>>,
}

/// The read-ahead state of one open file.
#[derive(Debug)]
pub struct ReadAhead {
    /// Where the next read starts if the reader is sequential.
    next: Option<u64>,
    /// Bytes to keep fetched ahead of the reader (0: not sequential).
    window: u64,
    max_window: u64,
    /// Chunk of the previous sequential read (the window grows when the reader enters a new one).
    last_chunk: Option<u64>,
    chunks: BTreeMap<u64, Arc<Chunk>>,
    budget: Arc<Budget>,
}

impl ReadAhead {
    pub fn new(max_window: u64, budget: Arc<Budget>) -> ReadAhead {
        ReadAhead {
            next: None,
            window: 0,
            max_window: max_window.max(CHUNK),
            last_chunk: None,
            chunks: BTreeMap::new(),
            budget,
        }
    }

    /// At open, for a file of at most one chunk (`known_size`): fetch the whole file now, so
    /// that its first read, which comes right after, waits on a request already in flight
    /// (a folder of small files read one after the other then costs one round trip per file,
    /// overlapped with the kernel's own open-to-read path). Larger files wait for their reads:
    /// a player may open a big file only to seek.
    pub fn at_open(&mut self, known_size: u64) -> Option<Arc<Chunk>> {
        if known_size == 0 || known_size > CHUNK || !self.budget.has_room() {
            return None;
        }
        let chunk = Chunk::new(0, &self.budget);
        self.adopt_first(chunk.clone());
        Some(chunk)
    }

    /// Serve the file's first chunk from `chunk`, fetched (or being fetched) elsewhere: at
    /// open ([`ReadAhead::at_open`]) or ahead of the open ([`crate::folder_ahead`]).
    pub fn adopt_first(&mut self, chunk: Arc<Chunk>) {
        debug_assert_eq!(chunk.start(), 0);
        self.chunks.insert(0, chunk);
        // A read at 0 is then "sequential" and served from this chunk.
        self.next = Some(0);
    }

    /// The current window (0 when read-ahead is off).
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Decide how to serve a read of `size` bytes at `offset`, given the file's last known
    /// size (no chunk is fetched ahead past it).
    pub fn plan(&mut self, offset: u64, size: u64, known_size: u64) -> Plan {
        let direct = Plan {
            source: Source::Direct,
            fetch: Vec::new(),
        };
        if size == 0 {
            return direct;
        }
        let end = offset.saturating_add(size);
        let first = offset / CHUNK;
        let last = (end - 1) / CHUNK;
        // The kernel sends its own read-ahead requests concurrently, so contiguous reads may
        // arrive slightly out of order: a read inside a chunk already fetched still counts.
        let sequential =
            self.next == Some(offset) || (self.window > 0 && self.chunks.contains_key(&first));
        self.next = Some(end);
        if !sequential {
            self.window = 0;
            self.last_chunk = None;
            self.chunks.clear();
            return direct;
        }
        if self.window == 0 {
            self.window = INITIAL_WINDOW.min(self.max_window);
        } else if self.last_chunk.is_some_and(|c| first > c) {
            self.window = (self.window * 2).min(self.max_window);
        }
        self.last_chunk = Some(self.last_chunk.map_or(first, |c| c.max(first)));
        // Chunks behind the reader are done with, but for the one just before this read's:
        // with several FUSE threads, a read of it may still be on its way here.
        self.chunks = self.chunks.split_off(&first.saturating_sub(1));
        let mut fetch = Vec::new();
        let ahead_last = (end.saturating_add(self.window) - 1) / CHUNK;
        for index in first..=ahead_last {
            let ahead = index > last;
            if ahead && (index * CHUNK >= known_size || !self.budget.has_room()) {
                break;
            }
            let budget = &self.budget;
            self.chunks.entry(index).or_insert_with(|| {
                let chunk = Chunk::new(index, budget);
                fetch.push(chunk.clone());
                chunk
            });
        }
        let cover = (first..=last).map(|i| self.chunks[&i].clone()).collect();
        Plan {
            source: Source::Chunks(cover),
            fetch,
        }
    }

    /// Drop `chunk` (it failed, or it ended short of a file that has grown since), so the next
    /// read fetches those bytes again.
    pub fn discard(&mut self, chunk: &Arc<Chunk>) {
        if self
            .chunks
            .get(&chunk.index)
            .is_some_and(|c| Arc::ptr_eq(c, chunk))
        {
            self.chunks.remove(&chunk.index);
        }
    }

    /// Chunks held (fetched or in flight).
    pub fn held(&self) -> usize {
        self.chunks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 1 << 40;

    fn fetched(plan: &Plan) -> Vec<u64> {
        plan.fetch.iter().map(|c| c.start() / CHUNK).collect()
    }

    #[test]
    fn a_random_read_is_one_direct_read() {
        let mut ra = ReadAhead::new(DEFAULT_MAX_WINDOW, Budget::new(DEFAULT_BUDGET));
        for offset in [5 * CHUNK + 7, 100, 77 * CHUNK, 3] {
            let plan = ra.plan(offset, 4096, BIG);
            assert!(matches!(plan.source, Source::Direct));
            assert!(plan.fetch.is_empty());
        }
        assert_eq!(ra.window(), 0);
    }

    #[test]
    fn sequential_reads_open_a_window_that_doubles_up_to_the_maximum() {
        let mut ra = ReadAhead::new(8 * CHUNK, Budget::new(DEFAULT_BUDGET));
        let step = 128 << 10;
        assert!(matches!(ra.plan(0, step, BIG).source, Source::Direct));
        let plan = ra.plan(step, step, BIG);
        assert_eq!(ra.window(), INITIAL_WINDOW);
        assert_eq!(fetched(&plan), vec![0, 1, 2]);
        let Source::Chunks(c) = plan.source else {
            panic!("chunks expected")
        };
        assert_eq!(c.len(), 1);
        let mut offset = 2 * step;
        let mut windows = Vec::new();
        while offset < 40 * CHUNK {
            ra.plan(offset, step, BIG);
            windows.push(ra.window());
            offset += step;
        }
        assert!(
            windows.windows(2).all(|w| w[0] <= w[1]),
            "window never shrinks while sequential"
        );
        assert_eq!(*windows.last().unwrap(), 8 * CHUNK);
        assert!(
            ra.held() <= 10,
            "memory stays bounded by the window: {}",
            ra.held()
        );
    }

    #[test]
    fn a_seek_stops_read_ahead_and_drops_chunks() {
        let mut ra = ReadAhead::new(DEFAULT_MAX_WINDOW, Budget::new(DEFAULT_BUDGET));
        ra.plan(0, CHUNK, BIG);
        ra.plan(CHUNK, CHUNK, BIG);
        assert!(ra.held() > 0);
        let plan = ra.plan(500 * CHUNK, 4096, BIG);
        assert!(matches!(plan.source, Source::Direct));
        assert_eq!(ra.held(), 0);
        assert_eq!(ra.window(), 0);
    }

    #[test]
    fn out_of_order_reads_inside_the_window_stay_sequential() {
        let mut ra = ReadAhead::new(DEFAULT_MAX_WINDOW, Budget::new(DEFAULT_BUDGET));
        ra.plan(0, 4096, BIG);
        ra.plan(4096, 4096, BIG);
        let plan = ra.plan(CHUNK + 8192, 4096, BIG);
        assert!(
            matches!(plan.source, Source::Chunks(_)),
            "inside fetched chunk 1"
        );
        assert!(ra.window() > 0);
    }

    #[test]
    fn a_late_read_of_the_previous_chunk_stays_sequential() {
        // Two FUSE threads: the read of chunk 1 can reach the plan after the read of chunk 2.
        let mut ra = ReadAhead::new(DEFAULT_MAX_WINDOW, Budget::new(DEFAULT_BUDGET));
        ra.plan(0, CHUNK, BIG);
        ra.plan(CHUNK, CHUNK, BIG);
        ra.plan(3 * CHUNK, CHUNK, BIG);
        let window = ra.window();
        let plan = ra.plan(2 * CHUNK, CHUNK, BIG);
        assert!(matches!(plan.source, Source::Chunks(_)), "chunk 2 is kept");
        assert!(plan.fetch.is_empty(), "nothing fetched twice");
        assert_eq!(ra.window(), window);
        let plan = ra.plan(4 * CHUNK, CHUNK, BIG);
        assert!(matches!(plan.source, Source::Chunks(_)), "still sequential");
    }

    #[test]
    fn nothing_is_fetched_ahead_past_the_known_end() {
        let mut ra = ReadAhead::new(DEFAULT_MAX_WINDOW, Budget::new(DEFAULT_BUDGET));
        let size = CHUNK + 10;
        ra.plan(0, 4096, size);
        let plan = ra.plan(4096, 4096, size);
        assert_eq!(fetched(&plan), vec![0, 1]);
        let plan = ra.plan(CHUNK, 10, size);
        assert!(plan.fetch.is_empty());
    }

    #[test]
    fn a_read_spanning_two_chunks_waits_on_both_and_discard_refetches() {
        let mut ra = ReadAhead::new(DEFAULT_MAX_WINDOW, Budget::new(DEFAULT_BUDGET));
        ra.plan(0, CHUNK - 10, BIG);
        let plan = ra.plan(CHUNK - 10, 20, BIG);
        let Source::Chunks(c) = plan.source else {
            panic!("chunks expected")
        };
        assert_eq!(
            c.iter().map(|c| c.start()).collect::<Vec<_>>(),
            vec![0, CHUNK]
        );
        ra.discard(&c[1]);
        let plan = ra.plan(CHUNK + 10, 20, BIG);
        assert_eq!(
            fetched(&plan).first(),
            Some(&1),
            "a discarded chunk is fetched again"
        );
    }

    #[tokio::test]
    async fn waiters_see_the_completed_chunk() {
        let budget = Budget::new(4);
        let chunk = Chunk::new(3, &budget);
        let waiter = {
            let chunk = chunk.clone();
            tokio::spawn(async move { chunk.wait().await })
        };
        chunk.complete(Ok(Arc::new(vec![1, 2, 3])));
        assert_eq!(*waiter.await.unwrap().unwrap(), vec![1, 2, 3]);
        assert_eq!(chunk.start(), 3 * CHUNK);
        let failed = Chunk::new(0, &budget);
        assert_eq!(budget.live(), 2);
        failed.complete(Err(Errno::EIO));
        assert_eq!(failed.wait().await.unwrap_err(), Errno::EIO);
        drop((chunk, failed));
        assert_eq!(
            budget.live(),
            0,
            "chunks give their budget back when dropped"
        );
    }

    #[test]
    fn over_budget_only_the_needed_chunks_are_fetched() {
        let budget = Budget::new(3);
        let mut a = ReadAhead::new(DEFAULT_MAX_WINDOW, budget.clone());
        a.plan(0, 4096, BIG);
        assert_eq!(fetched(&a.plan(4096, 4096, BIG)), vec![0, 1, 2]);
        let mut b = ReadAhead::new(DEFAULT_MAX_WINDOW, budget.clone());
        b.plan(0, 4096, BIG);
        let plan = b.plan(4096, 4096, BIG);
        assert_eq!(
            fetched(&plan),
            vec![0],
            "no room: only the chunk being read"
        );
        assert!(matches!(plan.source, Source::Chunks(_)));
        drop(a);
        assert_eq!(budget.live(), 1);
    }
}
