//! The live feed of `GET /api/events`: every node's file events (published on the
//! [`EventHub`] by the node watchers, `watch.rs`), the node list and the group chat, fanned
//! out to every open page as Server-Sent Events.
//!
//! Each page gets the node list at once, then the last [`EVENT_HISTORY`] file events and the
//! chat's history (so a reloaded page shows what just happened), then everything live. A
//! page that falls more than [`FEED_CAPACITY`] events behind is told `resync` (`"node":
//! null`: reload everything) and continues from the present.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, broadcast};

use crate::chat::{ChatMessage, ChatSetting, NamedMessage};
use crate::error::WebError;
use crate::nodes::NodeDirectory;
use crate::state::AppState;

/// Events buffered for slow pages; a page that falls further behind gets a `resync`.
const FEED_CAPACITY: usize = 1024;

/// File events kept for pages that open (or reload) later.
pub const EVENT_HISTORY: usize = 100;

/// Now, in milliseconds since the Unix epoch (what events and chat messages are stamped with).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One file event, as the page receives it (`event: file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEvent {
    pub node: String,
    pub seq: u64,
    pub kind: String,
    pub path: String,
    /// When this UI heard it, milliseconds since the Unix epoch.
    pub time_ms: u64,
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

/// Fan-out of every node's events to every open page, and the recent ones for pages to come.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<FeedItem>,
    history: Arc<Mutex<VecDeque<FileEvent>>>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            tx: broadcast::channel(FEED_CAPACITY).0,
            history: Arc::default(),
        }
    }
}

impl EventHub {
    pub fn publish(&self, item: FeedItem) {
        let mut history = self.lock();
        if let FeedItem::File(e) = &item {
            if history.len() == EVENT_HISTORY {
                history.pop_front();
            }
            history.push_back(e.clone());
        }
        // Under the lock, so `subscribe` sees each event once: in the history or live. No
        // page open is fine: nobody to tell.
        let _ = self.tx.send(item);
    }

    /// The recent file events, oldest first, and everything published after them.
    pub fn subscribe(&self) -> (Vec<FileEvent>, broadcast::Receiver<FeedItem>) {
        let history = self.lock();
        (history.iter().cloned().collect(), self.tx.subscribe())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<FileEvent>> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
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
    let (events, rx) = state.hub.subscribe();
    pending.extend(events.iter().map(|e| json_event("file", e)));
    let chat = match &state.chat {
        ChatSetting::On(room) => {
            let (history, rx) = room.subscribe();
            pending.extend(history.iter().map(|m| chat_event(m, &state.nodes)));
            Some(rx)
        }
        ChatSetting::Off(_) => None,
    };
    let feed = Feed {
        _permit: permit,
        rx,
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
                    Ok(m) => chat_event(&m, &self.state.nodes),
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

fn chat_event(m: &ChatMessage, nodes: &NodeDirectory) -> Event {
    json_event("chat", &NamedMessage::new(m, nodes))
}

fn json_event(name: &str, value: &impl Serialize) -> Event {
    let data = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    Event::default().event(name).data(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> FeedItem {
        FeedItem::File(FileEvent {
            node: "cam".into(),
            seq: i as u64,
            kind: "created".into(),
            path: format!("clip{i}.mp4"),
            time_ms: 0,
        })
    }

    /// A page opened later gets the last [`EVENT_HISTORY`] events, then each new one once.
    #[tokio::test]
    async fn recent_events_are_kept_for_pages_opened_later() {
        let hub = EventHub::default();
        for i in 0..EVENT_HISTORY + 20 {
            hub.publish(event(i));
        }
        hub.publish(FeedItem::Resync { node: "cam".into() });
        let (history, mut rx) = hub.subscribe();
        assert_eq!(history.len(), EVENT_HISTORY);
        assert_eq!(history[0].path, "clip20.mp4");
        assert_eq!(history.last().unwrap().seq, (EVENT_HISTORY + 19) as u64);
        hub.publish(event(1000));
        match rx.recv().await.unwrap() {
            FeedItem::File(e) => assert_eq!(e.seq, 1000),
            other => panic!("{other:?}"),
        }
        assert!(rx.try_recv().is_err());
    }
}
