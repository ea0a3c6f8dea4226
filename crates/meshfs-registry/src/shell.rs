//! The course's interactive client (`meshfs shell`): reads commands, one per line, talks to
//! the directory and to other peers, and prints exactly the course's messages
//! ([`crate::messages`]).
//!
//! One user per shell, as in the course: after `CONNECT` the shell remembers the user, serves
//! `GET_FILE` to other peers from its share (a [`PeerServer`], so under the share's
//! confinement), and uses that user for `PUBLISH`, `DELETE`, `LIST_USERS` and `LIST_CONTENT`.
//! Commands come from any async reader, so the same code runs a terminal and a script.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use meshfs_core::Share;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{Answer, DirectoryClient, Stamp};
use crate::fetch::{FetchError, get_file};
use crate::messages::{self, message};
use crate::op::Operation;
use crate::peer::{PeerConfig, PeerServer};

/// Longest command line accepted; longer ones are refused whole.
pub const MAX_LINE: usize = 8 * 1024;

/// Progress of a `GET_FILE`: `(bytes so far, total)`.
pub type Progress = Box<dyn FnMut(u64, u64) + Send>;

/// How a shell is set up.
pub struct ShellConfig {
    /// The directory, `host:port`.
    pub registry: String,
    /// What this shell serves to other peers once connected.
    pub share: Share,
    /// Where the `GET_FILE` listener binds (port 0: any free port).
    pub peer_listen: String,
    /// Print the `c> ` prompt before each command (on a terminal, not in scripts).
    pub prompt: bool,
    /// Give up on the directory or a peer after this much silence.
    pub timeout: Duration,
    /// The date field sent after each operation name (`--date`: the local time).
    pub date: Stamp,
}

/// A running peer listener, stopped on `DISCONNECT` and `QUIT`.
struct Listener {
    port: u16,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Listener {
    async fn stop(self) {
        self.stop.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.tracker.wait()).await;
    }
}

/// The interpreter's state; output goes to `W`.
pub struct Shell<W> {
    client: DirectoryClient,
    config: ShellConfig,
    out: W,
    /// The user this shell is connected as.
    connected: Option<String>,
    /// The last user named in `REGISTER` or `CONNECT`, used while not connected so the
    /// directory can say why an operation fails.
    current: String,
    listener: Option<Listener>,
    progress: Option<Progress>,
}

/// What to do after a command.
enum Next {
    Continue,
    Quit,
}

impl<W: AsyncWrite + Unpin> Shell<W> {
    pub fn new(config: ShellConfig, out: W) -> Shell<W> {
        Shell {
            client: DirectoryClient::new(config.registry.clone())
                .with_timeout(config.timeout)
                .with_date(config.date.clone()),
            config,
            out,
            connected: None,
            current: String::new(),
            listener: None,
            progress: None,
        }
    }

    /// Report `GET_FILE` progress through `progress`.
    pub fn with_progress(mut self, progress: Progress) -> Shell<W> {
        self.progress = Some(progress);
        self
    }

    /// Run commands from `input` until `QUIT` or end of input (which quits the same way).
    pub async fn run<R: AsyncBufRead + Unpin>(&mut self, mut input: R) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            if self.config.prompt {
                self.out.write_all(b"c> ").await?;
                self.out.flush().await?;
            }
            line.clear();
            let n = (&mut input)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                self.quit().await?;
                return Ok(());
            }
            if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
                skip_rest_of_line(&mut input).await?;
                self.say("Error: line too long").await?;
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            if let Next::Quit = self.command(text.trim()).await? {
                return Ok(());
            }
        }
    }

    async fn say(&mut self, line: &str) -> io::Result<()> {
        self.out.write_all(line.as_bytes()).await?;
        self.out.write_all(b"\n").await?;
        self.out.flush().await
    }

    async fn syntax_error(&mut self, command: &str) -> io::Result<Next> {
        let usage = messages::usage(command).unwrap_or_default();
        self.say(&format!("Syntax error. Usage: {usage}")).await?;
        Ok(Next::Continue)
    }

    /// The user operations run as: the connected one, else the last one named.
    fn user(&self) -> String {
        self.connected
            .clone()
            .unwrap_or_else(|| self.current.clone())
    }

    async fn command(&mut self, line: &str) -> io::Result<Next> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else {
            return Ok(Next::Continue);
        };
        let command = first.to_ascii_uppercase();
        let args = &words[1..];
        match (command.as_str(), args.len()) {
            ("REGISTER", 1) => {
                let code = self.code(Operation::Register, self.client.register(args[0]).await);
                if code == 0 || code == 1 {
                    // A name the directory knows: later operations speak for it.
                    self.current = args[0].to_owned();
                }
                self.say(message(Operation::Register, code)).await?;
            }
            ("UNREGISTER", 1) => {
                let code = self.code(Operation::Unregister, self.client.unregister(args[0]).await);
                self.say(message(Operation::Unregister, code)).await?;
            }
            ("CONNECT", 1) => self.connect(args[0]).await?,
            ("DISCONNECT", 1) => self.disconnect(args[0]).await?,
            ("PUBLISH", n) if n >= 2 => {
                let description = args[1..].join(" ");
                let user = self.user();
                let reply = self.client.publish(&user, args[0], &description).await;
                let code = self.code(Operation::Publish, reply);
                self.say(message(Operation::Publish, code)).await?;
            }
            ("DELETE", 1) => {
                let user = self.user();
                let code = self.code(Operation::Delete, self.client.delete(&user, args[0]).await);
                self.say(message(Operation::Delete, code)).await?;
            }
            ("LIST_USERS", 0) => {
                let user = self.user();
                let reply = self.client.list_users(&user).await;
                match self.answer(Operation::ListUsers, reply) {
                    Ok(users) => {
                        self.say(message(Operation::ListUsers, 0)).await?;
                        for u in users {
                            let (name, ip) = (printable(&u.name), printable(&u.ip));
                            self.say(&format!("{name} {ip} {}", u.port)).await?;
                        }
                    }
                    Err(code) => self.say(message(Operation::ListUsers, code)).await?,
                }
            }
            ("LIST_CONTENT", 1) => {
                let user = self.user();
                let reply = self.client.list_content(&user, args[0]).await;
                match self.answer(Operation::ListContent, reply) {
                    Ok(files) => {
                        self.say(message(Operation::ListContent, 0)).await?;
                        for f in files {
                            self.say(&printable(&f)).await?;
                        }
                    }
                    Err(code) => self.say(message(Operation::ListContent, code)).await?,
                }
            }
            ("GET_FILE", 3) => {
                let line = self.get_file(args[0], args[1], Path::new(args[2])).await;
                self.say(line).await?;
            }
            ("QUIT", 0) => {
                self.quit().await?;
                return Ok(Next::Quit);
            }
            (known, _) if messages::usage(known).is_some() => {
                return self.syntax_error(known).await;
            }
            _ => {
                self.say(&format!("Error: command {first} not valid."))
                    .await?;
            }
        }
        Ok(Next::Continue)
    }

    /// The result code of a simple operation; a client-side failure is the error code.
    fn code(&self, op: Operation, reply: Result<u8, crate::client::ClientError>) -> u8 {
        reply.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "{op} failed");
            op.error_code()
        })
    }

    fn answer<T>(
        &self,
        op: Operation,
        reply: Result<Answer<T>, crate::client::ClientError>,
    ) -> Result<T, u8> {
        match reply {
            Ok(Answer::Ok(value)) => Ok(value),
            Ok(Answer::Failed(code)) => Err(code),
            Err(e) => {
                tracing::warn!(error = %e, "{op} failed");
                Err(op.error_code())
            }
        }
    }

    async fn connect(&mut self, user: &str) -> io::Result<()> {
        self.current = user.to_owned();
        // One listener per shell: reuse it if a user is already connected from here.
        let started = if self.listener.is_none() {
            match PeerServer::bind(
                &self.config.peer_listen,
                self.config.share.clone(),
                PeerConfig::default(),
            )
            .await
            {
                Ok(server) => {
                    let port = server.local_addr()?.port();
                    let stop = CancellationToken::new();
                    let tracker = TaskTracker::new();
                    tracker.spawn(server.run(stop.clone(), tracker.clone()));
                    self.listener = Some(Listener {
                        port,
                        stop,
                        tracker,
                    });
                    true
                }
                Err(e) => {
                    tracing::warn!(addr = %self.config.peer_listen, error = %e, "cannot listen for GET_FILE");
                    return self
                        .say(message(Operation::Connect, Operation::Connect.error_code()))
                        .await;
                }
            }
        } else {
            false
        };
        let port = self.listener.as_ref().map(|l| l.port).unwrap_or_default();
        let code = self.code(Operation::Connect, self.client.connect(user, port).await);
        if code == 0 {
            self.connected = Some(user.to_owned());
        } else if started {
            if let Some(listener) = self.listener.take() {
                listener.stop().await;
            }
        }
        self.say(message(Operation::Connect, code)).await
    }

    async fn disconnect(&mut self, user: &str) -> io::Result<()> {
        let code = self.code(Operation::Disconnect, self.client.disconnect(user).await);
        if code == 0 && self.connected.as_deref() == Some(user) {
            self.connected = None;
            if let Some(listener) = self.listener.take() {
                listener.stop().await;
            }
        }
        self.say(message(Operation::Disconnect, code)).await
    }

    async fn quit(&mut self) -> io::Result<()> {
        if let Some(user) = self.connected.clone() {
            self.disconnect(&user).await?;
        }
        if let Some(listener) = self.listener.take() {
            listener.stop().await;
        }
        self.say(messages::FINISHED).await
    }

    /// Find `user`'s address with `LIST_USERS`, then fetch `remote` from it into `local`.
    async fn get_file(&mut self, user: &str, remote: &str, local: &Path) -> &'static str {
        let me = self.user();
        let users = match self.client.list_users(&me).await {
            Ok(Answer::Ok(users)) => users,
            Ok(Answer::Failed(code)) => {
                tracing::warn!(code, "GET_FILE: LIST_USERS refused");
                return messages::GET_FILE_FAIL;
            }
            Err(e) => {
                tracing::warn!(error = %e, "GET_FILE: LIST_USERS failed");
                return messages::GET_FILE_FAIL;
            }
        };
        let Some(peer) = users.into_iter().find(|u| u.name == user) else {
            tracing::warn!(%user, "GET_FILE: user not connected");
            return messages::GET_FILE_FAIL;
        };
        let Ok(ip) = peer.ip.parse::<IpAddr>() else {
            return messages::GET_FILE_FAIL;
        };
        let addr = SocketAddr::new(ip, peer.port).to_string();
        let mut no_progress = |_: u64, _: u64| {};
        let progress: &mut (dyn FnMut(u64, u64) + Send) = match self.progress.as_mut() {
            Some(p) => p.as_mut(),
            None => &mut no_progress,
        };
        match get_file(&addr, remote, local, self.config.timeout, progress).await {
            Ok(_) => messages::GET_FILE_OK,
            Err(FetchError::NoSuchFile) => messages::GET_FILE_NOT_EXIST,
            Err(e) => {
                tracing::warn!(%addr, %remote, error = %e, "GET_FILE failed");
                messages::GET_FILE_FAIL
            }
        }
    }
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): names come from other peers
/// through the directory, and a newline or a terminal escape sequence in one must not forge
/// lines or drive the user's terminal.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Discard input up to and including the next newline (after an over-long line).
async fn skip_rest_of_line<R: AsyncBufRead + Unpin>(input: &mut R) -> io::Result<()> {
    loop {
        let buf = input.fill_buf().await?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            input.consume(i + 1);
            return Ok(());
        }
        let n = buf.len();
        input.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("clip 1.mp4"), "clip 1.mp4");
        assert_eq!(printable("a\nLIST_USERS OK"), "a\\nLIST_USERS OK");
        assert_eq!(printable("\u{1b}[2J"), "\\u{1b}[2J");
    }
}
