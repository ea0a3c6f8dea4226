//! `meshfs_core::Pool` and `Credentials` against the real file server: a node restarting under
//! pooled connections, a protected share reached with and without its password (also by a
//! download), and a connection abandoned mid-reply never handed out again.

use std::time::Duration;

use meshfs_core::access::Access;
use meshfs_core::proto::Code;
use meshfs_core::transfer::{self, DownloadOptions};
use meshfs_core::{ClientError, Credentials, Pool, PoolConfig, RemotePath, Share};
use meshfs_server::{Config, FileServer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A real file server on `addr` (port 0 for any); its address and what stops it.
async fn server(
    share: &Share,
    addr: &str,
    access: Option<Access>,
) -> (String, CancellationToken, TaskTracker) {
    let config = Config {
        name: "t".into(),
        idle_timeout: Duration::from_secs(60),
        max_connections: 16,
        ..Config::default()
    };
    let mut server = FileServer::bind(addr, share.clone(), config).await.unwrap();
    if let Some(access) = access {
        server = server.with_access(access);
    }
    let addr = server.local_addr().unwrap().to_string();
    let (stop, tracker) = (CancellationToken::new(), TaskTracker::new());
    tracker.spawn(server.run(stop.clone(), tracker.clone()));
    (addr, stop, tracker)
}

async fn stop((_, stop, tracker): (String, CancellationToken, TaskTracker)) {
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}

fn config() -> PoolConfig {
    PoolConfig {
        down_hold: Duration::from_millis(1),
        ..PoolConfig::default()
    }
}

fn folder() -> (tempfile::TempDir, Share) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"hello").unwrap();
    std::fs::write(dir.path().join("big"), vec![7u8; 4 << 20]).unwrap();
    let share = Share::open(dir.path()).unwrap();
    (dir, share)
}

#[tokio::test]
async fn pooled_connections_survive_a_node_restart() {
    let (_dir, share) = folder();
    let first = server(&share, "127.0.0.1:0", None).await;
    let addr = first.0.clone();
    let pool = Pool::new(&addr, config());
    let size = async |pool: &Pool| {
        pool.run(async |c| c.stat("a.txt").await)
            .await
            .map(|e| e.size)
    };
    assert_eq!(size(&pool).await.unwrap(), 5);
    assert_eq!(pool.idle(), 1);

    // The node restarts on the same address: the idle connection is dead, and the request
    // is retried on a fresh one.
    stop(first).await;
    let second = server(&share, &addr, None).await;
    assert_eq!(size(&pool).await.unwrap(), 5);
    let e = pool.run(async |c| c.stat("nope").await).await.unwrap_err();
    assert_eq!(e.remote_code(), Some(Code::NotFound));
    assert_eq!(
        pool.idle(),
        1,
        "a node's error leaves the connection usable"
    );

    // A node gone for good is an error, not a hang.
    stop(second).await;
    let e = size(&pool).await.unwrap_err();
    assert!(e.is_connection(), "{e}");
}

#[tokio::test]
async fn a_protected_share_is_reached_with_its_password() {
    let (dir, share) = folder();
    let access = Access::open();
    access.set_share_password("s3cret");
    let node = server(&share, "127.0.0.1:0", Some(access)).await;
    let addr = node.0.clone();

    let open = Pool::new(&addr, config());
    let e = open.run(async |c| c.stat("a.txt").await).await.unwrap_err();
    assert!(matches!(e, ClientError::Remote { .. }), "{e}");

    let pool = Pool::with_credentials(&addr, config(), Credentials::password("s3cret"));
    // Several connections at once, each authenticated on its own.
    let reads: Vec<_> = (0..4)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(async move |c| {
                    let mut buf = Vec::new();
                    c.pread("big", i << 20, 1 << 20, &mut buf).await?;
                    Ok(buf)
                })
                .await
            })
        })
        .collect();
    for r in reads {
        assert_eq!(r.await.unwrap().unwrap(), vec![7u8; 1 << 20]);
    }

    let wrong = Pool::with_credentials(&addr, config(), Credentials::password("nope"));
    let e = wrong.run(async |c| c.hello().await).await.unwrap_err();
    assert_eq!(e.remote_code(), Some(Code::AuthFailed), "{e}");

    // A download carries credentials too.
    let src: RemotePath = format!("meshfs://{addr}/a.txt").parse().unwrap();
    let dest = dir.path().join("copy.txt");
    let without = transfer::download(&src, &dest, &DownloadOptions::default(), &()).await;
    assert!(without.is_err());
    let opts = DownloadOptions {
        credentials: Credentials::password("s3cret"),
        ..DownloadOptions::default()
    };
    transfer::download(&src, &dest, &opts, &()).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
    stop(node).await;
}

#[tokio::test]
async fn a_connection_left_mid_reply_is_never_reused() {
    let (_dir, share) = folder();
    let node = server(&share, "127.0.0.1:0", None).await;
    let pool = Pool::new(
        &node.0,
        PoolConfig {
            max_connections: 1,
            ..config()
        },
    );
    {
        // A browser that went away after the first bytes of a 4 MiB read.
        let mut lease = pool.lease().await.unwrap();
        let c = lease.client();
        c.send(&format!("pread 0 {} big", 4 << 20));
        assert_eq!(c.data_header(4 << 20).await.unwrap(), 4 << 20);
    }
    assert_eq!((pool.idle(), pool.in_use()), (0, 0));
    // The next request sees its own reply, not the old one's tail.
    let entry = pool.run(async |c| c.stat("a.txt").await).await.unwrap();
    assert_eq!(entry.size, 5);

    // A lease kept across requests (one HTTP body, chunk by chunk) holds the only place.
    let (entry, mut lease) = pool
        .run_leased(async |c| c.stat("big").await)
        .await
        .unwrap();
    let waiting = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.run(async |c| c.hello().await).await })
    };
    let mut got = 0;
    while got < entry.size {
        let mut buf = Vec::new();
        got += lease
            .client()
            .pread("big", got, 1 << 20, &mut buf)
            .await
            .unwrap();
        lease.done();
    }
    assert!(!waiting.is_finished(), "the bound of one holds it back");
    drop(lease);
    assert_eq!(waiting.await.unwrap().unwrap().name, "t");
    assert_eq!(pool.idle(), 1);
    stop(node).await;
}

#[tokio::test]
async fn a_follower_proves_its_credentials_on_every_connection() {
    use meshfs_core::events::Events;
    use meshfs_core::follow::{Follower, Notice};

    let (dir, share) = folder();
    let access = Access::open();
    access.set_share_password("s3cret");
    let events = Events::new(64);
    let _guard = events.watch(dir.path()).unwrap();
    let config = Config {
        name: "t".into(),
        ..Config::default()
    };
    let server = FileServer::bind("127.0.0.1:0", share, config)
        .await
        .unwrap()
        .with_access(access)
        .with_events(events);
    let addr = server.local_addr().unwrap().to_string();
    let (stop, tracker) = (CancellationToken::new(), TaskTracker::new());
    tracker.spawn(server.run(stop.clone(), tracker.clone()));
    let next = async |f: &mut Follower| {
        tokio::time::timeout(Duration::from_secs(10), f.next())
            .await
            .expect("a notice")
    };

    let mut anonymous = Follower::new(addr.clone(), None);
    assert!(matches!(
        next(&mut anonymous).await,
        Notice::Disconnected { .. }
    ));
    let mut follower =
        Follower::new(addr.clone(), None).with_credentials(Credentials::password("s3cret"));
    assert_eq!(
        next(&mut follower).await,
        Notice::Connected { name: "t".into() }
    );
    std::fs::write(dir.path().join("new.txt"), b"x").unwrap();
    loop {
        match next(&mut follower).await {
            Notice::Event(e) if e.path == "new.txt" => break,
            Notice::Event(_) => {}
            other => panic!("{other:?}"),
        }
    }
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}
