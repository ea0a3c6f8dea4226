//! The embedded store: one SQLite file under the state directory.
//!
//! Durability: WAL journal with `synchronous=FULL`, so every committed transaction is fsynced
//! to the WAL before [`Store`] methods return, and the server only acknowledges after that: an
//! operation that was answered survives `kill -9` and power loss.
//!
//! Atomicity: every change goes through one writer connection ([`Committer`], which commits
//! concurrent operations together, each in its own savepoint), so clients see each other's
//! operations whole and in some order. Listings without a date stamp only read: they use a
//! second connection and never wait behind a commit.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::commit::Committer;
use crate::op::Refusal;
use crate::store::{ConnectedUser, Date, Outcome, Store, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    connected INTEGER NOT NULL DEFAULT 0,
    ip        TEXT,
    port      INTEGER,
    -- last date stamp a client sent with an operation of this user
    last_date TEXT
);
CREATE TABLE IF NOT EXISTS files (
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    date        TEXT,
    PRIMARY KEY (user_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS users_connected ON users(connected, name);
";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError(Box::new(e))
    }
}

/// The directory in one SQLite file.
pub struct SqliteStore {
    /// For listings and the inspection helpers: never holds a write transaction.
    reader: Mutex<Connection>,
    writer: Committer,
}

/// A user row as the checks of every operation need it.
struct UserRow {
    id: i64,
    connected: bool,
}

fn connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

impl SqliteStore {
    /// Open (or create) the directory at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = connection(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "SQLite refused WAL mode");
        }
        conn.execute_batch(SCHEMA)?;
        let reader = connection(path)?;
        let writer = Committer::start(conn).map_err(|e| StoreError(Box::new(e)))?;
        Ok(SqliteStore {
            reader: Mutex::new(reader),
            writer,
        })
    }

    /// Run a listing in one read transaction (a consistent snapshot of several queries).
    fn read_only<T>(&self, f: impl FnOnce(&Connection) -> Outcome<T>) -> Outcome<T> {
        let mut conn = self.read();
        let tx = conn.transaction()?;
        f(&tx)
        // Dropping the transaction ends it; it wrote nothing.
    }

    fn read(&self) -> MutexGuard<'_, Connection> {
        // Reads leave nothing half-done behind a panic: a poisoned lock is still usable.
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last date stamp recorded for `user` (None if none or no such user).
    pub fn last_date(&self, user: &str) -> Result<Option<String>, StoreError> {
        let conn = self.read();
        let date = conn
            .query_row("SELECT last_date FROM users WHERE name = ?1", [user], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(date.flatten())
    }

    /// The description and date stamp of one published file.
    pub fn file_info(
        &self,
        user: &str,
        file: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        let conn = self.read();
        Ok(conn
            .query_row(
                "SELECT f.description, f.date FROM files f JOIN users u ON u.id = f.user_id
                 WHERE u.name = ?1 AND f.name = ?2",
                [user, file],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}

fn user_row(conn: &Connection, user: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id, connected FROM users WHERE name = ?1")?
        .query_row([user], |r| {
            Ok(UserRow {
                id: r.get(0)?,
                connected: r.get(1)?,
            })
        })
        .optional()?)
}

/// The user must exist and be connected (most operations start with this check).
fn connected_user(conn: &Connection, user: &str) -> Result<Result<UserRow, Refusal>, StoreError> {
    Ok(match user_row(conn, user)? {
        None => Err(Refusal::NoSuchUser),
        Some(row) if !row.connected => Err(Refusal::NotConnected),
        Some(row) => Ok(row),
    })
}

fn stamp(conn: &Connection, id: i64, date: Date) -> Result<(), StoreError> {
    if let Some(date) = date {
        conn.prepare_cached("UPDATE users SET last_date = ?2 WHERE id = ?1")?
            .execute(params![id, date])?;
    }
    Ok(())
}

/// Owned copies of the arguments, for the writer thread.
fn own(s: &str) -> String {
    s.to_owned()
}

fn own_date(date: Date) -> Option<String> {
    date.map(str::to_owned)
}

impl Store for SqliteStore {
    fn register(&self, user: &str, date: Date) -> Outcome {
        let (user, date) = (own(user), own_date(date));
        self.writer
            .write(move |c| register(c, &user, date.as_deref()))
    }

    fn unregister(&self, user: &str, _date: Date) -> Outcome {
        let user = own(user);
        self.writer.write(move |c| unregister(c, &user))
    }

    fn connect(&self, user: &str, ip: IpAddr, port: u16, date: Date) -> Outcome {
        let (user, date) = (own(user), own_date(date));
        self.writer
            .write(move |c| connect(c, &user, ip, port, date.as_deref()))
    }

    fn disconnect(&self, user: &str, date: Date) -> Outcome {
        let (user, date) = (own(user), own_date(date));
        self.writer
            .write(move |c| disconnect(c, &user, date.as_deref()))
    }

    fn publish(&self, user: &str, file: &str, description: &str, date: Date) -> Outcome {
        let (user, file, description, date) =
            (own(user), own(file), own(description), own_date(date));
        self.writer
            .write(move |c| publish(c, &user, &file, &description, date.as_deref()))
    }

    fn delete(&self, user: &str, file: &str, date: Date) -> Outcome {
        let (user, file, date) = (own(user), own(file), own_date(date));
        self.writer
            .write(move |c| delete(c, &user, &file, date.as_deref()))
    }

    fn list_users(&self, user: &str, date: Date) -> Outcome<Vec<ConnectedUser>> {
        if date.is_none() {
            return self.read_only(|c| list_users(c, user, None));
        }
        let (user, date) = (own(user), own_date(date));
        self.writer
            .write(move |c| list_users(c, &user, date.as_deref()))
    }

    fn list_content(&self, user: &str, target: &str, date: Date) -> Outcome<Vec<String>> {
        if date.is_none() {
            return self.read_only(|c| list_content(c, user, target, None));
        }
        let (user, target, date) = (own(user), own(target), own_date(date));
        self.writer
            .write(move |c| list_content(c, &user, &target, date.as_deref()))
    }
}

// The operations themselves, each run in its own savepoint by the writer (or, for listings
// without a stamp, on the reader).

fn register(conn: &Connection, user: &str, date: Date) -> Outcome {
    let added = conn
        .prepare_cached(
            "INSERT INTO users (name, last_date) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
        )?
        .execute(params![user, date])?;
    Ok(if added == 1 {
        Ok(())
    } else {
        Err(Refusal::NameInUse)
    })
}

fn unregister(conn: &Connection, user: &str) -> Outcome {
    // ON DELETE CASCADE removes the user's files in the same statement.
    let removed = conn
        .prepare_cached("DELETE FROM users WHERE name = ?1")?
        .execute([user])?;
    Ok(if removed == 1 {
        Ok(())
    } else {
        Err(Refusal::NoSuchUser)
    })
}

fn connect(conn: &Connection, user: &str, ip: IpAddr, port: u16, date: Date) -> Outcome {
    let row = match user_row(conn, user)? {
        None => return Ok(Err(Refusal::NoSuchUser)),
        Some(row) if row.connected => return Ok(Err(Refusal::AlreadyConnected)),
        Some(row) => row,
    };
    conn.prepare_cached("UPDATE users SET connected = 1, ip = ?2, port = ?3 WHERE id = ?1")?
        .execute(params![row.id, ip.to_string(), port])?;
    stamp(conn, row.id, date)?;
    Ok(Ok(()))
}

fn disconnect(conn: &Connection, user: &str, date: Date) -> Outcome {
    let row = match connected_user(conn, user)? {
        Ok(row) => row,
        Err(refusal) => return Ok(Err(refusal)),
    };
    conn.prepare_cached("UPDATE users SET connected = 0, ip = NULL, port = NULL WHERE id = ?1")?
        .execute([row.id])?;
    stamp(conn, row.id, date)?;
    Ok(Ok(()))
}

fn publish(conn: &Connection, user: &str, file: &str, description: &str, date: Date) -> Outcome {
    let row = match connected_user(conn, user)? {
        Ok(row) => row,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let added = conn
        .prepare_cached(
            "INSERT INTO files (user_id, name, description, date) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(user_id, name) DO NOTHING",
        )?
        .execute(params![row.id, file, description, date])?;
    if added == 0 {
        return Ok(Err(Refusal::AlreadyPublished));
    }
    stamp(conn, row.id, date)?;
    Ok(Ok(()))
}

fn delete(conn: &Connection, user: &str, file: &str, date: Date) -> Outcome {
    let row = match connected_user(conn, user)? {
        Ok(row) => row,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let removed = conn
        .prepare_cached("DELETE FROM files WHERE user_id = ?1 AND name = ?2")?
        .execute(params![row.id, file])?;
    if removed == 0 {
        return Ok(Err(Refusal::NotPublished));
    }
    stamp(conn, row.id, date)?;
    Ok(Ok(()))
}

fn list_users(conn: &Connection, user: &str, date: Date) -> Outcome<Vec<ConnectedUser>> {
    let row = match connected_user(conn, user)? {
        Ok(row) => row,
        Err(refusal) => return Ok(Err(refusal)),
    };
    stamp(conn, row.id, date)?;
    let mut stmt =
        conn.prepare_cached("SELECT name, ip, port FROM users WHERE connected = 1 ORDER BY name")?;
    let users = stmt
        .query_map([], |r| {
            Ok(ConnectedUser {
                name: r.get(0)?,
                ip: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                port: r.get::<_, Option<u16>>(2)?.unwrap_or_default(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Ok(users))
}

fn list_content(conn: &Connection, user: &str, target: &str, date: Date) -> Outcome<Vec<String>> {
    let row = match connected_user(conn, user)? {
        Ok(row) => row,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let Some(target) = user_row(conn, target)? else {
        return Ok(Err(Refusal::NoSuchTarget));
    };
    stamp(conn, row.id, date)?;
    if !target.connected {
        return Ok(Ok(Vec::new()));
    }
    let mut stmt =
        conn.prepare_cached("SELECT name FROM files WHERE user_id = ?1 ORDER BY name")?;
    let files = stmt
        .query_map([target.id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Ok(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("registry.sqlite3")).unwrap();
        (dir, store)
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn refusals_change_nothing() {
        let (_dir, s) = store();
        assert_eq!(s.register("a", None).unwrap(), Ok(()));
        assert_eq!(s.register("a", None).unwrap(), Err(Refusal::NameInUse));
        assert_eq!(
            s.publish("a", "f", "d", None).unwrap(),
            Err(Refusal::NotConnected)
        );
        assert_eq!(s.connect("a", LOCAL, 1, None).unwrap(), Ok(()));
        assert_eq!(
            s.connect("a", LOCAL, 2, None).unwrap(),
            Err(Refusal::AlreadyConnected)
        );
        assert_eq!(s.list_users("a", None).unwrap().unwrap()[0].port, 1);
        assert_eq!(
            s.publish("a", "f", "d", Some("01/01/2026 00:00:00"))
                .unwrap(),
            Ok(())
        );
        assert_eq!(
            s.publish("a", "f", "e", None).unwrap(),
            Err(Refusal::AlreadyPublished)
        );
        assert_eq!(s.file_info("a", "f").unwrap().unwrap().0, "d");
        assert_eq!(
            s.last_date("a").unwrap().as_deref(),
            Some("01/01/2026 00:00:00")
        );
        assert_eq!(s.disconnect("a", None).unwrap(), Ok(()));
        assert_eq!(s.connect("a", LOCAL, 3, None).unwrap(), Ok(()));
        assert_eq!(s.list_content("a", "a", None).unwrap().unwrap(), ["f"]);
        assert_eq!(s.unregister("a", None).unwrap(), Ok(()));
        assert_eq!(s.register("a", None).unwrap(), Ok(()));
        assert_eq!(s.connect("a", LOCAL, 3, None).unwrap(), Ok(()));
        assert!(s.list_content("a", "a", None).unwrap().unwrap().is_empty());
    }
}
