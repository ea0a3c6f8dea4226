//! TLS 1.3 between meshfs programs: configurations built from an [`Identity`], trust by pinning.
//!
//! There is no certificate authority on a LAN of camera nodes, so a certificate is trusted for
//! the key it carries, as SSH trusts a host key: the client's verifier ([`PinVerifier`]) accepts
//! a server certificate when the [`NodeId`] of its key is the one expected, or, when nothing is
//! expected yet, accepts it and lets the caller decide after the handshake (trust on first use
//! through [`KnownNodes`](crate::known_nodes::KnownNodes), by the name `hello` gives). Either
//! way the handshake signature is checked with the provider's own `verify_tls13_signature`, so
//! holding a copy of a node's certificate does not make one that node. Validity dates, host
//! names and chains are not checked: a pin replaces all three.
//!
//! Only rustls' `ring` provider is used (it is already in the tree through libunftp), and only
//! TLS 1.3. Cipher order: a CPU without AES instructions (the Raspberry Pi 4's Cortex-A72) runs
//! ChaCha20-Poly1305 several times faster than AES-GCM, so such a machine puts ChaCha20 first
//! and, as a server, imposes its own order; a server with AES instructions follows the client's
//! order, so a Pi client still gets ChaCha20. Two machines with AES use AES-128-GCM.
//!
//! A file server tells TLS from its text protocol by the first byte ([`looks_like_tls`]): a TLS
//! connection opens with a handshake record, type 0x16, which no text command starts with.

use std::collections::HashSet;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};

use crate::identity::{Identity, NodeId};

pub mod records;

pub use records::Records;
pub use rustls::{ClientConfig, ServerConfig};
pub use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// The first byte of a TLS handshake record (a ClientHello starts every TLS connection).
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// The label of the keying material exported to bind a password proof to one TLS session.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-meshfs-auth";

/// What can go wrong building a configuration or using a session.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("the TLS session has no keying material yet (handshake not finished)")]
    NoSession,
}

/// A server's key is not the one pinned for it: carried inside the handshake error so callers
/// can say both IDs (see [`pin_mismatch`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node key mismatch: pinned {expected}, presented {presented}")]
pub struct PinMismatch {
    pub expected: NodeId,
    pub presented: NodeId,
}

/// A client presented a certificate whose ID the node does not admit (`--allow`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client {0} is not in the allowed list")]
pub struct ClientNotAllowed(pub NodeId);

/// True when a connection's first byte opens a TLS handshake rather than a text command.
pub fn looks_like_tls(first_byte: u8) -> bool {
    first_byte == HANDSHAKE_RECORD
}

/// True when this CPU has AES instructions (so AES-GCM is the fast cipher).
pub fn cpu_has_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The ring provider restricted to TLS 1.3 suites, ChaCha20-Poly1305 first when
/// `prefer_chacha`, AES-128-GCM first otherwise.
pub fn provider_with(prefer_chacha: bool) -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    let suites = if prefer_chacha {
        vec![
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
        ]
    } else {
        vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ]
    };
    Arc::new(CryptoProvider {
        cipher_suites: suites,
        ..rustls::crypto::ring::default_provider()
    })
}

/// The provider for this CPU ([`provider_with`]`(!`[`cpu_has_aes`]`())`).
pub fn provider() -> Arc<CryptoProvider> {
    provider_with(!cpu_has_aes())
}

/// Which clients a server admits.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Ask for no certificate (the web UI: browsers would show a certificate picker).
    None,
    /// Ask for a certificate, admit clients with or without one (the file server's default:
    /// the client's ID can then be logged and shown).
    Offer,
    /// Mutual TLS: admit only clients presenting a certificate whose ID is listed (`--allow`).
    Require(Arc<HashSet<NodeId>>),
}

/// A server configuration: `identity`'s certificate, TLS 1.3 only, clients per `clients`.
pub fn server_config(
    identity: &Identity,
    clients: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with(identity, clients, provider())
}

/// [`server_config`] with a given provider (tests and benchmarks pick the cipher order).
pub fn server_config_with(
    identity: &Identity,
    clients: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chacha_first = provider.cipher_suites.first().map(|s| s.suite())
        == Some(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match clients {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Offer => builder.with_client_cert_verifier(Arc::new(ClientVerifier {
            allowed: None,
            algs: provider.signature_verification_algorithms,
        })),
        ClientAuth::Require(allowed) => {
            builder.with_client_cert_verifier(Arc::new(ClientVerifier {
                allowed: Some(allowed),
                algs: provider.signature_verification_algorithms,
            }))
        }
    };
    let mut config =
        builder.with_single_cert(vec![identity.cert().clone()], identity.private_key())?;
    // A server without AES instructions imposes ChaCha20; one with them follows the client.
    config.ignore_client_order = chacha_first;
    Ok(Arc::new(config))
}

/// A client configuration: servers are accepted per [`PinVerifier`] (`expect`: the pinned ID,
/// or `None` to accept any key and check [`peer_id`] after the handshake); `user` is the
/// certificate presented when a server asks (`None`: present none).
pub fn client_config(
    user: Option<&Identity>,
    expect: Option<NodeId>,
) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_with(user, expect, provider())
}

/// [`client_config`] with a given provider.
pub fn client_config_with(
    user: Option<&Identity>,
    expect: Option<NodeId>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = Arc::new(PinVerifier {
        expect,
        algs: provider.signature_verification_algorithms,
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match user {
        Some(id) => builder.with_client_auth_cert(vec![id.cert().clone()], id.private_key())?,
        None => builder.with_no_client_auth(),
    };
    // The server ignores the name; sending it would only tell the LAN whom we ask for.
    config.enable_sni = false;
    // A bulk download opens and seals its records itself once the handshake is done
    // ([`records`]): rustls hands the keys over only when allowed to.
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// The name rustls keys its session cache on: the host of `addr` (`host:port`), else a fixed
/// placeholder (no certificate name is ever checked).
pub fn server_name(addr: &str) -> ServerName<'static> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("meshfs.invalid").expect("valid DNS name"))
}

/// The ID of the peer's certificate, once the handshake is done (`None` when the peer
/// presented none, as a client may).
pub fn peer_id(conn: &rustls::CommonState) -> Option<NodeId> {
    let certs = conn.peer_certificates()?;
    NodeId::from_cert(certs.first()?).ok()
}

/// 32 bytes only this TLS session's two ends share ([`EXPORTER_LABEL`], RFC 8446 §7.5): what a
/// password proof mixes in so it cannot be relayed into another session.
pub fn session_binding<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; 32], TlsError> {
    if conn.is_handshaking() {
        return Err(TlsError::NoSession);
    }
    Ok(conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)?)
}

/// The [`PinMismatch`] inside a failed handshake's error, if that is why it failed.
pub fn pin_mismatch(err: &std::io::Error) -> Option<&PinMismatch> {
    let tls = err.get_ref()?.downcast_ref::<rustls::Error>()?;
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<PinMismatch>()
        }
        _ => None,
    }
}

/// Accepts a server whose key has the expected ID (any key when none is expected), after
/// checking that it parses; verifies handshake signatures against it.
#[derive(Debug)]
pub struct PinVerifier {
    expect: Option<NodeId>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = cert_id(end_entity)?;
        match self.expect {
            Some(expected) if expected != presented => Err(rustls::Error::InvalidCertificate(
                CertificateError::Other(OtherError(Arc::new(PinMismatch {
                    expected,
                    presented,
                }))),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Unreachable with a TLS 1.3-only configuration; refuse rather than trust.
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A server's check of client certificates: by ID against an allowed set, or any.
#[derive(Debug)]
struct ClientVerifier {
    allowed: Option<Arc<HashSet<NodeId>>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.allowed.is_some()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Empty: "send whatever certificate you have".
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let id = cert_id(end_entity)?;
        match &self.allowed {
            Some(allowed) if !allowed.contains(&id) => Err(rustls::Error::InvalidCertificate(
                CertificateError::Other(OtherError(Arc::new(ClientNotAllowed(id)))),
            )),
            _ => Ok(ClientCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn tls12_refused() -> rustls::Error {
    rustls::Error::General("TLS 1.2 is not offered".into())
}

fn cert_id(cert: &CertificateDer<'_>) -> Result<NodeId, rustls::Error> {
    NodeId::from_cert(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    type Served = std::io::Result<(Option<NodeId>, [u8; 32])>;

    /// Runs one handshake over an in-memory pipe: the server echoes one line's worth and
    /// reports the client's ID and its session binding.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
    ) -> (
        std::io::Result<(client::TlsStream<DuplexStream>, [u8; 32])>,
        Served,
    ) {
        let (a, b) = tokio::io::duplex(64 << 10);
        let srv = tokio::spawn(async move {
            let mut tls = TlsAcceptor::from(server).accept(b).await?;
            let (_, conn) = tls.get_ref();
            let who = peer_id(conn);
            let binding = session_binding(conn).map_err(std::io::Error::other)?;
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await?;
            tls.write_all(&buf).await?;
            tls.flush().await?;
            Ok((who, binding))
        });
        let cli = async {
            let mut tls = TlsConnector::from(client)
                .connect(server_name("127.0.0.1:4044"), a)
                .await?;
            tls.write_all(b"hello").await?;
            tls.flush().await?;
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await?;
            assert_eq!(&buf, b"hello");
            let binding = session_binding(tls.get_ref().1).map_err(std::io::Error::other)?;
            Ok((tls, binding))
        }
        .await;
        (cli, srv.await.unwrap())
    }

    #[tokio::test]
    async fn pinned_key_is_accepted_and_bound() {
        let node = Identity::generate("cam1").unwrap();
        let server = server_config(&node, ClientAuth::Offer).unwrap();
        let client = client_config(None, Some(node.id())).unwrap();
        let (cli, srv) = handshake(server, client).await;
        let (tls, cb) = cli.unwrap();
        let (who, sb) = srv.unwrap();
        assert_eq!(peer_id(tls.get_ref().1), Some(node.id()));
        assert_eq!(who, None, "a client without identity presents none");
        assert_eq!(cb, sb, "both ends export the same binding");
        assert_eq!(
            tls.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
    }

    #[tokio::test]
    async fn unpinned_accepts_and_reports_the_key() {
        let node = Identity::generate("cam1").unwrap();
        let user = Identity::generate("me").unwrap();
        let server = server_config(&node, ClientAuth::Offer).unwrap();
        let client = client_config(Some(&user), None).unwrap();
        let (cli, srv) = handshake(server, client).await;
        let (tls, _) = cli.unwrap();
        assert_eq!(peer_id(tls.get_ref().1), Some(node.id()));
        assert_eq!(
            srv.unwrap().0,
            Some(user.id()),
            "the user's identity is presented"
        );
    }

    #[tokio::test]
    async fn another_key_is_refused_naming_both() {
        let node = Identity::generate("cam1").unwrap();
        let impostor = Identity::generate("cam1").unwrap();
        let server = server_config(&impostor, ClientAuth::Offer).unwrap();
        let client = client_config(None, Some(node.id())).unwrap();
        let (cli, srv) = handshake(server, client).await;
        let err = cli.expect_err("an impostor's key must be refused");
        let mismatch = pin_mismatch(&err).expect("the error says why");
        assert_eq!(mismatch.expected, node.id());
        assert_eq!(mismatch.presented, impostor.id());
        let text = err.to_string();
        assert!(
            text.contains(&node.id().to_string()) && text.contains(&impostor.id().to_string()),
            "{text}"
        );
        assert!(srv.is_err(), "the server sees the handshake fail");
    }

    /// A certificate copied from the real node does not help: the handshake signature must be
    /// made with its key.
    #[tokio::test]
    async fn stolen_certificate_without_key_is_refused() {
        let node = Identity::generate("cam1").unwrap();
        let impostor = Identity::generate("cam1").unwrap();
        let provider = provider();
        // The impostor serves the node's certificate with its own key. rustls refuses to build
        // such a config (keys_match), so build the pieces by hand.
        let key = provider
            .key_provider
            .load_private_key(impostor.private_key())
            .unwrap();
        let certified = Arc::new(rustls::sign::CertifiedKey::new(
            vec![node.cert().clone()],
            key,
        ));
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(certified)));
        let client = client_config(None, Some(node.id())).unwrap();
        let (cli, _) = handshake(Arc::new(server), client).await;
        let err = cli.expect_err("a signature by another key must fail");
        assert!(
            pin_mismatch(&err).is_none(),
            "the pin matched; the signature did not"
        );
        assert!(
            err.to_string().to_lowercase().contains("signature"),
            "{err}"
        );
    }

    #[derive(Debug)]
    struct Fixed(Arc<rustls::sign::CertifiedKey>);

    impl rustls::server::ResolvesServerCert for Fixed {
        fn resolve(
            &self,
            _hello: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    #[tokio::test]
    async fn mutual_tls_admits_only_listed_clients() {
        let node = Identity::generate("cam1").unwrap();
        let friend = Identity::generate("friend").unwrap();
        let stranger = Identity::generate("stranger").unwrap();
        let allowed = Arc::new(HashSet::from([friend.id()]));
        let server = server_config(&node, ClientAuth::Require(allowed)).unwrap();

        let (cli, srv) = handshake(
            server.clone(),
            client_config(Some(&friend), Some(node.id())).unwrap(),
        )
        .await;
        cli.unwrap();
        assert_eq!(srv.unwrap().0, Some(friend.id()));

        for user in [Some(&stranger), None] {
            let (cli, srv) = handshake(
                server.clone(),
                client_config(user, Some(node.id())).unwrap(),
            )
            .await;
            // In TLS 1.3 the client may finish before the server's refusal arrives; the
            // refusal shows on its first read at the latest.
            assert!(cli.is_err(), "a client not in --allow must not get through");
            let err = srv.expect_err("the server refuses it");
            if user.is_some() {
                assert!(
                    err.to_string().contains(&stranger.id().to_string()),
                    "{err}"
                );
            }
        }
    }

    #[tokio::test]
    async fn cipher_order_follows_the_cpu_without_aes() {
        let node = Identity::generate("cam1").unwrap();
        let pi = server_config_with(&node, ClientAuth::None, provider_with(true)).unwrap();
        let laptop = client_config_with(None, None, provider_with(false)).unwrap();
        let (cli, _) = handshake(pi, laptop.clone()).await;
        let suite = cli
            .unwrap()
            .0
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .unwrap();
        assert_eq!(
            suite.suite(),
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        );

        let fast = server_config_with(&node, ClientAuth::None, provider_with(false)).unwrap();
        let pi_client = client_config_with(None, None, provider_with(true)).unwrap();
        let (cli, _) = handshake(fast.clone(), pi_client).await;
        let suite = cli
            .unwrap()
            .0
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .unwrap();
        assert_eq!(
            suite.suite(),
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        );

        let (cli, _) = handshake(fast, laptop).await;
        let suite = cli
            .unwrap()
            .0
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .unwrap();
        assert_eq!(suite.suite(), rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    }

    #[test]
    fn first_byte_and_server_names() {
        assert!(looks_like_tls(0x16));
        assert!(
            !b"hello\nopen ls stat list read pread seek hash auth pake quit help"
                .iter()
                .any(|b| looks_like_tls(*b))
        );
        assert!(matches!(
            server_name("127.0.0.1:4044"),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:4044"),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("cam1.local:4044"),
            ServerName::DnsName(_)
        ));
        assert!(matches!(server_name("bad name!:1"), ServerName::DnsName(_)));
    }
}
