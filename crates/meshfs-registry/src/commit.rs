//! Group commit for the SQLite store: one writer thread owns the write connection, takes every
//! change queued while the previous commit was being fsynced, runs each in its own savepoint
//! inside one transaction, and commits them together.
//!
//! Why: with `synchronous=FULL` each commit waits for the disk. One commit per operation caps
//! the directory at roughly one operation per fsync; one commit per batch makes concurrent
//! clients share the wait. Nothing changes for a single client: its operation is the whole
//! batch.
//!
//! Guarantees kept: an operation is answered only after the commit that holds it returned (so
//! an acknowledged operation is durable); each one applies wholly or not at all (a refusal or
//! an error rolls back its savepoint only); operations apply in queue order. If the commit
//! itself fails, every operation of the batch fails and none of them applied.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use rusqlite::Connection;

use crate::store::{Outcome, StoreError};

/// Most operations committed together.
const MAX_BATCH: usize = 512;
/// Operations waiting for the writer before callers block.
const QUEUE: usize = 4096;

/// One queued operation: run it in the open transaction, then learn whether it committed.
trait Pending: Send {
    fn run(&mut self, conn: &Connection);
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

struct Op<T, F> {
    f: Option<F>,
    outcome: Option<Outcome<T>>,
    reply: SyncSender<Outcome<T>>,
}

impl<T, F> Pending for Op<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Outcome<T> + Send,
{
    fn run(&mut self, conn: &Connection) {
        if let Some(f) = self.f.take() {
            self.outcome = Some(in_savepoint(conn, f));
        }
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        let result = match (committed, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (Err(e), _) => Err(StoreError(format!("commit failed: {e}").into())),
            (Ok(()), None) => Err(StoreError("operation did not run".into())),
        };
        // The caller may have given up (it never does today); nothing to do then.
        let _ = self.reply.send(result);
    }
}

/// Run `f` in a savepoint: kept if it succeeded, rolled back if it refused, failed or panicked.
fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Outcome<T>) -> Outcome<T> {
    conn.execute_batch("SAVEPOINT op")?;
    let outcome = catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError("operation panicked".into())));
    let end = if matches!(outcome, Ok(Ok(_))) {
        "RELEASE op"
    } else {
        "ROLLBACK TO op; RELEASE op"
    };
    conn.execute_batch(end)?;
    outcome
}

/// Handle to the writer thread; dropping it lets the thread finish the queue and exit.
pub struct Committer {
    queue: SyncSender<Box<dyn Pending>>,
}

impl Committer {
    /// Start the writer thread on `conn`.
    pub fn start(conn: Connection) -> std::io::Result<Committer> {
        let (queue, jobs) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("registry-commit".into())
            .spawn(move || writer(conn, jobs))?;
        Ok(Committer { queue })
    }

    /// Run `f` on the write connection inside a transaction; returns once that transaction
    /// committed (or failed). Blocks: call from a blocking thread.
    pub fn write<T, F>(&self, f: F) -> Outcome<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Outcome<T> + Send + 'static,
    {
        let (reply, answer) = sync_channel(1);
        let op = Op {
            f: Some(f),
            outcome: None,
            reply,
        };
        self.queue
            .send(Box::new(op))
            .map_err(|_| StoreError("the store's writer thread stopped".into()))?;
        answer
            .recv()
            .map_err(|_| StoreError("the store's writer thread stopped".into()))?
    }
}

fn writer(conn: Connection, jobs: Receiver<Box<dyn Pending>>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let committed = commit(&conn, &mut batch);
        if let Err(e) = &committed {
            tracing::error!(error = %e, ops = batch.len(), "directory commit failed");
        }
        for job in batch {
            job.finish(committed.clone());
        }
    }
}

/// One transaction for the whole batch.
fn commit(conn: &Connection, batch: &mut [Box<dyn Pending>]) -> Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| e.to_string())?;
    for job in batch.iter_mut() {
        job.run(conn);
    }
    conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Refusal;
    use std::sync::Arc;

    #[test]
    fn each_operation_of_a_batch_stands_alone() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .unwrap();
        let committer = Arc::new(Committer::start(conn).unwrap());
        let threads: Vec<_> = (0..64i64)
            .map(|k| {
                let c = committer.clone();
                std::thread::spawn(move || {
                    c.write(move |conn| {
                        conn.execute("INSERT INTO t (k) VALUES (?1)", [k])?;
                        match k % 4 {
                            // Refused after writing: its insert must vanish.
                            1 => Ok(Err(Refusal::NameInUse)),
                            // Failed after writing: same.
                            2 => Err(StoreError("boom".into())),
                            3 => panic!("operation {k} panics"),
                            _ => Ok(Ok(k)),
                        }
                    })
                })
            })
            .collect();
        let mut ok = 0;
        for t in threads {
            if let Ok(Ok(_)) = t.join().unwrap() {
                ok += 1;
            }
        }
        assert_eq!(ok, 16);
        let kept: Vec<i64> = committer
            .write(|conn| {
                let mut stmt = conn.prepare("SELECT k FROM t ORDER BY k")?;
                let keys = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(Ok(keys))
            })
            .unwrap()
            .unwrap();
        assert_eq!(kept, (0..64).filter(|k| k % 4 == 0).collect::<Vec<_>>());
    }
}
