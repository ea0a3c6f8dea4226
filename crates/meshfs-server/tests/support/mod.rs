//! A file server on its own runtime and an ephemeral loopback port, for the duration of a test.
#![allow(dead_code)]

use std::path::Path;

use meshfs_core::Share;
use meshfs_core::access::Access;
use meshfs_core::events::{Events, WatchGuard};
use meshfs_server::{Config, FileServer, Transport};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running server; stopped when dropped.
pub struct TestServer {
    pub addr: String,
    /// The share's change log, when it is watched.
    pub events: Option<Events>,
    shutdown: CancellationToken,
    _watch: Option<WatchGuard>,
    _rt: tokio::runtime::Runtime,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What the server is started with, beyond its folder.
#[derive(Default)]
pub struct Options {
    pub config: Config,
    pub transport: Transport,
    pub access: Option<Access>,
    /// Watch the share and serve `subscribe`, keeping this many events.
    pub events: Option<usize>,
    /// Serve this share of `root` (one the test keeps a handle on) instead of a fresh one.
    pub share: Option<Share>,
}

pub fn start(root: &Path, options: Options) -> TestServer {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let share = options.share.unwrap_or_else(|| Share::open(root).unwrap());
    let mut server = rt
        .block_on(FileServer::bind("127.0.0.1:0", share, options.config))
        .unwrap();
    if let Some(access) = options.access {
        server = server.with_access(access);
    }
    server = server.with_transport(options.transport);
    let watched = options.events.map(|capacity| {
        let events = Events::new(capacity);
        let guard = events.watch(root).unwrap();
        (events, guard)
    });
    if let Some((events, _)) = &watched {
        server = server.with_events(events.clone());
    }
    let (events, watch) = watched.map(|(e, g)| (Some(e), Some(g))).unwrap_or_default();
    let addr = server.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    rt.spawn(server.run(shutdown.clone(), TaskTracker::new()));
    TestServer {
        addr,
        events,
        shutdown,
        _watch: watch,
        _rt: rt,
    }
}
