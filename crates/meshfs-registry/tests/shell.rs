//! The shell interpreter in process: the prompt on terminals, bounded command lines, end of
//! input quitting like `QUIT` (disconnecting first).

use std::sync::Arc;
use std::time::Duration;

use meshfs_core::Share;
use meshfs_registry::shell::{MAX_LINE, Shell, ShellConfig};
use meshfs_registry::{DirectoryServer, ServerConfig, SqliteStore, Stamp};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

async fn run(registry: &str, prompt: bool, input: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = ShellConfig {
        registry: registry.to_owned(),
        share: Share::open(dir.path()).unwrap(),
        peer_listen: "127.0.0.1:0".into(),
        prompt,
        timeout: Duration::from_secs(5),
        date: Stamp::None,
    };
    let mut out = Vec::new();
    Shell::new(config, &mut out).run(input).await.unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn prompt_long_lines_and_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
    let server = DirectoryServer::bind("127.0.0.1:0", store, ServerConfig::default())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));

    assert_eq!(run(&addr, true, b"QUIT\n").await, "c> +++ FINISHED +++\n");
    assert_eq!(
        run(&addr, true, b"register ann\n\n").await,
        "c> REGISTER OK\nc> c> +++ FINISHED +++\n"
    );
    let mut long = vec![b'A'; MAX_LINE + 10];
    long.extend_from_slice(b"\nREGISTER ann\n");
    assert_eq!(
        run(&addr, false, &long).await,
        "Error: line too long\nUSERNAME IN USE\n+++ FINISHED +++\n"
    );
    // End of input while connected: disconnect first, as QUIT does.
    assert_eq!(
        run(&addr, false, b"CONNECT ann").await,
        "CONNECT OK\nDISCONNECT OK\n+++ FINISHED +++\n"
    );
    shutdown.cancel();
}
