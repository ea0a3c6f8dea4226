//! `tests/python/lying_relay.py`: a relay in front of a real node that changes one byte of the
//! file's data in `pread` and `read` replies (a lying or corrupt source, in clear).

use std::process::{Command, Stdio};
use std::time::Duration;

use super::group::python_script;
use super::{Proc, spawn_piped};

/// The relay in front of the node at `addr`, once it listens, and its address.
pub fn lying_relay(addr: &str) -> (Proc, String) {
    relay_with(addr, &[])
}

/// `lying_relay.py` in front of `addr` with `args` (`--honest`, `--slow-hash SECONDS`): the
/// relay and its address.
pub fn relay_with(addr: &str, args: &[&str]) -> (Proc, String) {
    let relay = spawn_piped(
        Command::new("python3")
            .arg(python_script("lying_relay.py"))
            .arg(addr)
            .args(args)
            .stderr(Stdio::inherit()),
    );
    let port = number_after(&relay, "listening ");
    (relay, format!("127.0.0.1:{port}"))
}

/// The number on the relay's next line, which must start with `prefix` (`changed `: the
/// offset of the byte changed; `read `: the `read` bytes a connection passed).
pub fn number_after(relay: &Proc, prefix: &str) -> u64 {
    let line = relay.next_line(Duration::from_secs(10));
    line.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{prefix:?} expected from the relay, got {line:?}"))
}
