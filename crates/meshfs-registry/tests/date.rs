//! The course's date field, sent: a directory that requires it (`require_date`, as the
//! course's later servers do) fails every operation of a client that does not send it, and
//! serves the shell and the client that send the local time (`--date`).

use std::sync::Arc;
use std::time::Duration;

use meshfs_core::Share;
use meshfs_registry::client::Answer;
use meshfs_registry::shell::{Shell, ShellConfig};
use meshfs_registry::wire::is_date;
use meshfs_registry::{DirectoryClient, DirectoryServer, ServerConfig, SqliteStore, Stamp};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A directory that requires the date; returns its address and store.
async fn dated_directory(dir: &std::path::Path) -> (String, Arc<SqliteStore>, CancellationToken) {
    let store = Arc::new(SqliteStore::open(&dir.join("db")).unwrap());
    let config = ServerConfig {
        require_date: true,
        ..ServerConfig::default()
    };
    let server = DirectoryServer::bind("127.0.0.1:0", store.clone(), config)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));
    (addr, store, shutdown)
}

async fn shell(registry: &str, date: Stamp, input: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = ShellConfig {
        registry: registry.to_owned(),
        share: Share::open(dir.path()).unwrap(),
        peer_listen: "127.0.0.1:0".into(),
        prompt: false,
        timeout: Duration::from_secs(5),
        date,
    };
    let mut out = Vec::new();
    Shell::new(config, &mut out).run(input).await.unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn shell_sends_the_date_a_directory_requires() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, store, shutdown) = dated_directory(dir.path()).await;

    assert_eq!(
        shell(&addr, Stamp::None, b"REGISTER ann\nQUIT\n").await,
        "REGISTER FAIL\n+++ FINISHED +++\n"
    );
    assert_eq!(
        shell(
            &addr,
            Stamp::LocalNow,
            b"REGISTER ann\nCONNECT ann\nPUBLISH clip.mp4 a clip\nLIST_CONTENT ann\nQUIT\n"
        )
        .await,
        "REGISTER OK\nCONNECT OK\nPUBLISH OK\nLIST_CONTENT OK\nclip.mp4\nDISCONNECT OK\n+++ FINISHED +++\n"
    );
    let stamped = store.last_date("ann").unwrap().expect("a date recorded");
    assert!(is_date(&stamped), "{stamped}");
    let (_, published_at) = store.file_info("ann", "clip.mp4").unwrap().unwrap();
    assert!(is_date(&published_at.unwrap()));
    shutdown.cancel();
}

#[tokio::test]
async fn client_sends_the_date_with_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _store, shutdown) = dated_directory(dir.path()).await;
    let bare = DirectoryClient::new(addr.clone()).with_timeout(Duration::from_secs(5));
    assert_eq!(bare.register("bob").await.unwrap(), 2);

    let dated = bare.with_date(Stamp::LocalNow);
    assert_eq!(dated.register("bob").await.unwrap(), 0);
    assert_eq!(dated.connect("bob", 4051).await.unwrap(), 0);
    assert_eq!(
        dated
            .publish("bob", "a b.txt", "3 bytes text/plain")
            .await
            .unwrap(),
        0
    );
    assert!(matches!(dated.list_users("bob").await.unwrap(), Answer::Ok(u) if u.len() == 1));
    assert_eq!(
        dated.list_content("bob", "bob").await.unwrap(),
        Answer::Ok(vec!["a b.txt".to_owned()])
    );
    assert_eq!(dated.delete("bob", "a b.txt").await.unwrap(), 0);
    assert_eq!(dated.disconnect("bob").await.unwrap(), 0);
    assert_eq!(dated.unregister("bob").await.unwrap(), 0);
    shutdown.cancel();
}
