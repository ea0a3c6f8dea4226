//! `meshfs node`: serve a folder. Prints one line on stdout when ready
//! (`meshfs node NAME serving DIR on ADDR`), which scripts and tests wait for; the node's ID
//! (`id ID`) follows its address lines (web, ftp), so the first lines keep their places.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use meshfs_core::Share;
use meshfs_core::events::Events;
use meshfs_server::{Config, FileServer};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs node                        serve ./share (created if missing) on 0.0.0.0:4044
  meshfs node ~/videos --name cam2   serve ~/videos as node cam2
  meshfs node /srv/clips --listen 127.0.0.1:0   any free port on loopback (printed at start)
  meshfs node /srv/clips --state /var/lib/meshfs   as a system service: the key lives there

The node's key and certificate are made on first start in STATE/identity (mode 0600); its ID,
printed as `id ID` after the address lines and by `meshfs id --node`, is what clients pin.")]
pub struct Args {
    /// Folder to serve (created if missing, its parent must exist).
    #[arg(default_value = "share", env = "MESHFS_DIR")]
    pub dir: PathBuf,
    /// Read the node's flags from this TOML file (keys are the flag names without `--`; flags
    /// and environment win over it) [default: $XDG_CONFIG_HOME/meshfs/meshfs.toml, else
    /// ~/.config/meshfs/meshfs.toml, if it exists; the packaged service passes
    /// /etc/meshfs/meshfs.toml]. `meshfs config check` validates one.
    #[arg(long, value_name = "FILE", env = "MESHFS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the file server.
    #[arg(long, default_value = "0.0.0.0:4044", env = "MESHFS_LISTEN")]
    pub listen: String,
    /// Node name shown to other nodes (default: the host name).
    #[arg(long, env = "MESHFS_NAME")]
    pub name: Option<String>,
    /// The node's state folder: its key and certificate (the node ID) live in STATE/identity,
    /// made on first start, the key mode 600 [default: $XDG_STATE_HOME/meshfs, else
    /// ~/.local/state/meshfs; a system service: /var/lib/meshfs; `meshfs id --node` prints
    /// the ID].
    #[arg(long, value_name = "DIR", env = "MESHFS_STATE")]
    pub state: Option<PathBuf>,
    /// Close connections idle for this long (e.g. 10m, 30s).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// On SIGINT/SIGTERM, let requests in flight finish for at most this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Most connections served at once.
    #[arg(long, default_value_t = 16_384)]
    pub max_connections: usize,
    /// File events kept for subscribers that reconnect (`subscribe <since>`).
    #[arg(long, default_value_t = meshfs_core::events::DEFAULT_CAPACITY)]
    pub event_log: usize,
    /// Publish file events and presence to this MQTT broker:
    /// mqtt://[USER[:PASSWORD]@]HOST[:PORT] (1883), or mqtts://… for TLS (8883).
    #[arg(long, env = "MESHFS_MQTT")]
    pub mqtt: Option<meshfs_mqtt::BrokerAddr>,
    #[command(flatten)]
    pub mqtt_conn: super::mqtt::MqttConnArgs,
    #[command(flatten)]
    pub web: super::web::WebArgs,
    #[command(flatten)]
    pub registry: super::registry::JoinArgs,
    #[command(flatten)]
    pub ftp: super::ftp::FtpArgs,
    #[command(flatten)]
    pub cluster: super::cluster::PeerArgs,
    #[command(flatten)]
    pub group: super::group::GroupArgs,
    #[command(flatten)]
    pub retain: super::retain::RetainArgs,
    #[command(flatten)]
    pub tls: super::node_tls::TlsArgs,
    #[command(flatten)]
    pub upload: super::upload::UploadArgs,
}

/// Run a node; `plaintext` (the global `--plaintext`) makes its own connections to other
/// nodes speak in clear.
pub async fn run(args: Args, plaintext: bool) -> anyhow::Result<()> {
    // Issue 20: every door is started before the readiness line, and a node that cannot start
    // leaves nothing behind (the share folder it made is removed while still empty).
    let prepared = super::share_dir::prepare(&args.dir)?;
    let dir = args.dir.clone();
    let grace = args.grace;
    let life = crate::signals::Lifetime::new();
    let out = super::ready::Stdout::held();
    let started = match start(args, plaintext, &life, &out).await {
        Ok(started) => started,
        Err(e) => {
            life.shutdown.cancel();
            super::share_dir::undo(&dir, &prepared);
            return Err(e);
        }
    };
    out.ready(&started.lines);
    // systemd (Type=notify): every door is bound.
    crate::notify::ready(&started.status);
    crate::notify::start_watchdog(life.shutdown.clone(), &life.tracker);
    tracing::info!(name = %started.name, addr = %started.addr, node_id = %started.node_id,
        dir = %dir.display(), "node ready");
    // Last, so that `--dry-run` lines follow every address line on stdout.
    super::retain::start(&started.retention, life.shutdown.clone(), &life.tracker);
    life.run_until_signal(grace).await;
    drop(started.watch);
    tracing::info!("stopped");
    Ok(())
}

/// A node whose doors are all bound and running, before it says so.
struct Started {
    /// The readiness line, then the address lines (web, ftp) and `id ID`.
    lines: Vec<String>,
    /// What systemd shows of the node (`serving DIR on ADDR`).
    status: String,
    name: String,
    addr: std::net::SocketAddr,
    node_id: meshfs_core::NodeId,
    retention: meshfs_core::retention::Retention,
    /// The share's watch, kept for the node's life.
    watch: Option<meshfs_core::events::WatchGuard>,
}

/// Start every door of the node on `life`; the first that cannot start stops it all.
async fn start(
    args: Args,
    plaintext: bool,
    life: &crate::signals::Lifetime,
    out: &super::ready::Stdout,
) -> anyhow::Result<Started> {
    let share =
        Share::open(&args.dir).with_context(|| format!("cannot serve {}", args.dir.display()))?;
    let name = args.name.unwrap_or_else(super::id::host_name);
    // Who this node is (issue 15): its key pair and certificate, made once. The web UI's
    // HTTPS presents it; the node ID (the hash of its public key) is what clients pin and
    // announcements carry.
    let identity_dir = super::id::node_identity_dir(args.state)?;
    let identity = meshfs_core::Identity::load_or_create(&identity_dir, &name)
        .context("cannot load the node's identity (--state chooses its folder)")?;
    let node_id = identity.id();
    super::trust::install_as(plaintext, Some(&identity))?;
    // Share and offer passwords (seed 004), read before serving: the prompt comes first.
    let access = args.group.access()?;
    raise_fd_limit((args.max_connections as libc::rlim_t).saturating_add(256));

    let config = Config {
        name: name.clone(),
        idle_timeout: args.idle_timeout,
        max_connections: args.max_connections,
        cluster_peers: args.cluster.peers.iter().map(ToString::to_string).collect(),
    };
    let events = Events::new(args.event_log);
    // Without a watch (inotify limits reached, say) the node still serves files; it just
    // cannot answer `subscribe`. Folders beneath the share that cannot be watched cost only
    // their own events (the watch reports them).
    let watch = events
        .watch(share.root())
        .inspect_err(|e| tracing::warn!(error = %e, "cannot watch the share: no file events"))
        .ok();
    let mut server = FileServer::bind(&args.listen, share.clone(), config)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    if watch.is_some() {
        server = server.with_events(events.clone());
    }
    server = server.with_access(access.clone());
    server = server.with_transport(args.tls.transport(&identity)?);
    // Upload limits (issue 19): one set of buckets for every door that sends file content.
    let upload = args.upload.limits();
    server = server.with_upload(upload.clone());
    // Retention (issue 16); it also measures the disk, which `hello` reports when full.
    let retention = args
        .retain
        .retention(&share, watch.as_ref().map(|_| events.clone()));
    server = server.with_disk(retention.disk());
    let addr = server.local_addr()?;
    // What `/metrics` and `status` report (issue 21).
    let counted = meshfs_core::metrics::metrics();
    counted.set_node(&name, Some(node_id.to_string()));
    if watch.is_some() {
        counted.set_events(&events);
    }

    let (shutdown, tracker) = (life.shutdown.clone(), life.tracker.clone());
    tracker.spawn(server.run(shutdown.clone(), tracker.clone()));
    tracker.spawn(counted.usage().follow(share.clone(), shutdown.clone()));
    let mut lines = vec![format!(
        "meshfs node {name} serving {} on {addr}",
        share.root().display()
    )];
    if let Some(broker) = args.mqtt {
        if watch.is_some() {
            let bridge = args
                .mqtt_conn
                .bridge(broker, &name, events.clone())?
                .with_node_id(&node_id.to_string());
            tracker.spawn(bridge.run(shutdown.clone()));
        } else {
            tracing::warn!(
                "--mqtt ignored: the share is not watched, there are no events to publish"
            );
        }
    }
    // The node's one peer table: discovery writes it, the web UI shows it.
    let peers = meshfs_core::Peers::default();
    counted.set_peers(&peers);
    // Web UI (issue 9): its address is the second stdout line, right after readiness.
    let web = args
        .web
        .start(
            &args.listen,
            super::web::LocalNode {
                name: &name,
                identity: &identity,
                share: &share,
                access: &access,
                file_server: addr,
                peers: &peers,
                disk: &retention.disk(),
                upload: &upload,
                // With discovery on, the page shows the group chat.
                group: if args.group.no_discovery {
                    Err("discovery is off on this node (--no-discovery)")
                } else {
                    Ok((
                        args.group.group.group(Some(addr.ip())),
                        args.group.group.chat_port,
                    ))
                },
            },
            shutdown.clone(),
            &tracker,
        )
        .await?;
    if let Some(web) = &web {
        lines.push(super::web::web_line(web));
    }
    // FTP door (seed 002): its address is printed right after the node's other address lines.
    let mut ftp = args.ftp;
    ftp.ftp = (ftp.ftp.as_deref()).map(|a| super::door_addr::on_listen_host(a, &args.listen));
    if let Some(ftp) = ftp
        .start(
            super::ftp::LocalNode {
                share: &share,
                access: &access,
                identity: &identity,
                idle_timeout: args.idle_timeout,
                upload: &upload,
            },
            shutdown.clone(),
            &tracker,
        )
        .await?
    {
        lines.push(format!("ftp {ftp}"));
    }
    // The node's ID, after the address lines (the web line stays second).
    lines.push(format!("id {node_id}"));
    // Cluster worker (seed 002): pull the peers' changes into this share.
    args.cluster.start(
        &share,
        watch.as_ref().map(|_| events.clone()),
        identity_dir.parent().unwrap_or(&identity_dir),
        shutdown.clone(),
        &tracker,
    )?;
    // Central directory (seed 003): GET_FILE listener, then register/connect/publish in the
    // background; prints a line once joined.
    if let Some(join) = args.registry.config(&name, &args.listen, &upload) {
        let said = out.clone();
        let joined = move |j: &meshfs_registry::Joined| said.line(format!("meshfs node {j}"));
        meshfs_registry::join::start(
            join,
            share.clone(),
            // Follow the share's events when it is watched.
            watch.as_ref().map(|_| events.clone()),
            shutdown.clone(),
            tracker.clone(),
            joined,
        )
        .await?;
    }
    // LAN discovery and offers (seed 004): multicast announcements, static --peer polls.
    let this = super::group::ThisNode {
        name: &name,
        node_id,
        server: addr,
        web: web.as_ref().map(|w| w.addr.port()),
        share: &share,
        access: &access,
        peers: &peers,
        out,
    };
    args.group.start(this, shutdown.clone(), &tracker).await?;
    Ok(Started {
        lines,
        status: format!("serving {} on {addr}", share.root().display()),
        name,
        addr,
        node_id,
        retention,
        watch,
    })
}

/// A busy node holds one descriptor per connection: lift the soft limit towards the hard one.
#[allow(unsafe_code)] // getrlimit/setrlimit, which std does not wrap
fn raise_fd_limit(want: libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, exclusively borrowed struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
