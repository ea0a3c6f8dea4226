//! `Pool`: the connections to one node, shared by every request a door makes to it — the web
//! UI's pages and video streams, the mount's reads, the cluster, the CLI.
//!
//! Why a pool and not one pipelined connection: a 1 MiB `pread` on one connection delays every
//! request queued behind it, and the kernel or a browser asks for many things at once. Why not
//! a connection per request: a page listing a folder and a video seeking twenty times would
//! pay a TCP handshake (and, with credentials, an `auth`) each time.
//!
//! The rules, each one a failure someone met:
//! - **a bound**: at most [`PoolConfig::max_connections`] connections are out at once; further
//!   requests wait for one to come back;
//! - **a connect timeout** of its own, shorter than the request timeout, and after a failed
//!   connect the node is held **down** for [`PoolConfig::down_hold`], so a burst of requests
//!   fails at once instead of each waiting for its own timeout;
//! - **credentials** ([`Credentials`]) proven on every new connection, by
//!   [`Client::connect_with`], the one function the TLS layer will wrap;
//! - **only clean connections are reused**: a connection goes back to the idle list only when
//!   its last reply was read in full ([`Lease::done`]); one dropped mid-reply (the browser went
//!   away during a `pread`) is closed, as its next read would return the old reply's tail;
//! - **one retry on a stale connection**: an idle connection may have died (the node's idle
//!   timeout, a restart). When a *reused* connection fails with a connection error, every idle
//!   connection is dropped and the request is retried once on a fresh one
//!   ([`Pool::run`]) — how reads work again after a node comes back, with no remount and no
//!   reload. A request on a fresh connection is never retried: the node really is failing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::client::{Client, ClientError, Credentials, NodeInfo};
use crate::share::Entry;

/// Timeouts and limits of one node's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Longest wait for a new connection (TCP, then proving the credentials).
    pub connect_timeout: Duration,
    /// Longest single wait for the node during a request (a stalled node is an error).
    pub request_timeout: Duration,
    /// After a failed connect, new connections fail at once for this long.
    pub down_hold: Duration,
    /// Most connections out at once (lent, not idle); more requests wait for one.
    pub max_connections: usize,
    /// Most idle connections kept for reuse.
    pub max_idle: usize,
}

impl Default for PoolConfig {
    /// Values for interactive use: fail in seconds, keep a few connections warm.
    fn default() -> Self {
        PoolConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(15),
            down_hold: Duration::from_millis(500),
            max_connections: 8,
            max_idle: 4,
        }
    }
}

/// The connections to one node. Cheap to clone; every clone is the same pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    config: PoolConfig,
    credentials: Credentials,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
    /// Set after a failed connect: until then, fail without trying.
    down_until: Mutex<Option<Instant>>,
    /// New TLS connections hand their records over to `tls::Records` ([`Pool::with_records`]).
    records: AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("addr", &self.inner.addr)
            .field("config", &self.inner.config)
            .field("authenticated", &!self.inner.credentials.is_empty())
            .finish_non_exhaustive()
    }
}

/// A connection lent by a [`Pool`], with its place in the bound. Dropped, it goes back to the
/// idle list if [`Lease::done`] was called after its last request, and is closed otherwise.
///
/// Hold one across several requests (the web's HTTP body, one `pread` per chunk; a read-ahead
/// stream): call [`Lease::client`] before each request and [`Lease::done`] after its reply.
#[derive(Debug)]
pub struct Lease {
    pool: Pool,
    client: Option<Client>,
    /// Set after a complete request/reply; cleared by [`Lease::client`].
    clean: bool,
    reused: bool,
    _permit: OwnedSemaphorePermit,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A reused connection that failed this way probably died while idle: worth one retry.
fn stale(e: &ClientError) -> bool {
    matches!(e, ClientError::Closed { .. } | ClientError::Io { .. })
}

impl Pool {
    /// A pool for the node at `addr` (`host:port`, e.g. a [`NodeAddr`](crate::NodeAddr)
    /// displayed) with nothing to prove.
    pub fn new(addr: impl Into<String>, config: PoolConfig) -> Pool {
        Pool::with_credentials(addr, config, Credentials::none())
    }

    /// A pool whose every new connection proves `credentials` (e.g. one web session's pool
    /// for a protected node: never shared with other sessions).
    pub fn with_credentials(
        addr: impl Into<String>,
        config: PoolConfig,
        credentials: Credentials,
    ) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                addr: addr.into(),
                config,
                credentials,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(config.max_connections.max(1))),
                down_until: Mutex::new(None),
                records: AtomicBool::new(false),
            }),
        }
    }

    /// This pool, whose new TLS connections have their records opened here
    /// ([`Client::hand_over_records`]): for pools that carry bulk bytes (the FUSE mount's 1 MiB
    /// reads), where rustls's 4 KiB socket reads and extra copy cost the client's core.
    pub fn with_records(self) -> Pool {
        self.inner.records.store(true, Ordering::Relaxed);
        self
    }

    /// `host:port` of the node.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// What every new connection of this pool proves (a follower of the same node's
    /// events proves the same).
    pub fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    /// True when this pool proves credentials on its connections.
    pub fn is_authenticated(&self) -> bool {
        !self.inner.credentials.is_empty()
    }

    /// Connections lent right now (not idle).
    pub fn in_use(&self) -> usize {
        self.inner.config.max_connections.max(1) - self.inner.permits.available_permits()
    }

    /// Idle connections kept right now.
    pub fn idle(&self) -> usize {
        lock(&self.inner.idle).len()
    }

    /// `hello`: the node's name and version.
    pub async fn hello(&self) -> Result<NodeInfo, ClientError> {
        self.run(async |c| c.hello().await).await
    }

    /// `stat <path>`.
    pub async fn stat(&self, path: &str) -> Result<Entry, ClientError> {
        let path = path.to_owned();
        self.run(async move |c| c.stat(&path).await).await
    }

    /// `stat <path>`, keeping the connection to read the file with (see [`Pool::run_leased`]).
    pub async fn stat_leased(&self, path: &str) -> Result<(Entry, Lease), ClientError> {
        let path = path.to_owned();
        self.run_leased(async move |c| c.stat(&path).await).await
    }

    /// `ls <dir>`: a whole directory with metadata in one round trip.
    pub async fn ls(&self, dir: &str) -> Result<Vec<Entry>, ClientError> {
        let dir = dir.to_owned();
        self.run(async move |c| c.ls(&dir).await).await
    }

    /// `pread <offset> <size> <path>`: at most `size` bytes (fewer at end of file).
    pub async fn pread(&self, path: &str, offset: u64, size: u64) -> Result<Vec<u8>, ClientError> {
        let path = path.to_owned();
        self.run(async move |c| {
            let mut buf = Vec::with_capacity(size as usize);
            c.pread(&path, offset, size, &mut buf).await?;
            Ok(buf)
        })
        .await
    }

    /// Run `op` on a pooled connection and give the connection back; when a reused connection
    /// turns out dead, run `op` once more on a fresh one.
    ///
    /// `op` must read every reply it asks for, also when it fails with a node's error
    /// ([`ClientError::Remote`]), since such a connection is kept.
    ///
    /// Where the caller's future must be `Send` (a spawned task, an axum handler), let `op`
    /// own what it captures (`let p = path.to_owned(); pool.run(async move |c|
    /// c.stat(&p).await)`): with today's compiler an async closure that captures a borrowed
    /// value makes the future fail `Send` ("implementation of `Send` is not general enough").
    /// The typed methods above already do this.
    pub async fn run<T>(
        &self,
        op: impl AsyncFnMut(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        self.run_leased(op).await.map(|(value, _lease)| value)
    }

    /// [`Pool::run`], keeping the connection for what follows (the web opens a file with
    /// `stat`, then streams it with `pread` on the same connection).
    pub async fn run_leased<T>(
        &self,
        mut op: impl AsyncFnMut(&mut Client) -> Result<T, ClientError>,
    ) -> Result<(T, Lease), ClientError> {
        let mut lease = self.lease().await?;
        let first = op(lease.client()).await;
        match lease.finish(first) {
            Ok(value) => return Ok((value, lease)),
            Err(e) if lease.reused && stale(&e) => {
                tracing::debug!(addr = %self.inner.addr, error = %e, "stale pooled connection: retrying");
                lock(&self.inner.idle).clear();
            }
            Err(e) => return Err(e),
        }
        drop(lease);
        let mut lease = self.fresh().await?;
        let second = op(lease.client()).await;
        let value = lease.finish(second)?;
        Ok((value, lease))
    }

    /// An idle connection if there is one, else a new one; waits while
    /// [`PoolConfig::max_connections`] are out. No retry: see [`Lease::is_reused`].
    pub async fn lease(&self) -> Result<Lease, ClientError> {
        let permit = self.permit().await;
        let idle = lock(&self.inner.idle).pop();
        match idle {
            Some(client) => Ok(self.lent(client, true, permit)),
            None => Ok(self.lent(self.connect().await?, false, permit)),
        }
    }

    /// A new connection, bypassing the idle ones (after a pooled one turned out stale, or to
    /// check credentials: a web login proves a password this way).
    pub async fn fresh(&self) -> Result<Lease, ClientError> {
        let permit = self.permit().await;
        Ok(self.lent(self.connect().await?, false, permit))
    }

    async fn permit(&self) -> OwnedSemaphorePermit {
        self.inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the pool semaphore is never closed")
    }

    fn lent(&self, client: Client, reused: bool, permit: OwnedSemaphorePermit) -> Lease {
        Lease {
            pool: self.clone(),
            client: Some(client),
            clean: false,
            reused,
            _permit: permit,
        }
    }

    /// A new connection with the pool's credentials, or an error at once while the node is
    /// held down.
    async fn connect(&self) -> Result<Client, ClientError> {
        let inner = &self.inner;
        let down = *lock(&inner.down_until);
        if down.is_some_and(|until| Instant::now() < until) {
            return Err(self.connect_error(std::io::ErrorKind::ConnectionRefused, "node is down"));
        }
        let connecting = Client::connect_with(&inner.addr, &inner.credentials);
        let result = match tokio::time::timeout(inner.config.connect_timeout, connecting).await {
            Ok(r) => r,
            Err(_) => Err(self.connect_error(std::io::ErrorKind::TimedOut, "connect timed out")),
        };
        match result {
            Ok(mut client) => {
                *lock(&inner.down_until) = None;
                client.set_timeout(inner.config.request_timeout);
                if inner.records.load(Ordering::Relaxed) {
                    return client.hand_over_records().await;
                }
                Ok(client)
            }
            // The node answered (a wrong password): it is up.
            Err(e @ ClientError::Remote { .. }) => Err(e),
            Err(e) => {
                tracing::debug!(addr = %inner.addr, error = %e, "node unreachable");
                *lock(&inner.down_until) = Some(Instant::now() + inner.config.down_hold);
                Err(e)
            }
        }
    }

    fn connect_error(&self, kind: std::io::ErrorKind, what: &'static str) -> ClientError {
        ClientError::Connect {
            addr: self.inner.addr.clone(),
            source: std::io::Error::new(kind, what),
        }
    }

    fn put_back(&self, client: Client) {
        let mut idle = lock(&self.inner.idle);
        if idle.len() < self.inner.config.max_idle {
            idle.push(client);
        }
    }
}

impl Lease {
    /// The connection, for one request. It counts as dirty until [`Lease::done`].
    pub fn client(&mut self) -> &mut Client {
        self.clean = false;
        self.client.as_mut().expect("client present until drop")
    }

    /// The last reply was read in full: the connection may be reused.
    pub fn done(&mut self) {
        self.clean = true;
    }

    /// True when the connection came from the idle list (so a connection error may only mean
    /// it died while idle).
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// The pool this connection belongs to.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Mark the connection clean when `result` says the reply was read in full (a success, or
    /// the node's own error), and pass `result` on.
    pub fn finish<T>(&mut self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        if matches!(result, Ok(_) | Err(ClientError::Remote { .. })) {
            self.done();
        }
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.clean {
            if let Some(client) = self.client.take() {
                self.pool.put_back(client);
            }
        }
    }
}

/// One [`Pool`] per node address, created on first use with one shared configuration and no
/// credentials. Cheap to clone; every clone sees the same pools.
#[derive(Debug, Clone, Default)]
pub struct Pools {
    config: PoolConfig,
    pools: Arc<Mutex<HashMap<String, Pool>>>,
}

impl Pools {
    pub fn new(config: PoolConfig) -> Pools {
        Pools {
            config,
            pools: Arc::default(),
        }
    }

    /// The pool for `addr` (`host:port`), created on first use.
    pub fn get(&self, addr: &str) -> Pool {
        lock(&self.pools)
            .entry(addr.to_owned())
            .or_insert_with(|| Pool::new(addr, self.config))
            .clone()
    }

    /// Forget the pool for `addr` (a node that left); leases out keep it alive until dropped.
    pub fn remove(&self, addr: &str) -> Option<Pool> {
        lock(&self.pools).remove(addr)
    }
}

#[cfg(test)]
mod tests;
