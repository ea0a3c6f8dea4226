//! The LAN group chat (seed 004, protocols.md §4) in the page: a [`ChatRoom`] keeps the last
//! [`HISTORY`] messages and passes every new one to open pages as an SSE `chat` event on
//! `/api/events`; `POST /api/chat` sends one message.
//!
//! The web UI does not speak the group's wire format itself: the binary joins the chat's
//! multicast group (when discovery is on), hands each received message to
//! [`ChatRoom::publish`], and gives the room a [`ChatSend`] that sends one message as one raw
//! UTF-8 datagram, exactly as `meshfs chat` and the seed's Python scripts do. So this crate
//! needs no LAN-group code, and the room is testable without a socket.
//!
//! Messages are kept as the group chat shows them (`<ip> :> <text>`, one line per line,
//! control characters already replaced by the sender side); the page puts them into the DOM
//! as text only.

use std::collections::VecDeque;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::error::WebError;
use crate::json_body;
use crate::nodes::NodeDirectory;
use crate::state::AppState;

/// Messages kept for pages that open later.
pub const HISTORY: usize = 200;

/// The group chat's longest message (seed 004), told to pages while the chat is off (when
/// on, the room's own [`ChatRoom::max_bytes`]).
const MAX_MESSAGE: usize = 1400;

/// Sends one message to the group (implemented by the binary over the LAN group's chat).
pub trait ChatSend: Send + Sync + 'static {
    fn send<'a>(
        &'a self,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<()>> + Send + 'a>>;
}

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

/// A message as pages receive it: with the name of the node that sent it when the node list
/// knows whose address `from` is (the group's datagrams carry no name, only their source).
#[derive(Debug, Serialize)]
pub struct NamedMessage<'a> {
    #[serde(flatten)]
    pub message: &'a ChatMessage,
    /// The sender's node name; several nodes on one host are all named (`a / b`); `null`
    /// when no known node has that address.
    pub name: Option<String>,
}

impl<'a> NamedMessage<'a> {
    pub fn new(message: &'a ChatMessage, nodes: &NodeDirectory) -> NamedMessage<'a> {
        let from: Option<IpAddr> = message.from.parse().ok();
        let here = HostAddrs::now();
        let names: Vec<String> = nodes
            .snapshot()
            .into_iter()
            .filter(|n| {
                let ip = n.addr.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
                match (ip, from) {
                    (Some(ip), Some(from)) => ip == from || (here.has(ip) && here.has(from)),
                    _ => false,
                }
            })
            .map(|n| n.name)
            .collect();
        NamedMessage {
            message,
            name: (!names.is_empty()).then(|| names.join(" / ")),
        }
    }
}

/// The addresses of this host. A message this node (or anything on its host) sends to the
/// group comes back from the host's LAN address, while the node list knows the node by the
/// address it serves on (`127.0.0.1` when it listens on every interface): both are this host.
struct HostAddrs(Arc<Vec<IpAddr>>);

impl HostAddrs {
    /// How long the interfaces' addresses are trusted (a page's history names up to
    /// [`HISTORY`] messages at once; a DHCP lease changes rarely).
    const TTL: std::time::Duration = std::time::Duration::from_secs(10);

    fn now() -> HostAddrs {
        static CACHE: Mutex<Option<(std::time::Instant, Arc<Vec<IpAddr>>)>> = Mutex::new(None);
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, addrs)) = &*cache
            && at.elapsed() < Self::TTL
        {
            return HostAddrs(addrs.clone());
        }
        let addrs: Arc<Vec<IpAddr>> = Arc::new(match if_addrs::get_if_addrs() {
            Ok(interfaces) => interfaces.iter().map(if_addrs::Interface::ip).collect(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list this host's addresses");
                Vec::new()
            }
        });
        *cache = Some((std::time::Instant::now(), addrs.clone()));
        HostAddrs(addrs)
    }

    /// Whether `ip` is this host: loopback, unspecified (a node listening everywhere), or an
    /// interface's address.
    fn has(&self, ip: IpAddr) -> bool {
        ip.is_loopback() || ip.is_unspecified() || self.0.contains(&ip)
    }
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

/// The node's seat in the group chat: its history, its live fan-out, and how to send.
pub struct ChatRoom {
    sender: Box<dyn ChatSend>,
    /// `GROUP:PORT`, shown on the page.
    pub group: String,
    /// Longest message the group carries, in UTF-8 bytes.
    pub max_bytes: usize,
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
    /// A room for the chat of `group` (`GROUP:PORT`) whose messages are at most `max_bytes`
    /// and go out through `sender`.
    pub fn new(group: String, max_bytes: usize, sender: impl ChatSend) -> Arc<ChatRoom> {
        Arc::new(ChatRoom {
            sender: Box::new(sender),
            group,
            max_bytes,
            history: Mutex::default(),
            tx: broadcast::channel(HISTORY).0,
        })
    }

    /// A message received from `ip`, as display lines (`<ip> :> <text>`).
    pub fn publish(&self, ip: IpAddr, lines: Vec<String>) {
        let time_ms = crate::feed::now_ms();
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
        self.sender.send(text).await
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
    pub messages: Vec<serde_json::Value>,
}

/// `GET /api/chat`: whether the chat is on, and its recent messages.
pub async fn status(State(state): State<AppState>) -> Json<ChatJson> {
    Json(match &state.chat {
        ChatSetting::On(room) => ChatJson {
            enabled: true,
            group: Some(room.group.clone()),
            reason: None,
            max_bytes: room.max_bytes,
            messages: room
                .subscribe()
                .0
                .iter()
                .map(|m| serde_json::json!(NamedMessage::new(m, &state.nodes)))
                .collect(),
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
    check_text(&text, room.max_bytes)?;
    room.send(&text)
        .await
        .map_err(|e| WebError::Unreachable(format!("cannot send to the group: {e}")))?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

/// A message the group chat can carry: not empty, at most `max` bytes, no control characters
/// but newlines and tabs.
fn check_text(text: &str, max: usize) -> Result<(), WebError> {
    if text.trim().is_empty() {
        return Err(WebError::BadRequest("empty message".into()));
    }
    if text.len() > max {
        return Err(WebError::TooLarge(format!(
            "a message is at most {max} bytes of UTF-8 ({} given)",
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

    /// A sender that sends nothing.
    struct Nowhere;

    impl ChatSend for Nowhere {
        fn send<'a>(
            &'a self,
            _: &'a str,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<()>> + Send + 'a>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// The history keeps the last [`HISTORY`] messages in order; a subscriber gets the
    /// history, then each later message exactly once.
    #[tokio::test]
    async fn history_is_bounded_and_subscribers_miss_nothing() {
        // Messages are published by hand; nothing is sent.
        let room = ChatRoom::new("239.255.250.1:0".into(), MAX_MESSAGE, Nowhere);
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

    /// A message is named after the node at its address; one from any address of this host
    /// (its LAN address, when this node listens on every interface and is listed by its
    /// loopback address) after this host's nodes; one from elsewhere not at all.
    #[test]
    fn messages_are_named_after_the_sending_host() {
        let nodes = NodeDirectory::new("me", "127.0.0.1:4044");
        nodes.add("10.9.8.7:4044");
        nodes.learn_name("10.9.8.7:4044", "cam2", "0.1.0");
        let name = |from: &str| {
            let m = ChatMessage {
                id: 0,
                from: from.into(),
                time_ms: 0,
                lines: Vec::new(),
            };
            NamedMessage::new(&m, &nodes).name
        };
        assert_eq!(name("127.0.0.1").as_deref(), Some("me"));
        assert_eq!(name("127.0.0.2").as_deref(), Some("me"));
        assert_eq!(name("10.9.8.7").as_deref(), Some("cam2"));
        assert_eq!(name("10.9.8.6"), None);
        assert_eq!(name("not an address"), None);
        for interface in if_addrs::get_if_addrs().unwrap() {
            let ip = interface.ip().to_string();
            if ip != "10.9.8.7" {
                assert_eq!(name(&ip).as_deref(), Some("me"), "from {ip}");
            }
        }
    }

    #[test]
    fn message_checks() {
        assert!(check_text("coucou !\nsecond line", MAX_MESSAGE).is_ok());
        assert!(check_text(&"é".repeat(MAX_MESSAGE / 2), MAX_MESSAGE).is_ok());
        assert!(matches!(
            check_text(&"é".repeat(MAX_MESSAGE / 2 + 1), MAX_MESSAGE),
            Err(WebError::TooLarge(_))
        ));
        for bad in ["", "  \n", "a\x1b[2J", "a\0b"] {
            assert!(
                matches!(check_text(bad, MAX_MESSAGE), Err(WebError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
