//! The per-node connection pool: several [`Client`]s to one node so several FUSE requests
//! (read-ahead chunks, parallel readers, a `stat` while a big read runs) are in flight at once.
//!
//! Why a pool and not one pipelined connection: a 1 MiB `pread` on one connection delays every
//! request queued behind it, and the kernel sends reads from many files at once. A small pool
//! (bounded by a semaphore) gives parallelism without unbounded sockets.
//!
//! Failure handling is the point of this module:
//! - connecting has its own short timeout, and after a failed connect the node is held "down"
//!   for a moment so a burst of requests fails at once (EIO fast) instead of each waiting;
//! - a pooled connection may have died (idle timeout, node restarted): a connection error on a
//!   *reused* connection drops every idle connection and retries once on a fresh one, which is
//!   how reads work again after a node comes back, without remounting.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use meshfs_core::client::NodeInfo;
use meshfs_core::{Client, ClientError, Entry};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Timeouts and limits of one node's pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Longest wait for a TCP connection to the node.
    pub connect_timeout: Duration,
    /// Longest single wait for the node during a request (a stalled node is an error).
    pub request_timeout: Duration,
    /// After a failed connect, requests fail at once for this long.
    pub down_hold: Duration,
    /// Most connections open to the node at once.
    pub max_connections: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            down_hold: Duration::from_millis(500),
            max_connections: 8,
        }
    }
}

/// Connections to one node.
#[derive(Debug)]
pub struct NodePool {
    addr: String,
    config: PoolConfig,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
    /// Set after a failed connect: until then, fail without trying.
    down_until: Mutex<Option<Instant>>,
}

/// A connection lent by the pool, with the permit that bounds how many are out.
struct Lease<'a> {
    client: Client,
    reused: bool,
    _permit: SemaphorePermit<'a>,
}

impl NodePool {
    pub fn new(addr: impl Into<String>, config: PoolConfig) -> NodePool {
        NodePool {
            addr: addr.into(),
            config,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(config.max_connections.max(1)),
            down_until: Mutex::new(None),
        }
    }

    /// `host:port` of the node.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn checkout(&self) -> Result<Lease<'_>, ClientError> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the pool semaphore is never closed");
        if let Some(client) = self.idle.lock().expect("pool lock").pop() {
            return Ok(Lease {
                client,
                reused: true,
                _permit: permit,
            });
        }
        let down = *self.down_until.lock().expect("pool lock");
        if down.is_some_and(|until| Instant::now() < until) {
            return Err(self.connect_error(std::io::ErrorKind::ConnectionRefused, "node is down"));
        }
        let connected =
            tokio::time::timeout(self.config.connect_timeout, Client::connect(&self.addr)).await;
        let result = match connected {
            Ok(r) => r,
            Err(_) => Err(self.connect_error(std::io::ErrorKind::TimedOut, "connect timed out")),
        };
        match result {
            Ok(mut client) => {
                *self.down_until.lock().expect("pool lock") = None;
                client.set_timeout(self.config.request_timeout);
                Ok(Lease {
                    client,
                    reused: false,
                    _permit: permit,
                })
            }
            Err(e) => {
                tracing::debug!(addr = %self.addr, error = %e, "node unreachable");
                *self.down_until.lock().expect("pool lock") =
                    Some(Instant::now() + self.config.down_hold);
                Err(e)
            }
        }
    }

    fn connect_error(&self, kind: std::io::ErrorKind, what: &'static str) -> ClientError {
        ClientError::Connect {
            addr: self.addr.clone(),
            source: std::io::Error::new(kind, what),
        }
    }

    /// Give the connection back after a request, or drop it. Returns true when the request
    /// should be retried on a fresh connection (the reused connection turned out dead).
    fn checkin<T>(
        &self,
        lease: Lease<'_>,
        result: &Result<T, ClientError>,
        retried: &mut bool,
    ) -> bool {
        match result {
            Ok(_) | Err(ClientError::Remote { .. }) => {
                // The connection is in a known state: keep it for the next request.
                self.idle.lock().expect("pool lock").push(lease.client);
                false
            }
            Err(e) => {
                // The connection is unusable (and so, probably, is every idle one).
                self.idle.lock().expect("pool lock").clear();
                let stale = matches!(e, ClientError::Closed { .. } | ClientError::Io { .. });
                let retry = lease.reused && stale && !*retried;
                *retried = true;
                retry
            }
        }
    }

    /// `hello`: the node's name and version.
    pub async fn hello(&self) -> Result<NodeInfo, ClientError> {
        let mut retried = false;
        loop {
            let mut lease = self.checkout().await?;
            let res = lease.client.hello().await;
            if !self.checkin(lease, &res, &mut retried) {
                return res;
            }
        }
    }

    /// `stat <path>`.
    pub async fn stat(&self, path: &str) -> Result<Entry, ClientError> {
        let mut retried = false;
        loop {
            let mut lease = self.checkout().await?;
            let res = lease.client.stat(path).await;
            if !self.checkin(lease, &res, &mut retried) {
                return res;
            }
        }
    }

    /// `ls <dir>`: a whole directory with metadata in one round trip.
    pub async fn ls(&self, dir: &str) -> Result<Vec<Entry>, ClientError> {
        let mut retried = false;
        loop {
            let mut lease = self.checkout().await?;
            let res = lease.client.ls(dir).await;
            if !self.checkin(lease, &res, &mut retried) {
                return res;
            }
        }
    }

    /// `pread <offset> <size> <path>`: at most `size` bytes (fewer at end of file).
    pub async fn pread(&self, path: &str, offset: u64, size: u64) -> Result<Vec<u8>, ClientError> {
        let mut retried = false;
        loop {
            let mut lease = self.checkout().await?;
            let mut buf = Vec::with_capacity(size as usize);
            let res = lease
                .client
                .pread(path, offset, size, &mut buf)
                .await
                .map(|_| buf);
            if !self.checkin(lease, &res, &mut retried) {
                return res;
            }
        }
    }
}
