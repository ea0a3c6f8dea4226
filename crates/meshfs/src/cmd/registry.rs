//! `meshfs registry`: the central directory server of seed 003 (registry.md). Prints
//! `s> init server <ip>:<port>` on stdout when ready, which scripts and tests wait for.
//! Also the flags of a node joining a directory ([`JoinArgs`], flattened into `meshfs node`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meshfs_registry::{DirectoryServer, JoinConfig, ServerConfig, SqliteStore};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs registry                              directory on 0.0.0.0:4050, state in ~/.local/state/meshfs
  meshfs registry --listen 127.0.0.1:0         any free port on loopback (printed at start)
  meshfs registry --state /var/lib/meshfs      keep the directory's database there
  RUST_LOG=warn meshfs registry                silence the per-operation log
  meshfs registry --store postgres://meshfs@db/meshfs
                                               one of several instances sharing a PostgreSQL")]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:4050", env = "MESHFS_REGISTRY_LISTEN")]
    pub listen: String,
    /// State directory holding the directory's database (default: $XDG_STATE_HOME/meshfs or
    /// ~/.local/state/meshfs).
    #[arg(long, env = "MESHFS_STATE")]
    pub state: Option<PathBuf>,
    /// Keep the directory in PostgreSQL instead of SQLite under --state, so that several
    /// instances serve one directory: postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
    #[arg(
        long,
        env = "MESHFS_REGISTRY_STORE",
        value_name = "postgres://USER@HOST/DB"
    )]
    pub store: Option<String>,
    /// Answer operations without the course's date field (DD/MM/YYYY HH:MM:SS after the
    /// operation name) with their error code, as the course's later directories do.
    #[arg(long)]
    pub require_date: bool,
    /// On SIGINT/SIGTERM, let operations in flight finish for at most this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
}

/// Flags of a node that joins a directory (flattened into `meshfs node`).
#[derive(Debug, Clone, clap::Args)]
pub struct JoinArgs {
    /// Join the central directory at HOST:PORT (seed 003): register, connect, publish the share.
    #[arg(long, env = "MESHFS_REGISTRY", value_name = "HOST:PORT")]
    pub registry: Option<String>,
    /// User name in the directory (default: the node name).
    #[arg(long, env = "MESHFS_USER")]
    pub user: Option<String>,
    /// Address of the peer GET_FILE listener announced to the directory (port 0: any free
    /// port; `:PORT`: on the --listen host).
    #[arg(long, default_value = ":0", env = "MESHFS_PEER_LISTEN", value_parser = super::door_addr::parse)]
    pub peer_listen: String,
    /// Send the local time (DD/MM/YYYY HH:MM:SS) after every operation name, as the
    /// directories of the course's later version require.
    #[arg(long, requires = "registry")]
    pub date: bool,
}

impl JoinArgs {
    /// What the node joins as, if `--registry` names a directory; the user defaults to the
    /// node's name.
    pub fn config(
        self,
        node_name: &str,
        listen: &str,
        upload: &meshfs_core::rate::UploadLimits,
    ) -> Option<JoinConfig> {
        Some(JoinConfig {
            registry: self.registry?,
            user: self.user.unwrap_or_else(|| node_name.to_owned()),
            peer_listen: super::door_addr::on_listen_host(&self.peer_listen, listen),
            date: if self.date {
                meshfs_registry::Stamp::LocalNow
            } else {
                meshfs_registry::Stamp::None
            },
            upload: upload.clone(),
        })
    }
}

/// `$XDG_STATE_HOME/meshfs`, else `~/.local/state/meshfs`.
pub fn default_state_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("meshfs"));
    }
    let home = std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .context("neither XDG_STATE_HOME nor HOME is set: pass --state DIR")?;
    Ok(PathBuf::from(home).join(".local/state/meshfs"))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (store, location) = match args.store {
        Some(url) => open_postgres(url).await?,
        None => open_sqlite(args.state).await?,
    };
    let config = ServerConfig {
        require_date: args.require_date,
        ..ServerConfig::default()
    };
    let server = DirectoryServer::bind(&args.listen, store, config)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = server.local_addr()?;

    let life = crate::signals::Lifetime::new();
    (life.tracker).spawn(server.run(life.shutdown.clone(), life.tracker.clone()));
    println!("s> init server {addr}");
    tracing::info!(%addr, store = %location, "directory ready");

    life.run_until_signal(args.grace).await;
    Ok(())
}

type Opened = (Arc<dyn meshfs_registry::Store>, String);

/// The embedded store: one SQLite file under the state directory.
async fn open_sqlite(state: Option<PathBuf>) -> anyhow::Result<Opened> {
    let state = match state {
        Some(dir) => dir,
        None => default_state_dir()?,
    };
    std::fs::create_dir_all(&state)
        .with_context(|| format!("cannot create {}", state.display()))?;
    let db = state.join("registry.sqlite3");
    let opening = db.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&opening))
        .await?
        .with_context(|| format!("cannot open the directory database {}", db.display()))?;
    Ok((Arc::new(store), db.display().to_string()))
}

/// The shared store; the schema is created or migrated before the first operation.
async fn open_postgres(url: String) -> anyhow::Result<Opened> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        anyhow::bail!(
            "--store takes postgres://USER[:PASSWORD]@HOST[:PORT]/DB (without it: SQLite under --state)"
        );
    }
    let config = meshfs_registry::PostgresConfig::new(url);
    let store = tokio::task::spawn_blocking(move || meshfs_registry::PostgresStore::open(config))
        .await?
        // The URL may hold a password: never in a message.
        .context("cannot open the directory's PostgreSQL database")?;
    Ok((Arc::new(store), "PostgreSQL".to_owned()))
}
