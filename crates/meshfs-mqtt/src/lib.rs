//! The MQTT bridge: a node's file events, published to a broker.
//!
//! Topics (for a node named `cam1`):
//! - `meshfs/cam1/events`: every event as JSON, QoS 1:
//!   `{"node":"cam1","seq":1732200000000001,"kind":"closed","path":"clip.mp4"}`;
//! - `meshfs/cam1/status`: `online`, retained; the broker publishes the last will `offline`
//!   (retained) if the node vanishes, and the bridge publishes it itself on a clean stop;
//! - `meshfs/cam1/state`: free space, share size and last recording as JSON, retained, and
//!   `homeassistant/…/config`: Home Assistant discovery ([`homeassistant`]), removed on a clean
//!   stop.
//!
//! Delivery is at-least-once across broker outages: the bridge remembers the sequence number of
//! the last event the broker acknowledged (PUBACK) and, after reconnecting, re-subscribes to the
//! node's change log from there. The log (65,536 events by default) is the bounded buffer: an
//! outage longer than that is published as a `resync` event. Consumers can drop duplicates by
//! `seq`. The node never waits on the broker.
#![forbid(unsafe_code)]

mod bridge;
pub mod homeassistant;
mod url;

pub use bridge::Bridge;
pub use url::{BadBrokerUrl, BrokerAddr};
