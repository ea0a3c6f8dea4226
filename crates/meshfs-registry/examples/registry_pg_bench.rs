//! The directory's stores side by side (issue 18): the same directory of USERS users with
//! FILES files each, all connected, served over loopback by
//! - one instance on the embedded SQLite store,
//! - one instance on PostgreSQL,
//! - two instances on the same PostgreSQL, the clients spread over both;
//!
//! and for each: `LIST_USERS` and `LIST_CONTENT` latency from one client (median of REPEAT),
//! then with CLIENTS concurrent clients for a fixed window each, operations per second and
//! their latency (median, 99th percentile), and the same for fsynced writes (`PUBLISH` then
//! `DELETE`).
//!
//! Run through `bench/registry_pg.sh`, which starts a throw-away PostgreSQL and passes its URL.
//! Arguments: `USERS FILES CLIENTS PG_URL`. Both databases are filled directly, in bulk,
//! because loading millions of files through the protocol would measure the disk for hours.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meshfs_registry::client::Answer;
use meshfs_registry::{
    DirectoryClient, DirectoryServer, PostgresConfig, PostgresStore, ServerConfig, SqliteStore,
    Store,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const REPEAT: usize = 15;
const WINDOW: Duration = Duration::from_secs(5);

fn arg(n: usize) -> Option<String> {
    std::env::args().nth(n)
}

fn number(n: usize, default: usize) -> usize {
    arg(n).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// Fill the SQLite file (its schema made by `SqliteStore::open`) in one transaction.
fn fill_sqlite(path: &std::path::Path, users: usize, files: usize) -> rusqlite::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    {
        let mut user = tx.prepare(
            "INSERT INTO users (id, name, connected, ip, port) VALUES (?1, ?2, 1, '127.0.0.1', ?3)",
        )?;
        let mut file =
            tx.prepare("INSERT INTO files (user_id, name, description) VALUES (?1, ?2, ?3)")?;
        for u in 0..users {
            let id = u as i64 + 1;
            user.execute(rusqlite::params![
                id,
                format!("user{u:06}"),
                10_000 + (u % 50_000)
            ])?;
            for f in 0..files {
                file.execute(rusqlite::params![
                    id,
                    format!("cam/clip{f:03}.mp4"),
                    "1048576 bytes video/mp4"
                ])?;
            }
        }
    }
    tx.commit()
}

/// Fill the PostgreSQL tables (made by `PostgresStore::open`) with server-side generated rows.
async fn fill_postgres(url: &str, users: usize, files: usize) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "TRUNCATE meshfs_users CASCADE;
             -- bulk load: skip the per-row foreign-key triggers (the rows are consistent)
             SET session_replication_role = replica;
             SET synchronous_commit = off;
             INSERT INTO meshfs_users (name, connected, ip, port)
                 SELECT 'user' || lpad(g::text, 6, '0'), true, '127.0.0.1', 10000 + g % 50000
                 FROM generate_series(0, {last_user}) g;
             INSERT INTO meshfs_files (user_id, name, description)
                 SELECT u.id, 'cam/clip' || lpad(f::text, 3, '0') || '.mp4',
                        '1048576 bytes video/mp4'
                 FROM meshfs_users u, generate_series(0, {last_file}) f;
             SET session_replication_role = origin;",
            last_user = users - 1,
            last_file = files.max(1) - 1,
        ))
        .await?;
    // Each on its own: none may run inside the one transaction of a multi-statement batch.
    for sql in [
        "VACUUM ANALYZE meshfs_users",
        "VACUUM ANALYZE meshfs_files",
        "CHECKPOINT",
    ] {
        client.batch_execute(sql).await?;
    }
    Ok(())
}

/// Percentile `p` (0..=100) of sorted times, in ms.
fn pct(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) * p) / 100;
    sorted[i].as_secs_f64() * 1000.0
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    ListUsers,
    ListContent,
    Writes,
}

/// Ops/s, median and p99 in ms of `kind` with `clients` clients over `addrs` (round robin).
async fn load(
    addrs: &[String],
    kind: Kind,
    clients: usize,
    users: usize,
    files: usize,
) -> (f64, f64, f64) {
    let deadline = Instant::now() + WINDOW;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = DirectoryClient::new(addrs[c % addrs.len()].clone())
            .with_timeout(Duration::from_secs(120));
        tasks.push(tokio::spawn(async move {
            let me = format!("user{:06}", c % users);
            let mut times = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match kind {
                    Kind::ListUsers => {
                        let Ok(Answer::Ok(listed)) = client.list_users(&me).await else {
                            panic!("LIST_USERS failed")
                        };
                        assert_eq!(listed.len(), users);
                    }
                    Kind::ListContent => {
                        let target = format!("user{:06}", (c * 7919 + i as usize) % users);
                        let Ok(Answer::Ok(listed)) = client.list_content(&me, &target).await else {
                            panic!("LIST_CONTENT failed")
                        };
                        assert_eq!(listed.len(), files);
                    }
                    Kind::Writes => {
                        let name = format!("bench/{c}-{i}");
                        assert_eq!(client.publish(&me, &name, "bench").await.unwrap(), 0);
                        times.push(t.elapsed());
                        let t = Instant::now();
                        assert_eq!(client.delete(&me, &name).await.unwrap(), 0);
                        times.push(t.elapsed());
                        i += 1;
                        continue;
                    }
                }
                times.push(t.elapsed());
                i += 1;
            }
            times
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / elapsed, pct(&all, 50), pct(&all, 99))
}

/// One client, REPEAT times, median in ms.
async fn alone(addr: &str, kind: Kind, users: usize) -> f64 {
    let client = DirectoryClient::new(addr.to_owned()).with_timeout(Duration::from_secs(120));
    let mut times = Vec::new();
    for i in 0..REPEAT {
        let t = Instant::now();
        let ok = match kind {
            Kind::ListUsers => matches!(client.list_users("user000000").await, Ok(Answer::Ok(_))),
            _ => {
                let target = format!("user{:06}", (i * 7919) % users);
                matches!(
                    client.list_content("user000000", &target).await,
                    Ok(Answer::Ok(_))
                )
            }
        };
        assert!(ok, "listing failed");
        times.push(t.elapsed());
    }
    times.sort();
    pct(&times, 50)
}

async fn serve(stores: Vec<Arc<dyn Store>>, shutdown: &CancellationToken) -> Vec<String> {
    let mut addrs = Vec::new();
    for store in stores {
        let config = ServerConfig {
            reply_timeout: Duration::from_secs(120),
            max_connections: 4096,
            ..ServerConfig::default()
        };
        let server = DirectoryServer::bind("127.0.0.1:0", store, config)
            .await
            .expect("bind");
        addrs.push(server.local_addr().unwrap().to_string());
        tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));
    }
    addrs
}

#[tokio::main]
async fn main() {
    let (users, files, clients) = (number(1, 100_000), number(2, 100), number(3, 100));
    let url = arg(4).expect("usage: registry_pg_bench USERS FILES CLIENTS POSTGRES_URL");
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("registry.sqlite3");

    drop(SqliteStore::open(&db).expect("create the SQLite schema"));
    let t = Instant::now();
    let filling = db.clone();
    tokio::task::spawn_blocking(move || fill_sqlite(&filling, users, files))
        .await
        .unwrap()
        .expect("fill SQLite");
    println!(
        "SQLite filled: {users} users x {files} files in {:.0} s",
        t.elapsed().as_secs_f64()
    );

    let pg_store = |url: String| async move {
        let mut config = PostgresConfig::new(url);
        config.max_connections = 32;
        config.op_timeout = Duration::from_secs(120);
        let store = tokio::task::spawn_blocking(move || PostgresStore::open(config))
            .await
            .unwrap()
            .expect("open the PostgreSQL store");
        Arc::new(store) as Arc<dyn Store>
    };
    drop(pg_store(url.clone()).await);
    let t = Instant::now();
    fill_postgres(&url, users, files)
        .await
        .expect("fill PostgreSQL");
    println!(
        "PostgreSQL filled: {users} users x {files} files in {:.0} s",
        t.elapsed().as_secs_f64()
    );

    let setups: Vec<(&str, Vec<Arc<dyn Store>>)> = vec![
        (
            "SQLite, 1 instance",
            vec![Arc::new(SqliteStore::open(&db).expect("open SQLite"))],
        ),
        ("PostgreSQL, 1 instance", vec![pg_store(url.clone()).await]),
        (
            "PostgreSQL, 2 instances",
            vec![pg_store(url.clone()).await, pg_store(url.clone()).await],
        ),
    ];
    let mut rows = Vec::new();
    for (name, stores) in setups {
        eprintln!("measuring {name}");
        let shutdown = CancellationToken::new();
        let addrs = serve(stores, &shutdown).await;
        let lu_alone = alone(&addrs[0], Kind::ListUsers, users).await;
        let lc_alone = alone(&addrs[0], Kind::ListContent, users).await;
        let lu = load(&addrs, Kind::ListUsers, clients, users, files).await;
        let lc = load(&addrs, Kind::ListContent, clients, users, files).await;
        let w = load(&addrs, Kind::Writes, clients, users, files).await;
        shutdown.cancel();
        rows.push(format!(
            "| {name} | {lu_alone:.1} | {:.0} | {:.0} / {:.0} | {lc_alone:.2} | {:.0} | {:.1} / {:.1} | {:.0} | {:.1} / {:.1} |",
            lu.0, lu.1, lu.2, lc.0, lc.1, lc.2, w.0, w.1, w.2
        ));
    }
    println!();
    println!(
        "{users} users x {files} files, {clients} clients, {}-s windows; latencies in ms",
        WINDOW.as_secs()
    );
    println!();
    println!(
        "| store | LIST_USERS alone | LIST_USERS ops/s | p50 / p99 | LIST_CONTENT alone | LIST_CONTENT ops/s | p50 / p99 | PUBLISH+DELETE ops/s | p50 / p99 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        println!("{row}");
    }
}
