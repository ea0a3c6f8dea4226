//! One-shot questions to the group, for commands that are not nodes (`meshfs peers`,
//! `meshfs offers`, the chat's `/get` and `/offers`): send a browser `hello` (port 0) and
//! collect the unicast answers every node sends back at once.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use meshfs_core::peers::{Peer, Peers, Source};

use crate::announce::{Announcement, MAX_DATAGRAM, random_id};
use crate::offers::{Offer, Offers};
use crate::socket::{self, Group};

/// What the group answered.
#[derive(Debug, Default)]
pub struct Answers {
    pub peers: Vec<Peer>,
    pub offers: Vec<Offer>,
}

impl Answers {
    /// Resolve `NAME` to its file server.
    pub fn addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.peers.iter().find(|p| p.name == name).map(|p| p.addr)
    }
}

/// Ask the group on `port` and listen for `wait`.
pub async fn probe(group: &Group, port: u16, wait: Duration) -> std::io::Result<Answers> {
    let s = socket::sender(group)?;
    let hello = Announcement::Hello {
        node: "browser".into(),
        id: random_id(),
        port: 0,
        web: None,
    };
    s.send_to(
        &hello.encode(),
        SocketAddr::new(IpAddr::V4(group.addr), port),
    )
    .await?;
    let (peers, mut offers) = (Peers::default(), Offers::default());
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    while let Ok(got) = tokio::time::timeout_at(deadline, s.recv_from(&mut buf)).await {
        let Ok((n, from)) = got else { continue };
        match Announcement::parse(&buf[..n]) {
            Ok(Announcement::Hello {
                node,
                id,
                port,
                web,
            }) if port != 0 => {
                peers.hello(Peer {
                    name: node,
                    id,
                    addr: SocketAddr::new(from.ip(), port),
                    web,
                    source: Source::Multicast,
                    last_seen: Instant::now(),
                });
            }
            Ok(Announcement::Offer {
                node,
                port,
                path,
                size,
                protected,
                ..
            }) => {
                offers.add(
                    Offer {
                        node,
                        addr: SocketAddr::new(from.ip(), port),
                        path,
                        size,
                        protected,
                    },
                    Instant::now(),
                );
            }
            _ => {}
        }
    }
    Ok(Answers {
        peers: peers.list(),
        offers: offers.list(),
    })
}

/// Why a direct offer failed.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("cannot reach the node at {addr}: {source}")]
    Node {
        addr: String,
        #[source]
        source: meshfs_core::ClientError,
    },
    /// The node answered, with an error (no such file, say).
    #[error("the node at {addr} answered: {source}")]
    Answered {
        addr: String,
        #[source]
        source: meshfs_core::ClientError,
    },
    #[error("{0} is not a regular file")]
    NotAFile(String),
    #[error("the path does not fit in one announcement")]
    TooLong,
    #[error("cannot send to the group: {0}")]
    Io(#[from] std::io::Error),
}

/// Offer `path` of the node whose file server is `node` (usually the local one), on its
/// behalf: its name and the file's size come from the node itself, so the offer is true.
/// Passwords cannot be set this way (the node's `--offer PATH:PASSWORDFILE` does that), but a
/// file the node protects is announced as protected: reading it is refused.
pub async fn offer_for(
    group: &Group,
    port: u16,
    node: &str,
    path: &str,
) -> Result<Offer, OfferError> {
    let err = |source: meshfs_core::ClientError| {
        let addr = node.to_owned();
        if source.is_connection() {
            OfferError::Node { addr, source }
        } else {
            OfferError::Answered { addr, source }
        }
    };
    let mut c = meshfs_core::Client::connect(node).await.map_err(err)?;
    let info = c.hello().await.map_err(err)?;
    let entry = c.stat(path).await.map_err(err)?;
    let protected = match c.pread(path, 0, 0, &mut Vec::new()).await {
        Ok(_) => false,
        Err(e) if e.remote_code() == Some(meshfs_core::proto::Code::AuthRequired) => true,
        Err(e) => return Err(err(e)),
    };
    let _ = c.quit().await;
    if entry.kind != meshfs_core::Kind::File {
        return Err(OfferError::NotAFile(path.to_owned()));
    }
    let server: SocketAddr = tokio::net::lookup_host(node)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let path = path.trim_start_matches('/').to_owned();
    let a = Announcement::Offer {
        node: info.name.clone(),
        id: random_id(),
        port: server.port(),
        path: path.clone(),
        size: entry.size,
        protected,
    };
    if !a.fits() {
        return Err(OfferError::TooLong);
    }
    let s = socket::sender(group)?;
    s.send_to(&a.encode(), SocketAddr::new(IpAddr::V4(group.addr), port))
        .await?;
    Ok(Offer {
        node: info.name,
        addr: server,
        path,
        size: entry.size,
        protected,
    })
}
