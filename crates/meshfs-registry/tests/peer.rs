//! The peer `GET_FILE` listener and its client over real sockets: exact replies, the share's
//! confinement, absolute paths, streaming, peers that stall or vanish, and downloads that
//! leave no partial file.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use meshfs_core::Share;
use meshfs_registry::fetch::{FetchError, get_file};
use meshfs_registry::peer::{PeerConfig, PeerServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Peer {
    addr: SocketAddr,
    root: std::path::PathBuf,
    shutdown: CancellationToken,
    dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A peer serving `<tmp>/share` (with `a.txt`, `sub/b.txt`, a big file and a symlink out)
/// next to `<tmp>/secret`.
async fn peer() -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let share_dir = dir.path().join("share");
    std::fs::create_dir_all(share_dir.join("sub")).unwrap();
    std::fs::write(share_dir.join("a.txt"), b"hello").unwrap();
    std::fs::write(share_dir.join("sub/b.txt"), b"bee").unwrap();
    std::fs::write(share_dir.join("big.bin"), pattern(8 << 20)).unwrap();
    std::fs::write(dir.path().join("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), share_dir.join("out")).unwrap();
    let share = Share::open(&share_dir).unwrap();
    let root = share.root().to_owned();
    let server = PeerServer::bind("127.0.0.1:0", share, PeerConfig::default())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));
    Peer {
        addr,
        root,
        shutdown,
        dir,
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

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

async fn get(addr: SocketAddr, name: &str) -> Vec<u8> {
    let mut req = b"GET_FILE\0".to_vec();
    req.extend_from_slice(name.as_bytes());
    req.push(0);
    raw(addr, &req).await
}

#[tokio::test]
async fn replies_byte_for_byte() {
    let p = peer().await;
    assert_eq!(get(p.addr, "a.txt").await, b"\x005\x00hello");
    assert_eq!(get(p.addr, "sub/b.txt").await, b"\x003\x00bee");
    // An absolute path inside the share (the course's clients publish those).
    let abs = p.root.join("sub/b.txt");
    assert_eq!(get(p.addr, abs.to_str().unwrap()).await, b"\x003\x00bee");
    // Missing files and folders: 1.
    assert_eq!(get(p.addr, "missing").await, [1]);
    assert_eq!(get(p.addr, "sub").await, [1]);
    // An absolute path elsewhere names a path inside the share, never the real one.
    assert_eq!(get(p.addr, "/etc/passwd").await, [1]);
    // Escapes are refused: 2.
    assert_eq!(get(p.addr, "../secret").await, [2]);
    assert_eq!(get(p.addr, "out").await, [2]);
    let escape = format!("{}/../secret", p.root.display());
    assert_eq!(get(p.addr, &escape).await, [2]);
    // Not GET_FILE, bad names: 2.
    assert_eq!(raw(p.addr, b"PUT_FILE\0a.txt\0").await, [2]);
    assert_eq!(raw(p.addr, b"GET_FILE\0a.t").await, [2]);
    assert_eq!(raw(p.addr, b"GET_FILE\0\xff\0").await, [2]);
    let mut long = b"GET_FILE\0".to_vec();
    long.extend(std::iter::repeat_n(b'a', 300));
    long.push(0);
    assert_eq!(raw(p.addr, &long).await, [2]);
}

#[tokio::test]
async fn a_stalled_requester_is_answered_within_two_seconds() {
    let p = peer().await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET_FILE\0").await.unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut reply))
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(reply, [2]);
    assert!(started.elapsed() < Duration::from_millis(5000));
}

#[tokio::test]
async fn big_file_streams_intact_and_a_vanishing_reader_frees_the_peer() {
    let p = peer().await;
    // A reader that takes the header and a few bytes, then vanishes.
    for _ in 0..3 {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET_FILE\0big.bin\0").await.unwrap();
        let mut head = [0u8; 64];
        let n = s.read(&mut head).await.unwrap();
        assert!(n > 0 && head[0] == 0);
        drop(s);
    }
    // The peer still serves, and the whole file arrives intact.
    let dest = p.dir.path().join("copy.bin");
    let mut seen = Vec::new();
    let size = get_file(
        &p.addr.to_string(),
        "big.bin",
        &dest,
        Duration::from_secs(10),
        &mut |done, total| seen.push((done, total)),
    )
    .await
    .unwrap();
    assert_eq!(size, 8 << 20);
    assert_eq!(std::fs::read(&dest).unwrap(), pattern(8 << 20));
    assert_eq!(seen.last(), Some(&(8 << 20, 8 << 20)));
    assert!(seen.len() > 2, "progress reported as bytes arrive");
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[tokio::test]
async fn failed_downloads_leave_no_file() {
    let p = peer().await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x");
    let err = get_file(
        &p.addr.to_string(),
        "missing",
        &dest,
        Duration::from_secs(5),
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::NoSuchFile), "{err}");
    let err = get_file(
        &p.addr.to_string(),
        "../secret",
        &dest,
        Duration::from_secs(5),
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::Refused(2)), "{err}");

    // A peer that announces 100000 bytes, sends 1000 and closes.
    let liar = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let liar_addr = liar.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = liar.accept().await.unwrap();
        let mut req = [0u8; 64];
        let _ = s.read(&mut req).await;
        s.write_all(b"\x00100000\x00").await.unwrap();
        s.write_all(&[7u8; 1000]).await.unwrap();
    });
    let err = get_file(
        &liar_addr.to_string(),
        "f",
        &dest,
        Duration::from_secs(5),
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Short {
                got: 1000,
                want: 100000
            }
        ),
        "{err}"
    );

    // A peer that sends part of the file and then stalls.
    let staller = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let staller_addr = staller.local_addr().unwrap();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut s, _) = staller.accept().await.unwrap();
        let mut req = [0u8; 64];
        let _ = s.read(&mut req).await;
        s.write_all(b"\x0010\x00abc").await.unwrap();
        let _ = released.await;
    });
    let err = get_file(
        &staller_addr.to_string(),
        "f",
        &dest,
        Duration::from_millis(500),
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::Timeout(_)), "{err}");
    drop(release);

    assert!(
        leftovers(out.path()).is_empty(),
        "left {:?}",
        leftovers(out.path())
    );
}

/// Issue 19: `GET_FILE` counts against the node's upload limit. Two peers fetching at once get
/// no more than the limit together (a bound at every sample over two seconds: 20 % over the
/// rate plus one burst and a chunk each), and both make progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_file_transfers_share_the_node_upload_limit() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    const LIMIT: u64 = 4_000_000;
    let dir = tempfile::tempdir().unwrap();
    std::fs::File::create(dir.path().join("big.bin"))
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let config = PeerConfig {
        upload: meshfs_core::rate::UploadLimits::new(Some(LIMIT), None),
        ..PeerConfig::default()
    };
    let server = PeerServer::bind("127.0.0.1:0", Share::open(dir.path()).unwrap(), config)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));

    let start = Instant::now();
    let counts: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::default()).collect();
    for count in &counts {
        let count = count.clone();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET_FILE\0big.bin\0").await.unwrap();
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n @ 1..) = s.read(&mut buf).await {
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
    }
    let window = Duration::from_secs(2);
    loop {
        let got: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let elapsed = start.elapsed();
        let most = (LIMIT as f64 * elapsed.as_secs_f64() * 1.2) as u64 + LIMIT / 10 + (256 << 10);
        let total: u64 = got.iter().sum();
        assert!(
            total <= most,
            "{total} bytes after {elapsed:?} (bound {most}): {got:?}"
        );
        if elapsed >= window {
            for n in &got {
                assert!(*n >= LIMIT / 4, "a peer starved: {got:?}");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
}
