//! Following a file that is still being written (`get --follow`): the node's events say when
//! it grew and when its writer closed it (`closed`: the recording is complete).

use std::time::Duration;

use tokio::sync::mpsc;

use crate::client::{Client, ClientError, Credentials};
use crate::events::{EventKind, StreamLine};
use crate::remote::RemotePath;

/// What happened to the followed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// It may have grown (a `modified`, or a `resync`: something may have been missed).
    Changed,
    /// Its writer closed it: what it holds now is final.
    Closed,
    /// It was deleted or renamed away.
    Deleted,
}

/// The node's events about one file, read by a task of their own so that waiting for them
/// can time out without losing half a line.
pub(super) struct Watch {
    /// `None` when the node does not report events: the file is then only polled.
    rx: Option<mpsc::UnboundedReceiver<Result<Change, ClientError>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Watch {
    /// Subscribe to the node's events. Called before the file is first looked at, so that no
    /// `closed` can slip by unseen. A node that answers `subscribe` with an error (it does not
    /// watch its share) is polled instead, and the log says so.
    pub(super) async fn start(
        src: &RemotePath,
        credentials: &Credentials,
    ) -> Result<Watch, ClientError> {
        let client = Client::connect_with(&src.addr, credentials).await?;
        let mut sub = match client.subscribe(None).await {
            Ok(sub) => sub,
            Err(e @ ClientError::Remote { .. }) => {
                tracing::warn!(node = %src.addr, error = %e, "no file events from the node: polling the file's size instead");
                return Ok(Watch {
                    rx: None,
                    task: None,
                });
            }
            Err(e) => return Err(e),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let path = src.path.clone();
        let task = tokio::spawn(async move {
            loop {
                let change = match sub.next().await {
                    Ok(StreamLine::Ping(_)) => continue,
                    Ok(StreamLine::Event(e)) => match e.kind {
                        EventKind::Resync => Change::Changed,
                        _ if e.path != path => continue,
                        EventKind::Closed => Change::Closed,
                        EventKind::Deleted => Change::Deleted,
                        _ => Change::Changed,
                    },
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                if tx.send(Ok(change)).is_err() {
                    return;
                }
            }
        });
        Ok(Watch {
            rx: Some(rx),
            task: Some(task),
        })
    }

    /// The next change to the file, or `None` when `wait` passed without one (the caller
    /// then looks at the file anyway: `modified` events are coalesced, so the last writes of a
    /// burst may come without one).
    pub(super) async fn next(&mut self, wait: Duration) -> Result<Option<Change>, ClientError> {
        let Some(rx) = self.rx.as_mut() else {
            tokio::time::sleep(wait).await;
            return Ok(None);
        };
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(change)) => change.map(Some),
            // The task ended after sending its error, which was read before.
            Ok(None) => {
                self.rx = None;
                Ok(None)
            }
            Err(_) => Ok(None),
        }
    }
}
