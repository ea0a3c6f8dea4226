//! The directory client against hostile or broken servers: bounded listings, silence, resets.

use std::time::{Duration, Instant};

use meshfs_registry::{ClientError, DirectoryClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A fake directory that answers every connection with `reply`, then keeps sending `filler`
/// for as long as the client reads (or, if `filler` is empty, stays silent).
async fn fake(reply: &'static [u8], filler: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = [0u8; 512];
                let _ = s.read(&mut req).await;
                if s.write_all(reply).await.is_err() {
                    return;
                }
                if filler.is_empty() {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                while !filler.is_empty() && s.write_all(filler).await.is_ok() {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_endless_listing_is_cut_at_the_byte_budget() {
    static FIELD: [u8; 257] = {
        let mut f = [b'a'; 257];
        f[256] = 0;
        f
    };
    let addr = fake(b"\x001000000\x00", &FIELD).await;
    let client = DirectoryClient::new(addr).with_listing_limit(1 << 20);
    let err = client.list_content("me", "them").await.unwrap_err();
    assert!(matches!(err, ClientError::TooLarge), "{err}");
    let err = client.list_users("me").await.unwrap_err();
    assert!(matches!(err, ClientError::TooLarge), "{err}");
}

#[tokio::test]
async fn absurd_counts_and_silence_fail_cleanly() {
    let addr = fake(b"\x0099999999999\x00", b"").await;
    let err = DirectoryClient::new(addr)
        .list_content("me", "them")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Reply(_)), "{err}");

    let addr = fake(b"", b"").await;
    let started = Instant::now();
    let err = DirectoryClient::new(addr)
        .with_timeout(Duration::from_millis(300))
        .register("me")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Reply(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Nothing listening at all.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = DirectoryClient::new(port.to_string())
        .register("me")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}
