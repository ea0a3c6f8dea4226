//! Benchmark of the directory server over loopback (registry.md, issue 6):
//! a directory of USERS users with FILES files each, all connected, then
//! - the time of `LIST_USERS` (every connected user) and `LIST_CONTENT` (one user's files),
//!   median and worst of REPEAT runs, each a full round trip on a new connection;
//! - operations per second with CLIENTS concurrent clients, for writes (`PUBLISH` + `DELETE`,
//!   each fsynced) and reads (`LIST_CONTENT`).
//!
//! Run through `bench/registry.sh` (release build). Arguments: `[USERS] [FILES] [CLIENTS]`,
//! defaults 10000 100 100. The database is filled directly (one transaction) because loading a
//! million files through the protocol, one fsync each, would measure the disk for an hour.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meshfs_registry::client::Answer;
use meshfs_registry::{DirectoryClient, DirectoryServer, ServerConfig, SqliteStore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const REPEAT: usize = 30;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Fill the database file (already created with its schema by `SqliteStore::open`).
fn fill(path: &std::path::Path, users: usize, files: usize) -> rusqlite::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
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
                format!("user{u:05}"),
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

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    format!(
        "median {:.2} ms, worst {:.2} ms",
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap())
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let (users, files, clients) = (arg(1, 10_000), arg(2, 100), arg(3, 100));
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("registry.sqlite3");
    drop(SqliteStore::open(&db).expect("create the schema"));
    let started = Instant::now();
    fill(&db, users, files).expect("fill the directory");
    println!(
        "directory: {users} users x {files} files, filled in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let store = Arc::new(SqliteStore::open(&db).expect("open"));
    let server = DirectoryServer::bind("127.0.0.1:0", store, ServerConfig::default())
        .await
        .expect("bind");
    let addr = server.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));
    let client = DirectoryClient::new(addr.clone());

    let mut list_users = Vec::new();
    for _ in 0..REPEAT {
        let t = Instant::now();
        let Ok(Answer::Ok(listed)) = client.list_users("user00000").await else {
            panic!("LIST_USERS failed")
        };
        list_users.push(t.elapsed());
        assert_eq!(listed.len(), users);
    }
    println!("LIST_USERS ({users} users):      {}", summary(list_users));

    let mut list_content = Vec::new();
    for i in 0..REPEAT {
        let target = format!("user{:05}", (i * 7919) % users);
        let t = Instant::now();
        let Ok(Answer::Ok(listed)) = client.list_content("user00000", &target).await else {
            panic!("LIST_CONTENT failed")
        };
        list_content.push(t.elapsed());
        assert_eq!(listed.len(), files);
    }
    println!(
        "LIST_CONTENT ({files} files):      {}",
        summary(list_content)
    );

    // Throughput: CLIENTS tasks, each on its own connections, for a fixed time.
    for (kind, write) in [("PUBLISH+DELETE", true), ("LIST_CONTENT", false)] {
        let window = Duration::from_secs(5);
        let deadline = Instant::now() + window;
        let mut tasks = Vec::new();
        for c in 0..clients {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let user = format!("user{:05}", c % users);
                let mut ops = 0u64;
                let mut i = 0u64;
                while Instant::now() < deadline {
                    if write {
                        let name = format!("bench/{c}-{i}");
                        assert_eq!(client.publish(&user, &name, "bench").await.unwrap(), 0);
                        assert_eq!(client.delete(&user, &name).await.unwrap(), 0);
                        ops += 2;
                    } else {
                        let Ok(Answer::Ok(_)) = client.list_content(&user, &user).await else {
                            panic!()
                        };
                        ops += 1;
                    }
                    i += 1;
                }
                ops
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        println!(
            "{kind} with {clients} clients: {:.0} ops/s ({total} ops in {:.1} s)",
            total as f64 / window.as_secs_f64(),
            window.as_secs_f64()
        );
    }
    shutdown.cancel();
}
