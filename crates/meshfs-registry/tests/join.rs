//! A node joining a directory by itself: register, connect with its GET_FILE port, publish the
//! share (and drop stale entries), retry while the directory is down, disconnect on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshfs_core::Share;
use meshfs_core::events::Events;
use meshfs_registry::client::Answer;
use meshfs_registry::fetch::get_file;
use meshfs_registry::{
    DirectoryClient, DirectoryServer, JoinConfig, Joined, ServerConfig, SqliteStore,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

async fn directory_at(
    addr: &str,
    db: &std::path::Path,
) -> (SocketAddr, Arc<SqliteStore>, CancellationToken) {
    let store = Arc::new(SqliteStore::open(db).unwrap());
    let server = DirectoryServer::bind(addr, store.clone(), ServerConfig::default())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));
    (addr, store, shutdown)
}

fn share() -> (tempfile::TempDir, Share) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("share");
    std::fs::create_dir_all(root.join("cam1")).unwrap();
    std::fs::write(root.join("notes.txt"), b"twelve bytes").unwrap();
    std::fs::write(root.join("cam1/clip.mp4"), vec![0u8; 1000]).unwrap();
    std::fs::write(root.join("has space.txt"), b"x").unwrap();
    let share = Share::open(&root).unwrap();
    (dir, share)
}

struct Node {
    shutdown: CancellationToken,
    tracker: TaskTracker,
    joined: tokio::sync::oneshot::Receiver<Joined>,
}

async fn join(registry: SocketAddr, user: &str, share: Share) -> Node {
    join_with(registry, user, share, None).await
}

async fn join_with(registry: SocketAddr, user: &str, share: Share, events: Option<Events>) -> Node {
    let config = JoinConfig {
        registry: registry.to_string(),
        user: user.to_owned(),
        peer_listen: "127.0.0.1:0".into(),
        date: meshfs_registry::Stamp::None,
        upload: Default::default(),
    };
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (tx, joined) = tokio::sync::oneshot::channel();
    meshfs_registry::join::start(
        config,
        share,
        events,
        shutdown.clone(),
        tracker.clone(),
        move |j| {
            let _ = tx.send(j.clone());
        },
    )
    .await
    .expect("a peer listener");
    Node {
        shutdown,
        tracker,
        joined,
    }
}

impl Node {
    async fn wait_joined(&mut self, within: Duration) -> Joined {
        tokio::time::timeout(within, &mut self.joined)
            .await
            .expect("joined in time")
            .unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(5), self.tracker.wait())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_node_publishes_its_share_serves_it_and_disconnects() {
    let state = tempfile::tempdir().unwrap();
    let (addr, store, _stop) = directory_at("127.0.0.1:0", &state.path().join("db")).await;
    let client = DirectoryClient::new(addr.to_string());
    // A stale entry from an earlier run, and a stale connection.
    assert_eq!(client.register("cam").await.unwrap(), 0);
    assert_eq!(client.connect("cam", 1).await.unwrap(), 0);
    assert_eq!(
        client.publish("cam", "deleted.mp4", "old").await.unwrap(),
        0
    );
    assert_eq!(client.register("viewer").await.unwrap(), 0);
    assert_eq!(client.connect("viewer", 2).await.unwrap(), 0);

    let (dir, share) = share();
    let mut node = join(addr, "cam", share).await;
    let joined = node.wait_joined(Duration::from_secs(10)).await;
    assert_eq!(joined.files, 3, "every file, the name with a space too");
    assert_eq!(
        client.list_content("viewer", "cam").await.unwrap(),
        Answer::Ok(vec![
            "cam1/clip.mp4".into(),
            "has space.txt".into(),
            "notes.txt".into()
        ])
    );
    assert_eq!(
        store.file_info("cam", "notes.txt").unwrap().unwrap().0,
        "12 bytes text/plain"
    );
    assert_eq!(
        store.file_info("cam", "cam1/clip.mp4").unwrap().unwrap().0,
        "1000 bytes video/mp4"
    );
    let Answer::Ok(users) = client.list_users("viewer").await.unwrap() else {
        panic!()
    };
    let cam = users.iter().find(|u| u.name == "cam").unwrap();
    assert_eq!(cam.port, joined.peer.port());

    // Another peer fetches a published file from the address the directory gives.
    let dest = dir.path().join("fetched.txt");
    get_file(
        &format!("{}:{}", cam.ip, cam.port),
        "notes.txt",
        &dest,
        Duration::from_secs(5),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"twelve bytes");

    node.stop().await;
    let Answer::Ok(users) = client.list_users("viewer").await.unwrap() else {
        panic!()
    };
    assert_eq!(
        users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["viewer"]
    );
}

#[tokio::test]
async fn a_node_retries_until_the_directory_is_up() {
    // Reserve a port, free it, and start the directory there only after the node tried.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_dir, share) = share();
    let mut node = join(port, "late", share).await;
    // Not joined while the directory is down (the first attempts fail at once).
    assert!(
        tokio::time::timeout(Duration::from_millis(700), &mut node.joined)
            .await
            .is_err()
    );
    let state = tempfile::tempdir().unwrap();
    let (addr, _store, _stop) = directory_at(&port.to_string(), &state.path().join("db")).await;
    let joined = node.wait_joined(Duration::from_secs(15)).await;
    assert_eq!(joined.registry, addr.to_string());
    assert_eq!(joined.files, 3, "every file, the name with a space too");
    node.stop().await;
}

/// Poll the directory until `user`'s listing (as seen by `viewer`) is `want`, or panic after
/// `within`. The directory is the observable state: there is no event to wait on.
async fn wait_listing(
    client: &DirectoryClient,
    viewer: &str,
    user: &str,
    want: &[&str],
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = client.list_content(viewer, user).await.unwrap();
        if got == Answer::Ok(want.iter().map(|s| s.to_string()).collect()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "listing still {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node joined to a directory with its share watched for changes, and what must live as long
/// as it does.
struct Watched {
    node: Node,
    root: std::path::PathBuf,
    _watch: meshfs_core::events::WatchGuard,
    _dir: tempfile::TempDir,
}

/// A `viewer` connected to the directory at `addr`, and node `user` joined to it (before this
/// returns) with its share watched for changes.
async fn viewer_and_watched_node(addr: SocketAddr, user: &str) -> (DirectoryClient, Watched) {
    let client = DirectoryClient::new(addr.to_string());
    assert_eq!(client.register("viewer").await.unwrap(), 0);
    assert_eq!(client.connect("viewer", 2).await.unwrap(), 0);

    let (dir, share) = share();
    let root = share.root().to_owned();
    let events = Events::new(1024);
    let watch = events.watch(&root).unwrap();
    let mut node = join_with(addr, user, share, Some(events)).await;
    node.wait_joined(Duration::from_secs(10)).await;
    let watched = Watched {
        node,
        root,
        _watch: watch,
        _dir: dir,
    };
    (client, watched)
}

#[tokio::test]
async fn a_node_follows_its_share_as_files_come_and_go() {
    let state = tempfile::tempdir().unwrap();
    let (addr, store, _stop) = directory_at("127.0.0.1:0", &state.path().join("db")).await;
    let (client, watched) = viewer_and_watched_node(addr, "live").await;
    let root = watched.root.clone();
    let within = Duration::from_secs(10);
    wait_listing(
        &client,
        "viewer",
        "live",
        &["cam1/clip.mp4", "has space.txt", "notes.txt"],
        within,
    )
    .await;

    // A new recording appears, grows, and is closed: listed, then with its final size.
    let mut clip = std::fs::File::create(root.join("cam1/new.mp4")).unwrap();
    wait_listing(
        &client,
        "viewer",
        "live",
        &[
            "cam1/clip.mp4",
            "cam1/new.mp4",
            "has space.txt",
            "notes.txt",
        ],
        within,
    )
    .await;
    std::io::Write::write_all(&mut clip, &[1u8; 5000]).unwrap();
    drop(clip);
    let deadline = tokio::time::Instant::now() + within;
    while store
        .file_info("live", "cam1/new.mp4")
        .unwrap()
        .map(|i| i.0)
        .as_deref()
        != Some("5000 bytes video/mp4")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "description never updated"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A file removed, a file renamed, a folder removed.
    std::fs::remove_file(root.join("notes.txt")).unwrap();
    std::fs::rename(root.join("cam1/new.mp4"), root.join("kept.mp4")).unwrap();
    wait_listing(
        &client,
        "viewer",
        "live",
        &["cam1/clip.mp4", "has space.txt", "kept.mp4"],
        within,
    )
    .await;
    std::fs::remove_dir_all(root.join("cam1")).unwrap();
    wait_listing(
        &client,
        "viewer",
        "live",
        &["has space.txt", "kept.mp4"],
        within,
    )
    .await;
    // A name with spaces is published as it is; a path longer than a field is left out.
    std::fs::create_dir_all(root.join("y".repeat(200))).unwrap();
    std::fs::write(
        root.join(format!("{}/{}", "y".repeat(200), "z".repeat(60))),
        b"x",
    )
    .unwrap();
    std::fs::write(root.join("with space.mp4"), b"x").unwrap();
    std::fs::write(root.join("z.txt"), b"z").unwrap();
    wait_listing(
        &client,
        "viewer",
        "live",
        &["has space.txt", "kept.mp4", "with space.mp4", "z.txt"],
        within,
    )
    .await;
    watched.node.stop().await;
}

#[tokio::test]
async fn changes_made_while_the_directory_is_down_are_caught_up() {
    let state = tempfile::tempdir().unwrap();
    let db = state.path().join("db");
    let (addr, _store, stop) = directory_at("127.0.0.1:0", &db).await;
    let (client, watched) = viewer_and_watched_node(addr, "flaky").await;
    let root = watched.root.clone();
    let within = Duration::from_secs(15);
    wait_listing(
        &client,
        "viewer",
        "flaky",
        &["cam1/clip.mp4", "has space.txt", "notes.txt"],
        within,
    )
    .await;

    // The directory goes away; the share changes meanwhile (the node's update fails).
    stop.cancel();
    let down = tokio::time::Instant::now() + within;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < down,
            "directory still accepting"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // In its place, a broken directory that hangs up on everyone, counting who calls.
    let broken = tokio::net::TcpListener::bind(addr).await.unwrap();
    std::fs::write(root.join("while-down.txt"), b"x").unwrap();
    std::fs::remove_file(root.join("notes.txt")).unwrap();
    // The node's update fails, then at least one attempt to rejoin fails too.
    for _ in 0..2 {
        let (conn, _) = tokio::time::timeout(within, broken.accept())
            .await
            .unwrap()
            .unwrap();
        drop(conn);
    }
    drop(broken);

    // Back on the same address with the same database: the node catches up by itself.
    let (_addr, _store, _stop) = directory_at(&addr.to_string(), &db).await;
    wait_listing(
        &client,
        "viewer",
        "flaky",
        &["cam1/clip.mp4", "has space.txt", "while-down.txt"],
        within,
    )
    .await;
    watched.node.stop().await;
}

#[test]
fn the_walk_skips_unpublishable_names_and_symlink_loops() {
    let (dir, share) = share();
    let root = dir.path().join("share");
    std::os::unix::fs::symlink(&root, root.join("cam1/loop")).unwrap();
    std::os::unix::fs::symlink(root.join("notes.txt"), root.join("alias.txt")).unwrap();
    std::fs::write(root.join("x".repeat(250)), b"long").unwrap();
    std::fs::create_dir_all(root.join("y".repeat(200))).unwrap();
    std::fs::write(
        root.join(format!("{}/{}", "y".repeat(200), "z".repeat(60))),
        b"too long",
    )
    .unwrap();
    let walk = meshfs_registry::join::publishable_files(&share);
    let names: Vec<&str> = walk.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "alias.txt",
            "cam1/clip.mp4",
            "has space.txt",
            "notes.txt",
            &"x".repeat(250)
        ]
    );
    assert_eq!(walk.files[3].1, 12);
    assert_eq!(
        walk.unpublishable,
        [format!("{}/{}", "y".repeat(200), "z".repeat(60))]
    );
}

/// Collects what tracing writes, process-wide (each test is its own process under nextest).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_too_long_to_publish_is_logged_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // Another test of this binary may have set one first (cargo test runs them together).
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let (addr, _store, _stop) = directory_at("127.0.0.1:0", &state.path().join("db")).await;
    let (client, watched) = viewer_and_watched_node(addr, "once").await;
    let root = watched.root.clone();
    let long = format!("{}/{}", "y".repeat(200), "z".repeat(60));
    std::fs::create_dir_all(root.join("y".repeat(200))).unwrap();
    // Created, written, closed, written again: several events about one unpublishable name.
    for round in 0..3 {
        std::fs::write(root.join(&long), vec![b'x'; round + 1]).unwrap();
    }
    std::fs::write(root.join("after.txt"), b"x").unwrap();
    wait_listing(
        &client,
        "viewer",
        "once",
        &["after.txt", "cam1/clip.mp4", "has space.txt", "notes.txt"],
        Duration::from_secs(10),
    )
    .await;
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        log.matches("not published in the directory").count(),
        1,
        "{log}"
    );
    watched.node.stop().await;
}
