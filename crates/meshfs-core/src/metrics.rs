//! What a node counts about itself: one process-wide set of atomics ([`metrics()`]) that the
//! doors bump as they work, rendered in Prometheus's text exposition format by
//! [`render`] (`GET /metrics` on the web port) and summed up for the file server's `status`
//! request ([`crate::status`]).
//!
//! Why process-wide statics rather than a registry handed to every door: a node is one
//! process with one share, every door already runs in it, and a counter bump must cost one
//! relaxed atomic add, not a lookup or a lock. Reading them all (a scrape) costs a few
//! hundred atomic loads and never touches the share: its size and file count come from
//! [`usage`], a walk repeated in the background at a bounded rate.
//!
//! Nothing here names a file: the exposition is safe to serve without a password.

pub mod usage;

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::events::Events;
use crate::peers::Peers;

pub use usage::ShareUsage;

/// A count that only grows (`…_total`).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (connections open, a link's state).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new(value: i64) -> Gauge {
        Gauge(AtomicI64::new(value))
    }

    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Add one until the returned guard is dropped (a connection's lifetime).
    pub fn hold(&'static self) -> Held {
        self.0.fetch_add(1, Ordering::Relaxed);
        Held(self)
    }
}

/// One unit of a [`Gauge`], given back on drop.
#[derive(Debug)]
pub struct Held(&'static Gauge);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The ways into a node, the `door` label of the per-door metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    FileServer,
    Web,
    Ftp,
    Directory,
    GetFile,
    Cluster,
}

impl Door {
    pub const ALL: [Door; 6] = [
        Door::FileServer,
        Door::Web,
        Door::Ftp,
        Door::Directory,
        Door::GetFile,
        Door::Cluster,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Door::FileServer => "file_server",
            Door::Web => "web",
            Door::Ftp => "ftp",
            Door::Directory => "directory",
            Door::GetFile => "get_file",
            Door::Cluster => "cluster",
        }
    }

    /// The door of an [`accept_loop`](crate::accept::accept_loop) by the name it gives.
    pub fn from_accept_name(name: &str) -> Option<Door> {
        Some(match name {
            "file server" => Door::FileServer,
            "FTP" => Door::Ftp,
            "directory" => Door::Directory,
            "GET_FILE" => Door::GetFile,
            "cluster master" => Door::Cluster,
            _ => return None,
        })
    }
}

/// What one door counts.
#[derive(Debug)]
pub struct DoorCounters {
    pub connections_total: Counter,
    pub connections_open: Gauge,
    pub requests_total: Counter,
    /// Payload bytes sent (file contents, listings are not counted).
    pub bytes_sent_total: Counter,
}

impl DoorCounters {
    const fn new() -> DoorCounters {
        DoorCounters {
            connections_total: Counter::new(),
            connections_open: Gauge::new(0),
            requests_total: Counter::new(),
            bytes_sent_total: Counter::new(),
        }
    }

    /// Count one request served.
    pub fn request(&self) {
        self.requests_total.inc();
    }

    /// Count a new connection, open until the guard is dropped.
    pub fn connection(&'static self) -> Held {
        self.connections_total.inc();
        self.connections_open.hold()
    }
}

/// A link's state for [`Metrics::mqtt`] and [`Metrics::directory`]: not configured (not
/// exposed), down or up.
pub const LINK_UNUSED: i64 = -1;

/// Every counter of the process (see the module doc).
pub struct Metrics {
    doors: [DoorCounters; 6],
    /// Downloads that failed and payloads that could not be sent.
    pub transfer_errors_total: Counter,
    /// Events added to the share's log.
    pub events_total: Counter,
    /// Reads of a file (or its first bytes) from disk to hash it, for `hash`, `hash-prefix`
    /// and `blocks`: requests answered from the cache or sharing a read under way count none.
    pub hash_reads_total: Counter,
    /// Files retention deleted, and their bytes.
    pub retention_deleted_total: Counter,
    pub retention_deleted_bytes_total: Counter,
    /// Nodes added to the peer table (each start of a node counts once).
    pub peers_seen_total: Counter,
    /// MQTT broker link: [`LINK_UNUSED`], 0 down, 1 up.
    pub mqtt: Gauge,
    /// Central directory link: [`LINK_UNUSED`], 0 down, 1 joined.
    pub directory: Gauge,
    /// Unix time (ms) of the last event, and of the last `closed` (a recording finished).
    last_event_ms: AtomicU64,
    last_closed_ms: AtomicU64,
    node: OnceLock<NodeInfo>,
    events: OnceLock<Events>,
    peers: OnceLock<Peers>,
    usage: ShareUsage,
}

/// Who this process is, for `meshfs_build_info` and `status`.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    /// The node ID, when it has an identity.
    pub id: Option<String>,
    pub started: Instant,
}

static METRICS: Metrics = Metrics::new();

/// The process's counters.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Metrics {
    const fn new() -> Metrics {
        Metrics {
            doors: [
                DoorCounters::new(),
                DoorCounters::new(),
                DoorCounters::new(),
                DoorCounters::new(),
                DoorCounters::new(),
                DoorCounters::new(),
            ],
            transfer_errors_total: Counter::new(),
            events_total: Counter::new(),
            hash_reads_total: Counter::new(),
            retention_deleted_total: Counter::new(),
            retention_deleted_bytes_total: Counter::new(),
            peers_seen_total: Counter::new(),
            mqtt: Gauge::new(LINK_UNUSED),
            directory: Gauge::new(LINK_UNUSED),
            last_event_ms: AtomicU64::new(0),
            last_closed_ms: AtomicU64::new(0),
            node: OnceLock::new(),
            events: OnceLock::new(),
            peers: OnceLock::new(),
            usage: ShareUsage::new(),
        }
    }

    pub fn door(&self, door: Door) -> &DoorCounters {
        &self.doors[door as usize]
    }

    /// Say who this process serves as (once; later calls are ignored). Uptime counts from here.
    pub fn set_node(&self, name: &str, id: Option<String>) {
        let _ = self.node.set(NodeInfo {
            name: name.to_owned(),
            id,
            started: Instant::now(),
        });
    }

    pub fn node(&self) -> Option<&NodeInfo> {
        self.node.get()
    }

    /// The share's change log, whose subscribers are counted.
    pub fn set_events(&self, events: &Events) {
        let _ = self.events.set(events.clone());
    }

    /// The node's peer table, whose size is reported.
    pub fn set_peers(&self, peers: &Peers) {
        let _ = self.peers.set(peers.clone());
    }

    /// The share's size, file count and free space, as last measured.
    pub fn usage(&self) -> &ShareUsage {
        &self.usage
    }

    /// An event was logged ([`Events::push`]).
    pub fn event(&self, closed: bool) {
        self.events_total.inc();
        let now = unix_ms(SystemTime::now());
        self.last_event_ms.store(now, Ordering::Relaxed);
        if closed {
            self.last_closed_ms.store(now, Ordering::Relaxed);
        }
    }

    /// When the last event was logged, if any.
    pub fn last_event(&self) -> Option<SystemTime> {
        from_ms(self.last_event_ms.load(Ordering::Relaxed))
    }

    /// When the last file was closed after writing (the last recording), if any.
    pub fn last_closed(&self) -> Option<SystemTime> {
        from_ms(self.last_closed_ms.load(Ordering::Relaxed))
    }

    pub fn uptime_secs(&self) -> f64 {
        self.node
            .get()
            .map_or(0.0, |n| n.started.elapsed().as_secs_f64())
    }

    /// Connections open on every door.
    pub fn connections_open(&self) -> i64 {
        self.doors.iter().map(|d| d.connections_open.get()).sum()
    }

    /// Raw changes the share's watch took from the kernel ([`Events::raw_changes`]).
    pub fn raw_changes(&self) -> u64 {
        self.events.get().map_or(0, Events::raw_changes)
    }

    pub fn subscribers(&self) -> usize {
        self.events.get().map_or(0, Events::subscribers)
    }

    pub fn peers(&self) -> usize {
        self.peers.get().map_or(0, Peers::len)
    }
}

fn from_ms(ms: u64) -> Option<SystemTime> {
    (ms != 0).then(|| UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

/// One metric family: its `# HELP` and `# TYPE` lines, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = if labels.is_empty() {
            writeln!(self.out, "{} {value}", self.name)
        } else {
            writeln!(self.out, "{}{{{labels}}} {value}", self.name)
        };
        self
    }
}

/// A label value with `\`, `"` and line breaks escaped as the format requires.
fn label_value(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// The text exposition format (version 0.0.4) of every metric, appended to `out`.
pub fn render(out: &mut String) {
    let m = metrics();
    let mut info = format!("version=\"{}\"", crate::VERSION);
    if let Some(node) = m.node() {
        let _ = write!(info, ",node=\"{}\"", label_value(&node.name));
        if let Some(id) = &node.id {
            let _ = write!(info, ",node_id=\"{}\"", label_value(id));
        }
    }
    Family::new(
        out,
        "meshfs_build_info",
        "gauge",
        "Version and identity of this node.",
    )
    .sample(&info, 1);
    Family::new(
        out,
        "meshfs_uptime_seconds",
        "gauge",
        "Time since the node started.",
    )
    .sample("", format_args!("{:.3}", m.uptime_secs()));

    per_door(
        out,
        "meshfs_connections_total",
        "counter",
        "Connections accepted, by door.",
        |d| d.connections_total.get() as i64,
    );
    per_door(
        out,
        "meshfs_connections_open",
        "gauge",
        "Connections being served, by door.",
        |d| d.connections_open.get(),
    );
    per_door(
        out,
        "meshfs_requests_total",
        "counter",
        "Requests served, by door.",
        |d| d.requests_total.get() as i64,
    );
    per_door(
        out,
        "meshfs_sent_bytes_total",
        "counter",
        "File bytes sent, by door.",
        |d| d.bytes_sent_total.get() as i64,
    );
    let counters: [(&'static str, &str, u64); 8] = [
        (
            "meshfs_transfer_errors_total",
            "Downloads that failed and payloads that could not be sent.",
            m.transfer_errors_total.get(),
        ),
        (
            "meshfs_events_total",
            "File events logged by the share's watch.",
            m.events_total.get(),
        ),
        (
            "meshfs_watch_raw_changes_total",
            "Changes the share's watch took from the kernel, each waking its threads, whether \
             or not they became events (reading files adds none).",
            m.raw_changes(),
        ),
        (
            "meshfs_hash_reads_total",
            "Files read from disk to hash them (requests sharing one read count once).",
            m.hash_reads_total.get(),
        ),
        (
            "meshfs_retention_deleted_files_total",
            "Files deleted by retention.",
            m.retention_deleted_total.get(),
        ),
        (
            "meshfs_retention_deleted_bytes_total",
            "Bytes freed by retention.",
            m.retention_deleted_bytes_total.get(),
        ),
        (
            "meshfs_peers_seen_total",
            "Nodes added to the peer table.",
            m.peers_seen_total.get(),
        ),
        (
            "meshfs_event_subscribers",
            "Live subscribers to the share's events.",
            m.subscribers() as u64,
        ),
    ];
    for (name, help, value) in counters {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        Family::new(out, name, kind, help).sample("", value);
    }
    Family::new(out, "meshfs_peers", "gauge", "Nodes in the peer table.").sample("", m.peers());
    if let Some(t) = m.last_closed() {
        Family::new(
            out,
            "meshfs_last_recording_timestamp_seconds",
            "gauge",
            "Unix time of the last file closed after writing.",
        )
        .sample("", unix_ms(t) as f64 / 1000.0);
    }
    m.usage.render(out);
    for (name, help, link) in [
        (
            "meshfs_mqtt_connected",
            "1 while the MQTT broker link is up.",
            &m.mqtt,
        ),
        (
            "meshfs_directory_connected",
            "1 while joined to the central directory.",
            &m.directory,
        ),
    ] {
        let state = link.get();
        if state != LINK_UNUSED {
            Family::new(out, name, "gauge", help).sample("", state);
        }
    }
}

fn per_door(
    out: &mut String,
    name: &'static str,
    kind: &str,
    help: &str,
    value: impl Fn(&DoorCounters) -> i64,
) {
    let m = metrics();
    let mut family = Family::new(out, name, kind, help);
    for door in Door::ALL {
        family.sample(&format!("door=\"{}\"", door.label()), value(m.door(door)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_gauges_come_back() {
        static G: Gauge = Gauge::new(0);
        let a = G.hold();
        let b = G.hold();
        assert_eq!(G.get(), 2);
        drop(a);
        drop(b);
        assert_eq!(G.get(), 0);
    }

    #[test]
    fn every_family_has_help_and_type_and_labels_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
        let mut out = String::new();
        render(&mut out);
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                out.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE line"
            );
        }
        assert!(out.contains("meshfs_connections_total{door=\"file_server\"} "));
    }
}
