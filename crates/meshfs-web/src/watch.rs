//! The node watchers: one task per known node follows its file events with
//! [`Follower`] (the file server's `subscribe`, protocols.md §1) and keeps the node's status
//! in the [`NodeDirectory`] up to date; the events go to the [`EventHub`], which the live
//! feed (`feed.rs`) fans out to the pages.
//!
//! A node that answers `hello` is online (its name and version are learned); events are
//! `live` once subscribed. A node that answers `hello` but refuses `subscribe` (an older
//! file server, a failed watch, a share password) is online with events `unavailable`: the
//! follower keeps retrying, and reports it offline as soon as it stops answering. A node that
//! does not answer is offline. After a reconnection the follower resumes from the last event
//! it delivered, or says `resync`, which the pages hear as "reload this node".
//!
//! The local node is watched the same way, through its own file server on loopback, so all
//! nodes share one code path (but it is never shown offline: it is the one serving the page).

use std::collections::HashMap;
use std::time::Duration;

use meshfs_core::events::EventKind;
use meshfs_core::follow::{Follower, Notice};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::feed::{EventHub, FeedItem, FileEvent};
use crate::nodes::{Events, NodeDirectory, Status};
use crate::state::AppState;

/// Start a watcher for every node in the directory, now and whenever nodes are added; stop
/// the watcher of a node dropped from it (it said `bye` or expired), so a node that comes
/// back later is watched afresh.
pub fn spawn_watchers(state: AppState, tracker: TaskTracker) {
    let tracker2 = tracker.clone();
    tracker.spawn(local_disk(state.clone()));
    tracker.spawn(async move {
        let mut watched: HashMap<String, CancellationToken> = HashMap::new();
        let mut changes = state.nodes.watch();
        loop {
            let nodes = state.nodes.snapshot();
            watched.retain(|addr, stop| {
                let keep = nodes.iter().any(|n| &n.addr == addr);
                if !keep {
                    stop.cancel();
                }
                keep
            });
            for node in nodes {
                if !watched.contains_key(&node.addr) {
                    let stop = state.shutdown.child_token();
                    watched.insert(node.addr.clone(), stop.clone());
                    let (nodes, hub) = (state.nodes.clone(), state.hub.clone());
                    tracker2.spawn(watch_node(nodes, hub, stop, node.addr, node.local));
                }
            }
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                r = changes.changed() => if r.is_err() { return },
            }
        }
    });
}

/// How often this node's own disk flag is looked at (an atomic load: free).
const DISK_POLL: Duration = Duration::from_secs(1);

/// Keep this node's `disk_full` as its retention measures it, until shutdown.
async fn local_disk(state: AppState) {
    let mut tick = tokio::time::interval(DISK_POLL);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let full = state.disk.is_full();
        for node in state.nodes.snapshot().iter().filter(|n| n.local) {
            state.nodes.update(&node.addr, |n| n.disk_full = full);
        }
    }
}

/// Follow one node until shutdown.
async fn watch_node(
    nodes: NodeDirectory,
    hub: EventHub,
    shutdown: CancellationToken,
    addr: String,
    local: bool,
) {
    let mut follower = Follower::new(addr.clone(), None);
    loop {
        let notice = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = follower.next() => n,
        };
        on_notice(&nodes, &hub, &addr, local, &follower, notice);
    }
}

/// What one notice changes: the node's status, or an event for the pages.
fn on_notice(
    nodes: &NodeDirectory,
    hub: &EventHub,
    addr: &str,
    local: bool,
    follower: &Follower,
    notice: Notice,
) {
    match notice {
        Notice::Connected { .. } => {
            learn(nodes, addr, follower);
            nodes.update(addr, |n| {
                n.status = Status::Online;
                n.events = Events::Live;
                n.events_why = None;
                n.error = None;
            });
        }
        // It answered `hello`, then refused `subscribe`: up, without events.
        Notice::Disconnected { error } if follower.hello().is_some() => {
            tracing::debug!(%addr, %error, "node offers no events");
            learn(nodes, addr, follower);
            nodes.update(addr, |n| {
                n.status = Status::Online;
                n.events = Events::Unavailable;
                n.events_why = Some(error);
                n.error = None;
            });
        }
        Notice::Disconnected { error } => {
            tracing::debug!(%addr, %error, "node watcher lost the node");
            nodes.update(addr, |n| {
                if !local {
                    n.status = Status::Offline;
                }
                n.events = Events::Unknown;
                n.events_why = None;
                n.error = Some(error);
            });
        }
        Notice::Event(event) => {
            // Named at each event: the name is learned (or changes) while following.
            let node = nodes.find(addr).map_or_else(|| addr.to_owned(), |n| n.name);
            hub.publish(match event.kind {
                EventKind::Resync => FeedItem::Resync { node },
                kind => FeedItem::File(FileEvent {
                    node,
                    seq: event.seq,
                    kind: kind.as_str().to_owned(),
                    path: event.path,
                    time_ms: crate::feed::now_ms(),
                }),
            });
        }
    }
}

/// Record the name and version the node gave in `hello`, and its ID when the connection
/// showed its key (this node's own ID is known from the start and kept).
fn learn(nodes: &NodeDirectory, addr: &str, follower: &Follower) {
    if let Some(info) = follower.hello() {
        nodes.learn_name(addr, &info.name, &info.version);
        // This node's own flag comes from its retention directly (`local_disk`).
        let full = info.disk_full;
        nodes.update(addr, |n| {
            if !n.local {
                n.disk_full = full;
            }
        });
    }
    if let Some(id) = follower.peer_id() {
        let id = id.to_string();
        nodes.update(addr, |n| {
            if !n.local {
                n.id = Some(id);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::NodeInfo;
    use meshfs_core::Share;
    use meshfs_server::{Config, FileServer};

    /// Wait (on the directory's change signal, not a clock) until `cond` holds for `addr`.
    async fn until(nodes: &NodeDirectory, addr: &str, cond: impl Fn(&NodeInfo) -> bool) {
        let mut changes = nodes.watch();
        let wait = async {
            loop {
                if nodes.find(addr).is_some_and(|n| cond(&n)) {
                    return;
                }
                changes.changed().await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap_or_else(|_| panic!("state not reached: {:?}", nodes.find(addr)));
    }

    /// A file server without events (as before `subscribe` existed, or with its watch
    /// failed): the node is online with events `unavailable`, and reported offline as soon
    /// as it goes away.
    #[tokio::test]
    async fn node_without_subscribe_is_unavailable_then_offline_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let share = Share::open(dir.path()).unwrap();
        let config = Config {
            name: "plain".into(),
            idle_timeout: Duration::from_secs(60),
            max_connections: 16,
            ..Config::default()
        };
        let server = FileServer::bind("127.0.0.1:0", share.clone(), config)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let (stop_server, server_tasks) = (CancellationToken::new(), TaskTracker::new());
        server_tasks.spawn(server.run(stop_server.clone(), server_tasks.clone()));

        let nodes = NodeDirectory::new("me", "127.0.0.1:1");
        nodes.add(&addr);
        let state = AppState {
            access: meshfs_core::access::Access::open(),
            share,
            nodes: nodes.clone(),
            pools: meshfs_core::Pools::new(crate::state::pool_config()),
            hub: Default::default(),
            shutdown: CancellationToken::new(),
            limits: Default::default(),
            sessions: Default::default(),
            chat: Default::default(),
            node_id: None,
            https: Default::default(),
            disk: Default::default(),
            upload: Default::default(),
        };
        let tasks = TaskTracker::new();
        spawn_watchers(state.clone(), tasks.clone());
        until(&nodes, &addr, |n| {
            n.status == Status::Online && n.events == Events::Unavailable && n.name == "plain"
        })
        .await;

        stop_server.cancel();
        server_tasks.close();
        server_tasks.wait().await;
        until(&nodes, &addr, |n| n.status == Status::Offline).await;

        state.shutdown.cancel();
        tasks.close();
        tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .unwrap();
    }

    /// A node with events: online and `live`, its events reach the hub under its name, in
    /// order, as the core parser reads them.
    #[tokio::test]
    async fn live_node_events_reach_the_hub() {
        let dir = tempfile::tempdir().unwrap();
        let share = Share::open(dir.path()).unwrap();
        let events = meshfs_core::events::Events::new(1024);
        let _guard = events.watch(share.root()).unwrap();
        let config = Config {
            name: "cam".into(),
            idle_timeout: Duration::from_secs(60),
            max_connections: 16,
            ..Config::default()
        };
        let server = FileServer::bind("127.0.0.1:0", share.clone(), config)
            .await
            .unwrap()
            .with_events(events);
        let addr = server.local_addr().unwrap().to_string();
        let (stop_server, server_tasks) = (CancellationToken::new(), TaskTracker::new());
        server_tasks.spawn(server.run(stop_server.clone(), server_tasks.clone()));

        let nodes = NodeDirectory::new("me", "127.0.0.1:1");
        nodes.add(&addr);
        let hub = EventHub::default();
        let (_, mut rx) = hub.subscribe();
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(watch_node(
            nodes.clone(),
            hub.clone(),
            shutdown.clone(),
            addr.clone(),
            false,
        ));
        until(&nodes, &addr, |n| {
            n.status == Status::Online && n.events == Events::Live && n.name == "cam"
        })
        .await;
        std::fs::write(dir.path().join("clip.mp4"), b"x").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let FeedItem::File(e) = rx.recv().await.unwrap() {
                    return e;
                }
            }
        })
        .await
        .expect("no event");
        assert_eq!(
            (got.node.as_str(), got.kind.as_str(), got.path.as_str()),
            ("cam", "created", "clip.mp4")
        );

        shutdown.cancel();
        stop_server.cancel();
        for t in [tasks, server_tasks] {
            t.close();
            tokio::time::timeout(Duration::from_secs(5), t.wait())
                .await
                .unwrap();
        }
    }
}
