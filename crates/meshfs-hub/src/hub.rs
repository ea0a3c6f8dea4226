//! The hub: reads its FIFO without ever blocking and passes messages on in one of three modes.
//!
//! The read end is opened non-blocking and polled by tokio, so the hub waits for clients, the
//! flush of an ambiguous end of read, failures of client writers and shutdown all at once. When
//! every writer has closed the FIFO the read end sees end-of-file; the hub then opens a fresh read
//! end (before closing the old one, so the FIFO always has a reader and no byte is lost) and keeps
//! serving. The single-client mode uses that end-of-file as the end of its client's session.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client_id::ClientId;
use crate::clients::{ClientLimits, Clients, Dropped};
use crate::fifo::{self, OwnedFifo};
use crate::framing::{Frame, Framer};

/// Bytes read from the hub FIFO at once: a whole default pipe, so a read never cuts a message
/// written atomically (≤ `PIPE_BUF`) unless the hub fell a full pipe behind.
const READ_SIZE: usize = 64 * 1024;

/// What the hub does with a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Seed step 1: one client at a time, no separator. Its first write is the path of its FIFO,
    /// everything after is echoed back raw, until it closes the hub FIFO. A client that
    /// registers with the framing of the other modes (`¶<path>`, as `meshfs chat` and the seed's
    /// step-3 clients do) is served in that framing instead: its texts come back without
    /// their prefix and its empty text ends the session.
    Single,
    /// Seed step 2: each text goes back to its sender only.
    Echo,
    /// Seed step 3: each text goes to every registered client, the sender included.
    #[default]
    Broadcast,
}

/// Settings of a hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub mode: Mode,
    pub limits: ClientLimits,
    /// How long the framer waits for the rest of an ambiguous end of read before deciding (a
    /// goodbye `path¶` is only known to be one when no text follows it).
    pub flush_after: Duration,
    /// Permissions of the hub FIFO (before umask). The default lets only this user write to it.
    pub permissions: libc::mode_t,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            mode: Mode::default(),
            limits: ClientLimits::default(),
            flush_after: Duration::from_millis(100),
            permissions: 0o600,
        }
    }
}

/// A change in the client table, reported as it happens (the CLI prints one line each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    Registered(ClientId),
    /// The client said goodbye (empty text), or closed the hub FIFO in single mode.
    Disconnected(ClientId),
    /// The client's FIFO failed or it stopped reading.
    Dropped {
        id: ClientId,
        reason: String,
    },
    /// A registration the hub could not accept.
    Refused {
        id: ClientId,
        reason: String,
    },
}

impl fmt::Display for HubEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Registered(id) => write!(f, "registered {id}"),
            Self::Disconnected(id) => write!(f, "disconnected {id}"),
            Self::Dropped { id, reason } => write!(f, "dropped {id}: {reason}"),
            Self::Refused { id, reason } => write!(f, "refused {id}: {reason}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("cannot create the hub FIFO {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the hub FIFO: {0}")]
    Read(std::io::Error),
}

type EventSink = Box<dyn FnMut(&HubEvent) + Send>;

/// A hub whose FIFO exists and has a reader: clients may connect as soon as [`Hub::create`]
/// returned. The FIFO is removed when the hub is dropped.
pub struct Hub {
    fifo: OwnedFifo,
    reader: pipe::Receiver,
    config: HubConfig,
    on_event: EventSink,
    bridge: Option<Bridge>,
}

/// A link to another chat (the LAN group chat): what clients broadcast goes out on `outgoing`,
/// what arrives on `incoming` is given to every client. The hub never waits on it: when
/// `outgoing` is full, the message is not bridged (and a warning says so).
pub struct Bridge {
    pub outgoing: tokio::sync::mpsc::Sender<Bytes>,
    pub incoming: tokio::sync::mpsc::Receiver<Bytes>,
}

impl Hub {
    /// Creates the FIFO `path` (it must not exist) and opens its read end.
    pub fn create(path: &Path, config: HubConfig) -> Result<Self, HubError> {
        let create_err = |source| HubError::Create {
            path: path.to_owned(),
            source,
        };
        // Absolute, so the path the hub reports works from any directory.
        let path = &std::path::absolute(path).map_err(create_err)?;
        let fifo = OwnedFifo::create(path, config.permissions).map_err(create_err)?;
        let reader = fifo::open_reader(path).map_err(create_err)?;
        Ok(Self {
            fifo,
            reader,
            config,
            on_event: Box::new(|_| {}),
            bridge: None,
        })
    }

    /// Bridge broadcast mode to another chat (see [`Bridge`]).
    pub fn with_bridge(mut self, bridge: Bridge) -> Self {
        self.bridge = Some(bridge);
        self
    }

    /// Calls `sink` for every [`HubEvent`], in order, from the hub's task.
    pub fn on_event(mut self, sink: impl FnMut(&HubEvent) + Send + 'static) -> Self {
        self.on_event = Box::new(sink);
        self
    }

    pub fn path(&self) -> &Path {
        self.fifo.path()
    }

    /// Serves until `shutdown` is cancelled, then closes every client FIFO (the seed's clients
    /// read end-of-file and stop) and removes the hub FIFO.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), HubError> {
        let (outgoing, mut incoming) = match self.bridge.take() {
            Some(b) => (Some(b.outgoing), Some(b.incoming)),
            None => (None, None),
        };
        let mut state = State {
            clients: Clients::new(self.config.limits.clone()),
            framer: Framer::new(),
            session: None,
            framed: false,
            mode: self.config.mode,
            outgoing,
        };
        let mut buf = vec![0u8; READ_SIZE];
        let mut last_read = Instant::now();
        loop {
            let flush_at = (!state.framer.is_idle()).then(|| last_read + self.config.flush_after);
            let mut events = Vec::new();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                read = self.reader.read(&mut buf) => {
                    let n = read.map_err(HubError::Read)?;
                    if n == 0 {
                        // Every writer left. Open a new read end first: the FIFO keeps a reader.
                        self.reader = fifo::open_reader(self.fifo.path()).map_err(HubError::Read)?;
                        state.all_writers_left(&mut events);
                    } else {
                        last_read = Instant::now();
                        state.input(&buf[..n], &mut events);
                    }
                }
                dropped = state.clients.next_failure() => {
                    if state.session.as_ref() == Some(&dropped.id) {
                        state.session = None;
                    }
                    events.push(dropped_event(dropped));
                }
                Some(text) = recv_bridged(&mut incoming) => {
                    events.extend(state.clients.broadcast(&text).into_iter().map(dropped_event));
                }
                _ = tokio::time::sleep_until(flush_at.unwrap_or(last_read)), if flush_at.is_some() => {
                    for frame in state.framer.flush() {
                        state.frame(frame, &mut events);
                    }
                }
            }
            for event in &events {
                (self.on_event)(event);
            }
        }
        tracing::info!(clients = state.clients.len(), "hub stopping");
        Ok(())
    }
}

/// The next message from the bridged chat; pending forever without a bridge.
async fn recv_bridged(incoming: &mut Option<tokio::sync::mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match incoming {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Everything the hub loop changes.
struct State {
    clients: Clients,
    framer: Framer,
    /// The client of the single-client mode.
    session: Option<ClientId>,
    /// Whether that client speaks the framed protocol (`¶<path>`, `<path>¶<text>`) rather
    /// than the seed's bare step 1.
    framed: bool,
    mode: Mode,
    /// Where broadcast texts are bridged to, if anywhere.
    outgoing: Option<tokio::sync::mpsc::Sender<Bytes>>,
}

impl State {
    fn input(&mut self, data: &[u8], events: &mut Vec<HubEvent>) {
        if self.mode == Mode::Single && !self.single_is_framed(data) {
            return self.single(data, events);
        }
        let frames = self.framer.push(data, |id| fifo::is_fifo(id.path()));
        for frame in frames {
            self.frame(frame, events);
        }
    }

    /// Does this input of the single mode belong to a framed session: one under way, a
    /// registration `¶/…` while nobody is served, or the rest of one the framer holds?
    fn single_is_framed(&self, data: &[u8]) -> bool {
        match self.session {
            Some(_) => self.framed,
            None => data.starts_with(crate::framing::SEPARATOR) || !self.framer.is_idle(),
        }
    }

    /// Seed step 1: the first write is the client's FIFO path, the rest is echoed raw.
    fn single(&mut self, data: &[u8], events: &mut Vec<HubEvent>) {
        if let Some(id) = &self.session {
            let id = id.clone();
            if let Some(d) = self.clients.send(&id, Bytes::copy_from_slice(data)) {
                self.session = None;
                events.push(dropped_event(d));
            }
            return;
        }
        let path = data.trim_ascii_end();
        match ClientId::new(path) {
            Ok(id) => {
                if self.register(id.clone(), events) {
                    self.session = Some(id);
                }
            }
            Err(e) => tracing::warn!(
                "ignoring {} bytes: expected the path of a client FIFO ({e})",
                data.len()
            ),
        }
    }

    fn all_writers_left(&mut self, events: &mut Vec<HubEvent>) {
        self.framed = false;
        if let Some(id) = self.session.take() {
            self.clients.remove(&id);
            events.push(HubEvent::Disconnected(id));
        }
    }

    fn frame(&mut self, frame: Frame, events: &mut Vec<HubEvent>) {
        match frame {
            Frame::Register(id) if self.mode == Mode::Single => {
                if let Some(current) = &self.session {
                    let reason = format!(
                        "a single-mode hub serves one client at a time ({current} is being \
                         served); start the hub with --mode echo or broadcast for several"
                    );
                    events.push(HubEvent::Refused { id, reason });
                } else if self.register(id.clone(), events) {
                    self.session = Some(id);
                    self.framed = true;
                }
            }
            Frame::Register(id) => {
                self.register(id, events);
            }
            Frame::Disconnect(id) => {
                if self.session.as_ref() == Some(&id) {
                    self.session = None;
                    self.framed = false;
                }
                if self.clients.remove(&id) {
                    events.push(HubEvent::Disconnected(id));
                }
            }
            Frame::Text { from, text } => {
                if !self.clients.contains(&from) {
                    tracing::warn!(client = %from, "ignoring a message from an unregistered client");
                    return;
                }
                let dropped = match self.mode {
                    Mode::Echo | Mode::Single => {
                        self.clients.send(&from, text).into_iter().collect()
                    }
                    Mode::Broadcast => {
                        if let Some(out) = &self.outgoing
                            && out.try_send(text.clone()).is_err()
                        {
                            tracing::warn!("group chat bridge busy: a message was not bridged");
                        }
                        self.clients.broadcast(&text)
                    }
                };
                events.extend(dropped.into_iter().map(dropped_event));
            }
            Frame::Invalid { len, reason } => {
                tracing::warn!("dropping {len} bytes: {reason}");
            }
        }
    }

    /// Adds `id` to the table; false (and an event saying why) if refused.
    fn register(&mut self, id: ClientId, events: &mut Vec<HubEvent>) -> bool {
        // Checked again when opening; refusing here gives the clear answer at once.
        if !fifo::is_fifo(id.path()) {
            let reason = "not a FIFO (or does not exist)".to_owned();
            events.push(HubEvent::Refused { id, reason });
            return false;
        }
        match self.clients.add(id.clone()) {
            Ok(()) => {
                tracing::info!(client = %id, "client registered");
                events.push(HubEvent::Registered(id));
                true
            }
            Err(e) => {
                events.push(HubEvent::Refused {
                    id,
                    reason: e.to_string(),
                });
                false
            }
        }
    }
}

fn dropped_event(d: Dropped) -> HubEvent {
    tracing::info!(client = %d.id, reason = %d.reason, "client dropped");
    HubEvent::Dropped {
        id: d.id,
        reason: d.reason,
    }
}
