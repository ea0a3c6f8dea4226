//! `subscribe [<since>]`: turns a connection into a stream of file events.
//!
//! After `0 OK`, the connection carries only event lines until the client leaves: first the
//! replay of what the client missed (or `resync`), then live events, and a `<seq> ping` line
//! every [`PING_EVERY`] so both sides can tell a quiet node from a dead link. A subscriber that
//! falls behind loses events from its bounded live buffer, is told `resync`, and continues: it
//! never slows the node or the other subscribers.
//!
//! A ping carries the sequence number of the last event this subscriber was sent, and one is
//! sent right after `0 OK`: a client that subscribed without `since` thus learns where it
//! stands, and can resume exactly even if no event happened before the link broke.

use std::io;
use std::time::Duration;

use meshfs_core::events::{Event, EventKind, Events};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::connection::Connection;

/// Keep-alive interval (protocols.md: at least every 15 s).
pub const PING_EVERY: Duration = Duration::from_secs(10);

/// Most events written in one batch before flushing.
const BATCH: usize = 256;

enum Wake {
    Event(Result<Event, RecvError>),
    Ping,
    Gone,
    Shutdown,
}

/// One event line: `KIND:REASON` only for a subscriber that asked (`subscribe … reasons`).
fn queue_event(conn: &mut Connection, event: &Event, reasons: bool) {
    let line = if reasons {
        event.line_with_reason() + "\n"
    } else {
        format!("{event}\n")
    };
    conn.queue(line.as_bytes());
}

/// Events after `after` were dropped for this subscriber.
fn resync(after: u64) -> Event {
    Event::new(after, EventKind::Resync, "")
}

fn queue_ping(conn: &mut Connection, position: u64) {
    conn.queue(format!("{position} ping\n").as_bytes());
}

/// Serve a subscription until the client disconnects or the node shuts down.
pub(crate) async fn serve(
    conn: &mut Connection,
    events: &Events,
    since: Option<u64>,
    reasons: bool,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    let subscribed = events.subscribe(since);
    let mut rx = subscribed.live;
    // The last sequence number this subscriber has been told about.
    let mut position = subscribed.last;
    conn.status(0, "OK");
    queue_ping(conn, position);
    for event in &subscribed.replay {
        queue_event(conn, event, reasons);
    }
    conn.flush().await?;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        let wake = tokio::select! {
            ev = rx.recv() => Wake::Event(ev),
            _ = ping.tick() => Wake::Ping,
            _ = conn.closed() => Wake::Gone,
            _ = shutdown.cancelled() => Wake::Shutdown,
        };
        match wake {
            Wake::Event(Ok(event)) => {
                position = event.seq;
                queue_event(conn, &event, reasons);
                // Drain what is already waiting so a burst goes out in few writes.
                for _ in 0..BATCH {
                    match rx.try_recv() {
                        Ok(event) => {
                            position = event.seq;
                            queue_event(conn, &event, reasons);
                        }
                        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                            queue_event(conn, &resync(position), reasons);
                        }
                        Err(_) => break,
                    }
                }
            }
            Wake::Event(Err(RecvError::Lagged(missed))) => {
                tracing::debug!(missed, "slow subscriber: sending resync");
                queue_event(conn, &resync(position), reasons);
            }
            Wake::Event(Err(RecvError::Closed)) | Wake::Gone | Wake::Shutdown => return Ok(()),
            Wake::Ping => queue_ping(conn, position),
        }
        conn.flush().await?;
    }
}
