//! The hub and two chat clients in one process, over real FIFOs: what one types reaches both,
//! goodbyes are seen by the hub, and every FIFO is gone at the end.

use std::path::Path;
use std::time::Duration;

use meshfs_hub::chat::{self, ChatConfig, ChatEnd};
use meshfs_hub::{ClientId, Hub, HubConfig, HubEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

fn id(path: &Path) -> ClientId {
    ClientId::new(path.to_str().unwrap().as_bytes()).unwrap()
}

async fn next(events: &mut mpsc::UnboundedReceiver<HubEvent>) -> HubEvent {
    timeout(WAIT, events.recv())
        .await
        .expect("hub event in time")
        .expect("hub running")
}

async fn heard(out: &mut DuplexStream, expected: &str) {
    let mut buf = vec![0; expected.len()];
    timeout(WAIT, out.read_exact(&mut buf))
        .await
        .expect("in time")
        .unwrap();
    assert_eq!(String::from_utf8(buf).unwrap(), expected);
}

/// A chat client task on `fifo` with in-memory keyboard and screen.
fn chat(
    hub: &Path,
    fifo: &Path,
    stop: CancellationToken,
) -> (
    DuplexStream,
    DuplexStream,
    tokio::task::JoinHandle<Result<ChatEnd, chat::ChatError>>,
) {
    let (keyboard, input) = tokio::io::duplex(4096);
    let (output, screen) = tokio::io::duplex(4096);
    let config = ChatConfig {
        hub: hub.to_owned(),
        fifo: fifo.to_owned(),
    };
    let task = tokio::spawn(async move { chat::run(&config, input, output, stop).await });
    (keyboard, screen, task)
}

#[tokio::test]
async fn two_chats_through_a_broadcast_hub() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut events) = mpsc::unbounded_channel();
    let hub = Hub::create(&dir.path().join("hub"), HubConfig::default())
        .unwrap()
        .on_event(move |e| {
            let _ = tx.send(e.clone());
        });
    let hub_path = hub.path().to_owned();
    let stop_hub = CancellationToken::new();
    let hub_task = tokio::spawn(hub.run(stop_hub.clone()));

    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let (mut keys1, mut screen1, task1) = chat(&hub_path, &one, CancellationToken::new());
    assert_eq!(next(&mut events).await, HubEvent::Registered(id(&one)));
    let stop2 = CancellationToken::new();
    let (_keys2, mut screen2, task2) = chat(&hub_path, &two, stop2.clone());
    assert_eq!(next(&mut events).await, HubEvent::Registered(id(&two)));

    keys1.write_all("héllo ¶ all\n".as_bytes()).await.unwrap();
    heard(&mut screen1, "héllo ¶ all\n").await;
    heard(&mut screen2, "héllo ¶ all\n").await;

    drop(keys1); // ^D
    assert_eq!(
        timeout(WAIT, task1).await.unwrap().unwrap().unwrap(),
        ChatEnd::InputClosed
    );
    assert_eq!(next(&mut events).await, HubEvent::Disconnected(id(&one)));
    stop2.cancel(); // ^C
    assert_eq!(
        timeout(WAIT, task2).await.unwrap().unwrap().unwrap(),
        ChatEnd::Interrupted
    );
    assert_eq!(next(&mut events).await, HubEvent::Disconnected(id(&two)));
    assert!(!one.exists() && !two.exists());

    stop_hub.cancel();
    timeout(WAIT, hub_task).await.unwrap().unwrap().unwrap();
    assert!(!hub_path.exists());
}

#[tokio::test]
async fn a_chat_whose_screen_is_gone_still_says_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut events) = mpsc::unbounded_channel();
    let hub = Hub::create(&dir.path().join("hub"), HubConfig::default())
        .unwrap()
        .on_event(move |e| {
            let _ = tx.send(e.clone());
        });
    let hub_path = hub.path().to_owned();
    let stop_hub = CancellationToken::new();
    let _hub_task = tokio::spawn(hub.run(stop_hub.clone()));
    let me = dir.path().join("me");
    let (mut keys, screen, task) = chat(&hub_path, &me, CancellationToken::new());
    assert_eq!(next(&mut events).await, HubEvent::Registered(id(&me)));
    drop(screen);
    keys.write_all(b"echoed to a closed screen\n")
        .await
        .unwrap();
    let result = timeout(WAIT, task).await.unwrap().unwrap();
    assert!(
        matches!(result, Err(chat::ChatError::Io { .. })),
        "{result:?}"
    );
    assert_eq!(next(&mut events).await, HubEvent::Disconnected(id(&me)));
    assert!(!me.exists());
    stop_hub.cancel();
}
