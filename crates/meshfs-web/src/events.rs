//! The live feed: one watcher task per known node speaks the file server's `subscribe`
//! (protocols.md §1) and fans the events out to every open page as Server-Sent Events
//! (`GET /api/events`).
//!
//! Each watcher also keeps the node's status in the [`NodeDirectory`] up to date: it connects,
//! says `hello` (online, name, version), then `subscribe [since]`. A node that answers
//! `subscribe` with an error code does not offer events (yet): it is marked `unavailable`, its
//! status is probed with `hello` every 10 s, and `subscribe` is tried again every 30 s. A node
//! that vanishes is marked offline and retried with a backoff of 1 to 10 s. After a
//! reconnection the watcher resumes from the last sequence number it saw.
//!
//! The local node is watched the same way, through its own file server on loopback, so all
//! nodes share one code path.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use meshfs_core::{Client, ClientError};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::{ChatMessage, ChatSetting};
use crate::error::WebError;
use crate::nodes::{Events, NodeDirectory, Status};
use crate::state::AppState;

/// Events buffered for slow pages; a page that falls further behind gets a `resync`.
const FEED_CAPACITY: usize = 1024;
/// The node pings at least every 15 s: silence for this long means the link is dead.
const SUBSCRIBE_SILENCE: Duration = Duration::from_secs(45);
/// Timeout of `hello` and of the `subscribe` status line.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a node without events is probed for status.
const PROBE_EVERY: Duration = Duration::from_secs(10);
/// Probes between two tries of `subscribe` on a node that refused it.
const PROBES_PER_SUBSCRIBE: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest event kind we pass on.
const MAX_KIND: usize = 16;

/// One file event, as the page receives it (`event: file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEvent {
    pub node: String,
    pub seq: u64,
    pub kind: String,
    pub path: String,
}

/// What travels on the hub.
#[derive(Debug, Clone)]
pub enum FeedItem {
    File(FileEvent),
    /// The node lost events: pages should reload what they show of it.
    Resync {
        node: String,
    },
}

/// Fan-out of every node's events to every open page.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<FeedItem>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            tx: broadcast::channel(FEED_CAPACITY).0,
        }
    }
}

impl EventHub {
    fn publish(&self, item: FeedItem) {
        // No page open is fine: nobody to tell.
        let _ = self.tx.send(item);
    }
}

/// One line of a `subscribe` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeLine {
    Ping(u64),
    Resync(u64),
    Event {
        seq: u64,
        kind: String,
        path: String,
    },
}

/// Parse `<seq> ping`, `<seq> resync` or `<seq> <kind> <path>`; `None` for anything else.
pub fn parse_line(line: &str) -> Option<SubscribeLine> {
    let mut parts = line.splitn(3, ' ');
    let seq: u64 = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    let path = parts.next();
    match (kind, path) {
        ("ping", None) => Some(SubscribeLine::Ping(seq)),
        ("resync", None) => Some(SubscribeLine::Resync(seq)),
        (kind, Some(path))
            if !kind.is_empty()
                && kind.len() <= MAX_KIND
                && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            Some(SubscribeLine::Event {
                seq,
                kind: kind.to_owned(),
                path: path.trim_start_matches('/').to_owned(),
            })
        }
        _ => None,
    }
}

/// Start a watcher for every node in the directory, now and whenever nodes are added.
pub fn spawn_watchers(state: AppState, tracker: TaskTracker) {
    let tracker2 = tracker.clone();
    tracker.spawn(async move {
        let mut watched = HashSet::new();
        let mut changes = state.nodes.watch();
        loop {
            for node in state.nodes.snapshot() {
                if watched.insert(node.addr.clone()) {
                    tracker2.spawn(watch_node(state.clone(), node.addr, node.local));
                }
            }
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                r = changes.changed() => if r.is_err() { return },
            }
        }
    });
}

/// Sleep, or return false if shut down first.
async fn pause(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

async fn watch_node(state: AppState, addr: String, local: bool) {
    let mut since = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut online = false;
        let res = tokio::select! {
            _ = state.shutdown.cancelled() => return,
            r = session(&state, &addr, &mut since, &mut online) => r,
        };
        let err = match res {
            Ok(()) => return,
            Err(e) => e,
        };
        tracing::debug!(%addr, error = %err, "node watcher lost the node");
        if online {
            backoff = Duration::from_secs(1);
        }
        state.nodes.update(&addr, |n| {
            if !local {
                n.status = Status::Offline;
            }
            n.events = Events::Unknown;
            n.error = Some(err.to_string());
        });
        if !pause(&state.shutdown, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: hello, then subscribe (or probe while events are unavailable).
async fn session(
    state: &AppState,
    addr: &str,
    since: &mut Option<u64>,
    online: &mut bool,
) -> Result<(), ClientError> {
    let nodes = &state.nodes;
    let mut client = Client::connect(addr).await?;
    client.set_timeout(PROBE_TIMEOUT);
    let info = client.hello().await?;
    *online = true;
    nodes.learn_name(addr, &info.name, &info.version);
    nodes.update(addr, |n| {
        n.status = Status::Online;
        n.error = None;
    });
    loop {
        client.set_timeout(PROBE_TIMEOUT);
        match since {
            Some(s) => client.send(&format!("subscribe {s}")),
            None => client.send("subscribe"),
        }
        match client.status().await {
            Ok(_) => {
                nodes.update(addr, |n| n.events = Events::Live);
                client.set_timeout(SUBSCRIBE_SILENCE);
                return follow(&mut client, state, addr, since).await;
            }
            Err(e @ ClientError::Remote { .. }) => {
                tracing::debug!(%addr, error = %e, "node offers no events");
                nodes.update(addr, |n| n.events = Events::Unavailable);
                for _ in 0..PROBES_PER_SUBSCRIBE {
                    // Between probes, watch the idle connection too: a node that goes away
                    // closes it, and is reported offline at once rather than at the next probe.
                    client.set_timeout(PROBE_EVERY * 2);
                    tokio::select! {
                        _ = state.shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(PROBE_EVERY) => {}
                        r = client.read_line() => {
                            return Err(r.err().unwrap_or_else(|| ClientError::Protocol {
                                addr: addr.to_owned(),
                                what: "unexpected line on an idle connection".into(),
                            }));
                        }
                    }
                    client.set_timeout(PROBE_TIMEOUT);
                    let info = client.hello().await?;
                    nodes.learn_name(addr, &info.name, &info.version);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Read event lines until the connection fails.
async fn follow(
    client: &mut Client,
    state: &AppState,
    addr: &str,
    since: &mut Option<u64>,
) -> Result<(), ClientError> {
    let name = |state: &AppState| {
        state
            .nodes
            .find(addr)
            .map_or_else(|| addr.to_owned(), |n| n.name)
    };
    loop {
        let line = client.read_line().await?;
        match parse_line(&line) {
            Some(SubscribeLine::Ping(_)) => {}
            Some(SubscribeLine::Resync(seq)) => {
                *since = Some(seq);
                state.hub.publish(FeedItem::Resync { node: name(state) });
            }
            Some(SubscribeLine::Event { seq, kind, path }) => {
                *since = Some(seq);
                state.hub.publish(FeedItem::File(FileEvent {
                    node: name(state),
                    seq,
                    kind,
                    path,
                }));
            }
            None => tracing::debug!(%addr, %line, "ignoring a malformed event line"),
        }
    }
}

/// `GET /api/events`: Server-Sent Events. `nodes` (the node list, at once and on every
/// change), `file` (one file event), `resync` (reload what you show of that node) and, when
/// the node is in the group chat, `chat` (the recent messages at once, then each new one).
pub async fn feed(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, WebError> {
    let permit = state.limits.feed()?;
    let mut pending = VecDeque::from([nodes_event(&state.nodes)]);
    let chat = match &state.chat {
        ChatSetting::On(room) => {
            let (history, rx) = room.subscribe();
            pending.extend(history.iter().map(|m| json_event("chat", m)));
            Some(rx)
        }
        ChatSetting::Off(_) => None,
    };
    let feed = Feed {
        _permit: permit,
        rx: state.hub.tx.subscribe(),
        changes: state.nodes.watch(),
        chat,
        pending,
        state,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let ev = feed.next().await?;
        Some((Ok(ev), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One page's subscription: the hub, the directory's changes, the chat, and its slot under
/// the limit.
struct Feed {
    _permit: OwnedSemaphorePermit,
    rx: broadcast::Receiver<FeedItem>,
    changes: tokio::sync::watch::Receiver<u64>,
    chat: Option<broadcast::Receiver<ChatMessage>>,
    /// Sent before anything live: the node list, then the chat's history.
    pending: VecDeque<Event>,
    state: AppState,
}

impl Feed {
    /// The next event for the page; `None` ends the response (shutdown).
    async fn next(&mut self) -> Option<Event> {
        if let Some(ev) = self.pending.pop_front() {
            return Some(ev);
        }
        loop {
            return Some(tokio::select! {
                _ = self.state.shutdown.cancelled() => return None,
                r = self.changes.changed() => match r {
                    Ok(()) => nodes_event(&self.state.nodes),
                    Err(_) => return None,
                },
                r = self.rx.recv() => match r {
                    Ok(FeedItem::File(e)) => json_event("file", &e),
                    Ok(FeedItem::Resync { node }) => {
                        json_event("resync", &serde_json::json!({ "node": node }))
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        json_event("resync", &serde_json::json!({ "node": null }))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                r = next_chat(&mut self.chat) => match r {
                    Ok(m) => json_event("chat", &m),
                    // A page that fell behind misses a few messages (they stay in the
                    // history for the next page load).
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => {
                        self.chat = None;
                        continue;
                    }
                },
            });
        }
    }
}

/// The next chat message, or never when the node has no chat.
async fn next_chat(
    rx: &mut Option<broadcast::Receiver<ChatMessage>>,
) -> Result<ChatMessage, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn nodes_event(nodes: &NodeDirectory) -> Event {
    json_event("nodes", &nodes.snapshot())
}

fn json_event(name: &str, value: &impl Serialize) -> Event {
    let data = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    Event::default().event(name).data(data)
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
    /// as it goes away, without waiting for the next probe.
    #[tokio::test]
    async fn node_without_subscribe_is_unavailable_then_offline_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let share = Share::open(dir.path()).unwrap();
        let config = Config {
            name: "plain".into(),
            idle_timeout: Duration::from_secs(60),
            max_connections: 16,
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
            pools: Default::default(),
            hub: EventHub::default(),
            shutdown: CancellationToken::new(),
            limits: Default::default(),
            sessions: Default::default(),
            throttle: Default::default(),
            chat: Default::default(),
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

    #[test]
    fn subscribe_lines() {
        assert_eq!(parse_line("7 ping"), Some(SubscribeLine::Ping(7)));
        assert_eq!(parse_line("9 resync"), Some(SubscribeLine::Resync(9)));
        assert_eq!(
            parse_line("12 created clips/a b.mp4"),
            Some(SubscribeLine::Event {
                seq: 12,
                kind: "created".into(),
                path: "clips/a b.mp4".into()
            })
        );
        for bad in [
            "",
            "x ping",
            "1",
            "1 created",
            "1 CREATED a",
            "-1 ping",
            "1 <b> a",
        ] {
            assert_eq!(parse_line(bad), None, "{bad:?}");
        }
    }
}
