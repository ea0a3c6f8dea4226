//! The FTP server: our own accept loop handing each connection to a libunftp session.

use std::io;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use libunftp::ServerBuilder;
use libunftp::options::{PassiveHost, SiteMd5};
use meshfs_core::Share;
use meshfs_core::access::Access;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::busy::Busy;
use crate::relay::{self, BindOn};
use crate::storage::ShareStorage;
use crate::users::{Login, Users};

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
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig {
            users: Arc::new(Users::default()),
            passive_ports: 49152..=65535,
            idle_timeout: Duration::from_secs(600),
            max_sessions: 1024,
            access: Access::open(),
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
    pub async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let sessions = Arc::new(Semaphore::new(self.config.max_sessions));
        let open_sessions = TaskTracker::new();
        let login = Arc::new(Login::new(self.config.users.clone()));
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of descriptors, say: back off instead of spinning.
                        tracing::warn!(error = %e, "FTP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = sessions.clone().try_acquire_owned() else {
                tracker.spawn(refuse(stream));
                continue;
            };
            // The address the client reached: passive ports are offered there.
            let local = match stream.local_addr() {
                Ok(a) => a.ip(),
                Err(_) => continue,
            };
            let passive_host = match local {
                std::net::IpAddr::V4(v4) => PassiveHost::Ip(v4),
                std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => PassiveHost::Ip(v4),
                    None => PassiveHost::FromConnection,
                },
            };
            let storage = ShareStorage {
                share: self.share.clone(),
                access: self.config.access.clone(),
                busy: self.busy.clone(),
            };
            let built = ServerBuilder::with_user_detail_provider(
                Box::new(move || storage.clone()),
                login.clone(),
            )
            .authenticator(login.clone())
            .greeting(GREETING)
            .passive_ports(self.config.passive_ports.clone())
            .idle_session_timeout(self.config.idle_timeout.as_secs().max(1))
            .sitemd5(SiteMd5::None)
            .passive_host(passive_host)
            .binder(BindOn(local))
            .build();
            let server = match built {
                Ok(server) => server,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build an FTP session");
                    continue;
                }
            };
            tracing::debug!(%peer, "FTP session");
            // Not in the node's tracker: an idle session must not hold the node's shutdown.
            // Transfers are counted by `busy` instead.
            open_sessions.spawn(async move {
                let _permit = permit;
                let stream = match relay::relay(stream).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "cannot relay an FTP session");
                        return;
                    }
                };
                if let Err(e) = server.service(stream).await {
                    tracing::debug!(%peer, error = %e, "FTP session ended with an error");
                }
            });
        }
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

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(b"421 Too many connections, try again later\r\n"),
    )
    .await;
}
