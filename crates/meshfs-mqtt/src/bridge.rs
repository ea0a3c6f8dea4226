//! One bridge from a node's `Events` to one broker, reconnecting forever.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshfs_core::events::{Event, EventKind, Events};
use rumqttc::{AsyncClient, Event as MqttEvent, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::homeassistant::{Discovery, Message, STATE_EVERY};
use crate::url::BrokerAddr;

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Publish requests queued towards the broker before the feeder waits.
const REQUEST_QUEUE: usize = 256;

/// Bridges one node's events to one broker.
pub struct Bridge {
    broker: BrokerAddr,
    node: String,
    events: Events,
    /// Home Assistant discovery (`homeassistant.rs`).
    discovery: Discovery,
}

/// Why a broker session ended.
enum Ended {
    Shutdown,
    Lost { error: String, connected: bool },
}

/// Publish requests in the order they were handed to the client: `Some(seq)` for an event,
/// `None` for a status message. rumqttc reports each outgoing PUBLISH (with its packet id) in
/// that same order, which is how a PUBACK is traced back to an event.
type SendOrder = Arc<Mutex<VecDeque<Option<u64>>>>;

impl Bridge {
    pub fn new(broker: BrokerAddr, node: impl Into<String>, events: Events) -> Bridge {
        let node = node.into();
        Bridge {
            broker,
            discovery: Discovery::new(&node, None),
            node,
            events,
        }
    }

    /// Name the node to Home Assistant by its ID (stable across renames) rather than its name.
    pub fn with_node_id(mut self, id: &str) -> Bridge {
        self.discovery = Discovery::new(&self.node, Some(id));
        self
    }

    fn events_topic(&self) -> String {
        format!("meshfs/{}/events", self.node)
    }

    fn status_topic(&self) -> String {
        format!("meshfs/{}/status", self.node)
    }

    /// Run until `shutdown`; broker outages are retried with back-off and never end the bridge.
    pub async fn run(self, shutdown: CancellationToken) {
        // Everything up to this sequence number has been acknowledged by the broker.
        let mut acked: Option<u64> = None;
        let mut backoff = MIN_BACKOFF;
        meshfs_core::metrics::metrics().mqtt.set(0);
        loop {
            match self.session(&mut acked, &shutdown).await {
                Ended::Shutdown => return,
                Ended::Lost { error, connected } => {
                    if connected {
                        backoff = MIN_BACKOFF;
                        tracing::warn!(broker = %self.broker.host, %error, "MQTT broker lost; reconnecting");
                    } else {
                        tracing::debug!(%error, ?backoff, "MQTT broker unreachable");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn session(&self, acked: &mut Option<u64>, shutdown: &CancellationToken) -> Ended {
        let mut opts = MqttOptions::new(
            format!("meshfs-{}-{}", self.node, std::process::id()),
            self.broker.host.clone(),
            self.broker.port,
        );
        opts.set_keep_alive(Duration::from_secs(15));
        opts.set_last_will(LastWill::new(
            self.status_topic(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        let (client, mut eventloop) = AsyncClient::new(opts, REQUEST_QUEUE);

        // Connect first: nothing is queued for a broker that is not there.
        loop {
            tokio::select! {
                res = eventloop.poll() => match res {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => break,
                    Ok(_) => {}
                    Err(e) => return Ended::Lost { error: e.to_string(), connected: false },
                },
                _ = shutdown.cancelled() => return Ended::Shutdown,
            }
        }
        tracing::info!(host = %self.broker.host, port = self.broker.port, "MQTT bridge connected");
        // `meshfs_mqtt_connected` (issue 21): 1 until this session ends.
        let link = Link::up();

        let subscribed = self.events.subscribe(*acked);
        // The first connection starts from now; later ones resume after the last PUBACK.
        acked.get_or_insert(subscribed.last);
        let order: SendOrder = Arc::default();
        let retained = |messages: Vec<Message>| {
            let mut order = order.lock().unwrap_or_else(|e| e.into_inner());
            for m in messages {
                order.push_back(None);
                let _ = client.try_publish(m.topic, QoS::AtLeastOnce, true, m.payload);
            }
        };
        let status = |payload: &str| Message {
            topic: self.status_topic(),
            payload: payload.to_owned(),
        };
        let mut state = self.discovery.state();
        retained(vec![status("online")]);
        retained(self.discovery.configs());
        retained(vec![Message {
            topic: state.topic.clone(),
            payload: state.payload.clone(),
        }]);
        let mut state_tick = tokio::time::interval(STATE_EVERY);
        let feeder = tokio::spawn(feed(
            client.clone(),
            self.events_topic(),
            self.node.clone(),
            subscribed.replay,
            subscribed.live,
            *acked,
            order.clone(),
        ));

        let mut inflight: HashMap<u16, u64> = HashMap::new();
        let ended = loop {
            tokio::select! {
                res = eventloop.poll() => match res {
                    Ok(MqttEvent::Outgoing(Outgoing::Publish(pkid))) => {
                        let sent = order.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                        if let Some(Some(seq)) = sent {
                            inflight.insert(pkid, seq);
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::PubAck(ack))) => {
                        if let Some(seq) = inflight.remove(&ack.pkid) {
                            *acked = Some(acked.map_or(seq, |a| a.max(seq)));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => break Ended::Lost { error: e.to_string(), connected: true },
                },
                _ = state_tick.tick() => {
                    let now = self.discovery.state();
                    if now.payload != state.payload {
                        state = now;
                        retained(vec![Message { topic: state.topic.clone(), payload: state.payload.clone() }]);
                    }
                }
                _ = shutdown.cancelled() => {
                    // A clean stop says so itself instead of leaving it to the last will, and
                    // takes the node out of Home Assistant.
                    retained(self.discovery.removals());
                    retained(vec![status("offline")]);
                    let _ = client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while eventloop.poll().await.is_ok() {}
                    })
                    .await;
                    break Ended::Shutdown;
                }
            }
        };
        feeder.abort();
        drop(link);
        ended
    }
}

/// The broker link's state in the node's metrics: up while held, down once dropped.
struct Link;

impl Link {
    fn up() -> Link {
        meshfs_core::metrics::metrics().mqtt.set(1);
        Link
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        meshfs_core::metrics::metrics().mqtt.set(0);
    }
}

/// The JSON payload of one event.
pub(crate) fn payload(node: &str, event: &Event) -> String {
    let mut value = serde_json::json!({
        "node": node,
        "seq": event.seq,
        "kind": event.kind.as_str(),
        "path": event.path,
    });
    // Only when meshfs made the change itself (`"retention"`, `"conflict"`).
    if let Some(reason) = event.reason {
        value["reason"] = reason.as_str().into();
    }
    value.to_string()
}

/// Publish the replay, then live events, in order; a lag becomes a `resync` event.
async fn feed(
    client: AsyncClient,
    topic: String,
    node: String,
    replay: Vec<Event>,
    mut live: tokio::sync::broadcast::Receiver<Event>,
    mut position: Option<u64>,
    order: SendOrder,
) {
    let publish = |event: Event| {
        let (client, topic, order) = (&client, &topic, &order);
        let body = payload(&node, &event);
        async move {
            order
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(Some(event.seq));
            client
                .publish(topic.clone(), QoS::AtLeastOnce, false, body)
                .await
        }
    };
    for event in replay {
        position = Some(event.seq);
        if publish(event).await.is_err() {
            return;
        }
    }
    loop {
        let event = match live.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(_)) => {
                Event::new(position.unwrap_or_default(), EventKind::Resync, "")
            }
            Err(RecvError::Closed) => return,
        };
        position = Some(event.seq);
        if publish(event).await.is_err() {
            return;
        }
    }
}
