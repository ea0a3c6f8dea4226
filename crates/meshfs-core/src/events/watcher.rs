//! The share's inotify instance, and the thread that reads it.
//!
//! meshfs watches with the `inotify` crate directly rather than through `notify`: `notify`
//! asks every watch for `IN_OPEN`, so each time a file of the share was opened — every read by
//! path, every `pread` of the mount and of `get`'s lanes, every web range — the kernel queued an
//! event and woke `notify`'s thread, which then woke the ingest thread, only for the event to
//! be dropped (opens change nothing). [`MASK`] asks only for what the log reports, so reading
//! files wakes no thread at all.
//!
//! One thread reads the instance ([`start`]) and hands each raw change, as the kernel gave it
//! (a watch number, a name, a mask), to the ingest thread through the bounded queue; the ingest
//! thread adds and removes watches itself ([`super::folders::Folders`]) and knows which folder
//! each watch number stands for. Because it handles the changes in order and adds every watch
//! itself, a watch it has added is known before any change it reports is handled.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use inotify::{EventMask, Inotify, WatchMask, Watches};

use super::raw_queue::RawSender;

/// What each folder is watched for: what becomes `created`, `modified`, `closed` and `deleted`
/// (renames too), permission changes (a folder that could not be watched may be now), and the
/// folder's own deletion and move. Never `IN_OPEN`, `IN_ACCESS` nor `IN_CLOSE_NOWRITE`: reading
/// changes nothing. `ONLYDIR` and `DONT_FOLLOW`: a symlink is never watched, whatever it
/// leads to, even if a folder is swapped for one between a check and the watch.
pub(super) const MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::MODIFY)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR)
    .union(WatchMask::DONT_FOLLOW);

/// Bytes read from the instance at a time: a few hundred changes (each is 16 bytes and its
/// name, padded).
const READ_BUFFER: usize = 16 << 10;

/// One raw change, as the kernel reported it.
#[derive(Debug)]
pub(super) enum Raw {
    /// Something happened in the folder watched as `wd`: to `name` in it, or to the folder
    /// itself when `name` is `None`.
    Change {
        wd: i32,
        mask: EventMask,
        name: Option<OsString>,
    },
    /// The kernel's queue overflowed: changes were lost.
    Overflow,
    /// Reading the instance failed; the watch has stopped.
    Failed(io::Error),
}

/// Stops the reading thread when dropped (its end of a socket pair closes, which wakes it).
pub(super) struct Stop {
    _wake: UnixStream,
}

/// A new inotify instance, and a thread reading it into `tx` until [`Stop`] is dropped. The
/// returned [`Watches`] adds and removes the watches.
pub(super) fn start(tx: RawSender<Raw>) -> io::Result<(Watches, Stop)> {
    let inotify = Inotify::init()?;
    let watches = inotify.watches();
    let (stop, wake) = UnixStream::pair()?;
    std::thread::Builder::new()
        .name("meshfs-watch".into())
        .spawn(move || read(inotify, wake, tx))?;
    Ok((watches, Stop { _wake: stop }))
}

/// The reading thread: wait until the instance has changes (or the watch is dropped), hand
/// them over, again. It never blocks on the queue: what does not fit becomes a `resync`.
fn read(mut inotify: Inotify, wake: UnixStream, tx: RawSender<Raw>) {
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        match crate::sys::wait_readable(inotify.as_fd(), wake.as_fd()) {
            Ok((_, true)) => return,
            Ok(_) => {}
            Err(e) => return tx.send_or_drop(Raw::Failed(e)),
        }
        let events = match inotify.read_events(&mut buffer) {
            Ok(events) => events,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return tx.send_or_drop(Raw::Failed(e)),
        };
        for ev in events {
            if ev.mask.contains(EventMask::Q_OVERFLOW) {
                tx.send_or_drop(Raw::Overflow);
                continue;
            }
            tx.send_or_drop(Raw::Change {
                wd: ev.wd.get_watch_descriptor_id(),
                mask: ev.mask,
                name: ev.name.map(ToOwned::to_owned),
            });
        }
    }
}
