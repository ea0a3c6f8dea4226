//! The master's listener: a small subset of the file-server protocol plus `assign`.
//!
//! Requests are lines of at most [`MAX_LINE`] bytes; replies are `<code> <text>` lines as in
//! protocols.md §1. `hello` → `0 meshfs <v> node=<name> proto=1 role=cluster`; `assign` →
//! `0 <host:port>` of the next healthy worker, or `9 no healthy worker`; `help`; `quit`.
//! Anything else gets `5` with a hint: a master serves no files itself.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshfs_core::accept::{Door, accept_loop};
use meshfs_core::metrics::{Door as MetricsDoor, metrics};
use meshfs_core::proto::{MAX_LINE, PROTO_VERSION};
use meshfs_core::stream::{Stream, accept};
use meshfs_core::tls::TlsAcceptor;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ROLE_CLUSTER;
use crate::workers::Workers;

/// Connections served at once; more are refused.
const MAX_CONNECTIONS: usize = 4096;

/// A bound master.
pub struct Master {
    listener: TcpListener,
    name: String,
    workers: Arc<Workers>,
    idle_timeout: Duration,
    /// TLS beside clear text on the same port (clients speak TLS by default).
    tls: Option<TlsAcceptor>,
}

impl Master {
    pub async fn bind(
        addr: &str,
        name: String,
        workers: Arc<Workers>,
        idle_timeout: Duration,
    ) -> io::Result<Master> {
        Ok(Master {
            listener: TcpListener::bind(addr).await?,
            name,
            workers,
            idle_timeout,
            tls: None,
        })
    }

    /// Speak TLS (with the machine's node certificate) beside clear text.
    pub fn with_tls(mut self, config: Arc<meshfs_core::tls::ServerConfig>) -> Master {
        self.tls = Some(TlsAcceptor::from(config));
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown`. Over [`MAX_CONNECTIONS`], a client is told
    /// `9 too many connections` and closed (the node-wide overload rule of
    /// [`meshfs_core::accept`]), as a file server would.
    pub async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let hello = Arc::new(format!(
            "meshfs {} node={} proto={PROTO_VERSION} {ROLE_CLUSTER}",
            meshfs_core::VERSION,
            self.name
        ));
        let door = Door {
            name: "cluster master",
            max_connections: MAX_CONNECTIONS,
            refusal: b"9 too many connections\n",
        };
        let (workers, idle, tls) = (self.workers, self.idle_timeout, self.tls);
        accept_loop(&self.listener, door, &shutdown, &tracker, |tcp, _| {
            let workers = workers.clone();
            let hello = hello.clone();
            let shutdown = shutdown.clone();
            let tls = tls.clone();
            async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    r = async {
                        let stream = accept(tcp, tls.as_ref(), idle).await?;
                        session(stream, &workers, &hello, idle).await
                    } => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "master session ended");
                        }
                    }
                }
            }
        })
        .await;
    }
}

/// Serve one connection.
async fn session(stream: Stream, workers: &Workers, hello: &str, idle: Duration) -> io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(
            idle,
            (&mut read)
                .take(MAX_LINE as u64 + 2)
                .read_until(b'\n', &mut line),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle"))??;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            write.write_all(b"5 request line too long\n").await?;
            return Ok(());
        }
        let (reply, close) = answer(&line, workers, hello);
        write.write_all(reply.as_bytes()).await?;
        if close {
            return Ok(());
        }
    }
}

/// The reply to one request line, and whether to close afterwards.
fn answer(line: &[u8], workers: &Workers, hello: &str) -> (String, bool) {
    metrics().door(MetricsDoor::Cluster).request();
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    let (word, arg) = text.split_once(' ').unwrap_or((text, ""));
    let no_arg = arg.trim().is_empty();
    match word.to_ascii_lowercase().as_str() {
        "hello" if no_arg => (format!("0 {hello}\n"), false),
        "assign" if no_arg => match workers.assign() {
            Some(addr) => (format!("0 {addr}\n"), false),
            None => ("9 no healthy worker\n".into(), false),
        },
        "quit" => ("0 bye\n".into(), true),
        "help" => (
            "0 OK\n\
             hello: who is this (role=cluster: a cluster master)\n\
             assign: the next healthy worker, as 0 <host:port>\n\
             quit: close the connection\n\n"
                .into(),
            false,
        ),
        "hello" | "assign" => ("5 unexpected argument\n".into(), false),
        "" => ("5 empty request\n".into(), false),
        _ => (
            "5 this is a cluster master: ask for a worker with assign\n".into(),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let w = Workers::new(Vec::<String>::new());
        let (r, _) = answer(b"HELLO\r\n", &w, "meshfs x");
        assert_eq!(r, "0 meshfs x\n");
        let (r, _) = answer(b"assign\n", &w, "");
        assert_eq!(r, "9 no healthy worker\n");
        let (r, _) = answer(b"assign now\n", &w, "");
        assert!(r.starts_with("5 "));
        let (r, _) = answer(b"ls /\n", &w, "");
        assert!(r.starts_with("5 "));
        let (r, _) = answer(b"\xff\xfe\n", &w, "");
        assert!(r.starts_with("5 "));
        let (r, close) = answer(b"quit\n", &w, "");
        assert_eq!((r.as_str(), close), ("0 bye\n", true));
    }
}
