//! A real `meshfs mount` on a temporary folder, for the FUSE tests and the hostile-name table.
//! Unmounted when dropped, even when the test panicked: a mount left behind would outlive the
//! test run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Proc, bin, spawn_piped};

/// True when this machine can mount FUSE; prints why a test is skipped otherwise.
pub fn fuse_available() -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    eprintln!("skipping: /dev/fuse is absent on this machine");
    false
}

/// A running `meshfs mount`.
pub struct Mounted {
    pub dir: PathBuf,
    pub proc: Option<Proc>,
    _tmp: tempfile::TempDir,
}

impl Mounted {
    /// Mount the nodes at `addrs` (plus `extra` flags), returning once the readiness line is
    /// out and the kernel lists the mount. Hermetic (`--no-discovery`) unless `extra` brings
    /// a LAN group of the test's own: other tests' nodes announce themselves on the default
    /// one.
    pub fn new(addrs: &[&str], extra: &[&str]) -> Mounted {
        Mounted::with_stderr(addrs, extra, Stdio::inherit())
    }

    /// [`Mounted::new`] with the mount's log (its stderr) going to `stderr` (e.g. a file the
    /// test reads afterwards).
    pub fn with_stderr(addrs: &[&str], extra: &[&str], stderr: impl Into<Stdio>) -> Mounted {
        let stderr = stderr.into();
        Mounted::with_env(addrs, extra, |c| {
            c.stderr(stderr);
        })
    }

    /// [`Mounted::new`] with the `meshfs mount` command adjusted by `adjust` before it runs
    /// (its environment, where its log goes).
    pub fn with_env(addrs: &[&str], extra: &[&str], adjust: impl FnOnce(&mut Command)) -> Mounted {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let mut args = vec!["mount", dir.to_str().unwrap()];
        for a in addrs {
            args.extend_from_slice(&["--node", a]);
        }
        if !extra.contains(&"--group-port") {
            args.push("--no-discovery");
        }
        args.extend_from_slice(extra);
        let mut cmd = Command::new(bin());
        cmd.args(&args).stderr(Stdio::inherit());
        adjust(&mut cmd);
        let proc = spawn_piped(&mut cmd);
        let line = proc.next_line(Duration::from_secs(20));
        assert!(
            line.starts_with("meshfs mount ") && line.contains(" ready:"),
            "unexpected readiness line {line:?}"
        );
        assert!(
            is_mounted(&dir),
            "readiness line printed but {} is not mounted",
            dir.display()
        );
        Mounted {
            dir,
            proc: Some(proc),
            _tmp: tmp,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg(&self.dir)
            .status();
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        drop(self.proc.take());
    }
}

/// Whether `dir` is a mount point now (from `/proc/self/mountinfo`).
pub fn is_mounted(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let want = dir.to_str().unwrap();
    mounts.lines().any(|l| l.split(' ').nth(4) == Some(want))
}
