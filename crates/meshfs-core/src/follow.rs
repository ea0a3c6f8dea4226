//! `Follower`: a subscription to one node's events that survives restarts and network cuts.
//!
//! It reconnects with back-off and resumes with `subscribe <since>`, so a consumer sees every
//! event exactly once, or an explicit `resync` where the node could no longer replay what was
//! missed. Used by `meshfs watch`, and by any door that mirrors a remote node (FUSE, web).

use std::time::Duration;

use crate::client::{Client, ClientError, Credentials, NodeInfo, Subscription};
use crate::events::{Event, StreamLine};
use crate::identity::NodeId;

/// What the follower has to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// (Re)connected to the node, which calls itself `name`.
    Connected { name: String },
    /// An event, in order, never repeated.
    Event(Event),
    /// The link is down; the follower keeps retrying.
    Disconnected { error: String },
}

/// Follows one node at `addr`.
pub struct Follower {
    addr: String,
    /// Proven on every (re)connection.
    credentials: Credentials,
    since: Option<u64>,
    sub: Option<Subscription>,
    backoff: Duration,
    /// What the last failure reported was, so failures are reported once per outage: a node
    /// that stops answering after refusing `subscribe` (or the reverse) is a new outage.
    reported_down: Option<Outage>,
    /// The `hello` answer of the latest connection attempt (`None` when it failed before).
    hello: Option<NodeInfo>,
    /// The node's ID as its TLS handshake showed it, on the latest connection.
    peer_id: Option<NodeId>,
}

/// Why the link is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// The node did not answer `hello`.
    Unreachable,
    /// The node answered `hello`, then the subscription failed (refused, say).
    Refused,
}

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Follower {
    /// Follow `addr` from now (`since = None`) or from after event `since`.
    pub fn new(addr: impl Into<String>, since: Option<u64>) -> Follower {
        Follower {
            addr: addr.into(),
            credentials: Credentials::none(),
            since,
            sub: None,
            backoff: MIN_BACKOFF,
            reported_down: None,
            hello: None,
            peer_id: None,
        }
    }

    /// Prove `credentials` on every connection (a protected node's events).
    pub fn with_credentials(mut self, credentials: Credentials) -> Follower {
        self.credentials = credentials;
        self
    }

    /// The last event delivered (what a reconnection resumes after).
    pub fn since(&self) -> Option<u64> {
        self.since
    }

    /// What the node said in `hello` on the latest connection attempt: set from
    /// [`Notice::Connected`] on, and at a [`Notice::Disconnected`] when the node answered
    /// `hello` but the subscription failed (the web UI shows such a node online, without
    /// events); `None` when the node did not answer.
    pub fn hello(&self) -> Option<&NodeInfo> {
        self.hello.as_ref()
    }

    /// The node's ID (its key, checked against the pins when connecting) as of the latest
    /// connection that got as far as `hello`; `None` in clear text (web UI: the node list).
    pub fn peer_id(&self) -> Option<NodeId> {
        self.peer_id
    }

    async fn connect(&mut self) -> Result<String, ClientError> {
        self.hello = None;
        let mut client = Client::connect_with(&self.addr, &self.credentials).await?;
        let info = client.hello().await?;
        self.peer_id = client.peer_id();
        let name = info.name.clone();
        // Ask for reasons (`deleted:retention`) from nodes that give them.
        let reasons = info.reasons;
        self.hello = Some(info);
        self.sub = Some(client.subscribe_with(self.since, reasons).await?);
        Ok(name)
    }

    /// Wait for the next notice. Never fails: outages are notices too.
    pub async fn next(&mut self) -> Notice {
        loop {
            let Some(sub) = self.sub.as_mut() else {
                match self.connect().await {
                    Ok(name) => {
                        self.backoff = MIN_BACKOFF;
                        self.reported_down = None;
                        return Notice::Connected { name };
                    }
                    Err(e) => {
                        let outage = match self.hello {
                            Some(_) => Outage::Refused,
                            None => Outage::Unreachable,
                        };
                        tokio::time::sleep(self.backoff).await;
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        if self.reported_down != Some(outage) {
                            self.reported_down = Some(outage);
                            return Notice::Disconnected {
                                error: e.to_string(),
                            };
                        }
                        continue;
                    }
                }
            };
            match sub.next().await {
                // A ping says "you have everything up to here".
                Ok(StreamLine::Ping(seq)) => self.since = Some(seq),
                Ok(StreamLine::Event(event)) => {
                    self.since = Some(event.seq);
                    return Notice::Event(event);
                }
                Err(e) => {
                    self.sub = None;
                    self.hello = None;
                    self.reported_down = Some(Outage::Unreachable);
                    return Notice::Disconnected {
                        error: e.to_string(),
                    };
                }
            }
        }
    }
}
