//! A real PostgreSQL for tests, never a mock: a throw-away cluster made by `initdb` in a
//! temporary folder, listening on a free loopback port (its Unix socket in that folder too),
//! stopped and deleted on drop.
//!
//! PostgreSQL refuses to run as root, so when the tests do, the cluster belongs to and runs as
//! `nobody` (present on every Debian system). The binaries come from Debian's `postgresql`
//! package (`.ci/install-deps`): `MESHFS_PG_BIN` if set, else the newest
//! `/usr/lib/postgresql/*/bin`. Shared by the store tests of `meshfs-registry` and the
//! end-to-end tests of `meshfs` (included by path).
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The role the tests connect as (trust authentication on loopback).
pub const PG_USER: &str = "meshfs";

/// A running throw-away PostgreSQL.
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// uid and gid to run as (when the tests run as root).
    run_as: Option<(u32, u32)>,
}

impl TempPostgres {
    /// `initdb` a new cluster and start it; panics (with the server's log) if it cannot.
    pub fn start() -> TempPostgres {
        let bin = pg_bin();
        let run_as = if is_root() { Some(nobody()) } else { None };
        // As root, somewhere `nobody` can reach whatever TMPDIR says.
        let dir = match run_as {
            Some(_) => tempfile::Builder::new()
                .prefix("meshfs-pg-")
                .tempdir_in("/tmp"),
            None => tempfile::Builder::new().prefix("meshfs-pg-").tempdir(),
        }
        .expect("temporary folder for PostgreSQL");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let port = free_port();
        let pg = TempPostgres {
            dir,
            bin,
            port,
            run_as,
        };
        let data = pg.data();
        pg.run_ok(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                PG_USER,
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_again();
        pg
    }

    /// The URL the stores take.
    pub fn url(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Start the (stopped) server and wait until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if !out.status.success() {
            panic!(
                "PostgreSQL did not start: {}\n{}\n--- server log ---\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }

    /// Stop the server: `fast` ends every session at once (in-flight transactions roll back),
    /// `immediate` is a crash (recovery from the WAL at the next start).
    pub fn stop(&self, mode: &str) {
        self.run_ok(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                mode,
                "-w",
                "stop",
            ],
        );
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Run `psql -c SQL` and return its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.run_ok(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                PG_USER,
                "-d",
                "postgres",
                "-XAtqc",
                sql,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.args(args).current_dir(self.dir.path());
        if let Some((uid, gid)) = self.run_as {
            // std drops the supplementary groups too when root changes uid.
            cmd.uid(uid).gid(gid);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.join(tool).display()))
    }

    fn run_ok(&self, tool: &str, args: &[&str]) -> Output {
        let out = self.run(tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

/// Where Debian's PostgreSQL binaries are.
fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("MESHFS_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL in /usr/lib/postgresql/*/bin: run .ci/install-deps (Debian's postgresql)"
        )
    })
}

fn is_root() -> bool {
    // The owner of our own /proc entry is our effective uid, without unsafe code.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// uid and gid of `nobody`, from /etc/passwd.
fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string(Path::new("/etc/passwd")).expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.first() == Some(&"nobody") && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .expect("user nobody in /etc/passwd")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().unwrap().port()
}
