//! The FTP server: our own accept loop handing each connection to a libunftp session.

use std::io;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use libunftp::ServerBuilder;
use libunftp::options::{PassiveHost, SiteMd5};
use meshfs_core::Share;
use meshfs_core::accept::{Door, accept_loop};
use meshfs_core::access::Access;
use meshfs_core::rate::{ClientKey, UploadLimits};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::busy::Busy;
use crate::notes::Notes;
use crate::relay::{self, BindOn};
use crate::storage::ShareStorage;
use crate::tls::FtpTls;
use crate::users::{FtpUser, Login, Users};

const GREETING: &str = "meshfs FTP ready";

/// After the last transfer of a shutdown, how long sessions may take to send their final reply
/// (`226`) and be closed by their clients before the node exits.
const LINGER: Duration = Duration::from_secs(1);

/// Settings of an FTP server.
#[derive(Debug, Clone)]
pub struct FtpConfig {
    /// Named users allowed to write (anonymous users always read).
    pub users: Arc<Users>,
    /// Ports offered for passive data connections.
    pub passive_ports: RangeInclusive<u16>,
    /// Sessions idle for this long are closed.
    pub idle_timeout: Duration,
    /// Most sessions at once; further connections get `421` and are closed.
    pub max_sessions: usize,
    /// The node's share and file passwords: anonymous users are held to them.
    pub access: Access,
    /// Offer explicit FTPS (`AUTH TLS`); `None`: plain FTP only.
    pub tls: Option<FtpTls>,
    /// The node's upload limits: `RETR` counts against them, clients told apart by IP address.
    pub upload: UploadLimits,
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig {
            users: Arc::new(Users::default()),
            passive_ports: 49152..=65535,
            idle_timeout: Duration::from_secs(600),
            max_sessions: 1024,
            access: Access::open(),
            tls: None,
            upload: UploadLimits::unlimited(),
        }
    }
}

/// A bound FTP server, not yet accepting.
pub struct FtpServer {
    listener: TcpListener,
    share: Share,
    config: FtpConfig,
    busy: Busy,
}

impl FtpServer {
    pub async fn bind(addr: &str, share: Share, config: FtpConfig) -> io::Result<FtpServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(FtpServer {
            listener,
            share,
            config,
            busy: Busy::default(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept sessions until `shutdown`; then stop accepting and return once no transfer is
    /// running (the caller bounds that wait by its grace period) and the sessions have had
    /// [`LINGER`] to report the end of their transfers. Idle sessions are not waited for
    /// longer: they end with the process.
    pub async fn run(self, shutdown: CancellationToken) {
        // Sessions are not in the node's tracker: an idle session must not hold the node's
        // shutdown. Transfers are counted by `busy` instead.
        let open_sessions = TaskTracker::new();
        let door = Door {
            name: "FTP",
            max_connections: self.config.max_sessions,
            refusal: b"421 Too many connections, try again later\r\n",
        };
        let (share, config, busy) = (&self.share, &self.config, &self.busy);
        accept_loop(
            &self.listener,
            door,
            &shutdown,
            &open_sessions,
            |stream, peer| {
                let session = session(stream, peer, share, config, busy);
                let tls = config.tls.as_ref().map(FtpTls::relay);
                async move {
                    let Some((stream, server, notes)) = session else {
                        return;
                    };
                    tracing::debug!(%peer, "FTP session");
                    let stream = match relay::relay(stream, tls, notes).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "cannot relay an FTP session");
                            return;
                        }
                    };
                    if let Err(e) = server.service(stream).await {
                        tracing::debug!(%peer, error = %e, "FTP session ended with an error");
                    }
                }
            },
        )
        .await;
        drop(self.listener);
        let running = self.busy.count();
        if running > 0 {
            tracing::info!(running, "FTP: waiting for transfers to finish");
        }
        self.busy.idle().await;
        open_sessions.close();
        let _ = tokio::time::timeout(LINGER, open_sessions.wait()).await;
    }
}

/// A libunftp server for one connection from `peer`, its passive ports offered on the address
/// the client reached, and the notes its relay reads.
fn session(
    stream: TcpStream,
    peer: SocketAddr,
    share: &Share,
    config: &FtpConfig,
    busy: &Busy,
) -> Option<(TcpStream, libunftp::Server<ShareStorage, FtpUser>, Notes)> {
    let local = stream.local_addr().ok()?.ip();
    let passive_host = match local {
        std::net::IpAddr::V4(v4) => PassiveHost::Ip(v4),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => PassiveHost::Ip(v4),
            None => PassiveHost::FromConnection,
        },
    };
    let notes = Notes::default();
    let login = Arc::new(Login::new(
        config.users.clone(),
        config.access.throttle().clone(),
        peer.ip(),
        notes.clone(),
    ));
    let storage = ShareStorage {
        share: share.clone(),
        access: config.access.clone(),
        busy: busy.clone(),
        limiter: config
            .upload
            .client(ClientKey::of(None, stream.peer_addr().ok()?.ip())),
        notes: notes.clone(),
    };
    let mut builder =
        ServerBuilder::with_user_detail_provider(Box::new(move || storage.clone()), login.clone())
            .authenticator(login.clone())
            .greeting(GREETING)
            .passive_ports(config.passive_ports.clone())
            .idle_session_timeout(config.idle_timeout.as_secs().max(1))
            .sitemd5(SiteMd5::None)
            .passive_host(passive_host)
            .binder(BindOn(local));
    if let Some(tls) = &config.tls {
        builder = builder
            .ftps_manual::<std::path::PathBuf>(tls.server_config())
            // The control channel's TLS is the relay's (it refuses logins in clear when
            // required); data channels: no transfer without PROT P when required.
            .ftps_required(false, tls.required);
    }
    let built = builder.build();
    match built {
        Ok(server) => Some((stream, server, notes)),
        Err(e) => {
            tracing::error!(error = %e, "cannot build an FTP session");
            None
        }
    }
}
