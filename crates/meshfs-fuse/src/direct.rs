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

use meshfs_core::{Client, ClientError, Pool, PoolConfig};

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
    /// The kernel released the mount's file `file`: close it where a lane holds it open, if a
    /// lane is free now (else it stays open until that lane reads another file of the node, or
    /// the node closes the idle connection).
    pub fn release(&self, file: u64) {
        if let Some(mut lane) = self.take() {
            lane.release(file);
        }
    }

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

/// A current-thread runtime and its own connection per node. Its sockets are registered with
/// its own reactor, so only [`Lane::run`] drives them; it is dropped with the filesystem, on
/// the session's thread, never inside an async context.
#[derive(Debug)]
pub struct Lane {
    rt: tokio::runtime::Runtime,
    /// By the node's address in memory; [`NodeLane::node`] tells a node dropped (and its
    /// address reused) from the one the pool was made for.
    nodes: HashMap<usize, NodeLane>,
}

impl Lane {
    fn new() -> std::io::Result<Lane> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Lane {
            rt,
            nodes: HashMap::new(),
        })
    }

    /// Run the future `f` makes of this lane's connection to `node` to completion, on this
    /// thread.
    pub fn run_on<'a, F: Future>(
        &'a mut self,
        node: &Arc<Node>,
        f: impl FnOnce(&'a mut NodeLane) -> F,
    ) -> F::Output {
        let Lane { rt, nodes } = self;
        let key = Arc::as_ptr(node) as usize;
        let current = |l: &NodeLane| l.node.upgrade().is_some_and(|n| Arc::ptr_eq(&n, node));
        if !nodes.get(&key).is_some_and(current) {
            nodes.retain(|_, l| l.node.strong_count() > 0);
            nodes.insert(key, NodeLane::new(node));
        }
        let lane = nodes.get_mut(&key).expect("inserted above");
        rt.block_on(f(lane))
    }

    /// The file with id `file` is closed by the kernel: close it on the node too (the request
    /// is sent now, its reply read with the next request), so a file deleted on the node does
    /// not keep its space while the connection idles.
    pub fn release(&mut self, file: u64) {
        let Self { rt, nodes } = self;
        for lane in nodes.values_mut().filter(|l| l.held == Some(file)) {
            rt.block_on(lane.close());
        }
    }
}

/// A lane's connection to one node, and the file it holds open there. Random reads of one
/// file are then `seek` and `read` on that open file: a `pread` by path makes the node resolve
/// and open the file for each read (and its own file watch hears each open and close).
#[derive(Debug)]
pub struct NodeLane {
    node: Weak<Node>,
    /// Same address, settings and credentials as the node's own ([`crate::node_pool`]), one
    /// connection: what `held` and `owed` describe.
    pool: Pool,
    /// The mount's id of the file open on the connection, if any.
    held: Option<u64>,
    /// Replies to `close` sent at a release and not read yet.
    owed: usize,
}

impl NodeLane {
    fn new(node: &Arc<Node>) -> NodeLane {
        let shared = &node.pool;
        let config = PoolConfig {
            max_connections: 1,
            max_idle: 1,
            ..*shared.config()
        };
        NodeLane {
            node: Arc::downgrade(node),
            pool: crate::node_pool(shared.addr(), config, shared.credentials().clone()),
            held: None,
            owed: 0,
        }
    }

    /// At most `size` bytes at `offset` of `path` (the mount's file `file`): `seek` and `read`
    /// if the file is open on the connection already, else `close`, `open`, `seek` and `read`,
    /// pipelined either way (one round trip).
    pub fn read<'a>(
        &'a mut self,
        file: u64,
        path: &'a str,
        offset: u64,
        size: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ClientError>> + Send + 'a {
        let (held, owed) = (self.held.take(), std::mem::take(&mut self.owed));
        let mut attempt = 0;
        let pool = self.pool.clone();
        // Owned by the closure (see `crate::requests` for why).
        let path = path.to_owned();
        async move {
            let res = pool
                .run(async move |c| {
                    attempt += 1;
                    // A second attempt is on a new connection: nothing open, nothing owed.
                    let again = attempt > 1;
                    let owed = if again { 0 } else { owed };
                    let open = again || held != Some(file);
                    read_on(c, owed, open.then_some(path.as_str()), offset, size).await
                })
                .await;
            if res.is_ok() {
                self.held = Some(file);
            }
            res
        }
    }

    /// Send `close` for the file held, without waiting for its reply; only on the connection
    /// already there (a release never waits for a new one).
    async fn close(&mut self) {
        self.held = None;
        if self.pool.idle() == 0 {
            return;
        }
        let owed = std::mem::take(&mut self.owed);
        // The idle connection (a lease, not `Pool::run`: no retry on a new one).
        let Ok(mut lease) = self.pool.lease().await else {
            return;
        };
        lease.client().send("close");
        if lease.client().flush().await.is_ok() {
            lease.done();
            self.owed = owed + 1;
        }
        // Not sent: the connection is dropped, and its open file with it.
    }
}

/// One read on `c`: first the `owed` replies to earlier `close`s, then `open` of `reopen` if
/// given (after a `close` of whatever was open), `seek` and `read`. Every reply is read before
/// an answer of the node's is returned, so the connection stays in step for the next request.
async fn read_on(
    c: &mut Client,
    owed: usize,
    reopen: Option<&str>,
    offset: u64,
    size: u64,
) -> Result<Vec<u8>, ClientError> {
    if let Some(path) = reopen {
        c.send("close");
        c.send(&format!("open {path}"));
    }
    c.send(&format!("seek {offset}"));
    c.send(&format!("read {size}"));
    // `close` with nothing open answers code 4: only its line matters.
    for _ in 0..owed + usize::from(reopen.is_some()) {
        node_answer(c.status().await)?;
    }
    let mut refused = None;
    if reopen.is_some() {
        refused = node_answer(c.status().await)?;
    }
    let seek = node_answer(c.status().await)?;
    refused = refused.or(seek);
    let mut buf = Vec::new();
    match c.data_header(size).await {
        Ok(n) => c.payload_into(n, &mut buf).await?,
        Err(e @ ClientError::Remote { .. }) => refused = refused.or(Some(e)),
        Err(e) => return Err(e),
    }
    match refused {
        Some(e) => Err(e),
        None => Ok(buf),
    }
}

/// A reply line read: the node's refusal (`Some`), or an error of the connection.
fn node_answer(reply: Result<String, ClientError>) -> Result<Option<ClientError>, ClientError> {
    match reply {
        Ok(_) => Ok(None),
        Err(e @ ClientError::Remote { .. }) => Ok(Some(e)),
        Err(e) => Err(e),
    }
}
