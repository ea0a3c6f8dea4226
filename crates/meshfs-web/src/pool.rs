//! `Pool`: a few idle file-server connections per remote node, so a page that lists a folder
//! and a video that seeks twenty times do not pay a TCP handshake each time.
//!
//! A connection goes back to the pool only when its last reply was read in full (see
//! [`Pooled`]); one dropped mid-reply (the browser went away during a `pread`) is closed, since
//! its next read would return the tail of the old reply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshfs_core::{Client, ClientError};

/// Idle connections kept per node.
const MAX_IDLE: usize = 4;
/// Per-wait timeout on pooled connections: a stalled node is an error after this long.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Idle connections to one node.
pub struct Pool {
    addr: String,
    /// Proven with `auth` on every new connection: the pool of one browser session for a
    /// protected node (never shared with other sessions, never logged).
    password: Option<String>,
    idle: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("addr", &self.addr)
            .field("authenticated", &self.password.is_some())
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(addr: &str) -> Pool {
        Pool {
            addr: addr.to_owned(),
            password: None,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A pool whose connections all prove `password` first (one session's, for one node).
    pub fn with_password(addr: &str, password: String) -> Pool {
        Pool {
            password: Some(password),
            ..Pool::new(addr)
        }
    }

    /// A new connection, authenticated when the pool has a password.
    async fn connect(&self) -> Result<Client, ClientError> {
        let mut c = Client::connect(&self.addr).await?;
        c.set_timeout(TIMEOUT);
        if let Some(p) = &self.password {
            c.auth(p).await?;
        }
        Ok(c)
    }

    /// The node's file-server address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// An idle connection if there is one (`reused` true), else a new one.
    pub async fn get(self: &Arc<Self>) -> Result<Pooled, ClientError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let (client, reused) = match idle {
            Some(c) => (c, true),
            None => (self.connect().await?, false),
        };
        Ok(Pooled {
            pool: self.clone(),
            client: Some(client),
            clean: false,
            reused,
        })
    }

    /// A new connection, bypassing the idle ones (after a pooled one turned out stale).
    pub async fn fresh(self: &Arc<Self>) -> Result<Pooled, ClientError> {
        let c = self.connect().await?;
        Ok(Pooled {
            pool: self.clone(),
            client: Some(c),
            clean: false,
            reused: false,
        })
    }

    fn put(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(client);
        }
    }
}

/// A connection on loan from a [`Pool`]; returned on drop if it is clean.
#[derive(Debug)]
pub struct Pooled {
    pool: Arc<Pool>,
    client: Option<Client>,
    /// Set by the borrower after a complete request/reply; cleared before the next one.
    clean: bool,
    /// Came from the idle list (so a connection error may just mean the node timed it out).
    pub reused: bool,
}

impl Pooled {
    /// The connection, for one request. The connection counts as dirty until [`Pooled::done`].
    pub fn client(&mut self) -> &mut Client {
        self.clean = false;
        self.client.as_mut().expect("client present until drop")
    }

    /// Mark the last reply as fully read: the connection may be reused.
    pub fn done(&mut self) {
        self.clean = true;
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if !self.clean {
            return;
        }
        if let Some(c) = self.client.take() {
            self.pool.put(c);
        }
    }
}

/// The pools of every remote node, by address.
#[derive(Debug, Default, Clone)]
pub struct Pools {
    pools: Arc<Mutex<HashMap<String, Arc<Pool>>>>,
}

impl Pools {
    /// The pool for `addr`, created on first use.
    pub fn get(&self, addr: &str) -> Arc<Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .entry(addr.to_owned())
            .or_insert_with(|| Arc::new(Pool::new(addr)))
            .clone()
    }
}
