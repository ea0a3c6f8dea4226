//! The peer `GET_FILE` door against a parent folder swapped for a symlink out of the share:
//! before the request it is refused; after the share resolved the path, the file resolved is
//! the one sent, never the outside one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshfs_core::Share;
use meshfs_core::share::testing::{fixture, swap_pub};
use meshfs_registry::peer::{PeerConfig, PeerServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

async fn serve(share: Share) -> (SocketAddr, CancellationToken) {
    let server = PeerServer::bind("127.0.0.1:0", share, PeerConfig::default())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));
    (addr, shutdown)
}

async fn get(addr: SocketAddr, name: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET_FILE\0{name}\0").as_bytes())
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply))
        .await
        .expect("reply within 5 s")
        .unwrap();
    reply
}

#[tokio::test]
async fn get_file_with_a_parent_swapped_for_a_symlink_fails_closed() {
    for walking in [false, true] {
        let (dir, root) = fixture();
        let outside = dir.path().join("outside");
        let share = if walking {
            Share::open_walking(&root).unwrap()
        } else {
            Share::open(&root).unwrap()
        };
        let (addr, shutdown) = serve(share.clone()).await;
        assert_eq!(get(addr, "pub/clip.mp4").await, b"\x006\x00public");

        // Swapped before the request: refused.
        swap_pub(&root, &outside);
        assert_eq!(get(addr, "pub/clip.mp4").await, [2], "walk {walking}");
        std::fs::remove_file(root.join("pub")).unwrap();
        std::fs::rename(root.join("pub.old"), root.join("pub")).unwrap();

        // Swapped right after the share resolved the path: the resolved file is sent.
        let r = root.clone();
        share.set_resolve_hook(Some(Arc::new(move |_: &str| swap_pub(&r, &outside))));
        assert_eq!(
            get(addr, "pub/clip.mp4").await,
            b"\x006\x00public",
            "walk {walking}"
        );
        shutdown.cancel();
    }
}
