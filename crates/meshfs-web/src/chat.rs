//! The LAN group chat (seed 004, protocols.md §4) in the page: the node joins the chat's
//! multicast group when discovery is on, keeps the last [`HISTORY`] messages, and passes
//! every new one to open pages as an SSE `chat` event on `/api/events`. `POST /api/chat`
//! sends one message as one raw UTF-8 datagram, exactly as `meshfs chat` and the seed's
//! Python scripts do, so they all talk to each other.
//!
//! Messages are kept as the group chat shows them (`<ip> :> <text>`, one line per line,
//! control characters replaced by [`display`](meshfs_group::chat::display)); the page puts
//! them into the DOM as text only.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use meshfs_group::chat::{GroupChat, MAX_MESSAGE};
use meshfs_group::socket::Group;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::error::WebError;
use crate::json_body;
use crate::state::AppState;

/// Messages kept for pages that open later (each at most [`MAX_MESSAGE`] bytes).
pub const HISTORY: usize = 200;

/// One chat message as pages receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// Increasing per node run: pages drop what they already hold after a reconnection.
    pub id: u64,
    /// The sender's address.
    pub from: String,
    /// When this node received it, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Display lines, `<ip> :> <text>`.
    pub lines: Vec<String>,
}

/// Whether this web UI has the chat, and why not.
#[derive(Debug, Clone)]
pub enum ChatSetting {
    On(Arc<ChatRoom>),
    Off(String),
}

impl Default for ChatSetting {
    fn default() -> Self {
        ChatSetting::Off("the node has no group chat".into())
    }
}

#[derive(Debug, Default)]
struct History {
    messages: VecDeque<ChatMessage>,
    next_id: u64,
}

/// The node's seat in the group chat.
pub struct ChatRoom {
    chat: GroupChat,
    /// `GROUP:PORT`, shown on the page.
    pub group: String,
    history: Mutex<History>,
    tx: broadcast::Sender<ChatMessage>,
}

impl std::fmt::Debug for ChatRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatRoom")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl ChatRoom {
    /// Join the chat of `group` on `port`.
    pub fn join(group: &Group, port: u16) -> std::io::Result<Arc<ChatRoom>> {
        Ok(Arc::new(ChatRoom {
            chat: GroupChat::join(group, port)?,
            group: format!("{}:{port}", group.addr),
            history: Mutex::default(),
            tx: broadcast::channel(HISTORY).0,
        }))
    }

    /// Receive messages until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let got = tokio::select! {
                _ = shutdown.cancelled() => return,
                got = self.chat.recv() => got,
            };
            match got {
                Ok((ip, lines)) => self.publish(ip, lines),
                Err(e) => {
                    tracing::debug!(error = %e, "chat socket error");
                    // Never spin on a socket that keeps failing.
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
    }

    fn publish(&self, ip: IpAddr, lines: Vec<String>) {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut h = self.lock();
        let msg = ChatMessage {
            id: h.next_id,
            from: ip.to_string(),
            time_ms,
            lines,
        };
        h.next_id += 1;
        if h.messages.len() == HISTORY {
            h.messages.pop_front();
        }
        h.messages.push_back(msg.clone());
        // Under the lock, so `subscribe` sees each message once: in the history or live.
        let _ = self.tx.send(msg);
    }

    /// The history so far and every message after it.
    pub fn subscribe(&self) -> (Vec<ChatMessage>, broadcast::Receiver<ChatMessage>) {
        let h = self.lock();
        (h.messages.iter().cloned().collect(), self.tx.subscribe())
    }

    /// Send one message to the group.
    pub async fn send(&self, text: &str) -> std::io::Result<()> {
        self.chat.send(text).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `GET /api/chat`.
#[derive(Debug, Serialize)]
pub struct ChatJson {
    pub enabled: bool,
    /// `GROUP:PORT` when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Why not, when disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Longest message, in UTF-8 bytes.
    pub max_bytes: usize,
    pub messages: Vec<ChatMessage>,
}

/// `GET /api/chat`: whether the chat is on, and its recent messages.
pub async fn status(State(state): State<AppState>) -> Json<ChatJson> {
    Json(match &state.chat {
        ChatSetting::On(room) => ChatJson {
            enabled: true,
            group: Some(room.group.clone()),
            reason: None,
            max_bytes: MAX_MESSAGE,
            messages: room.subscribe().0,
        },
        ChatSetting::Off(why) => ChatJson {
            enabled: false,
            group: None,
            reason: Some(why.clone()),
            max_bytes: MAX_MESSAGE,
            messages: Vec::new(),
        },
    })
}

#[derive(Deserialize)]
struct SendBody {
    text: String,
}

/// `POST /api/chat` with `{"text": "…"}`: one datagram to the group.
pub async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, WebError> {
    let room = match &state.chat {
        ChatSetting::On(room) => room,
        ChatSetting::Off(why) => return Err(WebError::NotFound(format!("no group chat: {why}"))),
    };
    let SendBody { text } = json_body::parse(&headers, body, r#"{"text": "…"}"#)?;
    check_text(&text)?;
    room.send(&text)
        .await
        .map_err(|e| WebError::Unreachable(format!("cannot send to the group: {e}")))?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

/// A message the group chat can carry: not empty, at most [`MAX_MESSAGE`] bytes, no control
/// characters but newlines and tabs.
fn check_text(text: &str) -> Result<(), WebError> {
    if text.trim().is_empty() {
        return Err(WebError::BadRequest("empty message".into()));
    }
    if text.len() > MAX_MESSAGE {
        return Err(WebError::TooLarge(format!(
            "a message is at most {MAX_MESSAGE} bytes of UTF-8 ({} given)",
            text.len()
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(WebError::BadRequest(
            "control characters are not allowed".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The history keeps the last [`HISTORY`] messages in order; a subscriber gets the
    /// history, then each later message exactly once.
    #[tokio::test]
    async fn history_is_bounded_and_subscribers_miss_nothing() {
        let group = Group {
            addr: std::net::Ipv4Addr::new(239, 255, 250, 1),
            iface: std::net::Ipv4Addr::LOCALHOST,
            ttl: 1,
        };
        // Port 0: a private port nobody sends to; messages are published by hand.
        let room = ChatRoom::join(&group, 0).unwrap();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        for i in 0..HISTORY + 50 {
            room.publish(ip, vec![format!("10.1.2.3 :> m{i}")]);
        }
        let (history, mut rx) = room.subscribe();
        assert_eq!(history.len(), HISTORY);
        assert_eq!(history[0].lines, ["10.1.2.3 :> m50"]);
        assert!(history.windows(2).all(|w| w[1].id == w[0].id + 1));
        room.publish(ip, vec!["10.1.2.3 :> live".into()]);
        let next = rx.recv().await.unwrap();
        assert_eq!(next.id, history.last().unwrap().id + 1);
        assert_eq!(next.from, "10.1.2.3");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn message_checks() {
        assert!(check_text("coucou !\nsecond line").is_ok());
        assert!(check_text(&"é".repeat(MAX_MESSAGE / 2)).is_ok());
        assert!(matches!(
            check_text(&"é".repeat(MAX_MESSAGE / 2 + 1)),
            Err(WebError::TooLarge(_))
        ));
        for bad in ["", "  \n", "a\x1b[2J", "a\0b"] {
            assert!(
                matches!(check_text(bad), Err(WebError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
