//! The shared store: the directory in a PostgreSQL database, so that several directory
//! instances (`meshfs registry --store postgres://…`) serve one directory.
//!
//! Consistency: every course operation is one transaction. Operations that write run at
//! `SERIALIZABLE`, so concurrent operations on any instance take effect as if one after the
//! other; a transaction PostgreSQL aborts for that (`40001`, or a deadlock `40P01`) changed
//! nothing and is run again, a bounded number of times. Unique constraints back the rules that
//! matter most: the same name registered on two instances at once gets exactly one
//! `REGISTER OK` (the other sees the name on its retry). Listings without a date stamp only
//! read: each is one statement, which PostgreSQL runs as its own transaction on one snapshot
//! (one round trip, no `BEGIN`/`COMMIT`), and never makes writers retry.
//!
//! Durability, compared with [`crate::sqlite`]: the SQLite store commits the operations that
//! arrive together in one transaction (`commit.rs`) so they share one fsync. Here each
//! operation commits on its own, with `synchronous_commit = on` set for every connection, so a
//! method returns `Ok` only once PostgreSQL has flushed the commit to its WAL (and to a
//! synchronous standby, where one is configured): an acknowledged operation survives `kill -9`
//! of the instance and a crash of the database. PostgreSQL itself shares a WAL flush among
//! the commits waiting for it, which is what the SQLite store's batching reproduces.
//!
//! Failures: a connection that breaks (PostgreSQL restarting) fails the operation in flight
//! with the operation's error code; its transaction never committed, except when the break
//! falls between sending `COMMIT` and its answer, where the outcome is unknown, as with any
//! database. Broken connections are dropped and new ones made on demand, so an instance
//! recovers by itself when PostgreSQL is back. Every operation has a deadline
//! ([`PostgresConfig::op_timeout`]); nothing waits on the database forever.
//!
//! The [`Store`] trait blocks, so the store owns a small tokio runtime that drives its
//! connections; its methods wait on it from the server's blocking threads.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, IsolationLevel, NoTls, Statement, Transaction};

use crate::op::Refusal;
use crate::store::{ConnectedUser, Date, Outcome, Store, StoreError};

/// The schema, one entry per version: entry `i` takes a database from version `i` to `i + 1`.
/// Never edit an entry once released; append a new one.
const MIGRATIONS: &[&str] = &["
CREATE TABLE meshfs_users (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- \"C\": byte order, as the SQLite store sorts, whatever the database's locale
    name      TEXT COLLATE \"C\" NOT NULL UNIQUE,
    connected BOOLEAN NOT NULL DEFAULT false,
    ip        TEXT,
    port      INTEGER,
    -- last date stamp a client sent with an operation of this user
    last_date TEXT
);
CREATE TABLE meshfs_files (
    user_id     BIGINT NOT NULL REFERENCES meshfs_users(id) ON DELETE CASCADE,
    name        TEXT COLLATE \"C\" NOT NULL,
    description TEXT NOT NULL,
    date        TEXT,
    PRIMARY KEY (user_id, name)
);
CREATE INDEX meshfs_users_connected ON meshfs_users (name) WHERE connected;
"];

/// Key of the advisory lock that makes instances starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6d65_7368_6673_0001;

/// How a [`PostgresStore`] reaches and uses its database.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (or any form tokio-postgres accepts, such
    /// as `?host=/run/postgresql` for a Unix socket).
    pub url: String,
    /// Most connections held open to the database.
    pub max_connections: usize,
    /// Longest wait for a new connection.
    pub connect_timeout: Duration,
    /// Longest time one operation may take, retries and waiting for a connection included.
    pub op_timeout: Duration,
    /// Most attempts of an operation PostgreSQL aborted as a serialization failure.
    pub attempts: u32,
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            url: url.into(),
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(10),
            attempts: 10,
        }
    }
}

/// Why the PostgreSQL store failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("bad PostgreSQL URL: {0}")]
    BadUrl(#[source] tokio_postgres::Error),
    #[error("PostgreSQL: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("no answer from PostgreSQL within {0:?}")]
    Timeout(Duration),
    #[error("still conflicting with concurrent operations after {0} attempts: {1}")]
    Conflicts(u32, #[source] tokio_postgres::Error),
    #[error("the database holds schema version {found}, newer than this meshfs knows ({known})")]
    SchemaTooNew { found: i32, known: usize },
    #[error("cannot start the store's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> StoreError {
        StoreError(Box::new(e))
    }
}

/// The directory in a PostgreSQL database, shared by every instance pointed at it.
pub struct PostgresStore {
    /// Drives the connections; `None` only while dropping.
    runtime: Option<Runtime>,
    pool: Arc<Pool>,
}

impl PostgresStore {
    /// Connect, create or migrate the schema, and keep the connection for the first
    /// operations. Blocks (call from a blocking thread).
    pub fn open(config: PostgresConfig) -> Result<PostgresStore, StoreError> {
        let mut pg = tokio_postgres::Config::from_str(&config.url).map_err(PgError::BadUrl)?;
        pg.connect_timeout(config.connect_timeout)
            .application_name("meshfs-registry")
            // Durability is the store's contract: never let a server default weaken it.
            .options("-c synchronous_commit=on")
            // A database host that vanished without a word is noticed.
            .keepalives_idle(Duration::from_secs(30));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("registry-pg")
            .enable_all()
            .build()
            .map_err(PgError::Runtime)?;
        let pool = Arc::new(Pool {
            pg,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(config.max_connections.max(1)),
            config,
        });
        runtime.block_on(async {
            let deadline = Instant::now() + pool.config.op_timeout;
            tokio::time::timeout_at(deadline, pool.migrate())
                .await
                .map_err(|_| PgError::Timeout(pool.config.op_timeout))?
        })?;
        Ok(PostgresStore {
            runtime: Some(runtime),
            pool,
        })
    }

    fn block_on<T>(&self, f: impl Future<Output = Outcome<T>>) -> Outcome<T> {
        match &self.runtime {
            Some(runtime) => runtime.block_on(f),
            None => Err(StoreError("the store is closing".into())),
        }
    }

    /// Run `op` as one transaction (see [`Pool::transact`]).
    fn run<T, F>(&self, mode: Mode, op: F) -> Outcome<T>
    where
        F: AsyncFn(
            &Transaction<'_>,
            &Statements,
        ) -> Result<Result<T, Refusal>, tokio_postgres::Error>,
    {
        self.block_on(self.pool.transact(mode, op))
    }

    /// The last date stamp recorded for `user` (None if none or no such user).
    pub fn last_date(&self, user: &str) -> Result<Option<String>, StoreError> {
        self.run(Mode::Read, async |tx, _| {
            let row = tx
                .query_opt(
                    "SELECT last_date FROM meshfs_users WHERE name = $1",
                    &[&user],
                )
                .await?;
            Ok(Ok(row.and_then(|r| r.get(0))))
        })?
        .map_err(|r| StoreError(r.into()))
    }

    /// The description and date stamp of one published file.
    pub fn file_info(
        &self,
        user: &str,
        file: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        self.run(Mode::Read, async |tx, _| {
            let row = tx
                .query_opt(
                    "SELECT f.description, f.date FROM meshfs_files f
                     JOIN meshfs_users u ON u.id = f.user_id WHERE u.name = $1 AND f.name = $2",
                    &[&user, &file],
                )
                .await?;
            Ok(Ok(row.map(|r| (r.get(0), r.get(1)))))
        })?
        .map_err(|r| StoreError(r.into()))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside async code (where the last
        // handle to a store may well be dropped): let its threads wind down by themselves.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What a transaction may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Writes: `SERIALIZABLE`, retried on serialization failures.
    Write,
    /// Inspection (`last_date`, `file_info`): one `REPEATABLE READ READ ONLY` snapshot.
    Read,
}

/// The statements every operation uses, prepared once per connection.
struct Statements {
    user: Statement,
    register: Statement,
    unregister: Statement,
    connect: Statement,
    disconnect: Statement,
    stamp: Statement,
    publish: Statement,
    delete: Statement,
    list_users: Statement,
    list_content: Statement,
    /// `LIST_USERS` without a stamp, checks and listing in one statement.
    list_users_read: Statement,
    /// `LIST_CONTENT` without a stamp, checks and listing in one statement.
    list_content_read: Statement,
}

impl Statements {
    async fn prepare(c: &Client) -> Result<Statements, tokio_postgres::Error> {
        // Sent together: one round trip's wait instead of ten.
        let (user, register, unregister, connect, disconnect) = tokio::try_join!(
            c.prepare("SELECT id, connected FROM meshfs_users WHERE name = $1"),
            c.prepare(
                "INSERT INTO meshfs_users (name, last_date) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING"
            ),
            c.prepare("DELETE FROM meshfs_users WHERE name = $1"),
            c.prepare(
                "UPDATE meshfs_users SET connected = true, ip = $2, port = $3,
                 last_date = COALESCE($4, last_date) WHERE id = $1"
            ),
            c.prepare(
                "UPDATE meshfs_users SET connected = false, ip = NULL, port = NULL,
                 last_date = COALESCE($2, last_date) WHERE id = $1"
            ),
        )?;
        let (stamp, publish, delete, list_users, list_content) = tokio::try_join!(
            c.prepare("UPDATE meshfs_users SET last_date = $2 WHERE id = $1"),
            c.prepare(
                "INSERT INTO meshfs_files (user_id, name, description, date)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, name) DO NOTHING"
            ),
            c.prepare("DELETE FROM meshfs_files WHERE user_id = $1 AND name = $2"),
            c.prepare("SELECT name, ip, port FROM meshfs_users WHERE connected ORDER BY name"),
            c.prepare("SELECT name FROM meshfs_files WHERE user_id = $1 ORDER BY name"),
        )?;
        // No row: no such user. A row whose first column is false: not connected.
        let (list_users_read, list_content_read) = tokio::try_join!(
            c.prepare(
                "SELECT me.connected, l.name, l.ip, l.port
                 FROM (SELECT connected FROM meshfs_users WHERE name = $1) me
                 LEFT JOIN meshfs_users l ON me.connected AND l.connected
                 ORDER BY l.name"
            ),
            // Then: second column false, no such target; third NULL, nothing to list.
            c.prepare(
                "SELECT me.connected, t.id IS NOT NULL, f.name
                 FROM (SELECT connected FROM meshfs_users WHERE name = $1) me
                 LEFT JOIN meshfs_users t ON t.name = $2
                 LEFT JOIN meshfs_files f ON me.connected AND t.connected AND f.user_id = t.id
                 ORDER BY f.name"
            ),
        )?;
        Ok(Statements {
            user,
            register,
            unregister,
            connect,
            disconnect,
            stamp,
            publish,
            delete,
            list_users,
            list_content,
            list_users_read,
            list_content_read,
        })
    }
}

/// One open connection and its prepared statements.
struct Conn {
    client: Client,
    statements: Statements,
}

/// The connections: at most `max_connections`, made on demand, dropped when broken.
struct Pool {
    config: PostgresConfig,
    pg: tokio_postgres::Config,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// A connection lent to one operation; it goes back to the pool only if the operation ended
/// cleanly (a connection left in any doubt is closed).
struct Lease<'a> {
    conn: Option<Conn>,
    clean: bool,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.clean
            && !conn.client.is_closed()
        {
            self.pool.idle().push(conn);
        }
    }
}

/// How one attempt of an operation failed.
enum Failure {
    /// Nothing was applied and trying again may succeed.
    Retry(tokio_postgres::Error),
    /// The operation failed.
    Fatal(PgError),
}

impl Failure {
    /// Serialization failures and deadlocks are PostgreSQL asking for another attempt.
    fn of(e: tokio_postgres::Error) -> Failure {
        match e.code() {
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE => Failure::Retry(e),
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED => Failure::Retry(e),
            _ => Failure::Fatal(PgError::Db(e)),
        }
    }
}

impl Pool {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn connect(&self) -> Result<Conn, PgError> {
        let (client, connection) = self.pg.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection lost");
            }
        });
        let statements = Statements::prepare(&client).await?;
        Ok(Conn { client, statements })
    }

    /// An idle connection that still looks alive, else a new one.
    async fn lease(&self) -> Result<Lease<'_>, PgError> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let reused = loop {
            let Some(conn) = self.idle().pop() else {
                break None;
            };
            if !conn.client.is_closed() {
                break Some(conn);
            }
        };
        let conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok(Lease {
            conn: Some(conn),
            clean: false,
            pool: self,
            _permit: permit,
        })
    }

    /// Create the schema or bring it to the current version, one instance at a time, on a
    /// connection of its own (the pool's prepare statements on tables this creates).
    async fn migrate(&self) -> Result<(), PgError> {
        let (mut client, connection) = self.pg.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS meshfs_schema_version (
                 version    INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
        let found: i32 = tx
            .query_one(
                "SELECT COALESCE(max(version), 0) FROM meshfs_schema_version",
                &[],
            )
            .await?
            .get(0);
        let known = MIGRATIONS.len();
        if found as usize > known {
            return Err(PgError::SchemaTooNew { found, known });
        }
        for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let version = version as i32 + 1;
            tracing::info!(version, "migrating the directory's PostgreSQL schema");
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO meshfs_schema_version (version) VALUES ($1)",
                &[&version],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Run `op` in one transaction, with retries, within [`PostgresConfig::op_timeout`].
    async fn transact<T, F>(&self, mode: Mode, op: F) -> Outcome<T>
    where
        F: AsyncFn(
            &Transaction<'_>,
            &Statements,
        ) -> Result<Result<T, Refusal>, tokio_postgres::Error>,
    {
        let limit = self.config.op_timeout;
        let deadline = Instant::now() + limit;
        let mut attempt = 1;
        loop {
            let tried = tokio::time::timeout_at(deadline, self.attempt(mode, &op)).await;
            match tried {
                Err(_) => return Err(PgError::Timeout(limit).into()),
                Ok(Ok(outcome)) => return Ok(outcome),
                Ok(Err(Failure::Fatal(e))) => return Err(e.into()),
                Ok(Err(Failure::Retry(e))) if attempt >= self.config.attempts => {
                    return Err(PgError::Conflicts(attempt, e).into());
                }
                Ok(Err(Failure::Retry(e))) => {
                    tracing::debug!(attempt, error = %e, "retrying a directory operation");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Run `op`, one read-only statement, outside any transaction (a statement sees one
    /// snapshot). Reads change nothing, so one that failed on a connection PostgreSQL had
    /// closed is tried once more on a new one.
    async fn read<T, F>(&self, op: F) -> Outcome<T>
    where
        F: AsyncFn(&Client, &Statements) -> Result<Result<T, Refusal>, tokio_postgres::Error>,
    {
        let limit = self.config.op_timeout;
        let reading = async {
            let mut attempt = 1;
            loop {
                let mut lease = self.lease().await?;
                let Conn { client, statements } = lease.conn.as_mut().expect("leased");
                match op(client, statements).await {
                    Ok(outcome) => {
                        lease.clean = true;
                        return Ok(outcome);
                    }
                    Err(e) if attempt < 2 && (e.is_closed() || client.is_closed()) => {
                        attempt += 1;
                    }
                    Err(e) => return Err(PgError::Db(e)),
                }
            }
        };
        match tokio::time::timeout(limit, reading).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(PgError::Timeout(limit).into()),
        }
    }

    async fn attempt<T, F>(&self, mode: Mode, op: &F) -> Result<Result<T, Refusal>, Failure>
    where
        F: AsyncFn(
            &Transaction<'_>,
            &Statements,
        ) -> Result<Result<T, Refusal>, tokio_postgres::Error>,
    {
        let mut lease = self.lease().await.map_err(Failure::Fatal)?;
        let Conn { client, statements } = lease.conn.as_mut().expect("leased");
        let (level, read_only) = match mode {
            Mode::Write => (IsolationLevel::Serializable, false),
            Mode::Read => (IsolationLevel::RepeatableRead, true),
        };
        let tx = match client
            .build_transaction()
            .isolation_level(level)
            .read_only(read_only)
            .start()
            .await
        {
            Ok(tx) => tx,
            // Typically an idle connection that PostgreSQL closed (a restart) before we
            // noticed. Nothing was sent but `BEGIN`, so another connection may try; if the
            // database is down, making that connection fails the operation.
            Err(e) => return Err(Failure::Retry(e)),
        };
        let outcome = match op(&tx, statements).await {
            Ok(Ok(value)) => {
                tx.commit().await.map_err(Failure::of)?;
                Ok(value)
            }
            Ok(Err(refusal)) => {
                // A refusal wrote nothing; end the transaction without a trace.
                tx.rollback().await.map_err(Failure::of)?;
                Err(refusal)
            }
            // Dropping the transaction rolls it back.
            Err(e) => return Err(Failure::of(e)),
        };
        lease.clean = true;
        Ok(outcome)
    }
}

/// A short random pause before another attempt, growing with the attempts, so that two
/// conflicting operations do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let ceiling_us = 1000u64 << attempt.min(6);
    let random = RandomState::new().hash_one(attempt);
    Duration::from_micros(random % ceiling_us)
}

/// A user row as the checks of every operation need it.
struct UserRow {
    id: i64,
    connected: bool,
}

async fn user_row(
    tx: &Transaction<'_>,
    st: &Statements,
    user: &str,
) -> Result<Option<UserRow>, tokio_postgres::Error> {
    Ok(tx.query_opt(&st.user, &[&user]).await?.map(|r| UserRow {
        id: r.get(0),
        connected: r.get(1),
    }))
}

/// The user must exist and be connected (most operations start with this check).
async fn connected_user(
    tx: &Transaction<'_>,
    st: &Statements,
    user: &str,
) -> Result<Result<UserRow, Refusal>, tokio_postgres::Error> {
    Ok(match user_row(tx, st, user).await? {
        None => Err(Refusal::NoSuchUser),
        Some(row) if !row.connected => Err(Refusal::NotConnected),
        Some(row) => Ok(row),
    })
}

async fn stamp(
    tx: &Transaction<'_>,
    st: &Statements,
    id: i64,
    date: Date<'_>,
) -> Result<(), tokio_postgres::Error> {
    if let Some(date) = date {
        tx.execute(&st.stamp, &[&id, &date]).await?;
    }
    Ok(())
}

/// A `LIST_USERS` entry from the columns name, ip, port starting at `first`.
fn connected(row: &tokio_postgres::Row, first: usize) -> ConnectedUser {
    ConnectedUser {
        name: row.get(first),
        ip: row.get::<_, Option<String>>(first + 1).unwrap_or_default(),
        port: row
            .get::<_, Option<i32>>(first + 2)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_default(),
    }
}

/// `?` for the refusal half of an operation's result.
macro_rules! refuse {
    ($checked:expr) => {
        match $checked {
            Ok(row) => row,
            Err(refusal) => return Ok(Err(refusal)),
        }
    };
}

impl Store for PostgresStore {
    fn register(&self, user: &str, date: Date) -> Outcome {
        self.run(Mode::Write, async |tx, st| {
            let added = tx.execute(&st.register, &[&user, &date]).await?;
            Ok(if added == 1 {
                Ok(())
            } else {
                Err(Refusal::NameInUse)
            })
        })
    }

    fn unregister(&self, user: &str, _date: Date) -> Outcome {
        self.run(Mode::Write, async |tx, st| {
            // ON DELETE CASCADE removes the user's files in the same statement.
            let removed = tx.execute(&st.unregister, &[&user]).await?;
            Ok(if removed == 1 {
                Ok(())
            } else {
                Err(Refusal::NoSuchUser)
            })
        })
    }

    fn connect(&self, user: &str, ip: IpAddr, port: u16, date: Date) -> Outcome {
        let ip = ip.to_string();
        let port = i32::from(port);
        self.run(Mode::Write, async |tx, st| {
            let row = match user_row(tx, st, user).await? {
                None => return Ok(Err(Refusal::NoSuchUser)),
                Some(row) if row.connected => return Ok(Err(Refusal::AlreadyConnected)),
                Some(row) => row,
            };
            tx.execute(&st.connect, &[&row.id, &ip, &port, &date])
                .await?;
            Ok(Ok(()))
        })
    }

    fn disconnect(&self, user: &str, date: Date) -> Outcome {
        self.run(Mode::Write, async |tx, st| {
            let row = refuse!(connected_user(tx, st, user).await?);
            tx.execute(&st.disconnect, &[&row.id, &date]).await?;
            Ok(Ok(()))
        })
    }

    fn publish(&self, user: &str, file: &str, description: &str, date: Date) -> Outcome {
        self.run(Mode::Write, async |tx, st| {
            let row = refuse!(connected_user(tx, st, user).await?);
            let added = tx
                .execute(&st.publish, &[&row.id, &file, &description, &date])
                .await?;
            if added == 0 {
                return Ok(Err(Refusal::AlreadyPublished));
            }
            stamp(tx, st, row.id, date).await?;
            Ok(Ok(()))
        })
    }

    fn delete(&self, user: &str, file: &str, date: Date) -> Outcome {
        self.run(Mode::Write, async |tx, st| {
            let row = refuse!(connected_user(tx, st, user).await?);
            let removed = tx.execute(&st.delete, &[&row.id, &file]).await?;
            if removed == 0 {
                return Ok(Err(Refusal::NotPublished));
            }
            stamp(tx, st, row.id, date).await?;
            Ok(Ok(()))
        })
    }

    fn list_users(&self, user: &str, date: Date) -> Outcome<Vec<ConnectedUser>> {
        if date.is_none() {
            return self.block_on(self.pool.read(async |c, st| {
                let rows = c.query(&st.list_users_read, &[&user]).await?;
                let Some(first) = rows.first() else {
                    return Ok(Err(Refusal::NoSuchUser));
                };
                if !first.get::<_, bool>(0) {
                    return Ok(Err(Refusal::NotConnected));
                }
                Ok(Ok(rows.iter().map(|r| connected(r, 1)).collect()))
            }));
        }
        self.run(Mode::Write, async |tx, st| {
            let row = refuse!(connected_user(tx, st, user).await?);
            stamp(tx, st, row.id, date).await?;
            let users = tx
                .query(&st.list_users, &[])
                .await?
                .iter()
                .map(|r| connected(r, 0))
                .collect();
            Ok(Ok(users))
        })
    }

    fn list_content(&self, user: &str, target: &str, date: Date) -> Outcome<Vec<String>> {
        if date.is_none() {
            return self.block_on(self.pool.read(async |c, st| {
                let rows = c.query(&st.list_content_read, &[&user, &target]).await?;
                let Some(first) = rows.first() else {
                    return Ok(Err(Refusal::NoSuchUser));
                };
                if !first.get::<_, bool>(0) {
                    return Ok(Err(Refusal::NotConnected));
                }
                if !first.get::<_, bool>(1) {
                    return Ok(Err(Refusal::NoSuchTarget));
                }
                Ok(Ok(rows
                    .iter()
                    .filter_map(|r| r.get::<_, Option<String>>(2))
                    .collect()))
            }));
        }
        self.run(Mode::Write, async |tx, st| {
            let row = refuse!(connected_user(tx, st, user).await?);
            let Some(target) = user_row(tx, st, target).await? else {
                return Ok(Err(Refusal::NoSuchTarget));
            };
            stamp(tx, st, row.id, date).await?;
            if !target.connected {
                return Ok(Ok(Vec::new()));
            }
            let files = tx
                .query(&st.list_content, &[&target.id])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            Ok(Ok(files))
        })
    }
}
