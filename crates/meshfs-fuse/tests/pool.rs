//! The mount's node requests on `meshfs_core::Pool`, against a real file server (in-process,
//! loopback): requests work, a restarted node is reached again through a fresh connection, a
//! node that is down fails fast, a silent one times out.

use std::time::{Duration, Instant};

use meshfs_core::{Kind, Pool, PoolConfig, Share};
use meshfs_fuse::requests::{hello, ls, pread, stat};
use meshfs_server::{Config, FileServer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Node {
    shutdown: CancellationToken,
    tracker: TaskTracker,
    addr: String,
}

async fn start(share: &Share, addr: &str) -> Node {
    let server = FileServer::bind(addr, share.clone(), Config::default())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
    tracker.spawn(server.run(shutdown.clone(), tracker.clone()));
    Node {
        shutdown,
        tracker,
        addr,
    }
}

async fn stop(node: Node) {
    node.shutdown.cancel();
    node.tracker.close();
    tokio::time::timeout(Duration::from_secs(10), node.tracker.wait())
        .await
        .expect("node stops");
}

fn config() -> PoolConfig {
    PoolConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        down_hold: Duration::from_millis(300),
        max_connections: 4,
        max_idle: 4,
    }
}

#[tokio::test]
async fn requests_survive_a_node_restart_and_fail_fast_while_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    std::fs::write(dir.path().join("d/f.bin"), b"0123456789").unwrap();
    let share = Share::open(dir.path()).unwrap();
    let node = start(&share, "127.0.0.1:0").await;
    let addr = node.addr.clone();
    let pool = Pool::new(addr.clone(), config());

    assert_eq!(stat(&pool, "d/f.bin").await.unwrap().size, 10);
    let listing = ls(&pool, "d").await.unwrap();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].kind, Kind::File);
    assert_eq!(pread(&pool, "d/f.bin", 3, 4).await.unwrap(), b"3456");
    assert_eq!(pread(&pool, "d/f.bin", 8, 100).await.unwrap(), b"89");
    let missing = stat(&pool, "nope").await.unwrap_err();
    assert!(
        !missing.is_connection(),
        "a node's answer is not a connection error"
    );
    assert_eq!(
        pread(&pool, "d/f.bin", 0, 1).await.unwrap(),
        b"0",
        "the connection stayed usable"
    );

    // Down: the first request finds the pooled connection dead and cannot reconnect.
    stop(node).await;
    assert!(stat(&pool, "d/f.bin").await.unwrap_err().is_connection());
    // Held down: the next one fails without even trying.
    let start_at = Instant::now();
    assert!(stat(&pool, "d/f.bin").await.is_err());
    assert!(start_at.elapsed() < Duration::from_millis(100));

    // Back on the same port: after the hold, requests succeed on a fresh connection.
    let node = start(&share, &addr).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match pread(&pool, "d/f.bin", 0, 10).await {
            Ok(data) => {
                assert_eq!(data, b"0123456789");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "never recovered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(node).await;
}

#[tokio::test]
async fn a_restart_between_requests_is_invisible_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"abc").unwrap();
    let share = Share::open(dir.path()).unwrap();
    let node = start(&share, "127.0.0.1:0").await;
    let addr = node.addr.clone();
    let pool = Pool::new(addr.clone(), config());
    assert_eq!(pread(&pool, "f", 0, 3).await.unwrap(), b"abc");
    stop(node).await;
    let node = start(&share, &addr).await;
    // The pooled connection is dead; the pool retries once on a new one, without an error.
    assert_eq!(pread(&pool, "f", 0, 3).await.unwrap(), b"abc");
    stop(node).await;
}

#[tokio::test]
async fn a_node_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let pool = Pool::new(addr, config());
    let start_at = Instant::now();
    let e = hello(&pool).await.unwrap_err();
    assert!(e.is_connection(), "{e}");
    let took = start_at.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    holder.abort();
}
