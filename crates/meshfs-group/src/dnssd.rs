//! DNS-SD (RFC 6763 over mDNS) beside our multicast group: a node advertises
//! `_meshfs._tcp.local.` and browses for it, so Avahi/Bonjour tools (`avahi-browse`, `dns-sd`,
//! Python `zeroconf`) see meshfs nodes, and nodes still meet on networks that drop our group
//! but pass mDNS (many home routers and APs special-case 224.0.0.251:5353).
//!
//! mdns-sd runs its own thread; this module feeds what it resolves into the same [`Discovery`]
//! (one [`Peers`](meshfs_core::Peers) table, one `PeerUp`, one `--show-peers` line), so a
//! node heard both ways is one peer: the TXT record carries the process id of our multicast
//! hellos.
//!
//! Liveness: a DNS-SD goodbye removes the peer at once (`peer down NAME bye`). mDNS caches keep
//! a silently dead service for its TTL (75 min for PTR records), so a peer known only through
//! DNS-SD is refreshed only by answering the file-server `hello` (as static `--peer`s are);
//! one that stops answering expires like a silent multicast peer. mdns-sd does not resolve an
//! unchanged service again, so a service whose peer expired is still asked `hello`, less
//! often, until its record expires or says goodbye: a node back from a short outage (a
//! paused process, a Wi-Fi blip) is a peer again.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdns_sd::{DaemonEvent, IfKind, ResolvedService, ServiceDaemon, ServiceEvent, ServiceInfo};
use meshfs_core::NodeId;
use meshfs_core::peers::{MAX_PEERS, Peer, Source};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::announce::valid_name;
use crate::discovery::{Discovery, POLL_TIMEOUT, poll_hello};

/// Our service type.
pub const SERVICE_TYPE: &str = "_meshfs._tcp.local.";
/// The mDNS port Avahi and Bonjour use.
pub const MDNS_PORT: u16 = 5353;
/// TXT `v`: the version of our protocols (protocols.md `proto=1`).
pub const TXT_VERSION: &str = "1";
/// Most services followed: anyone on the LAN can advertise.
pub const MAX_SERVICES: usize = MAX_PEERS;
/// Most `hello`s out at once to peers known through DNS-SD alone: the others wait for a
/// later tick.
const MAX_POLLS: usize = 64;
/// Of those, most out at once to services whose peer is gone: a host advertising many dead
/// services (each question waits for its timeout) must not delay the questions that keep
/// live peers from expiring.
const MAX_RETRIES: usize = MAX_POLLS / 4;
/// How long a stopping node waits for mdns-sd to send its goodbye and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// A failure of mdns-sd (its thread could not start, or is gone).
#[derive(Debug, thiserror::Error)]
#[error("DNS-SD: {0}")]
pub struct DnsSdError(#[from] mdns_sd::Error);

/// Where DNS-SD runs: on the interface(s) of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interfaces {
    /// Loopback only: a node that listens on loopback (nobody else could reach it).
    Loopback,
    /// The interface that has this address (`--group-iface`).
    Addr(Ipv4Addr),
    /// Every IPv4 interface but loopback (a remote browser must never learn 127.0.0.1).
    All,
}

impl Interfaces {
    /// The interfaces of a group whose interface address is `iface` (`0.0.0.0`: any).
    pub fn of(iface: Ipv4Addr) -> Interfaces {
        if iface.is_unspecified() {
            Interfaces::All
        } else if iface.is_loopback() {
            Interfaces::Loopback
        } else {
            Interfaces::Addr(iface)
        }
    }
}

/// Start mdns-sd (its thread) on `port`, limited to `ifaces`. IPv4 only, like our group.
fn daemon(port: u16, ifaces: Interfaces) -> Result<ServiceDaemon, DnsSdError> {
    let d = ServiceDaemon::new_with_port(port)?;
    let limited = (|| {
        // Selections apply in order, the last match wins.
        d.disable_interface(IfKind::All)?;
        match ifaces {
            Interfaces::Loopback => d.enable_interface(IfKind::LoopbackV4),
            Interfaces::Addr(ip) => d.enable_interface(IfKind::Addr(IpAddr::V4(ip))),
            Interfaces::All => {
                d.enable_interface(IfKind::IPv4)?;
                d.disable_interface(IfKind::LoopbackV4)
            }
        }
    })();
    match limited {
        Ok(()) => Ok(d),
        Err(e) => {
            let _ = d.shutdown();
            Err(e.into())
        }
    }
}

/// What a node advertises.
#[derive(Debug, Clone)]
pub struct Advert {
    pub name: String,
    /// The process id of its multicast hellos, so browsers can merge both.
    pub id: String,
    /// Its node ID (TXT `node_id`), as in its hellos.
    pub node_id: Option<NodeId>,
    /// Its file server. An unspecified address advertises the addresses of the interfaces.
    pub server: SocketAddr,
    pub web: Option<u16>,
}

impl Advert {
    /// The mdns-sd record set: instance NAME, host `meshfs-NAME-ID.local.` (never the
    /// machine's own host name, which Avahi may already publish), TXT `v`, `name`, `id`,
    /// `node_id` and `web`.
    fn service_info(&self) -> Result<ServiceInfo, DnsSdError> {
        let mut txt = vec![
            ("v", TXT_VERSION.to_owned()),
            ("name", self.name.clone()),
            ("id", self.id.clone()),
        ];
        if let Some(node_id) = self.node_id {
            txt.push(("node_id", node_id.to_string()));
        }
        if let Some(web) = self.web {
            txt.push(("web", web.to_string()));
        }
        let host = format!("{}.local.", host_label(&self.name, &self.id));
        let ip = self.server.ip();
        let info = if ip.is_unspecified() {
            ServiceInfo::new(
                SERVICE_TYPE,
                &instance_name(&self.name),
                &host,
                (),
                self.server.port(),
                &txt[..],
            )?
            .enable_addr_auto()
        } else {
            ServiceInfo::new(
                SERVICE_TYPE,
                &instance_name(&self.name),
                &host,
                ip,
                self.server.port(),
                &txt[..],
            )?
        };
        Ok(info)
    }
}

/// A DNS label (≤ 63 bytes) that is the node name as far as it can be.
fn instance_name(name: &str) -> String {
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// `meshfs-NAME-ID` with only letters, digits and `-`: a host name unique to this process.
fn host_label(name: &str, id: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(32)
        .collect();
    let id: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("meshfs-{clean}-{id}")
}

/// A resolved `_meshfs._tcp` service as a peer, or why not. `known` is the peer of the same
/// name already in the table: the same process keeps the address it was first heard at.
fn peer_of(s: &ResolvedService, known: Option<&Peer>) -> Result<Peer, &'static str> {
    if let Some(v) = s.get_property_val_str("v")
        && v != TXT_VERSION
    {
        return Err("unknown version");
    }
    let instance = s
        .get_fullname()
        .strip_suffix(SERVICE_TYPE)
        .and_then(|i| i.strip_suffix('.'))
        .unwrap_or_default();
    let name = s.get_property_val_str("name").unwrap_or(instance);
    if !valid_name(name) {
        return Err("bad node name");
    }
    if s.get_port() == 0 {
        return Err("no port");
    }
    let id = match s.get_property_val_str("id") {
        Some(id) if !id.is_empty() && id.len() <= 64 => id.to_owned(),
        Some(_) => return Err("bad id"),
        None => format!("dnssd:{}", s.get_fullname()),
    };
    // Optional, as in hellos: older nodes advertise none.
    let node_id = match s.get_property_val_str("node_id") {
        Some(n) => Some(n.parse::<NodeId>().map_err(|_| "bad node id")?),
        None => None,
    };
    let web = match s.get_property_val_str("web") {
        Some(w) => Some(w.parse::<u16>().map_err(|_| "bad web port")?),
        None => None,
    };
    let addr = match known {
        Some(k) if k.name == name && k.id == id => k.addr,
        _ => {
            let mut ips: Vec<Ipv4Addr> = s.get_addresses_v4().into_iter().collect();
            // Routable before link-local before loopback; then the lowest, to be stable.
            ips.sort_by_key(|ip| (ip.is_loopback(), ip.is_link_local(), *ip));
            let ip = ips.first().ok_or("no IPv4 address")?;
            SocketAddr::new(IpAddr::V4(*ip), s.get_port())
        }
    };
    Ok(Peer {
        name: name.to_owned(),
        id,
        node_id,
        addr,
        web,
        source: Source::DnsSd,
        last_seen: Instant::now(),
    })
}

/// DNS-SD for a running node.
#[derive(Debug, Clone)]
pub struct Config {
    /// The mDNS port (5353).
    pub port: u16,
    pub interfaces: Interfaces,
    /// Its file server; port 0 for a browser (`meshfs mount`), which advertises nothing, as
    /// a `hello` with port 0 is answered but not listed.
    pub server: SocketAddr,
    pub web: Option<u16>,
}

/// Advertise this node and feed what is browsed into `discovery`, until `shutdown`; then
/// unregister (goodbye packets) and stop mdns-sd. Returns at once: nothing waits for mDNS.
pub fn start(
    discovery: &Discovery,
    config: Config,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), DnsSdError> {
    let daemon = daemon(config.port, config.interfaces)?;
    let advert = Advert {
        name: discovery.config().name.clone(),
        id: discovery.id().to_owned(),
        node_id: discovery.config().node_id,
        server: config.server,
        web: config.web,
    };
    let setup = (|| {
        // First, so a failure to register is seen.
        tracker.spawn(watch(daemon.monitor()?, shutdown.clone()));
        let mut own = None;
        if advert.server.port() != 0 {
            let info = advert.service_info()?;
            own = Some(info.get_fullname().to_owned());
            daemon.register(info)?;
        }
        let events = daemon.browse(SERVICE_TYPE)?;
        Ok::<_, DnsSdError>((own, events))
    })();
    let (own, events) = match setup {
        Ok(x) => x,
        Err(e) => {
            let _ = daemon.shutdown();
            return Err(e);
        }
    };
    tracing::info!(service = own.as_deref().unwrap_or("none (browsing only)"), port = config.port, interfaces = ?config.interfaces, "DNS-SD on");
    let browser = Browser {
        discovery: discovery.clone(),
        daemon,
        own,
        services: Services::default(),
        polling: Arc::default(),
    };
    tracker.spawn(browser.run(events, shutdown, tracker.clone()));
    Ok(())
}

/// The `_meshfs._tcp` services followed: full name → what it resolved to. Bounded: anyone on
/// the LAN can advertise.
#[derive(Default)]
struct Services {
    by_name: HashMap<String, Service>,
}

struct Service {
    /// The peer it resolved to.
    peer: Peer,
    /// When it was last asked `hello` while its peer was gone.
    retried: Option<Instant>,
}

impl Services {
    /// Whether `fullname` may be followed. When the table is full, the services whose peer is
    /// no longer `live` (expired, or another process of that name by now) make room first:
    /// mDNS caches keep records for their TTL, and a host that advertised many instances
    /// with long TTLs and no goodbyes must not lock out every later node.
    fn room_for(&mut self, fullname: &str, live: impl Fn(&Peer) -> bool) -> bool {
        if self.by_name.contains_key(fullname) || self.by_name.len() < MAX_SERVICES {
            return true;
        }
        let before = self.by_name.len();
        self.by_name.retain(|_, s| live(&s.peer));
        tracing::debug!(
            dropped = before - self.by_name.len(),
            "DNS-SD services of gone peers dropped"
        );
        self.by_name.len() < MAX_SERVICES
    }

    fn insert(&mut self, fullname: &str, peer: Peer) {
        self.by_name.insert(
            fullname.to_owned(),
            Service {
                peer,
                retried: None,
            },
        );
    }

    fn remove(&mut self, fullname: &str) -> Option<Peer> {
        self.by_name.remove(fullname).map(|s| s.peer)
    }
}

struct Browser {
    discovery: Discovery,
    daemon: ServiceDaemon,
    /// Our own service's full name (none for a browser).
    own: Option<String>,
    services: Services,
    /// Names being asked `hello` now, and whether as a gone peer: one question per peer at a
    /// time, however slow.
    polling: Arc<Mutex<HashMap<String, bool>>>,
}

impl Browser {
    async fn run(
        mut self,
        events: mdns_sd::Receiver<ServiceEvent>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) {
        // Hellos come every interval: a peer silent for longer (plus a tenth, for jitter)
        // missed one, and is asked. Checked twice an interval, so a peer known through DNS-SD
        // alone is refreshed at least every 1.5 intervals, well within the expiry (3).
        let interval = self.discovery.config().interval();
        let quiet = interval + interval / 10;
        // A gone peer's service is asked less often: most are dead for good.
        let retry = interval * 2;
        let mut tick = tokio::time::interval(interval / 2);
        // mdns-sd ends a subscription whose reader falls behind (a flood of services): browse
        // again at the next tick; our advertisement is not affected.
        let mut events = Some(events);
        loop {
            let next = {
                let events = events.clone();
                async move {
                    match events {
                        Some(e) => e.recv_async().await.ok(),
                        None => std::future::pending().await,
                    }
                }
            };
            tokio::select! {
                ev = next => match ev {
                    Some(ServiceEvent::ServiceResolved(s)) => self.resolved(&s),
                    Some(ServiceEvent::ServiceRemoved(_, fullname)) => self.removed(&fullname),
                    Some(_) => {}
                    None => {
                        tracing::warn!("DNS-SD browsing ended: again at the next tick");
                        events = None;
                    }
                },
                _ = tick.tick() => {
                    if events.is_none() {
                        match self.daemon.browse(SERVICE_TYPE) {
                            Ok(e) => events = Some(e),
                            Err(e) => {
                                tracing::warn!(error = %e, "DNS-SD stopped");
                                break;
                            }
                        }
                    }
                    self.refresh(quiet, retry, &shutdown, &tracker);
                }
                () = shutdown.cancelled() => break,
            }
        }
        self.stop().await;
    }

    fn resolved(&mut self, s: &ResolvedService) {
        let fullname = s.get_fullname();
        if self
            .own
            .as_deref()
            .is_some_and(|o| fullname.eq_ignore_ascii_case(o))
            || s.get_property_val_str("id") == Some(self.discovery.id())
        {
            return; // ourselves
        }
        let d = &self.discovery;
        let live = |p: &Peer| d.peer(&p.name).is_some_and(|k| k.id == p.id);
        if !self.services.room_for(fullname, live) {
            tracing::warn!(service = %fullname, "too many DNS-SD services: ignored");
            return;
        }
        let name = s.get_property_val_str("name");
        let known = name.and_then(|n| self.discovery.peer(n));
        match peer_of(s, known.as_ref()) {
            Ok(peer) => {
                // The message names the node: tests wait for it (a merged peer shows no
                // other sign).
                tracing::debug!(service = %fullname, addr = %peer.addr, "DNS-SD resolved {}", peer.name);
                self.services.insert(fullname, peer.clone());
                self.discovery.heard(peer, "dns-sd");
            }
            Err(why) => tracing::debug!(service = %fullname, why, "DNS-SD service ignored"),
        }
    }

    fn removed(&mut self, fullname: &str) {
        if let Some(p) = self.services.remove(fullname) {
            tracing::debug!(service = %fullname, "DNS-SD removed {}", p.name);
            self.discovery.gone(&p.name, &p.id, "bye");
        }
    }

    /// Keep alive the peers known through DNS-SD alone: each one silent for longer than
    /// `quiet` (it missed a multicast hello, or never sends any) is asked `hello` on its file
    /// server, and refreshed if it answers as itself. A service whose peer is gone (expired,
    /// or a multicast `bye`) is asked every `retry`, and its peer is back if it answers.
    fn refresh(
        &mut self,
        quiet: Duration,
        retry: Duration,
        shutdown: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        let now = Instant::now();
        for s in self.services.by_name.values_mut() {
            let p = &s.peer;
            let (known, how) = match self.discovery.peer(&p.name) {
                Some(k) if k.id != p.id => continue, // another process of that name
                Some(k) if now.saturating_duration_since(k.last_seen) <= quiet => continue,
                Some(k) => (k, "dns-sd poll"),
                None if s
                    .retried
                    .is_some_and(|t| now.saturating_duration_since(t) < retry) =>
                {
                    continue;
                }
                None => (p.clone(), "dns-sd retry"),
            };
            {
                let mut polling = lock(&self.polling);
                let retry = how == "dns-sd retry";
                if polling.len() >= MAX_POLLS
                    || polling.contains_key(&known.name)
                    || (retry && polling.values().filter(|r| **r).count() >= MAX_RETRIES)
                {
                    continue; // still asking it, or enough questions out already
                }
                polling.insert(known.name.clone(), retry);
            }
            if how == "dns-sd retry" {
                s.retried = Some(now);
                // The message names the node: tests wait for it (the question before the
                // outage is over: one question per peer at a time).
                tracing::debug!(addr = %known.addr, "DNS-SD peer gone: asking {} again", known.name);
            }
            let (d, stop, polling) = (
                self.discovery.clone(),
                shutdown.clone(),
                self.polling.clone(),
            );
            tracker.spawn(async move {
                let _done = Polled(polling, known.name.clone());
                let target = known.addr.to_string();
                let answer = tokio::select! {
                    r = tokio::time::timeout(POLL_TIMEOUT, poll_hello(&target)) => r,
                    () = stop.cancelled() => return,
                };
                match answer {
                    Ok(Ok(crate::discovery::Polled { name, .. })) if name == known.name => {
                        // Only refreshes the entry the question was about: the node may
                        // have restarted (a newer id) while we waited.
                        d.answered(
                            Peer {
                                last_seen: Instant::now(),
                                ..known
                            },
                            how,
                        );
                    }
                    Ok(Ok(crate::discovery::Polled { name, .. })) => {
                        tracing::debug!(peer = %known.name, answered = %name, "DNS-SD peer is another node now");
                    }
                    Ok(Err(e)) => tracing::debug!(peer = %known.name, error = %e, "DNS-SD peer silent"),
                    Err(_) => tracing::debug!(peer = %known.name, "DNS-SD peer did not answer hello"),
                }
            });
        }
    }

    /// Goodbye packets for our service, then mdns-sd's thread exits; bounded, so a stuck
    /// daemon cannot hold the node's shutdown.
    async fn stop(self) {
        if let Some(own) = &self.own {
            match self.daemon.unregister(own) {
                Ok(done) => {
                    if tokio::time::timeout(STOP_TIMEOUT, done.recv_async())
                        .await
                        .is_err()
                    {
                        tracing::warn!("DNS-SD goodbye not confirmed");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "DNS-SD unregister"),
            }
        }
        shutdown_daemon(&self.daemon).await;
    }
}

/// Log what mdns-sd reports on the side: errors (a registration refused) and name
/// conflicts (another responder had our instance name: we are advertised under a new one).
async fn watch(monitor: mdns_sd::Receiver<DaemonEvent>, shutdown: CancellationToken) {
    loop {
        let ev = tokio::select! {
            ev = monitor.recv_async() => ev,
            () = shutdown.cancelled() => return,
        };
        match ev {
            Ok(DaemonEvent::Error(e)) => tracing::warn!(error = %e, "DNS-SD"),
            Ok(DaemonEvent::NameChange(c)) => {
                tracing::info!(was = %c.original, now = %c.new_name, "DNS-SD name taken: renamed");
            }
            Ok(_) => {}
            Err(_) => return, // mdns-sd stopped
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes a name off the polling set when its poll ends, however it ends.
struct Polled(Arc<Mutex<HashMap<String, bool>>>, String);

impl Drop for Polled {
    fn drop(&mut self) {
        lock(&self.0).remove(&self.1);
    }
}

async fn shutdown_daemon(daemon: &ServiceDaemon) {
    match daemon.shutdown() {
        Ok(done) => {
            let _ = tokio::time::timeout(STOP_TIMEOUT, done.recv_async()).await;
        }
        Err(e) => tracing::debug!(error = %e, "DNS-SD shutdown"),
    }
}

/// One-shot browsing for commands that are not nodes (`meshfs peers`): the nodes that
/// resolve within `wait`, by name.
pub async fn browse(
    port: u16,
    interfaces: Interfaces,
    wait: Duration,
) -> Result<Vec<Peer>, DnsSdError> {
    let peers = meshfs_core::Peers::default();
    browse_into(port, interfaces, wait, &peers, &CancellationToken::new()).await?;
    Ok(peers.list())
}

/// Browse for `wait` (or until `stop`), putting each node into `peers` as it resolves (a
/// service removed meanwhile is taken out again), so a caller watching `peers` can stop as
/// soon as it knows enough. mdns-sd is shut down before returning, however it ends.
pub async fn browse_into(
    port: u16,
    interfaces: Interfaces,
    wait: Duration,
    peers: &meshfs_core::Peers,
    stop: &CancellationToken,
) -> Result<(), DnsSdError> {
    let daemon = daemon(port, interfaces)?;
    let events = match daemon.browse(SERVICE_TYPE) {
        Ok(e) => e,
        Err(e) => {
            shutdown_daemon(&daemon).await;
            return Err(e.into());
        }
    };
    let mut found: HashMap<String, Peer> = HashMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let ev = tokio::select! {
            ev = tokio::time::timeout_at(deadline, events.recv_async()) => ev,
            () = stop.cancelled() => break,
        };
        let Ok(Ok(ev)) = ev else { break };
        match ev {
            ServiceEvent::ServiceResolved(s) => {
                if found.len() >= MAX_SERVICES {
                    continue;
                }
                if let Ok(p) = peer_of(&s, None) {
                    found.insert(s.get_fullname().to_owned(), p.clone());
                    peers.hello(p);
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                if let Some(p) = found.remove(&fullname) {
                    peers.bye(&p.name, &p.id);
                }
            }
            _ => {}
        }
    }
    shutdown_daemon(&daemon).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, id: &str) -> Peer {
        Peer {
            name: name.into(),
            id: id.into(),
            node_id: None,
            addr: "10.0.0.9:4044".parse().unwrap(),
            web: None,
            source: Source::DnsSd,
            last_seen: Instant::now(),
        }
    }

    #[test]
    fn a_full_service_table_drops_services_of_gone_peers() {
        let mut s = Services::default();
        for i in 0..MAX_SERVICES {
            let name = format!("n{i}");
            assert!(s.room_for(&name, |_| true));
            s.insert(&format!("{name}.{SERVICE_TYPE}"), peer(&name, "1"));
        }
        // Full of live peers: a new service is refused, a known one is not.
        assert!(!s.room_for("new", |_| true));
        assert!(s.room_for(&format!("n7.{SERVICE_TYPE}"), |_| false));
        assert_eq!(s.by_name.len(), MAX_SERVICES);
        // Their peers expired (or restarted under another id): room again.
        assert!(s.room_for("new", |p| p.name == "n7"));
        assert_eq!(s.by_name.len(), 1);
        assert_eq!(s.remove(&format!("n7.{SERVICE_TYPE}")).unwrap().name, "n7");
    }

    #[test]
    fn interfaces_follow_the_group() {
        assert_eq!(Interfaces::of(Ipv4Addr::UNSPECIFIED), Interfaces::All);
        assert_eq!(Interfaces::of(Ipv4Addr::LOCALHOST), Interfaces::Loopback);
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(Interfaces::of(ip), Interfaces::Addr(ip));
    }

    #[test]
    fn names_fit_dns() {
        let long = "é".repeat(40);
        let i = instance_name(&long);
        assert!(i.len() <= 63 && long.starts_with(&i));
        assert_eq!(
            host_label("cam 2.lab", "0123456789abcdef"),
            "meshfs-cam-2-lab-01234567"
        );
    }

    #[test]
    fn adverts_carry_name_id_and_web() {
        let node_id = NodeId::from_bytes([5; 32]);
        let a = Advert {
            name: "cam2".into(),
            id: "abc".into(),
            node_id: Some(node_id),
            server: "127.0.0.1:4044".parse().unwrap(),
            web: Some(8044),
        };
        let info = a.service_info().unwrap();
        assert_eq!(info.get_fullname(), "cam2._meshfs._tcp.local.");
        assert_eq!(info.get_property_val_str("name"), Some("cam2"));
        assert_eq!(info.get_property_val_str("id"), Some("abc"));
        let txt_id = node_id.to_string();
        assert_eq!(info.get_property_val_str("node_id"), Some(txt_id.as_str()));
        assert_eq!(info.get_property_val_str("web"), Some("8044"));
        assert_eq!(info.get_property_val_str("v"), Some(TXT_VERSION));
        let r = info.as_resolved_service();
        let p = peer_of(&r, None).unwrap();
        assert_eq!(p.name, "cam2");
        assert_eq!(p.id, "abc");
        assert_eq!(p.node_id, Some(node_id));
        assert_eq!(p.addr, "127.0.0.1:4044".parse().unwrap());
        assert_eq!(p.web, Some(8044));
    }

    fn resolved(addrs: &str, txt: &[(&str, &str)]) -> ResolvedService {
        ServiceInfo::new(SERVICE_TYPE, "x", "h.local.", addrs, 4044, txt)
            .unwrap()
            .as_resolved_service()
    }

    #[test]
    fn resolved_services_become_peers_or_are_refused() {
        // Routable addresses first.
        let p = peer_of(&resolved("127.0.0.1,169.254.1.1,10.0.0.9", &[]), None).unwrap();
        assert_eq!(p.addr, "10.0.0.9:4044".parse().unwrap());
        // Without TXT: the instance name, an id of its own.
        assert_eq!(p.name, "x");
        assert_eq!(p.id, "dnssd:x._meshfs._tcp.local.");
        // The same process keeps the address it was first heard at.
        let known = Peer {
            addr: "10.0.0.1:4044".parse().unwrap(),
            ..p.clone()
        };
        let again = peer_of(&resolved("10.0.0.9", &[]), Some(&known)).unwrap();
        assert_eq!(again.addr, known.addr);

        for (txt, why) in [
            (&[("v", "2")][..], "unknown version"),
            (&[("name", "a b")][..], "bad node name"),
            (&[("name", "a:b")][..], "bad node name"),
            (&[("web", "http")][..], "bad web port"),
            (&[("id", "")][..], "bad id"),
            (&[("node_id", "AAAA")][..], "bad node id"),
        ] {
            assert_eq!(
                peer_of(&resolved("10.0.0.9", txt), None),
                Err(why),
                "{txt:?}"
            );
        }
    }
}
