//! The pool against a tiny real TCP node that speaks just enough of the file-server protocol
//! (`hello`, `auth`) and records what it was sent, so each rule of the pool can be watched
//! from the node's side: connections accepted, passwords proven, connections closed.
//! (The end-to-end test against the real file server is `meshfs-server/tests/pool.rs`.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

/// What the fake node saw, and how it behaves.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    auths: Mutex<Vec<String>>,
    /// Close every connection right after its next reply (the node's idle timeout).
    close_after_reply: AtomicBool,
    /// Close new connections at once, before any reply.
    refuse: AtomicBool,
    /// Replies to `hello` wait for a permit (so a test can hold requests in flight).
    gate: Option<Arc<Semaphore>>,
}

async fn fake_node(seen: Arc<Seen>) -> String {
    fake_node_at(seen, "127.0.0.1:0").await
}

async fn fake_node_at(seen: Arc<Seen>, addr: &str) -> String {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            seen.accepted.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                if seen.refuse.load(Ordering::SeqCst) {
                    return;
                }
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let reply = match line.trim_end().split_once(' ') {
                        Some(("auth", "good")) => "0 ok\n",
                        Some(("auth", _)) => "6 wrong password\n",
                        _ if line.trim_end() == "hello" => {
                            if let Some(gate) = &seen.gate {
                                gate.acquire().await.unwrap().forget();
                            }
                            "0 meshfs 0.1.0 node=fake proto=1\n"
                        }
                        _ => "5 unknown request\n",
                    };
                    if let Some(("auth", pw)) = line.trim_end().split_once(' ') {
                        lock(&seen.auths).push(pw.to_owned());
                    }
                    if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    if seen.close_after_reply.load(Ordering::SeqCst) {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn config(max_connections: usize) -> PoolConfig {
    PoolConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        down_hold: Duration::from_secs(60),
        max_connections,
        max_idle: max_connections,
    }
}

async fn hello(pool: &Pool) -> Result<String, ClientError> {
    pool.hello().await.map(|i| i.name)
}

/// Wait (bounded) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn the_bound_is_respected_and_connections_are_reused() {
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(Seen {
        gate: Some(gate.clone()),
        ..Seen::default()
    });
    let pool = Pool::new(fake_node(seen.clone()).await, config(3));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { hello(&pool).await })
        })
        .collect();
    until("three connections out", || pool.in_use() == 3).await;
    until("three connections accepted", || {
        seen.accepted.load(Ordering::SeqCst) == 3
    })
    .await;
    gate.add_permits(10);
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "fake");
    }
    assert_eq!(
        seen.accepted.load(Ordering::SeqCst),
        3,
        "never more than the bound, and the rest reused"
    );
    assert_eq!((pool.in_use(), pool.idle()), (0, 3));
}

#[tokio::test]
async fn a_down_node_fails_fast_until_the_hold_ends() {
    // A port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let pool = Pool::new(
        addr.clone(),
        PoolConfig {
            down_hold: Duration::from_millis(300),
            ..config(2)
        },
    );
    let first = hello(&pool).await.unwrap_err();
    assert!(matches!(first, ClientError::Connect { .. }), "{first}");
    assert!(!first.to_string().contains("node is down"), "{first}");
    // The node comes up at that address, but the hold still answers for it: no attempt.
    let seen = Arc::new(Seen::default());
    fake_node_at(seen.clone(), &addr).await;
    let second = hello(&pool).await.unwrap_err();
    assert!(second.to_string().contains("node is down"), "{second}");
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 0);
    // After the hold, the pool connects again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(hello(&pool).await.unwrap(), "fake");
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stale_connection_is_retried_once_on_a_fresh_one() {
    let seen = Arc::new(Seen::default());
    let pool = Pool::new(fake_node(seen.clone()).await, config(2));
    // The node closes each connection after one reply, as if its idle timeout struck.
    seen.close_after_reply.store(true, Ordering::SeqCst);
    assert_eq!(hello(&pool).await.unwrap(), "fake");
    assert_eq!(pool.idle(), 1, "kept: the pool cannot know it died");
    assert_eq!(
        hello(&pool).await.unwrap(),
        "fake",
        "retried on a fresh one"
    );
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 2);

    // Retried once only: a node that drops every connection is an error, after two tries.
    seen.refuse.store(true, Ordering::SeqCst);
    let e = hello(&pool).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Closed { .. } | ClientError::Io { .. }),
        "{e}"
    );
    assert_eq!(
        seen.accepted.load(Ordering::SeqCst),
        3,
        "the idle one, then one fresh"
    );
    // A fresh connection failing is not retried at all.
    let e = hello(&pool).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Closed { .. } | ClientError::Io { .. }),
        "{e}"
    );
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn credentials_are_proven_on_every_new_connection() {
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(Seen {
        gate: Some(gate.clone()),
        ..Seen::default()
    });
    let addr = fake_node(seen.clone()).await;
    let pool = Pool::with_credentials(&addr, config(2), Credentials::password("good"));
    assert!(format!("{pool:?}").contains("authenticated: true"));
    assert!(!format!("{:?}", Credentials::password("good")).contains("good"));
    // Two requests at once: two connections, each proves the password.
    let (a, b) = (pool.clone(), pool.clone());
    let both = tokio::spawn(async move { tokio::join!(hello(&a), hello(&b)) });
    until("two connections", || {
        seen.accepted.load(Ordering::SeqCst) == 2
    })
    .await;
    gate.add_permits(3);
    let (a, b) = both.await.unwrap();
    assert_eq!((a.unwrap(), b.unwrap()), ("fake".into(), "fake".into()));
    assert_eq!(*lock(&seen.auths), ["good", "good"]);
    // A reused connection has proven it already.
    hello(&pool).await.unwrap();
    assert_eq!(lock(&seen.auths).len(), 2);

    // A refused password is the node's answer, not an outage: no down-hold.
    let wrong = Pool::with_credentials(&addr, config(2), Credentials::password("bad"));
    let e = hello(&wrong).await.unwrap_err();
    assert_eq!(e.remote_code(), Some(crate::proto::Code::AuthFailed));
    let e = wrong.fresh().await.unwrap_err();
    assert_eq!(e.remote_code(), Some(crate::proto::Code::AuthFailed), "{e}");

    // And `Client::connect_with` proves it too.
    let mut c = Client::connect_with(&addr, &Credentials::password("good"))
        .await
        .unwrap();
    gate.add_permits(1);
    c.hello().await.unwrap();
    assert_eq!(lock(&seen.auths).len(), 5);
}

#[tokio::test]
async fn a_dirty_connection_is_never_reused() {
    let seen = Arc::new(Seen::default());
    let pool = Pool::new(fake_node(seen.clone()).await, config(2));
    {
        // A request sent and its reply never read (the browser went away mid-body).
        let mut lease = pool.lease().await.unwrap();
        lease.client().send("hello");
        lease.client().flush().await.unwrap();
    }
    assert_eq!(pool.idle(), 0, "closed, not kept");
    assert_eq!(hello(&pool).await.unwrap(), "fake");
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 2);

    // A lease marked done after a full reply is kept, and `client()` makes it dirty again.
    let mut lease = pool.lease().await.unwrap();
    assert!(lease.is_reused());
    lease.client().hello().await.unwrap();
    lease.done();
    let _ = lease.client();
    drop(lease);
    assert_eq!(pool.idle(), 0);

    // The node's error is a complete reply: the connection stays usable.
    let e = pool
        .run(async |c| {
            c.send("nonsense");
            c.status().await
        })
        .await
        .unwrap_err();
    assert!(e.remote_code().is_some());
    assert_eq!(pool.idle(), 1);
    // A protocol error is not: the connection is dropped.
    let e = pool
        .run(async |c| -> Result<(), ClientError> {
            c.hello().await?;
            Err(ClientError::Protocol {
                addr: c.addr().to_owned(),
                what: "test".into(),
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Protocol { .. }));
    assert_eq!(pool.idle(), 0);
}

#[tokio::test]
async fn run_leased_keeps_the_connection_and_futures_are_send() {
    fn send<T: Send>(t: T) -> T {
        t
    }
    let seen = Arc::new(Seen::default());
    let pools = Pools::new(config(1));
    let addr = fake_node(seen.clone()).await;
    let pool = pools.get(&addr);
    let (name, mut lease) = send(pool.run_leased(async |c| c.hello().await))
        .await
        .unwrap();
    assert_eq!(name.name, "fake");
    assert_eq!(pool.in_use(), 1, "the lease holds its place in the bound");
    lease.client().hello().await.unwrap();
    lease.done();
    drop(lease);
    assert_eq!((pools.get(&addr).in_use(), pools.get(&addr).idle()), (0, 1));
    assert!(pools.remove(&addr).is_some());
    assert_eq!(pools.get(&addr).idle(), 0, "a new pool after remove");
}

/// Compiles only if the pool's futures are `Send` in the ways callers use them: spawned
/// tasks and axum handlers (see [`Pool::run`]'s note on captures).
#[allow(dead_code)]
fn futures_are_send_where_callers_need_it(pool: Pool, path: &'static str, n: u64) {
    let p = pool.clone();
    tokio::spawn(async move {
        let owned = String::from("x");
        let borrowed: &str = &owned;
        p.stat(borrowed).await?;
        p.ls(borrowed).await?;
        p.pread(borrowed, n, n).await?;
        p.hello().await?;
        p.stat_leased(path).await.map(drop)
    });
    tokio::spawn(async move {
        let owned = path.to_owned();
        pool.run(async move |c| c.stat(&owned).await).await?;
        pool.run(async move |c| {
            let mut b = Vec::new();
            c.pread("x", n, n, &mut b).await?;
            Ok(b)
        })
        .await
    });
}
