//! The announcer/listener a node runs: says `hello` at start, every interval and by unicast to
//! every node heard for the first time, `offer`s its offered files, says `bye` on shutdown,
//! and keeps [`Offers`] and the caller's [`Peers`] (the core's one table of nodes, which the
//! web UI, the mount and name lookups read) from what it hears. Static `--peer`s (networks
//! that drop multicast) are polled with the file-server `hello` instead.
//!
//! Everything observable goes through one [`Change`] callback (the node prints them with
//! `--show-peers`), so scripts and tests watch discovery without a side channel. Several tasks
//! change the tables (multicast, DNS-SD, polls, expiry): each change of the table is made, and
//! its callback run, under discovery's state lock, so changes reach it in the order they were
//! made (never a `PeerDown` before the `PeerUp` it follows).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshfs_core::peers::{Peer, Peers, Seen, Source};
use meshfs_core::{Client, NodeId};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::announce::{Announcement, Ignored, MAX_DATAGRAM, random_id};
use crate::offers::{Offer, Offers};
use crate::socket::{self, Group};

/// Longest interval between two hellos (protocols.md §4).
pub const HELLO_INTERVAL: Duration = Duration::from_secs(30);
/// Most unicast answers per second: anyone can send hellos (with a forged source address,
/// even), and each costs us one datagram per offer; beyond this they go unanswered.
pub const MAX_ANSWERS_PER_SEC: u32 = 64;
/// How long a static peer may take to answer its `hello`.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(3);

/// What a node needs to take part.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our node name.
    pub name: String,
    /// Our node ID, announced in hellos, offers and DNS-SD (`None`: announce none).
    pub node_id: Option<NodeId>,
    /// Our file server's port.
    pub port: u16,
    pub web: Option<u16>,
    pub group: Group,
    /// The announcement port (4046).
    pub announce_port: u16,
    /// Forget peers silent for this long (90 s).
    pub expiry: Duration,
    /// False with `--no-discovery`: no multicast at all, only static peers.
    pub multicast: bool,
    /// `HOST:PORT` file servers to poll.
    pub static_peers: Vec<String>,
}

impl Config {
    /// Hellos (and static polls) come often enough that a peer never expires while alive:
    /// every 30 s, or a third of a shorter expiry.
    pub fn interval(&self) -> Duration {
        HELLO_INTERVAL
            .min(self.expiry / 3)
            .max(Duration::from_millis(100))
    }
}

/// Something discovery learned.
#[derive(Debug, Clone)]
pub enum Change {
    /// Discovery runs: the first change, before any other, so scripts can wait for it.
    /// `group` is `None` without multicast.
    Started {
        group: Option<(SocketAddr, std::net::Ipv4Addr)>,
    },
    /// A peer is known now. It may replace an earlier peer of the same name at another
    /// address (the node restarted or moved without a `bye`); no `PeerDown` is sent for the
    /// old one: consumers keyed by name must drop the old address themselves.
    PeerUp(Peer),
    PeerDown {
        name: String,
        why: &'static str,
    },
    Offer(Offer),
    /// A datagram ignored; `total` counts all ignored datagrams so far.
    Ignored {
        why: Ignored,
        from: IpAddr,
        total: u64,
    },
}

impl std::fmt::Display for Change {
    /// One line for `--show-peers`: `discovery on GROUP:PORT via IFACE` or `discovery off`,
    /// `peer up NAME ADDR`, `peer down NAME bye|expired`,
    /// `offer NAME URL SIZE open|protected`, `ignored WHY from IP total N`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Started {
                group: Some((group, iface)),
            } => write!(f, "discovery on {group} via {iface}"),
            Change::Started { group: None } => write!(f, "discovery off"),
            Change::PeerUp(p) => write!(f, "peer up {} {}", p.name, p.addr),
            Change::PeerDown { name, why } => write!(f, "peer down {name} {why}"),
            Change::Offer(o) => write!(
                f,
                "offer {} {} {} {}",
                o.node,
                o.url(),
                o.size,
                if o.protected { "protected" } else { "open" }
            ),
            Change::Ignored { why, from, total } => {
                write!(f, "ignored {} from {from} total {total}", why.as_str())
            }
        }
    }
}

/// The callback of [`Change`]s. It runs under discovery's state lock (to keep the changes in
/// order), so it must be quick, must not block, and must never call back into [`Discovery`]:
/// print a line, send on a channel.
pub type OnChange = Arc<dyn Fn(&Change) + Send + Sync>;

#[derive(Default)]
struct State {
    offers: Offers,
    /// Our own offers, re-announced with every hello.
    own: Vec<Announcement>,
    ignored: HashMap<Ignored, u64>,
    /// Start of the current one-second window of unicast answers, and answers in it.
    answers: Option<(Instant, u32)>,
    /// Claims of a contested name already logged (name, ID), so each is logged once.
    /// Bounded like the peer table: past it, conflicts are no longer logged.
    conflicts_logged: HashSet<(String, Option<NodeId>)>,
}

impl State {
    /// Take one unicast answer from this second's budget.
    fn may_answer(&mut self, now: Instant) -> bool {
        let (start, n) = match self.answers {
            Some((start, n)) if now.duration_since(start) < Duration::from_secs(1) => (start, n),
            _ => (now, 0),
        };
        let ok = n < MAX_ANSWERS_PER_SEC;
        self.answers = Some((start, n + u32::from(ok)));
        ok
    }
}

/// A running discovery. Cheap to clone.
#[derive(Clone)]
pub struct Discovery {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    id: String,
    /// The table discovery feeds, changed only with `state` locked (see the module doc).
    peers: Peers,
    state: Mutex<State>,
    on_change: OnChange,
    /// `None` without multicast.
    sender: Option<UdpSocket>,
    /// Peers already reported as speaking a version we cannot.
    incompatible: crate::versions::Incompatible,
}

/// An offer that cannot be announced.
#[derive(Debug, thiserror::Error)]
#[error("cannot offer {0:?}: the path does not fit in one announcement")]
pub struct TooLong(pub String);

impl Discovery {
    /// Bind the sockets and start the tasks on `tracker`; they stop on `shutdown` (saying
    /// `bye` first). What is heard goes into `peers`; discovery expires the entries there
    /// after `config.expiry`, whoever added them.
    pub fn start(
        config: Config,
        peers: Peers,
        on_change: OnChange,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> std::io::Result<Discovery> {
        let (group_socket, sender) = if config.multicast {
            (
                Some(socket::bind_group(&config.group, config.announce_port)?),
                Some(socket::sender(&config.group)?),
            )
        } else {
            (None, None)
        };
        let d = Discovery {
            inner: Arc::new(Inner {
                config,
                id: random_id(),
                peers,
                state: Mutex::new(State::default()),
                on_change,
                sender,
                incompatible: Default::default(),
            }),
        };
        (d.inner.on_change)(&Change::Started {
            group: group_socket
                .as_ref()
                .map(|_| (d.group_dest(), d.inner.config.group.iface)),
        });
        if let Some(g) = group_socket {
            let me = d.clone();
            let stop = shutdown.clone();
            tracker.spawn(async move { me.listen(&g, true, stop).await });
            let me = d.clone();
            let stop = shutdown.clone();
            tracker.spawn(async move {
                let s = me.inner.sender.as_ref().expect("multicast has a sender");
                me.listen(s, false, stop).await
            });
            let me = d.clone();
            tracker.spawn(me.announce_loop(shutdown.clone()));
        }
        for peer in d.inner.config.static_peers.clone() {
            tracker.spawn(d.clone().poll_loop(peer, shutdown.clone()));
        }
        tracker.spawn(d.clone().expire_loop(shutdown));
        Ok(d)
    }

    /// Offer one of our files: announced at once and with every hello from now on.
    pub async fn offer(&self, path: &str, size: u64, protected: bool) -> Result<(), TooLong> {
        let a = self.own_offer(path, size, protected);
        if !a.fits() {
            return Err(TooLong(path.to_owned()));
        }
        self.adopt(a.clone());
        self.to_group(&a).await;
        Ok(())
    }

    /// The announcement of `path` as offered by this node.
    fn own_offer(&self, path: &str, size: u64, protected: bool) -> Announcement {
        Announcement::Offer {
            node: self.inner.config.name.clone(),
            id: self.inner.id.clone(),
            node_id: self.inner.config.node_id,
            port: self.inner.config.port,
            path: path.to_owned(),
            size,
            protected,
        }
    }

    /// Make `offer` (built by [`Self::own_offer`]) one of ours, replacing an earlier offer of
    /// the same path.
    fn adopt(&self, offer: Announcement) {
        let mut st = self.state();
        st.own.retain(|o| {
            !matches!(
                (o, &offer),
                (Announcement::Offer { path: a, .. }, Announcement::Offer { path: b, .. }) if a == b
            )
        });
        if st.own.len() < crate::offers::MAX_OFFERS {
            st.own.push(offer);
        }
    }

    /// The table discovery feeds.
    pub fn peers(&self) -> &Peers {
        &self.inner.peers
    }

    /// The offers index.
    pub fn offers(&self) -> Vec<Offer> {
        self.state().offers.list()
    }

    /// Datagrams ignored so far, by reason.
    pub fn ignored(&self) -> HashMap<Ignored, u64> {
        self.state().ignored.clone()
    }

    /// This process's id, in its hellos and byes (and its DNS-SD TXT record).
    pub(crate) fn id(&self) -> &str {
        &self.inner.id
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The peer known under `name`, if any.
    pub(crate) fn peer(&self, name: &str) -> Option<Peer> {
        self.inner.peers.find(name)
    }

    /// A sign of life of `peer`, however it was heard (`how`, for the log): one table, so a
    /// node heard several ways is one peer, and `PeerUp` fires once.
    pub(crate) fn heard(&self, peer: Peer, how: &str) -> Seen {
        let mut st = self.state();
        self.heard_locked(&mut st, peer, how)
    }

    /// A `hello` poll of `peer` (as known when the poll went out) was answered by a node of
    /// that name. Refreshes the entry only if it is still that process at that address (the
    /// answer may come a poll timeout later: a restarted node's newer entry must not be rolled
    /// back), and adds the peer back if it is gone (expired during an outage). True when the
    /// peer was refreshed or added.
    pub(crate) fn answered(&self, peer: Peer, how: &str) -> bool {
        let mut st = self.state();
        let peers = &self.inner.peers;
        if peers.find(&peer.name).is_some() {
            let fresh = peers.touch(&peer.name, &peer.id, peer.addr, peer.last_seen);
            if !fresh {
                tracing::debug!(peer = %peer.name, how, "answer for an earlier process: ignored");
            }
            fresh
        } else {
            self.heard_locked(&mut st, peer, how) == Seen::New
        }
    }

    /// [`Discovery::heard`] with the state locked (`_locked` proves it): the table changes,
    /// and `on_change` runs, before it is released.
    fn heard_locked(&self, _locked: &mut State, peer: Peer, how: &str) -> Seen {
        let seen = self.inner.peers.hello(peer.clone());
        match seen {
            Seen::New => {
                tracing::info!(peer = %peer.name, addr = %peer.addr, how, "peer up");
                self.log_conflict(_locked, &peer);
                (self.inner.on_change)(&Change::PeerUp(peer));
            }
            Seen::Known => {}
            Seen::Full => tracing::warn!(peer = %peer.name, how, "peer table full: ignored"),
        }
        seen
    }

    /// Log, once per claim, a node announcing a name that another node (or this one) goes
    /// by with another ID, or with this very ID from elsewhere (two nodes sharing a state
    /// folder, so a key): never resolved at random, so the user must know (issue 15).
    fn log_conflict(&self, st: &mut State, peer: &Peer) {
        let config = &self.inner.config;
        let ours = peer.name == config.name && config.port != 0;
        let our_twin = ours && peer.node_id.is_some() && peer.node_id == config.node_id;
        let claims = self.inner.peers.conflict(&peer.name);
        if !ours && claims.is_empty() {
            return;
        }
        if st.conflicts_logged.len() >= meshfs_core::peers::MAX_PEERS
            || !st
                .conflicts_logged
                .insert((peer.name.clone(), peer.node_id))
        {
            return;
        }
        let show = |id: Option<NodeId>| id.map_or_else(|| "no ID".to_owned(), |i| i.to_string());
        let others: Vec<String> = claims
            .iter()
            .filter(|p| p.addr != peer.addr)
            .map(|p| format!("{} at {}", show(p.node_id), p.addr))
            .collect();
        let name = &peer.name;
        let (id, addr) = (show(peer.node_id), peer.addr);
        let one_key = claims.len() > 1
            && peer.node_id.is_some()
            && claims.iter().all(|p| p.node_id == peer.node_id);
        if our_twin {
            tracing::warn!(
                %name, %id, %addr,
                "another node runs with this node's name and key (started with the same state \
                 folder): clients reaching {name} by name are refused; give each node its own \
                 --name and --state"
            );
        } else if ours {
            tracing::warn!(
                %name, %id, %addr,
                "another node announces this node's name with another ID: clients reaching \
                 {name} by name are refused unless they pinned one (meshfs trust {name} ID)"
            );
        } else if one_key {
            tracing::warn!(
                %name, %id, %addr, others = %others.join(", "),
                "two nodes announce one name with one key (a shared state folder): clients \
                 reaching {name} by name are refused"
            );
        } else {
            tracing::warn!(
                %name, %id, %addr, others = %others.join(", "),
                "two nodes announce one name: clients reaching {name} by name are refused \
                 unless they pinned one (meshfs trust {name} ID)"
            );
        }
    }

    /// `name` (the process `id`) left: forget it and its offers. False when it was not known
    /// (already gone, or another process by now).
    pub(crate) fn gone(&self, name: &str, id: &str, why: &'static str) -> bool {
        let mut st = self.state();
        let gone = self.inner.peers.bye(name, id).is_some();
        if gone {
            st.offers.drop_node(name);
            tracing::info!(peer = %name, why, "peer down");
            (self.inner.on_change)(&Change::PeerDown {
                name: name.to_owned(),
                why,
            });
        }
        gone
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hello(&self) -> Announcement {
        Announcement::Hello {
            node: self.inner.config.name.clone(),
            id: self.inner.id.clone(),
            node_id: self.inner.config.node_id,
            port: self.inner.config.port,
            web: self.inner.config.web,
        }
    }

    fn group_dest(&self) -> SocketAddr {
        SocketAddr::new(
            IpAddr::V4(self.inner.config.group.addr),
            self.inner.config.announce_port,
        )
    }

    async fn send(&self, a: &Announcement, to: SocketAddr) {
        if let Some(s) = &self.inner.sender
            && let Err(e) = s.send_to(&a.encode(), to).await
        {
            tracing::warn!(error = %e, %to, "cannot send announcement");
        }
    }

    async fn to_group(&self, a: &Announcement) {
        self.send(a, self.group_dest()).await;
    }

    /// Our hello and offers to one node, within the answer budget.
    async fn answer(&self, to: SocketAddr) {
        if self.state().may_answer(Instant::now()) {
            self.introduce(to).await;
        } else {
            tracing::debug!(%to, "answer budget spent: hello not answered");
        }
    }

    /// Our hello and offers, to the group or to one node.
    async fn introduce(&self, to: SocketAddr) {
        let own = self.state().own.clone();
        self.send(&self.hello(), to).await;
        for o in &own {
            self.send(o, to).await;
        }
    }

    async fn announce_loop(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.config.interval());
        loop {
            tokio::select! {
                _ = tick.tick() => self.introduce(self.group_dest()).await,
                () = shutdown.cancelled() => break,
            }
        }
        let bye = Announcement::Bye {
            node: self.inner.config.name.clone(),
            id: self.inner.id.clone(),
        };
        self.to_group(&bye).await;
    }

    async fn expire_loop(self, shutdown: CancellationToken) {
        let every = (self.inner.config.expiry / 10)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let mut st = self.state();
            let now = Instant::now();
            let gone = self.inner.peers.expire(now, self.inner.config.expiry);
            for p in &gone {
                st.offers.drop_node(&p.name);
            }
            st.offers.expire(now, self.inner.config.expiry);
            for p in gone {
                tracing::info!(peer = %p.name, "peer expired");
                (self.inner.on_change)(&Change::PeerDown {
                    name: p.name,
                    why: "expired",
                });
            }
        }
    }

    /// Read datagrams from one socket until shutdown. `multicast` tells the group socket
    /// (new hellos get a unicast answer) from the sender socket (answers to us).
    async fn listen(&self, socket: &UdpSocket, multicast: bool, shutdown: CancellationToken) {
        // One byte more than allowed, so an oversized datagram is seen as such.
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        loop {
            let got = tokio::select! {
                r = socket.recv_from(&mut buf) => r,
                () = shutdown.cancelled() => return,
            };
            match got {
                Ok((n, from)) => self.handle(&buf[..n], from, multicast).await,
                // ICMP errors of earlier sends surface here on some systems: not fatal.
                Err(e) => {
                    tracing::debug!(error = %e, "announcement socket error");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn handle(&self, datagram: &[u8], from: SocketAddr, multicast: bool) {
        let a = match Announcement::parse(datagram) {
            Ok(a) => a,
            Err(why) => {
                if why == Ignored::Unknown && self.inner.incompatible.first(&from.ip().to_string())
                {
                    tracing::warn!(%from, "a node announces itself in a format this version of meshfs \
                        ({}) does not know: it will not be listed; update one of them", meshfs_core::VERSION);
                }
                let mut st = self.state();
                *st.ignored.entry(why).or_default() += 1;
                let total = st.ignored.values().sum();
                tracing::debug!(%from, why = why.as_str(), "ignored announcement");
                (self.inner.on_change)(&Change::Ignored {
                    why,
                    from: from.ip(),
                    total,
                });
                return;
            }
        };
        if a.id() == self.inner.id {
            return; // our own, looped back
        }
        if let Announcement::Hello { node, id, .. } = &a
            && let Some((version, proto)) = crate::announce::hello_versions(datagram)
            && proto != meshfs_core::proto::PROTO_VERSION
            && self.inner.incompatible.first(id)
        {
            tracing::warn!(%node, %from, version = version.as_deref().unwrap_or("?"), proto,
                "node speaks a file-server protocol this meshfs ({}, protocol {}) cannot talk to; \
                 update one of them", meshfs_core::VERSION, meshfs_core::proto::PROTO_VERSION);
        }
        match a {
            Announcement::Hello { port: 0, .. } => {
                // A browser (`meshfs peers`, a mount): answer its question to the group, do
                // not list it. Never answer an answer, nor as a browser ourselves: two
                // browsers would answer each other forever.
                if multicast && self.inner.config.port != 0 {
                    self.answer(from).await;
                }
            }
            Announcement::Hello {
                node,
                id,
                node_id,
                port,
                web,
            } => {
                let peer = Peer {
                    name: node,
                    id,
                    node_id,
                    addr: SocketAddr::new(from.ip(), port),
                    web,
                    source: Source::Multicast,
                    last_seen: Instant::now(),
                };
                if self.heard(peer, "multicast") == Seen::New && multicast {
                    self.answer(from).await;
                }
            }
            Announcement::Bye { node, id } => {
                self.gone(&node, &id, "bye");
            }
            Announcement::Offer {
                node,
                port,
                path,
                size,
                protected,
                ..
            } => {
                // `meshfs offer` on this machine speaks for us: adopt the offer, so it is
                // repeated with our hellos and answers like the `--offer`s.
                if node == self.inner.config.name
                    && port == self.inner.config.port
                    && from.ip().is_loopback()
                {
                    self.adopt(self.own_offer(&path, size, protected));
                }
                let offer = Offer {
                    node,
                    addr: SocketAddr::new(from.ip(), port),
                    path,
                    size,
                    protected,
                };
                let mut st = self.state();
                if st.offers.add(offer.clone(), Instant::now()) {
                    (self.inner.on_change)(&Change::Offer(offer));
                }
            }
        }
    }

    /// Poll a static peer's `hello` over the file-server protocol, for networks that drop
    /// multicast.
    async fn poll_loop(self, target: String, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.config.interval());
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            match tokio::time::timeout(POLL_TIMEOUT, poll_hello(&target)).await {
                Ok(Ok(Polled {
                    name,
                    addr,
                    node_id,
                })) => {
                    // One `--peer` list for a whole site names this node too: it is not a
                    // twin of itself (a cloned node elsewhere, same key and port, still is).
                    if addr.port() == self.inner.config.port && is_local(addr.ip()) {
                        tracing::info!(peer = %target, "static peer is this node: not polled");
                        return;
                    }
                    // Keep the id of a peer also heard by multicast, so it is not "new".
                    let id = (self.inner.peers.find_all(&name).into_iter())
                        .find(|p| p.addr == addr)
                        .map_or_else(
                            || format!("{}{addr}", meshfs_core::peers::STATIC_ID),
                            |p| p.id,
                        );
                    let peer = Peer {
                        name,
                        id,
                        node_id,
                        addr,
                        web: None,
                        source: Source::Static,
                        last_seen: Instant::now(),
                    };
                    self.heard(peer, "static peer");
                }
                Ok(Err(e)) => tracing::debug!(peer = %target, error = %e, "static peer silent"),
                Err(_) => tracing::debug!(peer = %target, "static peer did not answer hello"),
            }
        }
    }
}

/// `ip` is one of this machine's addresses (only those can be bound).
pub(crate) fn is_local(ip: std::net::IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Why a static peer did not answer (any connection or protocol error).
pub type PollError = Box<dyn std::error::Error + Send + Sync>;

/// What a file server said to `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    pub name: String,
    /// The address we reached it at.
    pub addr: SocketAddr,
    /// The key it presented, when the poll went over TLS (the process's trust policy).
    pub node_id: Option<NodeId>,
}

/// `hello` to a file server. No timeout of its own beyond the client's: callers bound it.
pub async fn poll_hello(target: &str) -> Result<Polled, PollError> {
    let addr = tokio::net::lookup_host(target)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut c = Client::connect(&addr.to_string()).await?;
    let info = c.hello().await?;
    let node_id = c.peer_id();
    let _ = c.quit().await;
    if !crate::announce::valid_name(&info.name) {
        return Err(std::io::Error::other("bad node name").into());
    }
    Ok(Polled {
        name: info.name,
        addr,
        node_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_budgeted_per_second() {
        let mut st = State::default();
        let t0 = Instant::now();
        let given = (0..200).filter(|_| st.may_answer(t0)).count();
        assert_eq!(given, MAX_ANSWERS_PER_SEC as usize);
        assert!(st.may_answer(t0 + Duration::from_millis(1001)));
    }

    /// Each change as its `--show-peers` line, and whether the state was locked then.
    type Recorded = Arc<Mutex<Vec<(String, bool)>>>;

    /// Discovery without multicast (no sockets), whose changes are recorded as lines, with
    /// whether the state was locked when each one was delivered.
    fn recording() -> (Discovery, Recorded, CancellationToken, TaskTracker) {
        let seen: Recorded = Arc::default();
        let me: Arc<std::sync::OnceLock<Discovery>> = Arc::default();
        let on_change: OnChange = {
            let (seen, me) = (seen.clone(), me.clone());
            Arc::new(move |c: &Change| {
                let locked = me.get().is_some_and(|d| d.inner.state.try_lock().is_err());
                seen.lock().unwrap().push((c.to_string(), locked));
            })
        };
        let config = Config {
            name: "me".into(),
            node_id: None,
            port: 4044,
            web: None,
            group: Group {
                addr: std::net::Ipv4Addr::new(239, 255, 0, 1),
                iface: std::net::Ipv4Addr::LOCALHOST,
                ttl: 1,
            },
            announce_port: 0,
            expiry: Duration::from_secs(90),
            multicast: false,
            static_peers: Vec::new(),
        };
        let (stop, tracker) = (CancellationToken::new(), TaskTracker::new());
        let d =
            Discovery::start(config, Peers::default(), on_change, stop.clone(), &tracker).unwrap();
        me.set(d.clone()).ok().unwrap();
        (d, seen, stop, tracker)
    }

    fn peer(id: &str, addr: &str) -> Peer {
        Peer {
            name: "a".into(),
            id: id.into(),
            node_id: None,
            addr: addr.parse().unwrap(),
            web: None,
            source: Source::Multicast,
            last_seen: Instant::now(),
        }
    }

    /// What discovery hears goes into the caller's table (no copy of its own), tagged with how
    /// it was heard; a bye and expiry are that table's `Down`s.
    #[tokio::test]
    async fn discovery_writes_the_callers_table() {
        use meshfs_core::peers::{Gone, PeerEvent};
        let (d, _seen, stop, tracker) = recording();
        let mut watch = d.peers().clone().watch();
        let next = async |w: &mut meshfs_core::peers::PeerWatch| {
            tokio::time::timeout(Duration::from_secs(5), w.next())
                .await
                .expect("a change")
        };
        d.heard(peer("1", "127.0.0.1:4044"), "test");
        match next(&mut watch).await {
            PeerEvent::Up(p) => assert_eq!((p.name.as_str(), p.source), ("a", Source::Multicast)),
            e => panic!("{e:?}"),
        }
        // A late static poll answer keeps how it was first heard.
        assert!(d.answered(
            Peer {
                source: Source::Static,
                ..peer("1", "127.0.0.1:4044")
            },
            "test"
        ));
        assert_eq!(d.peers().find("a").unwrap().source, Source::Multicast);
        assert!(d.gone("a", "1", "bye"));
        assert!(matches!(
            next(&mut watch).await,
            PeerEvent::Down { why: Gone::Bye, .. }
        ));
        assert!(d.peers().is_empty());
        stop.cancel();
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test]
    async fn a_late_poll_answer_keeps_the_restarted_process() {
        let (d, seen, stop, tracker) = recording();
        let old = peer("1", "127.0.0.1:4044");
        assert_eq!(d.heard(old.clone(), "test"), Seen::New);
        assert!(d.answered(old.clone(), "test"), "same process: refreshed");
        // Restarted at another address while a poll of the old process was out.
        assert_eq!(d.heard(peer("2", "127.0.0.2:4044"), "test"), Seen::New);
        assert!(!d.answered(old.clone(), "test"));
        assert_eq!(d.peer("a").unwrap().id, "2");
        assert!(d.gone("a", "2", "bye"), "the new process's bye is its own");
        // Gone (expired, or a bye): an answer brings it back.
        assert!(d.answered(old, "test"));
        assert_eq!(d.peer("a").unwrap().id, "1");

        let lines = seen.lock().unwrap().clone();
        let text: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            text,
            [
                "discovery off",
                "peer up a 127.0.0.1:4044",
                "peer up a 127.0.0.2:4044",
                "peer down a bye",
                "peer up a 127.0.0.1:4044",
            ]
        );
        // Delivered under the state lock (so in the order the table changed), once the
        // callback could see the discovery.
        assert!(lines[1..].iter().all(|(_, locked)| *locked), "{lines:?}");
        stop.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
