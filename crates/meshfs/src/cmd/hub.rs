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
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs hub                                  broadcast hub on /tmp/meshfs-hub-<pid>
  meshfs hub --fifo /tmp/chat --mode echo     each client gets its own messages back
  meshfs hub --mode single                    the seed's step 1: one client, raw echo
  meshfs chat --hub /tmp/chat                 join it from another terminal

Clients register by writing `¶<their FIFO>` into the hub FIFO and send `<their FIFO>¶<text>`;
an empty text says goodbye. The seed's own Python clients work unchanged.

Standard output: the FIFO path once clients may connect, then one line per client event:
`registered PATH`, `disconnected PATH`, `dropped PATH: REASON`, `refused PATH: REASON`.
Ctrl-C or SIGTERM: every client FIFO is closed, the hub FIFO removed, exit status 0.")]
pub struct Args {
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
    let hub = Hub::create(&path, config)?.on_event(|event| {
        // A closed stdout must not stop the hub: the lines are informative.
        let _ = writeln!(std::io::stdout().lock(), "{event}");
    });
    let shutdown = stop_on_signals()?;
    let _ = writeln!(std::io::stdout().lock(), "{}", hub.path().display());
    tracing::info!(fifo = %hub.path().display(), "hub ready");
    hub.run(shutdown).await.context("hub failed")?;
    Ok(())
}

/// A token cancelled by the first SIGINT or SIGTERM. The handlers are in place when this returns,
/// so a signal sent right after the readiness line still stops the process cleanly (FIFO removed).
pub(crate) fn stop_on_signals() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received, stopping"),
            _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
        }
        stop.cancel();
    });
    Ok(token)
}
