//! The FTP door's flags on `meshfs node` (`--ftp`, `--ftp-users`, `--ftp-passive-ports`,
//! `--ftp-tls`, `--ftp-require-tls`), and starting the door from them. Explicit FTPS
//! (`AUTH TLS`) with the node's certificate is offered on request; plain FTP stays allowed for
//! the cameras of seed 002 unless `--ftp-require-tls`.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meshfs_core::access::Access;
use meshfs_core::{Identity, Share};
use meshfs_ftp::{FtpConfig, FtpServer, FtpTls, Users};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(clap::Args, Debug, Clone)]
pub struct FtpArgs {
    /// Also serve the share over FTP (anonymous read; users of --ftp-users may write).
    /// Without ADDR: port 2121 on the --listen host (`:PORT` too takes that host). Put the
    /// folder before --ftp when ADDR is omitted.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = ":2121",
          value_parser = super::door_addr::parse)]
    pub ftp: Option<String>,
    /// Users allowed to write over FTP: lines `NAME:ARGON2-HASH` (see `meshfs ftp-passwd`).
    #[arg(long, value_name = "FILE", requires = "ftp")]
    pub ftp_users: Option<PathBuf>,
    /// Ports offered for FTP passive data connections.
    #[arg(long, value_name = "LOW-HIGH", default_value = "49152-65535", value_parser = parse_ports)]
    pub ftp_passive_ports: RangeInclusive<u16>,
    /// Offer explicit FTPS (`AUTH TLS`, `PROT P`) with the node's certificate, beside plain
    /// FTP. Off by default: clients that try AUTH TLS whenever offered and check certificates
    /// against a CA (lftp, some cameras) would fail on the node's self-signed one.
    #[arg(long, requires = "ftp")]
    pub ftp_tls: bool,
    /// Refuse logins before `AUTH TLS` and data connections without `PROT P` (implies
    /// --ftp-tls).
    #[arg(long, requires = "ftp")]
    pub ftp_require_tls: bool,
}

fn parse_ports(s: &str) -> Result<RangeInclusive<u16>, String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("expected LOW-HIGH, got {s:?}"))?;
    let lo: u16 = lo.trim().parse().map_err(|e| format!("{lo:?}: {e}"))?;
    let hi: u16 = hi.trim().parse().map_err(|e| format!("{hi:?}: {e}"))?;
    if lo == 0 || lo > hi {
        return Err(format!("bad port range {lo}-{hi}"));
    }
    Ok(lo..=hi)
}

/// What the FTP door takes from the node it belongs to.
pub struct LocalNode<'a> {
    pub share: &'a Share,
    /// Its passwords, which anonymous users are held to.
    pub access: &'a Access,
    /// Its certificate, for FTPS.
    pub identity: &'a Identity,
    pub idle_timeout: Duration,
    /// Its upload limits, which `RETR` counts against.
    pub upload: &'a meshfs_core::rate::UploadLimits,
}

impl FtpArgs {
    /// Start the FTP server if `--ftp` was given; returns its address. The node has put its
    /// `--listen` host into an `--ftp` without one (`door_addr::on_listen_host`).
    pub async fn start(
        self,
        node: LocalNode<'_>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<Option<SocketAddr>> {
        let LocalNode {
            share,
            access,
            identity,
            idle_timeout,
            upload,
        } = node;
        let Some(addr) = self.ftp else {
            return Ok(None);
        };
        let users = match &self.ftp_users {
            Some(path) => Users::load(path)?,
            None => Users::default(),
        };
        let config = FtpConfig {
            users: Arc::new(users),
            passive_ports: self.ftp_passive_ports,
            idle_timeout,
            access: access.clone(),
            upload: upload.clone(),
            tls: if self.ftp_tls || self.ftp_require_tls {
                Some(
                    FtpTls::new(identity, self.ftp_require_tls)
                        .context("cannot set up FTPS with the node's certificate")?,
                )
            } else {
                None
            },
            ..FtpConfig::default()
        };
        let server = FtpServer::bind(&addr, share.clone(), config)
            .await
            .with_context(|| format!("cannot listen for FTP on {addr}"))?;
        let local = server
            .local_addr()
            .with_context(|| format!("cannot listen for FTP on {addr}"))?;
        tracing::info!(addr = %local, "FTP ready");
        tracker.spawn(server.run(shutdown));
        Ok(Some(local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_ports("50000-50010").unwrap(), 50000..=50010);
        assert!(parse_ports("50010-50000").is_err());
        assert!(parse_ports("0-5").is_err());
        assert!(parse_ports("5").is_err());
    }
}
