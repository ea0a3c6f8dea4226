//! The directory server over real sockets, byte for byte (registry.md): every operation and
//! result code, the date variant, malformed requests, and concurrent clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshfs_registry::{DirectoryServer, ServerConfig, SqliteStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Directory {
    addr: SocketAddr,
    store: Arc<SqliteStore>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(config: ServerConfig) -> Directory {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("registry.sqlite3")).unwrap());
    let server = DirectoryServer::bind("127.0.0.1:0", store.clone(), config)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));
    Directory {
        addr,
        store,
        shutdown,
        _dir: dir,
    }
}

/// NUL-terminate each field.
fn msg(fields: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(f.as_bytes());
        out.push(0);
    }
    out
}

/// Send raw bytes, half-close, and read the whole reply.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.shutdown().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply))
        .await
        .expect("reply within 5 s")
        .unwrap();
    reply
}

async fn call(addr: SocketAddr, fields: &[&str]) -> Vec<u8> {
    raw(addr, &msg(fields)).await
}

/// Result byte followed by NUL-terminated fields.
fn reply(code: u8, fields: &[&str]) -> Vec<u8> {
    let mut out = vec![code];
    out.extend(msg(fields));
    out
}

#[tokio::test]
async fn every_operation_and_result_code() {
    let d = start(ServerConfig::default()).await;
    let a = d.addr;
    // REGISTER: 0 ok, 1 in use, 2 error (a name the shell could never type).
    assert_eq!(call(a, &["REGISTER", "alice"]).await, [0]);
    assert_eq!(call(a, &["REGISTER", "alice"]).await, [1]);
    assert_eq!(call(a, &["REGISTER", ""]).await, [2]);
    assert_eq!(call(a, &["REGISTER", "two words"]).await, [2]);
    assert_eq!(call(a, &["REGISTER", "bob"]).await, [0]);
    assert_eq!(call(a, &["REGISTER", "carol"]).await, [0]);
    // UNREGISTER: 1 unknown user.
    assert_eq!(call(a, &["UNREGISTER", "nobody"]).await, [1]);
    // CONNECT: 1 unknown, 0 ok, 2 already connected, 3 error (bad port).
    assert_eq!(call(a, &["CONNECT", "nobody", "5000"]).await, [1]);
    assert_eq!(call(a, &["CONNECT", "alice", "5000"]).await, [0]);
    assert_eq!(call(a, &["CONNECT", "alice", "5001"]).await, [2]);
    assert_eq!(call(a, &["CONNECT", "bob", "port"]).await, [3]);
    assert_eq!(call(a, &["CONNECT", "bob", "70000"]).await, [3]);
    assert_eq!(call(a, &["CONNECT", "bob", "0"]).await, [3]);
    // PUBLISH: 1 unknown, 2 not connected, 0 ok, 3 already published, 4 error.
    assert_eq!(call(a, &["PUBLISH", "nobody", "f1", "d"]).await, [1]);
    assert_eq!(call(a, &["PUBLISH", "bob", "f1", "d"]).await, [2]);
    assert_eq!(
        call(a, &["PUBLISH", "alice", "f1", "first file"]).await,
        [0]
    );
    assert_eq!(call(a, &["PUBLISH", "alice", "f1", "again"]).await, [3]);
    // File names are real names, spaces included; only an empty one is refused.
    assert_eq!(call(a, &["PUBLISH", "alice", "has space", "d"]).await, [0]);
    assert_eq!(call(a, &["DELETE", "alice", "has space"]).await, [0]);
    assert_eq!(call(a, &["PUBLISH", "alice", "", "d"]).await, [4]);
    assert_eq!(
        d.store.file_info("alice", "f1").unwrap().unwrap().0,
        "first file"
    );
    // DELETE: 1 unknown, 2 not connected, 3 not published, 0 ok.
    assert_eq!(call(a, &["DELETE", "nobody", "f1"]).await, [1]);
    assert_eq!(call(a, &["DELETE", "bob", "f1"]).await, [2]);
    assert_eq!(call(a, &["DELETE", "alice", "nothing"]).await, [3]);
    assert_eq!(call(a, &["DELETE", "alice", "f1"]).await, [0]);
    assert_eq!(call(a, &["DELETE", "alice", "f1"]).await, [3]);
    assert_eq!(call(a, &["PUBLISH", "alice", "f2", "second"]).await, [0]);
    assert_eq!(call(a, &["PUBLISH", "alice", "f1", "first"]).await, [0]);
    // LIST_USERS: 1 unknown, 2 not connected, 0 then count and name/ip/port triples.
    assert_eq!(call(a, &["LIST_USERS", "nobody"]).await, [1]);
    assert_eq!(call(a, &["LIST_USERS", "bob"]).await, [2]);
    assert_eq!(
        call(a, &["LIST_USERS", "alice"]).await,
        reply(0, &["1", "alice", "127.0.0.1", "5000"])
    );
    assert_eq!(call(a, &["CONNECT", "bob", "6000"]).await, [0]);
    assert_eq!(
        call(a, &["LIST_USERS", "bob"]).await,
        reply(
            0,
            &[
                "2",
                "alice",
                "127.0.0.1",
                "5000",
                "bob",
                "127.0.0.1",
                "6000"
            ]
        )
    );
    // LIST_CONTENT: 1 unknown, 2 not connected, 3 target unknown, 0 then count and names.
    assert_eq!(call(a, &["LIST_CONTENT", "nobody", "alice"]).await, [1]);
    assert_eq!(call(a, &["LIST_CONTENT", "carol", "alice"]).await, [2]);
    assert_eq!(call(a, &["LIST_CONTENT", "bob", "nobody"]).await, [3]);
    assert_eq!(
        call(a, &["LIST_CONTENT", "bob", "alice"]).await,
        reply(0, &["2", "f1", "f2"])
    );
    assert_eq!(
        call(a, &["LIST_CONTENT", "bob", "bob"]).await,
        reply(0, &["0"])
    );
    // DISCONNECT: 1 unknown, 2 not connected, 0 ok; files stay, hidden until reconnected.
    assert_eq!(call(a, &["DISCONNECT", "nobody"]).await, [1]);
    assert_eq!(call(a, &["DISCONNECT", "carol"]).await, [2]);
    assert_eq!(call(a, &["DISCONNECT", "alice"]).await, [0]);
    assert_eq!(call(a, &["DISCONNECT", "alice"]).await, [2]);
    assert_eq!(
        call(a, &["LIST_CONTENT", "bob", "alice"]).await,
        reply(0, &["0"])
    );
    assert_eq!(
        call(a, &["LIST_USERS", "bob"]).await,
        reply(0, &["1", "bob", "127.0.0.1", "6000"])
    );
    assert_eq!(call(a, &["CONNECT", "alice", "5002"]).await, [0]);
    assert_eq!(
        call(a, &["LIST_CONTENT", "bob", "alice"]).await,
        reply(0, &["2", "f1", "f2"])
    );
    // UNREGISTER removes the files too.
    assert_eq!(call(a, &["UNREGISTER", "alice"]).await, [0]);
    assert_eq!(call(a, &["LIST_CONTENT", "bob", "alice"]).await, [3]);
    assert_eq!(call(a, &["REGISTER", "alice"]).await, [0]);
    assert_eq!(call(a, &["CONNECT", "alice", "5003"]).await, [0]);
    assert_eq!(
        call(a, &["LIST_CONTENT", "bob", "alice"]).await,
        reply(0, &["0"])
    );
}

#[tokio::test]
async fn date_variant_is_recognised_and_recorded() {
    let d = start(ServerConfig::default()).await;
    let a = d.addr;
    let date = "21/11/2026 23:59:01";
    assert_eq!(call(a, &["REGISTER", date, "dan"]).await, [0]);
    assert_eq!(d.store.last_date("dan").unwrap().as_deref(), Some(date));
    assert_eq!(
        call(a, &["CONNECT", "22/11/2026 00:00:00", "dan", "7000"]).await,
        [0]
    );
    assert_eq!(
        call(
            a,
            &[
                "PUBLISH",
                "22/11/2026 00:00:05",
                "dan",
                "clip.mp4",
                "a clip"
            ]
        )
        .await,
        [0]
    );
    let (description, file_date) = d.store.file_info("dan", "clip.mp4").unwrap().unwrap();
    assert_eq!(description, "a clip");
    assert_eq!(file_date.as_deref(), Some("22/11/2026 00:00:05"));
    assert_eq!(
        call(a, &["LIST_USERS", "22/11/2026 00:00:06", "dan"]).await,
        reply(0, &["1", "dan", "127.0.0.1", "7000"])
    );
    assert_eq!(
        d.store.last_date("dan").unwrap().as_deref(),
        Some("22/11/2026 00:00:06")
    );
    assert_eq!(
        call(a, &["LIST_CONTENT", "22/11/2026 00:00:07", "dan", "dan"]).await,
        reply(0, &["1", "clip.mp4"])
    );
    assert_eq!(
        call(a, &["DELETE", "22/11/2026 00:00:08", "dan", "clip.mp4"]).await,
        [0]
    );
    assert_eq!(
        call(a, &["DISCONNECT", "22/11/2026 00:00:09", "dan"]).await,
        [0]
    );
    assert_eq!(
        d.store.last_date("dan").unwrap().as_deref(),
        Some("22/11/2026 00:00:09")
    );
    assert_eq!(
        call(a, &["UNREGISTER", "22/11/2026 00:00:10", "dan"]).await,
        [0]
    );
    // Not quite the shape: an ordinary field (here, a user name that does not exist).
    assert_eq!(call(a, &["UNREGISTER", "22/11/2026 00:00"]).await, [1]);
}

#[tokio::test]
async fn fields_longer_than_256_bytes_fail() {
    let d = start(ServerConfig::default()).await;
    let max = "u".repeat(256);
    assert_eq!(call(d.addr, &["REGISTER", &max]).await, [0]);
    let long = "u".repeat(257);
    assert_eq!(call(d.addr, &["REGISTER", &long]).await, [2]);
    assert_eq!(
        call(d.addr, &["CONNECT", &max, &"9".repeat(300)]).await,
        [3]
    );
    // A megabyte with no NUL at all: refused after 257 bytes, the reply still arrives.
    let mut flood = msg(&["PUBLISH", &max, "f"]);
    flood.extend(std::iter::repeat_n(b'x', 1 << 20));
    assert_eq!(raw(d.addr, &flood).await, [4]);
    // An over-long operation name is an unknown operation.
    assert_eq!(call(d.addr, &[&"R".repeat(300), "x"]).await, [255]);
}

#[tokio::test]
async fn missing_nul_before_close_fails() {
    let d = start(ServerConfig::default()).await;
    let started = Instant::now();
    assert_eq!(raw(d.addr, b"REGISTER\0alice").await, [2]);
    assert_eq!(raw(d.addr, b"LIST_CONTENT\0alice\0bob").await, [4]);
    assert_eq!(raw(d.addr, b"DISCONNECT\0").await, [3]);
    assert_eq!(raw(d.addr, b"REGIS").await, [255]);
    assert_eq!(raw(d.addr, b"").await, [255]);
    assert_eq!(d.store.last_date("alice").unwrap(), None);
    // Answered at the close, not after the 2 s of silence.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_stalled_client_is_answered_within_two_seconds_and_blocks_nobody() {
    let d = start(ServerConfig::default()).await;
    let mut stalled = TcpStream::connect(d.addr).await.unwrap();
    stalled
        .write_all(&msg(&["PUBLISH", "alice"]))
        .await
        .unwrap();
    let started = Instant::now();
    // Meanwhile other clients are served at once.
    assert_eq!(call(d.addr, &["REGISTER", "alice"]).await, [0]);
    assert!(started.elapsed() < Duration::from_millis(1500));
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(6), stalled.read_to_end(&mut reply))
        .await
        .expect("stalled client answered")
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(reply, [4]);
    assert!(
        waited >= Duration::from_millis(1900),
        "answered too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(5000),
        "answered too late: {waited:?}"
    );
}

#[tokio::test]
async fn a_trickling_client_hits_the_request_deadline() {
    let config = ServerConfig {
        request_deadline: Duration::from_millis(1500),
        ..ServerConfig::default()
    };
    let d = start(config).await;
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(b"REGISTER\0").await.unwrap();
    let started = Instant::now();
    let mut reply = [0u8; 1];
    // One byte every 300 ms: never 2 s of silence, but the whole request takes too long.
    let read = async {
        let (mut r, mut w) = s.split();
        let trickle = async {
            for _ in 0..20 {
                if w.write_all(b"a").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        };
        tokio::select! {
            res = r.read_exact(&mut reply) => res.map(drop),
            _ = trickle => Ok(()),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, [2]);
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(5000), "{waited:?}");
}

#[tokio::test]
async fn invalid_utf8_fails_with_each_operations_error_code() {
    let d = start(ServerConfig::default()).await;
    let cases: [(&str, u8); 8] = [
        ("REGISTER", 2),
        ("UNREGISTER", 2),
        ("CONNECT", 3),
        ("DISCONNECT", 3),
        ("PUBLISH", 4),
        ("DELETE", 4),
        ("LIST_USERS", 3),
        ("LIST_CONTENT", 4),
    ];
    for (op, code) in cases {
        let mut bytes = msg(&[op]);
        bytes.extend_from_slice(b"\xff\xfe\x00x\x00y\x00");
        assert_eq!(raw(d.addr, &bytes).await, [code], "{op}");
    }
    assert_eq!(raw(d.addr, b"REG\xffISTER\0x\0").await, [255]);
}

#[tokio::test]
async fn unknown_operations_are_refused() {
    let d = start(ServerConfig::default()).await;
    assert_eq!(call(d.addr, &["FOO", "bar"]).await, [255]);
    assert_eq!(call(d.addr, &["register", "lowercase"]).await, [255]);
    assert_eq!(call(d.addr, &["GET_FILE", "x"]).await, [255]);
    assert_eq!(call(d.addr, &["REGISTER", "ok"]).await, [0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_clients_leave_an_exact_state() {
    let d = start(ServerConfig::default()).await;
    let a = d.addr;
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        tasks.push(tokio::spawn(async move {
            let user = format!("user{i:03}");
            let port = (10_000 + i).to_string();
            let file = format!("file{i:03}");
            [
                call(a, &["REGISTER", &user]).await,
                call(a, &["CONNECT", &user, &port]).await,
                call(a, &["PUBLISH", &user, &file, "some description"]).await,
                call(a, &["PUBLISH", &user, "common", "shared name"]).await,
                // Everyone races for the same name: exactly one wins.
                call(a, &["REGISTER", "contested"]).await,
            ]
        }));
    }
    let mut contested_wins = 0;
    for t in tasks {
        let replies = t.await.unwrap();
        assert_eq!(replies[..4], [vec![0], vec![0], vec![0], vec![0]]);
        match replies[4][..] {
            [0] => contested_wins += 1,
            [1] => {}
            ref other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(contested_wins, 1);
    let mut expected = vec!["200".to_owned()];
    for i in 0..200u32 {
        expected.extend([
            format!("user{i:03}"),
            "127.0.0.1".into(),
            (10_000 + i).to_string(),
        ]);
    }
    let fields: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(call(a, &["LIST_USERS", "user000"]).await, reply(0, &fields));
    for i in [0u32, 57, 199] {
        let user = format!("user{i:03}");
        let file = format!("file{i:03}");
        assert_eq!(
            call(a, &["LIST_CONTENT", "user000", &user]).await,
            reply(0, &["2", "common", &file])
        );
    }
}

#[tokio::test]
async fn state_survives_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite3");
    let addr;
    {
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        let server = DirectoryServer::bind("127.0.0.1:0", store, ServerConfig::default())
            .await
            .unwrap();
        addr = server.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(server.run(shutdown.clone(), tracker.clone()));
        assert_eq!(call(addr, &["REGISTER", "eve"]).await, [0]);
        assert_eq!(call(addr, &["CONNECT", "eve", "4444"]).await, [0]);
        assert_eq!(
            call(
                addr,
                &["PUBLISH", "eve", "notes.txt", "12 bytes text/plain"]
            )
            .await,
            [0]
        );
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let server = DirectoryServer::bind("127.0.0.1:0", store, ServerConfig::default())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));
    assert_eq!(
        call(addr, &["LIST_USERS", "eve"]).await,
        reply(0, &["1", "eve", "127.0.0.1", "4444"])
    );
    assert_eq!(
        call(addr, &["LIST_CONTENT", "eve", "eve"]).await,
        reply(0, &["1", "notes.txt"])
    );
    shutdown.cancel();
}
