//! Random reads answered on the FUSE thread that received them.
//!
//! A read handed to the shared runtime crosses threads twice before its reply: the FUSE
//! thread wakes a runtime worker (which, on tokio's multi-thread scheduler, wakes a second one
//! to steal), the worker sends the request, and a worker woken by the reply writes it to
//! `/dev/fuse`. Traced with `strace -f` on a random 4 KiB read: five futex or eventfd wakes in
//! the mount for one request. A read that is one `pread` (read-ahead off: a random read, the
//! first read of a large file) is instead run to completion here, on a [`Lane`]: a
//! current-thread runtime with connections of its own, so the FUSE thread writes the request,
//! waits on the socket in its own `epoll` and writes the reply itself.
//!
//! A FUSE thread waiting here cannot read `/dev/fuse`, and a stalled node can hold it for the
//! pool's request timeout. So the mount runs [`FUSE_THREADS`] threads and at most
//! `FUSE_THREADS - 1` of them wait on a node at once ([`Lanes::take`]): one is always free to
//! take the next request, which then goes through the shared runtime as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use meshfs_core::{Pool, PoolConfig};

use crate::nodes::Node;

/// Threads reading `/dev/fuse`.
pub const FUSE_THREADS: usize = 2;

/// The lanes of one mount, and how many FUSE threads wait in them now.
#[derive(Debug, Default)]
pub struct Lanes {
    /// Lanes not in use, kept with their connections.
    idle: Mutex<Vec<Lane>>,
    busy: AtomicUsize,
}

impl Lanes {
    /// A lane for the calling FUSE thread, unless taking it would leave no thread free to read
    /// `/dev/fuse` (or the runtime cannot be built: then the caller uses the shared runtime).
    pub fn take(&self) -> Option<Taken<'_>> {
        self.busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n + 1 < FUSE_THREADS).then_some(n + 1)
            })
            .ok()?;
        let lane = self.idle.lock().expect("lanes lock").pop();
        let lane = match lane {
            Some(lane) => lane,
            None => match Lane::new() {
                Ok(lane) => lane,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build a runtime for direct reads");
                    self.busy.fetch_sub(1, Ordering::AcqRel);
                    return None;
                }
            },
        };
        Some(Taken {
            lanes: self,
            lane: Some(lane),
        })
    }
}

/// A lane held by one FUSE thread; given back when dropped.
#[derive(Debug)]
pub struct Taken<'a> {
    lanes: &'a Lanes,
    lane: Option<Lane>,
}

impl std::ops::Deref for Taken<'_> {
    type Target = Lane;
    fn deref(&self) -> &Lane {
        self.lane.as_ref().expect("lane held until drop")
    }
}

impl std::ops::DerefMut for Taken<'_> {
    fn deref_mut(&mut self) -> &mut Lane {
        self.lane.as_mut().expect("lane held until drop")
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(lane) = self.lane.take() {
            self.lanes.idle.lock().expect("lanes lock").push(lane);
        }
        self.lanes.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A current-thread runtime and its own pool per node. Its sockets are registered with its
/// own reactor, so only [`Lane::run`] drives them; it is dropped with the filesystem, on the
/// session's thread, never inside an async context.
#[derive(Debug)]
pub struct Lane {
    rt: tokio::runtime::Runtime,
    /// By the node's address in memory; the `Weak` tells a node dropped (and its address
    /// reused) from the one the pool was made for.
    pools: HashMap<usize, (Weak<Node>, Pool)>,
}

impl Lane {
    fn new() -> std::io::Result<Lane> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Lane {
            rt,
            pools: HashMap::new(),
        })
    }

    /// This lane's pool for `node`: same address, settings and credentials as the node's own
    /// ([`crate::node_pool`]), one connection.
    pub fn pool(&mut self, node: &Arc<Node>) -> Pool {
        let key = Arc::as_ptr(node) as usize;
        if let Some((weak, pool)) = self.pools.get(&key)
            && weak.upgrade().is_some_and(|n| Arc::ptr_eq(&n, node))
        {
            return pool.clone();
        }
        self.pools.retain(|_, (weak, _)| weak.strong_count() > 0);
        let shared = &node.pool;
        let config = PoolConfig {
            max_connections: 1,
            max_idle: 1,
            ..*shared.config()
        };
        let pool = crate::node_pool(shared.addr(), config, shared.credentials().clone());
        self.pools.insert(key, (Arc::downgrade(node), pool.clone()));
        pool
    }

    /// Run `f` to completion on this thread.
    pub fn run<T>(&self, f: impl Future<Output = T>) -> T {
        self.rt.block_on(f)
    }
}
