//! `Trust`: how this process's clients reach nodes: TLS with keys pinned by name, or clear text.
//!
//! One `Trust` is made by the binary for a command (the user's [`Identity`] and
//! [`KnownNodes`], or [`Trust::plaintext`] for `--plaintext`) and carried to every connection.
//! A connection to a node expected under a name it has pinned checks the key during the
//! handshake; otherwise the handshake accepts any key and the caller asks the node its name
//! (`hello`) and hands both to [`Trust::admit`], which pins on first use or refuses a changed
//! key. Keys admitted this way are remembered per address for the life of the process, so
//! later connections (a pool's, a download's second one) are checked in the handshake and skip
//! the `hello`.
//!
//! The binary installs its command's policy once as the process default
//! ([`Trust::install_process_default`]); [`Credentials`](crate::client::Credentials) made
//! without an explicit `Trust` take it, so every door's client side (pools, followers,
//! downloads, the web UI's remote nodes, the mount, cluster replication) speaks TLS without
//! threading the policy through each library. Libraries and tests that install nothing stay in
//! clear, as meshfs was before TLS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::ClientConfig;
use tokio::net::TcpStream;

use crate::identity::{self, Identity, IdentityError, NodeId};
use crate::known_nodes::{KnownNodes, KnownNodesError, Seen};
use crate::stream::Stream;
use crate::tls::{self, TlsError};

/// The policy installed by the binary for this process.
static PROCESS_DEFAULT: OnceLock<Trust> = OnceLock::new();

/// Most addresses remembered (a process talking to more nodes forgets and asks `hello` again).
const MAX_SEEN: usize = 4096;

/// What can go wrong setting up trust or meeting a node.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Known(#[from] KnownNodesError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("neither XDG_CONFIG_HOME nor HOME is set: cannot find the user's meshfs folder")]
    NoConfigDir,
    #[error(
        "the node at {addr} presented the key {presented}, not the key {announced} announced \
         for it on the LAN: another host answers there (an impostor, or a forged \
         announcement). Reach the node by address, or check `meshfs id --node` on it and pin \
         it: meshfs trust NAME ID"
    )]
    NotAnnounced {
        addr: String,
        announced: NodeId,
        presented: NodeId,
    },
}

/// The trust policy of a process's clients. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Trust {
    inner: Arc<Inner>,
}

struct Inner {
    plaintext: bool,
    user: Option<Identity>,
    known: Mutex<KnownNodes>,
    /// Address → key admitted there during this process.
    seen: Mutex<HashMap<String, NodeId>>,
    /// Address → key the node found there by name announced (not checked yet): demanded in
    /// the handshake, then admitted under the name `hello` gives, as any unpinned key.
    announced: Mutex<HashMap<String, NodeId>>,
    /// Client configurations by expected key (`None`: any key, checked after `hello`).
    configs: Mutex<HashMap<Option<NodeId>, Arc<ClientConfig>>>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("plaintext", &self.inner.plaintext)
            .field("user", &self.user_id())
            .finish()
    }
}

impl PartialEq for Trust {
    /// Clear text is one policy; TLS policies are equal when they are the same one.
    fn eq(&self, other: &Trust) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || (self.is_plaintext() && other.is_plaintext())
    }
}

impl Eq for Trust {}

impl Default for Trust {
    /// The process default ([`Trust::install_process_default`]), else clear text, as meshfs
    /// spoke before TLS: libraries and tests given no policy keep working.
    fn default() -> Trust {
        PROCESS_DEFAULT
            .get()
            .cloned()
            .unwrap_or_else(Trust::plaintext)
    }
}

impl Trust {
    /// Make `trust` what every connection of this process uses unless given another (once;
    /// later calls are ignored and return false).
    pub fn install_process_default(trust: Trust) -> bool {
        PROCESS_DEFAULT.set(trust).is_ok()
    }

    /// Speak the text protocol in clear (`--plaintext`, for nodes older than TLS).
    pub fn plaintext() -> Trust {
        Trust::build(true, None, KnownNodes::in_memory())
    }

    /// TLS, presenting `user` when a node asks, pinning in `known`.
    pub fn tls(user: Option<Identity>, known: KnownNodes) -> Trust {
        Trust::build(false, user, known)
    }

    /// TLS with the user's own identity and pins, from [`identity::user_dir`] (made on first
    /// use).
    pub fn for_user() -> Result<Trust, TrustError> {
        let dir = identity::user_dir().ok_or(TrustError::NoConfigDir)?;
        let user = Identity::load_or_create(&dir, "user")?;
        let known = KnownNodes::load(&dir.join(crate::known_nodes::FILE_NAME))?;
        Ok(Trust::tls(Some(user), known))
    }

    /// TLS for a node's own client side (cluster replication, the web UI's remote nodes,
    /// directory fetches): presenting the NODE's identity, so another node's `--allow` can
    /// admit it by its node ID, and pinning in the user's `known_nodes` as commands do.
    pub fn for_node(node: Identity) -> Result<Trust, TrustError> {
        let dir = identity::user_dir().ok_or(TrustError::NoConfigDir)?;
        let known = KnownNodes::load(&dir.join(crate::known_nodes::FILE_NAME))?;
        Ok(Trust::tls(Some(node), known))
    }

    fn build(plaintext: bool, user: Option<Identity>, known: KnownNodes) -> Trust {
        Trust {
            inner: Arc::new(Inner {
                plaintext,
                user,
                known: Mutex::new(known),
                seen: Mutex::new(HashMap::new()),
                announced: Mutex::new(HashMap::new()),
                configs: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// True for `--plaintext`.
    pub fn is_plaintext(&self) -> bool {
        self.inner.plaintext
    }

    /// The ID this process presents to nodes that ask.
    pub fn user_id(&self) -> Option<NodeId> {
        self.inner.user.as_ref().map(Identity::id)
    }

    /// The key pinned for node `name`.
    pub fn pinned(&self, name: &str) -> Option<NodeId> {
        lock(&self.inner.known).get(name)
    }

    /// The key to demand in the handshake with `addr`, reached as node `name` when given: the
    /// pin of that name; with no name, the key admitted at that address earlier in this
    /// process. (A name not pinned yet expects nothing: its key must be admitted under it.)
    pub fn expected(&self, addr: &str, name: Option<&str>) -> Option<NodeId> {
        match name {
            Some(n) => self.pinned(n),
            None => lock(&self.inner.seen).get(addr).copied(),
        }
    }

    /// The node found at `addr` by its name announced `id` (a LAN hello or DNS-SD): demand
    /// that key in the handshakes with `addr`, so a forged announcement pointing the name at
    /// another host leads nowhere. Unlike a pin, the key is still admitted (pinned on first
    /// use, or checked against the pin) under the name the node gives.
    pub fn expect_announced(&self, addr: &str, id: NodeId) {
        let mut announced = lock(&self.inner.announced);
        if announced.len() >= MAX_SEEN && !announced.contains_key(addr) {
            announced.clear();
        }
        announced.insert(addr.to_owned(), id);
    }

    /// The client configuration demanding `expect` (any key when `None`).
    pub fn config(&self, expect: Option<NodeId>) -> Result<Arc<ClientConfig>, TlsError> {
        let mut configs = lock(&self.inner.configs);
        if let Some(c) = configs.get(&expect) {
            return Ok(c.clone());
        }
        let config = tls::client_config(self.inner.user.as_ref(), expect)?;
        if configs.len() >= MAX_SEEN {
            configs.clear();
        }
        configs.insert(expect, config.clone());
        Ok(config)
    }

    /// TLS over `tcp` to `addr`, reached as node `name` when given. Returns the stream and
    /// whether the key was already checked against a pin. When not, the caller must call
    /// [`Trust::admit`] with the peer's key ([`Stream::peer_id`]) under `name`, or, without a
    /// name, under the one `hello` gives, before trusting anything it reads.
    ///
    /// A key other than the pinned one is refused with [`KnownNodesError::KeyChanged`] (under
    /// the name, or the address when the expectation came from an earlier connection).
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        addr: &str,
        name: Option<&str>,
    ) -> Result<(Stream, bool), HandshakeError> {
        let expect = self.expected(addr, name);
        let announced = lock(&self.inner.announced).get(addr).copied();
        let config = self.config(expect.or(announced))?;
        match tls::TlsConnector::from(config)
            .connect(tls::server_name(addr), tcp)
            .await
        {
            Ok(s) => Ok((Stream::TlsClient(Box::new(s)), expect.is_some())),
            Err(e) => match tls::pin_mismatch(&e) {
                Some(m) if expect.is_none() => {
                    Err(HandshakeError::Trust(TrustError::NotAnnounced {
                        addr: addr.to_owned(),
                        announced: m.expected,
                        presented: m.presented,
                    }))
                }
                Some(m) => Err(HandshakeError::Trust(TrustError::Known(
                    KnownNodesError::KeyChanged {
                        name: name.unwrap_or(addr).to_owned(),
                        pinned: m.expected,
                        presented: m.presented,
                    },
                ))),
                None => Err(HandshakeError::Io(e)),
            },
        }
    }

    /// Node `name` at `addr` presented `id` (learnt after a handshake that checked no pin):
    /// pin it on first use, accept it if pinned, refuse it if another key is pinned.
    pub fn admit(&self, addr: &str, name: &str, id: NodeId) -> Result<Seen, KnownNodesError> {
        let seen = lock(&self.inner.known).verify_or_pin(name, id)?;
        if seen == Seen::Pinned {
            tracing::info!(node = name, %id, "pinned a new node's key (trust on first use)");
        }
        self.remember(addr, id);
        Ok(seen)
    }

    /// Remember that `addr` presented `id` (checked), so later connections demand it.
    pub fn remember(&self, addr: &str, id: NodeId) {
        let mut seen = lock(&self.inner.seen);
        if seen.len() >= MAX_SEEN && !seen.contains_key(addr) {
            seen.clear();
        }
        seen.insert(addr.to_owned(), id);
    }
}

/// Why a TLS handshake with a node failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Not the pinned key, or no usable configuration.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The connection failed or the peer does not speak TLS (an old node: `--plaintext`).
    #[error("TLS handshake failed: {0} (an old node? try --plaintext)")]
    Io(std::io::Error),
}

impl From<TlsError> for HandshakeError {
    fn from(e: TlsError) -> HandshakeError {
        HandshakeError::Trust(TrustError::Tls(e))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{ClientAuth, TlsAcceptor};
    use tokio::net::TcpListener;

    /// A TLS listener that completes handshakes with `node`'s key, `n` times.
    async fn listener(node: Identity, n: usize) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let acceptor = TlsAcceptor::from(tls::server_config(&node, ClientAuth::Offer).unwrap());
        tokio::spawn(async move {
            for _ in 0..n {
                let (tcp, _) = l.accept().await.unwrap();
                let _ = acceptor.accept(tcp).await;
            }
        });
        addr
    }

    async fn handshake(
        trust: &Trust,
        addr: &str,
        name: Option<&str>,
    ) -> Result<(Stream, bool), HandshakeError> {
        trust
            .handshake(TcpStream::connect(addr).await.unwrap(), addr, name)
            .await
    }

    #[tokio::test]
    async fn first_use_pins_then_the_handshake_checks() {
        let node = Identity::generate("cam1").unwrap();
        let id = node.id();
        let user = Identity::generate("me").unwrap();
        let trust = Trust::tls(Some(user), KnownNodes::in_memory());
        let addr = listener(node, 4).await;

        let (stream, checked) = handshake(&trust, &addr, Some("cam1")).await.unwrap();
        assert!(!checked, "nothing pinned yet: the caller must admit");
        assert_eq!(stream.peer_id(), Some(id));
        assert_eq!(trust.admit(&addr, "cam1", id).unwrap(), Seen::Pinned);
        assert_eq!(trust.pinned("cam1"), Some(id));

        let (_, checked) = handshake(&trust, &addr, Some("cam1")).await.unwrap();
        assert!(checked, "pinned by name");
        let (_, checked) = handshake(&trust, &addr, None).await.unwrap();
        assert!(checked, "remembered by address");
        let (_, checked) = handshake(&trust, &addr, Some("alias")).await.unwrap();
        assert!(
            !checked,
            "a new name is admitted under that name, not by address"
        );
    }

    #[tokio::test]
    async fn an_impostor_under_a_pinned_name_is_refused() {
        let node = Identity::generate("cam1").unwrap();
        let impostor = Identity::generate("cam1").unwrap();
        let (real, fake) = (node.id(), impostor.id());
        let mut known = KnownNodes::in_memory();
        known.trust("cam1", real).unwrap();
        let trust = Trust::tls(None, known);
        let addr = listener(impostor, 2).await;

        let err = handshake(&trust, &addr, Some("cam1")).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&real.to_string())
                && text.contains(&fake.to_string())
                && text.contains("meshfs trust cam1"),
            "{text}"
        );
        // Reached by address, the impostor's hello claiming cam1 is refused at admit.
        let (_, checked) = handshake(&trust, &addr, None).await.unwrap();
        assert!(!checked);
        assert!(trust.admit(&addr, "cam1", fake).is_err());
        assert_eq!(trust.pinned("cam1"), Some(real));
    }

    #[tokio::test]
    async fn an_announced_key_is_demanded_then_admitted_by_name() {
        let node = Identity::generate("cam1").unwrap();
        let other = Identity::generate("cam1").unwrap();
        let trust = Trust::tls(None, KnownNodes::in_memory());
        let addr = listener(node.clone(), 2).await;

        trust.expect_announced(&addr, other.id());
        let err = handshake(&trust, &addr, None).await.unwrap_err();
        assert!(
            matches!(err, HandshakeError::Trust(TrustError::NotAnnounced { .. })),
            "{err}"
        );
        assert!(err.to_string().contains(&other.id().to_string()), "{err}");

        trust.expect_announced(&addr, node.id());
        let (stream, checked) = handshake(&trust, &addr, None).await.unwrap();
        assert_eq!(stream.peer_id(), Some(node.id()));
        assert!(
            !checked,
            "announced, not pinned: the caller still admits it"
        );
    }

    #[tokio::test]
    async fn a_plain_text_server_fails_the_handshake_with_a_hint() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut tcp, _) = l.accept().await.unwrap();
            let _ = tcp.write_all(b"5 unknown command\n").await;
        });
        let trust = Trust::tls(None, KnownNodes::in_memory());
        let err = handshake(&trust, &addr, None).await.unwrap_err();
        assert!(matches!(err, HandshakeError::Io(_)));
        assert!(err.to_string().contains("--plaintext"), "{err}");
    }

    #[test]
    fn configs_are_shared_per_expectation() {
        let trust = Trust::tls(None, KnownNodes::in_memory());
        let a = trust.config(None).unwrap();
        assert!(Arc::ptr_eq(&a, &trust.config(None).unwrap()));
        let id = NodeId::from_bytes([1; 32]);
        assert!(!Arc::ptr_eq(&a, &trust.config(Some(id)).unwrap()));
        assert_eq!(trust.clone(), trust);
        assert_eq!(Trust::plaintext(), Trust::default());
        assert_ne!(trust, Trust::tls(None, KnownNodes::in_memory()));
        assert!(Trust::default().is_plaintext());
    }
}
