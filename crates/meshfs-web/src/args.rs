//! `WebArgs`: the web UI's flags on `meshfs node`, and starting the UI from them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use meshfs_core::{RemotePath, Share};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::{ChatRoom, ChatSetting};
use crate::nodes::NodeDirectory;
use crate::server::WebServer;

/// The web UI's default address.
pub const DEFAULT_WEB: &str = "0.0.0.0:8044";

/// The node a web UI belongs to.
#[derive(Debug, Clone, Copy)]
pub struct LocalNode<'a> {
    /// Its name (the first entry of the node list).
    pub name: &'a str,
    /// Its share, served directly.
    pub share: &'a Share,
    /// Its passwords: what they protect is asked for (login, cookie session).
    pub access: &'a meshfs_core::access::Access,
    /// Where its file server listens (as bound).
    pub file_server: SocketAddr,
    /// Its LAN group and chat port, or why there is none (discovery off): with a group, the
    /// page shows the group chat.
    pub group: Result<(meshfs_group::socket::Group, u16), &'a str>,
}

/// Flags of the web UI, flattened into `meshfs node`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WebArgs {
    /// Address of the web UI [default: 0.0.0.0:8044; when --listen asks for port 0, port 0 on
    /// the --listen host, so several nodes on one machine never collide].
    #[arg(long, value_name = "ADDR", conflicts_with = "no_web")]
    pub web: Option<String>,
    /// Do not serve the web UI.
    #[arg(long)]
    pub no_web: bool,
    /// Another node to show in the web UI: meshfs://HOST:PORT, HOST:PORT or HOST (port 4044);
    /// repeatable.
    #[arg(long = "node", value_name = "URL", value_parser = parse_node)]
    pub nodes: Vec<String>,
}

/// `meshfs://host:port`, `host:port` or `host` → `host:port` (default port 4044).
fn parse_node(s: &str) -> Result<String, String> {
    let url = if s.starts_with("meshfs://") {
        s.to_owned()
    } else {
        format!("meshfs://{s}")
    };
    url.parse::<RemotePath>()
        .map(|r| r.addr)
        .map_err(|e| e.to_string())
}

/// A running web UI.
#[derive(Debug, Clone)]
pub struct WebHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The nodes it shows; discovery adds to it with [`NodeDirectory::add`].
    pub nodes: NodeDirectory,
}

/// Why the web UI could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot serve the web UI on {addr}: {source} (choose another with --web ADDR, or --no-web)"
)]
pub struct StartError {
    addr: String,
    #[source]
    source: std::io::Error,
}

impl WebArgs {
    /// Where to listen, given the file server's requested `--listen`; `None` with `--no-web`.
    pub fn bind_addr(&self, listen: &str) -> Option<String> {
        if self.no_web {
            return None;
        }
        if let Some(web) = &self.web {
            return Some(web.clone());
        }
        match listen.rsplit_once(':') {
            Some((host, "0")) => Some(format!("{host}:0")),
            _ => Some(DEFAULT_WEB.to_owned()),
        }
    }

    /// Start the web UI for a node whose file server listens on `file_server` (as bound) and
    /// was asked for `listen`. The server runs on `tracker` until `shutdown`.
    ///
    /// An explicit `--web` that cannot be bound is an error; the default address being taken
    /// (another node on this machine) is only a warning: the node serves files without a UI.
    pub async fn start(
        &self,
        listen: &str,
        local: LocalNode<'_>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Option<WebHandle>, StartError> {
        let LocalNode {
            name,
            share,
            access,
            file_server,
            group,
        } = local;
        let Some(addr) = self.bind_addr(listen) else {
            return Ok(None);
        };
        let nodes = NodeDirectory::new(name, &loopback_for(file_server).to_string());
        for node in &self.nodes {
            nodes.add(node);
        }
        let server = match WebServer::bind(&addr, share.clone(), nodes.clone()).await {
            Ok(s) => s.with_access(access.clone()).with_chat(chat_for(group)),
            Err(source) if self.web.is_none() => {
                tracing::warn!(%addr, error = %source, "web UI not started: address in use? (--web ADDR or --no-web)");
                return Ok(None);
            }
            Err(source) => return Err(StartError { addr, source }),
        };
        let local = server.local_addr().map_err(|source| StartError {
            addr: addr.clone(),
            source,
        })?;
        tracker.spawn(server.run(shutdown, tracker.clone()));
        tracing::info!(addr = %local, "web UI ready");
        Ok(Some(WebHandle { addr: local, nodes }))
    }
}

/// The group chat of a node: on with discovery, on the same interface discovery uses.
fn chat_for(group: Result<(meshfs_group::socket::Group, u16), &str>) -> ChatSetting {
    let (g, chat_port) = match group {
        Ok(g) => g,
        Err(why) => return ChatSetting::Off(why.into()),
    };
    match ChatRoom::join(&g, chat_port) {
        Ok(room) => ChatSetting::On(room),
        Err(e) => {
            tracing::warn!(error = %e, "web UI without the group chat");
            ChatSetting::Off(format!(
                "cannot join the group chat {}:{}: {e}",
                g.addr, chat_port
            ))
        }
    }
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
        assert_eq!(a.bind_addr("0.0.0.0:4044").as_deref(), Some(DEFAULT_WEB));
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

    #[test]
    fn node_urls() {
        assert_eq!(parse_node("meshfs://cam2:5000").unwrap(), "cam2:5000");
        assert_eq!(parse_node("cam2").unwrap(), "cam2:4044");
        assert_eq!(parse_node("10.0.0.7:4044").unwrap(), "10.0.0.7:4044");
        assert!(parse_node("cam2:notaport").is_err());
        assert_eq!(
            loopback_for("0.0.0.0:4044".parse().unwrap()),
            "127.0.0.1:4044".parse().unwrap()
        );
    }
}
