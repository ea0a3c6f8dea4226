//! The web UI's `/files/` door against a parent folder swapped for a symlink — out of the
//! share, or onto a password-protected folder — before the request, and right after the share
//! resolved the path. Every case fails closed: the outside file is never sent, and the
//! protected one never under the free name.

use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use meshfs_core::Share;
use meshfs_core::access::Access;
use meshfs_core::share::testing::{fixture, restore_pub, swap_pub};
use meshfs_web::{NodeDirectory, WebServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A hook that swaps `pub` for a symlink to `target` on the `k`-th resolution only.
fn swap_on(k: usize, root: &Path, target: PathBuf) -> meshfs_core::share::ResolveHook {
    let calls = AtomicUsize::new(0);
    let root = root.to_owned();
    Arc::new(move |_: &str| {
        if calls.fetch_add(1, Ordering::SeqCst) + 1 == k {
            swap_pub(&root, &target);
        }
    })
}

async fn serve(share: Share) -> (SocketAddr, CancellationToken) {
    let access = Access::open();
    access.protect_file("priv/clip.mp4", "pw").unwrap();
    let server = WebServer::bind(
        "127.0.0.1:0",
        share,
        NodeDirectory::new("me", "127.0.0.1:1"),
    )
    .await
    .unwrap()
    .with_access(access);
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));
    (addr, shutdown)
}

/// `GET /files/me/<path>`: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /files/me/{path} HTTP/1.1\r\nHost: me\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut reply))
        .await
        .expect("reply within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn files_with_a_parent_swapped_before_the_request_fail_closed() {
    for walking in [false, true] {
        let (dir, root) = fixture();
        let share = if walking {
            Share::open_walking(&root).unwrap()
        } else {
            Share::open(&root).unwrap()
        };
        let (addr, shutdown) = serve(share).await;
        assert_eq!(get(addr, "pub/clip.mp4").await, (200, "public".into()));

        swap_pub(&root, &dir.path().join("outside"));
        let (status, body) = get(addr, "pub/clip.mp4").await;
        assert_eq!(status, 403, "walk {walking}: {body}");
        assert!(!body.contains("escape"));
        std::fs::remove_file(root.join("pub")).unwrap();

        symlink("priv", root.join("pub")).unwrap();
        let (status, body) = get(addr, "pub/clip.mp4").await;
        assert_eq!(status, 401, "walk {walking}: {body}");
        assert!(!body.contains("secret"));
        shutdown.cancel();
    }
}

#[tokio::test]
async fn files_with_a_parent_swapped_out_of_the_share_after_resolving_send_what_was_resolved() {
    for walking in [false, true] {
        let (dir, root) = fixture();
        let share = if walking {
            Share::open_walking(&root).unwrap()
        } else {
            Share::open(&root).unwrap()
        };
        let (addr, shutdown) = serve(share.clone()).await;
        // On the first resolution, then on the second (web checks, then opens).
        for k in [1, 2] {
            share.set_resolve_hook(Some(swap_on(k, &root, dir.path().join("outside"))));
            let (status, body) = get(addr, "pub/clip.mp4").await;
            assert!(
                !body.contains("escape"),
                "walk {walking}, k {k}: {status} {body}"
            );
            share.set_resolve_hook(None);
            if root.join("pub").is_symlink() {
                restore_pub(&root);
            }
        }
        shutdown.cancel();
    }
}

/// The web checks the password with `Access::may_read`, then opens: two resolutions. Until
/// `source.rs` opens through `Access::open_file` (one resolution, checked on the file
/// opened), a folder swapped onto a protected one between the two serves the protected file.
#[tokio::test]
async fn files_with_a_parent_swapped_onto_a_protected_folder_after_the_check_fail_closed() {
    for walking in [false, true] {
        let (_dir, root) = fixture();
        let share = if walking {
            Share::open_walking(&root).unwrap()
        } else {
            Share::open(&root).unwrap()
        };
        let (addr, shutdown) = serve(share.clone()).await;
        let r = root.clone();
        share.set_resolve_hook(Some(Arc::new(move |_: &str| {
            swap_pub(&r, Path::new("priv"))
        })));
        let (status, body) = get(addr, "pub/clip.mp4").await;
        assert!(!body.contains("secret"), "walk {walking}: {status} {body}");
        share.set_resolve_hook(None);
        restore_pub(&root);
        shutdown.cancel();
    }
}
