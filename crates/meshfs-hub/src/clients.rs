//! The table client → its FIFO, with one bounded output queue and one writer task per client.
//!
//! The hub loop never writes into a client's FIFO itself: it only pushes onto that client's queue
//! without waiting (`try_send`). A writer task per client opens the FIFO (waiting for its reader
//! without blocking anyone) and drains the queue. So a client that never reads fills its own
//! pipe, then its own queue, and is dropped; a client whose FIFO vanished (EPIPE, ENXIO, deleted)
//! makes only its own task fail. Neither can stall the hub or the other clients.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::client_id::ClientId;
use crate::fifo;

/// Limits of the client table.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// Most clients registered at once.
    pub max_clients: usize,
    /// Messages waiting for one client beyond what its pipe holds; then the client is dropped.
    pub queue_len: usize,
    /// How long a newly registered client may take to open its FIFO for reading.
    pub open_timeout: Duration,
    /// How long one write may wait for a client to read (its pipe full); then it is dropped.
    pub write_timeout: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            max_clients: 256,
            queue_len: 64,
            open_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A client removed because writing to it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub id: ClientId,
    pub reason: String,
}

/// Registration refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the hub already has {0} clients")]
pub struct TableFull(pub usize);

/// One registered client.
struct Entry {
    /// Tells this registration apart from a later one of the same path.
    generation: u64,
    queue: mpsc::Sender<Bytes>,
    writer: AbortHandle,
}

/// What a writer task reports when it stops on its own.
struct Failure {
    id: ClientId,
    generation: u64,
    reason: String,
}

/// The registered clients. Writer tasks are aborted when the table is dropped.
pub struct Clients {
    table: HashMap<ClientId, Entry>,
    limits: ClientLimits,
    next_generation: u64,
    failures_tx: mpsc::UnboundedSender<Failure>,
    failures: mpsc::UnboundedReceiver<Failure>,
}

impl Clients {
    pub fn new(limits: ClientLimits) -> Self {
        let (failures_tx, failures) = mpsc::unbounded_channel();
        Self {
            table: HashMap::new(),
            limits,
            next_generation: 0,
            failures_tx,
            failures,
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn contains(&self, id: &ClientId) -> bool {
        self.table.contains_key(id)
    }

    /// Registers `id` and starts its writer task. Registering a path again replaces the old
    /// registration (the same client restarted with the same pid, say).
    pub fn add(&mut self, id: ClientId) -> Result<(), TableFull> {
        if !self.table.contains_key(&id) && self.table.len() >= self.limits.max_clients {
            return Err(TableFull(self.limits.max_clients));
        }
        self.abort(&id);
        let (queue, rx) = mpsc::channel(self.limits.queue_len.max(1));
        let generation = self.next_generation;
        self.next_generation += 1;
        let task = tokio::spawn(deliver(
            id.clone(),
            generation,
            rx,
            self.failures_tx.clone(),
            self.limits.clone(),
        ));
        self.table.insert(
            id,
            Entry {
                generation,
                queue,
                writer: task.abort_handle(),
            },
        );
        Ok(())
    }

    /// Unregisters `id`: messages already queued are still delivered, then its FIFO is closed.
    pub fn remove(&mut self, id: &ClientId) -> bool {
        self.table.remove(id).is_some()
    }

    /// Queues `text` for `id` without waiting. A full queue means the client stopped reading:
    /// it is dropped and returned.
    pub fn send(&mut self, id: &ClientId, text: Bytes) -> Option<Dropped> {
        let entry = self.table.get(id)?;
        match entry.queue.try_send(text) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.abort(id);
                Some(Dropped {
                    id: id.clone(),
                    reason: format!(
                        "not reading its FIFO ({} messages waiting)",
                        self.limits.queue_len
                    ),
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // Its writer failed; the failure report will say why.
                None
            }
        }
    }

    /// Queues `text` for every client; returns those dropped for not reading.
    pub fn broadcast(&mut self, text: &Bytes) -> Vec<Dropped> {
        let ids: Vec<ClientId> = self.table.keys().cloned().collect();
        ids.iter()
            .filter_map(|id| self.send(id, text.clone()))
            .collect()
    }

    /// Waits for a writer task to fail, removes that client and says why. Cancel-safe.
    pub async fn next_failure(&mut self) -> Dropped {
        loop {
            let Some(f) = self.failures.recv().await else {
                // We hold a sender ourselves, so this cannot end.
                return std::future::pending().await;
            };
            // Ignore reports about a registration already replaced or removed.
            if self
                .table
                .get(&f.id)
                .is_some_and(|e| e.generation == f.generation)
            {
                self.table.remove(&f.id);
                return Dropped {
                    id: f.id,
                    reason: f.reason,
                };
            }
        }
    }

    fn abort(&mut self, id: &ClientId) {
        if let Some(old) = self.table.remove(id) {
            old.writer.abort();
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        for entry in self.table.values() {
            entry.writer.abort();
        }
    }
}

/// The writer task of one client: open its FIFO, then write each queued message.
async fn deliver(
    id: ClientId,
    generation: u64,
    mut queue: mpsc::Receiver<Bytes>,
    failures: mpsc::UnboundedSender<Failure>,
    limits: ClientLimits,
) {
    let result = async {
        let mut pipe = fifo::open_writer_waiting(id.path(), limits.open_timeout)
            .await
            .map_err(|e| format!("cannot open its FIFO: {e}"))?;
        tracing::debug!(client = %id, "FIFO open");
        while let Some(text) = queue.recv().await {
            match tokio::time::timeout(limits.write_timeout, pipe.write_all(&text)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("cannot write to its FIFO: {e}")),
                Err(_) => {
                    return Err(format!(
                        "not reading its FIFO (a write waited {:?})",
                        limits.write_timeout
                    ));
                }
            }
        }
        Ok::<(), String>(())
    }
    .await;
    if let Err(reason) = result {
        tracing::debug!(client = %id, %reason, "writer stopped");
        let _ = failures.send(Failure {
            id,
            generation,
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fifo::{OwnedFifo, open_reader};
    use tokio::io::AsyncReadExt;

    fn limits() -> ClientLimits {
        ClientLimits {
            max_clients: 2,
            queue_len: 4,
            open_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn delivers_in_order_and_reports_a_vanished_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let _fifo = OwnedFifo::create(&path, 0o600).unwrap();
        let mut reader = open_reader(&path).unwrap();
        let id = ClientId::new(path.to_str().unwrap().as_bytes()).unwrap();
        let mut clients = Clients::new(limits());
        clients.add(id.clone()).unwrap();
        assert!(clients.send(&id, Bytes::from_static(b"one ")).is_none());
        assert!(clients.send(&id, Bytes::from_static(b"two")).is_none());
        let mut buf = [0; 7];
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"one two");

        drop(reader);
        assert!(clients.send(&id, Bytes::from_static(b"x")).is_none());
        let dropped = tokio::time::timeout(Duration::from_secs(10), clients.next_failure())
            .await
            .expect("failure reported");
        assert_eq!(dropped.id, id);
        assert!(
            dropped.reason.contains("os error 32"),
            "EPIPE: {}",
            dropped.reason
        );
        assert!(clients.is_empty());
    }

    #[tokio::test]
    async fn a_client_that_never_reads_is_dropped_and_the_table_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let _fifo = OwnedFifo::create(&path, 0o600).unwrap();
        let _reader_never_read = open_reader(&path).unwrap();
        let id = ClientId::new(path.to_str().unwrap().as_bytes()).unwrap();
        let mut clients = Clients::new(limits());
        clients.add(id.clone()).unwrap();
        let big = Bytes::from(vec![b'x'; 16 * 1024]);
        let mut dropped = None;
        for _ in 0..1000 {
            if let Some(d) = clients.send(&id, big.clone()) {
                dropped = Some(d);
                break;
            }
            tokio::task::yield_now().await;
        }
        let dropped = dropped.expect("dropped once its pipe and queue are full");
        assert!(dropped.reason.contains("not reading"), "{}", dropped.reason);
        assert!(!clients.contains(&id));

        clients
            .add(ClientId::new(b"/nonexistent/a").unwrap())
            .unwrap();
        clients
            .add(ClientId::new(b"/nonexistent/b").unwrap())
            .unwrap();
        assert_eq!(
            clients.add(ClientId::new(b"/nonexistent/c").unwrap()),
            Err(TableFull(2))
        );
        let d = clients.next_failure().await;
        assert!(d.reason.contains("cannot open"), "{}", d.reason);
    }
}
