//! The file server's `status` reply (protocols.md §1): what `meshfs status` shows of a node,
//! as `key: value` lines, written by the server from [`crate::metrics`] and parsed by the
//! client here, so the two cannot drift apart. Unknown keys are skipped (a newer node may say
//! more); a missing key reads as absent.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::metrics::metrics;

/// One node's state, as `status` tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStatus {
    pub name: String,
    pub version: String,
    pub proto: u32,
    /// The node ID, when the node has an identity.
    pub id: Option<String>,
    pub uptime_secs: u64,
    /// Regular files in the share and their bytes (absent until first measured).
    pub share_files: Option<u64>,
    pub share_bytes: Option<u64>,
    /// Free space and size of the share's file system (absent until first measured).
    pub disk_available: Option<u64>,
    pub disk_size: Option<u64>,
    /// Unix time (seconds) of the last `closed` event and of the last event of any kind.
    pub last_closed: Option<u64>,
    pub last_event: Option<u64>,
    /// Connections open on every door.
    pub connections: u64,
    /// Events logged since the node started.
    pub events: u64,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl NodeStatus {
    /// This process, as `name` (the name `hello` gives).
    pub fn current(name: &str) -> NodeStatus {
        let m = metrics();
        let usage = m.usage().snapshot();
        NodeStatus {
            name: name.to_owned(),
            version: crate::VERSION.to_owned(),
            proto: crate::proto::PROTO_VERSION,
            id: m.node().and_then(|n| n.id.clone()),
            uptime_secs: m.uptime_secs() as u64,
            share_files: usage.walked.then_some(usage.files),
            share_bytes: usage.walked.then_some(usage.bytes),
            disk_available: (usage.total > 0).then_some(usage.available),
            disk_size: (usage.total > 0).then_some(usage.total),
            last_closed: m.last_closed().map(unix_secs),
            last_event: m.last_event().map(unix_secs),
            connections: m.connections_open().max(0) as u64,
            events: m.events_total.get(),
        }
    }

    /// The reply body (after `0 OK`): `key: value` lines, then one empty line.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut s = String::with_capacity(256);
        let mut line = |key: &str, value: &dyn std::fmt::Display| {
            let _ = writeln!(s, "{key}: {value}");
        };
        line("name", &self.name);
        line("version", &self.version);
        line("proto", &self.proto);
        let optional = [
            ("share-files", self.share_files),
            ("share-bytes", self.share_bytes),
            ("disk-available", self.disk_available),
            ("disk-size", self.disk_size),
            ("last-closed", self.last_closed),
            ("last-event", self.last_event),
        ];
        if let Some(id) = &self.id {
            line("id", id);
        }
        line("uptime", &self.uptime_secs);
        for (key, value) in optional {
            if let Some(v) = value {
                line(key, &v);
            }
        }
        line("connections", &self.connections);
        line("events", &self.events);
        s.push('\n');
        out.extend_from_slice(s.as_bytes());
    }

    /// Parse the body's lines (without the empty line). `None` if `name` or `version` is
    /// missing or a number is malformed.
    pub fn parse(lines: &[String]) -> Option<NodeStatus> {
        let mut st = NodeStatus::default();
        for line in lines {
            let Some((key, value)) = line.split_once(": ") else {
                continue;
            };
            let number = || value.parse::<u64>().ok();
            match key {
                "name" => st.name = value.to_owned(),
                "version" => st.version = value.to_owned(),
                "proto" => st.proto = value.parse().ok()?,
                "id" => st.id = Some(value.to_owned()),
                "uptime" => st.uptime_secs = number()?,
                "share-files" => st.share_files = Some(number()?),
                "share-bytes" => st.share_bytes = Some(number()?),
                "disk-available" => st.disk_available = Some(number()?),
                "disk-size" => st.disk_size = Some(number()?),
                "last-closed" => st.last_closed = Some(number()?),
                "last-event" => st.last_event = Some(number()?),
                "connections" => st.connections = number()?,
                "events" => st.events = number()?,
                _ => {}
            }
        }
        (!st.name.is_empty() && !st.version.is_empty()).then_some(st)
    }

    /// Disk nearly full: less than 5 % of the file system free.
    pub fn disk_nearly_full(&self) -> bool {
        matches!((self.disk_available, self.disk_size), (Some(a), Some(t)) if t > 0 && a < t / 20)
    }

    /// How long since the last event, at `now` (`None`: none since the node started).
    pub fn quiet_for(&self, now: SystemTime) -> Option<Duration> {
        let last = UNIX_EPOCH + Duration::from_secs(self.last_event?);
        Some(now.duration_since(last).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_status_parses_back_and_unknown_keys_are_skipped() {
        let st = NodeStatus {
            name: "cam1".into(),
            version: "1.2.3".into(),
            proto: 1,
            id: Some("ABCD-EFGH".into()),
            uptime_secs: 42,
            share_files: Some(3),
            share_bytes: Some(1000),
            disk_available: Some(10),
            disk_size: Some(1000),
            last_closed: Some(1_700_000_000),
            last_event: None,
            connections: 2,
            events: 7,
        };
        let mut out = Vec::new();
        st.write(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("\n\n"));
        let mut lines: Vec<String> = text
            .lines()
            .take_while(|l| !l.is_empty())
            .map(String::from)
            .collect();
        lines.push("future-key: whatever".into());
        assert_eq!(NodeStatus::parse(&lines), Some(st.clone()));
        assert!(st.disk_nearly_full());
        lines.retain(|l| !l.starts_with("name:"));
        assert_eq!(NodeStatus::parse(&lines), None);
        assert_eq!(
            NodeStatus::parse(&["name: a".into(), "version: 1".into(), "uptime: x".into()]),
            None
        );
    }
}
