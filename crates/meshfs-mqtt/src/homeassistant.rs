//! Home Assistant MQTT discovery: a node announces itself as one HA device with four
//! entities, so a Home Assistant on the same broker lists every camera node without
//! configuration.
//!
//! Retained configs, one per entity, at `homeassistant/<component>/<node_id>/<object>/config`:
//! - `sensor/…/free_space`, `sensor/…/share_size` (bytes, `device_class: data_size`);
//! - `sensor/…/last_recording` (`device_class: timestamp`: the last `closed` event);
//! - `binary_sensor/…/online` (`device_class: connectivity`, from `meshfs/NODE/status`, which
//!   the broker's last will turns `offline` if the node vanishes). A connectivity state is a
//!   binary sensor in HA's model, hence its component.
//!
//! The sensors read `meshfs/NODE/state`, a retained JSON object republished when it changes
//! (checked every [`STATE_EVERY`]): `{"free_bytes","share_bytes","share_files",
//! "last_recording"}` (RFC 3339 or `null`). On a clean stop every config is replaced by an
//! empty retained message, which is how HA's discovery removes a device.
//!
//! `<node_id>` is the node's ID (its characters, `A-Z2-7-`, are those HA accepts) or, for a
//! node without one, its name with anything else replaced by `_`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshfs_core::metrics::metrics;
use serde_json::{Value, json};

/// How often the state is looked at (and published if it changed).
pub const STATE_EVERY: Duration = Duration::from_secs(10);

/// Where HA listens for discovery configs (its default `discovery_prefix`).
const PREFIX: &str = "homeassistant";

/// One node's discovery: its topics and payloads.
#[derive(Debug, Clone)]
pub struct Discovery {
    node: String,
    node_id: String,
}

/// One message to publish, retained.
pub struct Message {
    pub topic: String,
    pub payload: String,
}

impl Discovery {
    /// For the node `node` (its name, as in `meshfs/NODE/…`) with ID `id` when it has one.
    pub fn new(node: &str, id: Option<&str>) -> Discovery {
        let raw = id.unwrap_or(node);
        let node_id = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Discovery {
            node: node.to_owned(),
            node_id,
        }
    }

    pub fn state_topic(&self) -> String {
        format!("meshfs/{}/state", self.node)
    }

    fn status_topic(&self) -> String {
        format!("meshfs/{}/status", self.node)
    }

    /// `(component, object)` of every entity.
    const ENTITIES: [(&'static str, &'static str); 4] = [
        ("sensor", "free_space"),
        ("sensor", "share_size"),
        ("sensor", "last_recording"),
        ("binary_sensor", "online"),
    ];

    fn config_topic(&self, component: &str, object: &str) -> String {
        format!("{PREFIX}/{component}/{}/{object}/config", self.node_id)
    }

    /// The retained configs that make HA list the node.
    pub fn configs(&self) -> Vec<Message> {
        let device = json!({
            "identifiers": [format!("meshfs_{}", self.node_id)],
            "name": self.node,
            "manufacturer": "meshfs",
            "model": "meshfs node",
            "sw_version": meshfs_core::VERSION,
        });
        let origin = json!({"name": "meshfs", "sw_version": meshfs_core::VERSION});
        Self::ENTITIES
            .iter()
            .map(|&(component, object)| {
                let mut config = json!({
                    "unique_id": format!("meshfs_{}_{object}", self.node_id),
                    "device": device,
                    "origin": origin,
                });
                let specific = match object {
                    "free_space" => self.bytes_sensor("Free space", "free_bytes", "mdi:harddisk"),
                    "share_size" => self.bytes_sensor("Share size", "share_bytes", "mdi:folder"),
                    "last_recording" => json!({
                        "name": "Last recording",
                        "device_class": "timestamp",
                        "state_topic": self.state_topic(),
                        "value_template": "{{ value_json.last_recording }}",
                        "availability_topic": self.status_topic(),
                        "icon": "mdi:cctv",
                    }),
                    _ => json!({
                        "name": "Online",
                        "device_class": "connectivity",
                        "state_topic": self.status_topic(),
                        "payload_on": "online",
                        "payload_off": "offline",
                    }),
                };
                merge(&mut config, specific);
                Message {
                    topic: self.config_topic(component, object),
                    payload: config.to_string(),
                }
            })
            .collect()
    }

    fn bytes_sensor(&self, name: &str, key: &str, icon: &str) -> Value {
        json!({
            "name": name,
            "device_class": "data_size",
            "state_class": "measurement",
            "unit_of_measurement": "B",
            "state_topic": self.state_topic(),
            "value_template": format!("{{{{ value_json.{key} }}}}"),
            "availability_topic": self.status_topic(),
            "icon": icon,
        })
    }

    /// Empty retained payloads on every config topic (and the state): HA removes the device.
    pub fn removals(&self) -> Vec<Message> {
        Self::ENTITIES
            .iter()
            .map(|&(component, object)| self.config_topic(component, object))
            .chain([self.state_topic()])
            .map(|topic| Message {
                topic,
                payload: String::new(),
            })
            .collect()
    }

    /// The state the sensors read, from the node's metrics now.
    pub fn state(&self) -> Message {
        let m = metrics();
        let usage = m.usage().snapshot();
        let last = m.last_closed().map(rfc3339);
        let state = json!({
            "free_bytes": (usage.total > 0).then_some(usage.available),
            "share_bytes": usage.walked.then_some(usage.bytes),
            "share_files": usage.walked.then_some(usage.files),
            "last_recording": last,
        });
        Message {
            topic: self.state_topic(),
            payload: state.to_string(),
        }
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// `2026-12-06T21:00:00Z`: the form HA's timestamp sensors parse.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_keep_only_what_ha_accepts() {
        assert_eq!(Discovery::new("cam 1/x", None).node_id, "cam_1_x");
        assert_eq!(
            Discovery::new("cam1", Some("AB2C-DEF7")).node_id,
            "AB2C-DEF7"
        );
    }

    #[test]
    fn every_config_has_a_removal() {
        let d = Discovery::new("cam1", Some("ID"));
        let configs: Vec<String> = d.configs().into_iter().map(|m| m.topic).collect();
        let removed: Vec<String> = d.removals().into_iter().map(|m| m.topic).collect();
        assert!(configs.iter().all(|t| removed.contains(t)));
        assert!(configs.contains(&"homeassistant/sensor/ID/free_space/config".to_owned()));
    }
}
