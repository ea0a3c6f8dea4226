//! `meshfs hub`: the FIFO chat hub of seed 001 (protocols.md §3).
//!
//! Prints the path of its FIFO on stdout when clients may connect (scripts and tests wait for
//! that line), then one line per client event: `registered PATH`, `disconnected PATH`,
//! `dropped PATH: REASON`, `refused PATH: REASON`. Removes its FIFO when it stops.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use meshfs_hub::clients::ClientLimits;
use meshfs_hub::{Hub, HubConfig, Mode};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs hub                                  broadcast hub on /tmp/meshfs-hub-<pid>
  meshfs hub --fifo /tmp/chat --mode echo     each client gets its own messages back
  meshfs hub --mode single                    the seed's step 1: one client, raw echo
  meshfs chat --hub /tmp/chat                 join it from another terminal

Clients register by writing `¶<their FIFO>` into the hub FIFO and send `<their FIFO>¶<text>`;
an empty text says goodbye. The seed's own Python clients work unchanged. In single mode a
client may also write its bare FIFO path first (the seed's step 1: raw echo); `meshfs chat`
works with every mode, one client at a time in single mode.

Standard output: the FIFO path once clients may connect, then one line per client event:
`registered PATH`, `disconnected PATH`, `dropped PATH: REASON`, `refused PATH: REASON`.
Ctrl-C or SIGTERM: every client FIFO is closed, the hub FIFO removed, exit status 0.

With --group (broadcast mode), the hub also joins the LAN group chat (seed 004): what FIFO
clients say goes to the group, and the group's messages reach every FIFO client as
`<ip> :> <text>`.")]
pub struct Args {
    /// Bridge to the LAN group chat (broadcast mode only).
    #[arg(long)]
    pub group: bool,
    #[command(flatten)]
    pub group_addr: super::group::GroupAddr,
    /// The hub's FIFO, created at start (it must not exist) and removed at exit
    /// [default: /tmp/meshfs-hub-<pid>].
    #[arg(long)]
    pub fifo: Option<PathBuf>,
    /// single: seed step 1 (one client, raw echo); echo: each text back to its sender;
    /// broadcast: each text to every client.
    #[arg(long, value_enum, default_value_t = ModeArg::Broadcast)]
    pub mode: ModeArg,
    /// Most clients registered at once.
    #[arg(long, default_value_t = 256)]
    pub max_clients: usize,
    /// Messages queued for a client that does not read, beyond its full pipe, before it is dropped.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// How long a new client may take to open its FIFO for reading.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub open_timeout: Duration,
    /// How long one write may wait for a client to read before it is dropped.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    Single,
    Echo,
    Broadcast,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let path = args
        .fifo
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/meshfs-hub-{}", std::process::id())));
    let config = HubConfig {
        mode: match args.mode {
            ModeArg::Single => Mode::Single,
            ModeArg::Echo => Mode::Echo,
            ModeArg::Broadcast => Mode::Broadcast,
        },
        limits: ClientLimits {
            max_clients: args.max_clients,
            queue_len: args.queue,
            open_timeout: args.open_timeout,
            write_timeout: args.write_timeout,
        },
        ..HubConfig::default()
    };
    if args.group && !matches!(args.mode, ModeArg::Broadcast) {
        anyhow::bail!("--group bridges a broadcast hub: drop --mode or use --mode broadcast");
    }
    let mut hub = Hub::create(&path, config)?.on_event(|event| {
        // A closed stdout must not stop the hub: the lines are informative.
        let _ = writeln!(std::io::stdout().lock(), "{event}");
    });
    if args.group {
        hub = hub.with_bridge(group_bridge(&args.group_addr)?);
    }
    let shutdown = crate::signals::cancel_on_signal();
    let _ = writeln!(std::io::stdout().lock(), "{}", hub.path().display());
    tracing::info!(fifo = %hub.path().display(), "hub ready");
    hub.run(shutdown).await.context("hub failed")?;
    Ok(())
}

/// Join the group chat and link it to the hub: one task sends what FIFO clients say, one hands
/// the group's messages (shown as `<ip> :> <text>`) to the hub. Our own datagrams come back to
/// us (multicast loop): the most recent texts we sent are remembered so their echo is dropped.
fn group_bridge(addr: &super::group::GroupAddr) -> anyhow::Result<meshfs_hub::Bridge> {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use meshfs_group::chat::{GroupChat, display};

    let group = addr.group(None);
    let chat = Arc::new(GroupChat::join(&group, addr.chat_port).with_context(|| {
        format!(
            "cannot join the group chat {}:{}",
            group.addr, addr.chat_port
        )
    })?);
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let (in_tx, in_rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let sent: Arc<Mutex<VecDeque<String>>> = Arc::default();

    let (chat_out, sent_out) = (chat.clone(), sent.clone());
    tokio::spawn(async move {
        while let Some(text) = out_rx.recv().await {
            let text = String::from_utf8_lossy(&text).into_owned();
            {
                let mut sent = sent_out.lock().unwrap_or_else(|e| e.into_inner());
                if sent.len() >= 64 {
                    sent.pop_front();
                }
                sent.push_back(text.clone());
            }
            if let Err(e) = chat_out.send(&text).await {
                tracing::warn!(error = %e, "cannot send to the group chat");
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let (ip, lines) = match chat.recv().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "group chat receive failed");
                    continue;
                }
            };
            {
                let mut sent = sent.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(i) = sent.iter().position(|t| display(ip, t) == lines) {
                    sent.remove(i);
                    continue;
                }
            }
            let mut text = lines.join("\n");
            text.push('\n');
            if in_tx.send(Bytes::from(text)).await.is_err() {
                return;
            }
        }
    });
    Ok(meshfs_hub::Bridge {
        outgoing: out_tx,
        incoming: in_rx,
    })
}
