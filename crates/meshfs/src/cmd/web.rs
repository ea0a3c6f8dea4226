//! The web UI's flags on `meshfs node` (`--web`, `--no-web`, `--node`, `--web-tls`,
//! `--no-web-tls`) and the glue that starts it: the address chosen from `--listen`, the
//! node's own file server on loopback, its identity for HTTPS, and the LAN group chat joined
//! here (the web crate is handed a [`ChatRoom`], it knows no LAN-group code).
//!
//! HTTPS by default, beside plain HTTP on the same port: a camera owner's `http://cam1:8044/`
//! keeps working for what no password protects, while the login form is offered only at
//! `https://cam1:8044/`, with the node's own certificate (self-signed: the browser warns once;
//! the page and `meshfs id --node` show the ID to compare, `curl --pinnedpubkey` checks it).
//! `--web-tls` serves HTTPS only (plain requests are redirected); `--no-web-tls` plain HTTP
//! only, and so no login at all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use meshfs_core::{NodeAddr, Share};
use meshfs_group::chat::{GroupChat, MAX_MESSAGE};
use meshfs_group::socket::Group;
use meshfs_web::{ChatRoom, ChatSend, ChatSetting, Https, WebConfig, WebHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The web UI's default address: port 8044 on the `--listen` host.
pub const DEFAULT_WEB: &str = ":8044";

/// Flags of the web UI, flattened into `meshfs node`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WebArgs {
    /// Address of the web UI [default: port 8044 on the --listen host; when --listen asks for
    /// port 0, port 0 there, so several nodes on one machine never collide; `:PORT`: on the
    /// --listen host].
    #[arg(long, value_name = "ADDR", conflicts_with = "no_web", value_parser = super::door_addr::parse)]
    pub web: Option<String>,
    /// Do not serve the web UI.
    #[arg(long)]
    pub no_web: bool,
    /// Another node to show in the web UI: meshfs://HOST:PORT, HOST:PORT or HOST (port 4044);
    /// repeatable.
    #[arg(long = "node", value_name = "URL")]
    pub nodes: Vec<NodeAddr>,
    /// Serve the web UI over HTTPS only, with the node's certificate (plain HTTP requests are
    /// redirected). By default its port speaks both: HTTPS, where the login form is, and
    /// plain HTTP for what no password protects.
    #[arg(long, conflicts_with_all = ["no_web", "no_web_tls"])]
    pub web_tls: bool,
    /// Serve the web UI over plain HTTP only. Passwords are never taken over plain HTTP, so
    /// the page then offers no login: protected files are out of its reach.
    #[arg(long, conflicts_with = "no_web")]
    pub no_web_tls: bool,
}

/// The node a web UI belongs to.
pub struct LocalNode<'a> {
    /// Its name (the first entry of the node list).
    pub name: &'a str,
    /// Its key and certificate: the web UI's HTTPS, and the ID the page shows.
    pub identity: &'a meshfs_core::Identity,
    pub share: &'a Share,
    pub access: &'a meshfs_core::access::Access,
    /// Where its file server listens (as bound).
    pub file_server: SocketAddr,
    /// Its peer table: the page shows every node in it.
    pub peers: &'a meshfs_core::Peers,
    /// Its LAN group and chat port, or why there is none (discovery off): with a group, the
    /// page shows the group chat.
    pub group: Result<(Group, u16), &'a str>,
    /// Its disk as retention measures it: the page says when it is full.
    pub disk: &'a meshfs_core::retention::DiskStatus,
    /// Its upload limits: file and zip bodies count against them.
    pub upload: &'a meshfs_core::rate::UploadLimits,
}

impl WebArgs {
    /// What the web UI's port speaks.
    pub fn https(&self) -> Https {
        if self.web_tls {
            Https::Only
        } else if self.no_web_tls {
            Https::Off
        } else {
            Https::Offer
        }
    }

    /// Where to listen, given the file server's requested `--listen`; `None` with `--no-web`.
    pub fn bind_addr(&self, listen: &str) -> Option<String> {
        if self.no_web {
            return None;
        }
        let port = match (&self.web, listen.rsplit_once(':')) {
            (Some(web), _) => return Some(super::door_addr::on_listen_host(web, listen)),
            (None, Some((_, "0"))) => ":0",
            (None, _) => DEFAULT_WEB,
        };
        Some(super::door_addr::on_listen_host(port, listen))
    }

    /// Start the web UI for a node whose file server listens on `local.file_server` (as
    /// bound) and was asked for `listen`. The server runs on `tracker` until `shutdown`.
    ///
    /// An explicit `--web` that cannot be bound is an error; the default address being taken
    /// (another node on this machine) is only a warning: the node serves files without a UI.
    pub async fn start(
        &self,
        listen: &str,
        local: LocalNode<'_>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<Option<WebHandle>> {
        let Some(addr) = self.bind_addr(listen) else {
            return Ok(None);
        };
        let config = WebConfig {
            addr,
            name: local.name.to_owned(),
            share: local.share.clone(),
            access: local.access.clone(),
            file_server: loopback_for(local.file_server).to_string(),
            nodes: self.nodes.iter().map(NodeAddr::to_string).collect(),
            peers: local.peers.clone(),
            chat: chat_for(local.group, &shutdown, tracker),
            identity: Some(local.identity.clone()),
            https: self.https(),
            disk: local.disk.clone(),
            upload: local.upload.clone(),
        };
        match meshfs_web::start(config, shutdown, tracker).await {
            Ok(web) => Ok(Some(web)),
            Err(e) if self.web.is_none() && e.is_bind() => {
                tracing::warn!(addr = %e.addr, error = %e.source, "web UI not started: address in use? (--web ADDR or --no-web)");
                Ok(None)
            }
            Err(e) => Err(anyhow!("{e} (choose another with --web ADDR, or --no-web)")),
        }
    }
}

/// The group chat of a node: on with discovery, on the same interface discovery uses.
/// Received messages go into the room until `shutdown`.
fn chat_for(
    group: Result<(Group, u16), &str>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> ChatSetting {
    let (g, port) = match group {
        Ok(g) => g,
        Err(why) => return ChatSetting::Off(why.into()),
    };
    let chat = match GroupChat::join(&g, port) {
        Ok(chat) => Arc::new(chat),
        Err(e) => {
            tracing::warn!(error = %e, "web UI without the group chat");
            return ChatSetting::Off(format!("cannot join the group chat {}:{port}: {e}", g.addr));
        }
    };
    let room = ChatRoom::new(
        format!("{}:{port}", g.addr),
        MAX_MESSAGE,
        Sender(chat.clone()),
    );
    tracker.spawn(receive(chat, room.clone(), shutdown.clone()));
    ChatSetting::On(room)
}

/// The web room's way out: one datagram to the group.
struct Sender(Arc<GroupChat>);

impl ChatSend for Sender {
    fn send<'a>(
        &'a self,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<()>> + Send + 'a>> {
        Box::pin(self.0.send(text))
    }
}

/// Hand every message of the group to the room until `shutdown`.
async fn receive(chat: Arc<GroupChat>, room: Arc<ChatRoom>, shutdown: CancellationToken) {
    loop {
        let got = tokio::select! {
            _ = shutdown.cancelled() => return,
            got = chat.recv() => got,
        };
        match got {
            Ok((ip, lines)) => room.publish(ip, lines),
            Err(e) => {
                tracing::debug!(error = %e, "chat socket error");
                // Never spin on a socket that keeps failing.
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

/// The line a node prints for its web UI: `web http://ADDR/`, or `web https://ADDR/` when it
/// speaks HTTPS only. (With both, the plain URL keeps the line scripts know; the page links
/// to HTTPS.)
pub fn web_line(web: &WebHandle) -> String {
    let scheme = if web.https == Https::Only {
        "https"
    } else {
        "http"
    };
    format!("web {scheme}://{}/", web.addr)
}

/// The file server as this process can reach it: `0.0.0.0` and `::` become loopback.
fn loopback_for(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_address_follows_listen_port_zero() {
        let a = WebArgs::default();
        assert_eq!(a.bind_addr("0.0.0.0:4044").as_deref(), Some("0.0.0.0:8044"));
        // A node limited to loopback keeps its web UI there.
        assert_eq!(
            a.bind_addr("127.0.0.1:4044").as_deref(),
            Some("127.0.0.1:8044")
        );
        assert_eq!(a.bind_addr("127.0.0.1:0").as_deref(), Some("127.0.0.1:0"));
        assert_eq!(a.bind_addr("[::1]:0").as_deref(), Some("[::1]:0"));
        let explicit = WebArgs {
            web: Some("127.0.0.1:9000".into()),
            ..WebArgs::default()
        };
        assert_eq!(
            explicit.bind_addr("127.0.0.1:0").as_deref(),
            Some("127.0.0.1:9000")
        );
        let off = WebArgs {
            no_web: true,
            ..WebArgs::default()
        };
        assert_eq!(off.bind_addr("0.0.0.0:4044"), None);
    }

    /// `--node` takes the one node-address syntax (`NodeAddr`: its rules are tested in core).
    #[test]
    fn node_urls() {
        #[derive(clap::Parser)]
        struct Cmd {
            #[command(flatten)]
            web: WebArgs,
        }
        let parse = |v: &str| {
            <Cmd as clap::Parser>::try_parse_from(["t", "--node", v])
                .map(|c| c.web.nodes[0].to_string())
        };
        assert_eq!(parse("meshfs://cam2:5000").unwrap(), "cam2:5000");
        assert_eq!(parse("cam2").unwrap(), "cam2:4044");
        assert_eq!(parse("10.0.0.7:4044").unwrap(), "10.0.0.7:4044");
        assert!(parse("cam2:notaport").is_err());
        assert!(parse("meshfs://cam2/clips").is_err());
        assert_eq!(
            loopback_for("0.0.0.0:4044".parse().unwrap()),
            "127.0.0.1:4044".parse().unwrap()
        );
    }
}
