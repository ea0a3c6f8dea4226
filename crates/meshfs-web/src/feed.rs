//! The live feed of `GET /api/events`: every node's file events (published on the
//! [`EventHub`] by the node watchers, `watch.rs`), the node list and the group chat, fanned
//! out to every open page as Server-Sent Events.
//!
//! Each page gets the node list at once, then the chat's history, then everything live. A
//! page that falls more than [`FEED_CAPACITY`] events behind is told `resync` (`"node":
//! null`: reload everything) and continues from the present.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, broadcast};

use crate::chat::{ChatMessage, ChatSetting};
use crate::error::WebError;
use crate::nodes::NodeDirectory;
use crate::state::AppState;

/// Events buffered for slow pages; a page that falls further behind gets a `resync`.
const FEED_CAPACITY: usize = 1024;

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
    pub fn publish(&self, item: FeedItem) {
        // No page open is fine: nobody to tell.
        let _ = self.tx.send(item);
    }

    /// Everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.tx.subscribe()
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
        rx: state.hub.subscribe(),
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
