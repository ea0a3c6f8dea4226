//! Peers this node cannot talk to: a `hello` announcing a file-server protocol other than
//! ours, or announcements in a format version we do not know. Each is logged once (per node
//! ID, or per address for datagrams we cannot read), so a node on the wrong version is named
//! in the log without flooding it every 30 s.

use std::collections::HashSet;
use std::sync::Mutex;

/// Peers remembered as already reported; past it, nothing more is logged (a bound against
/// forged datagrams, not a limit anyone meets).
const MAX_REPORTED: usize = 1024;

/// What has been reported.
#[derive(Debug, Default)]
pub struct Incompatible {
    reported: Mutex<HashSet<String>>,
}

impl Incompatible {
    /// True the first time `key` is seen: the caller logs it then.
    pub fn first(&self, key: &str) -> bool {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if reported.len() >= MAX_REPORTED || reported.contains(key) {
            return false;
        }
        reported.insert(key.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_is_reported_once_and_the_set_is_bounded() {
        let inc = Incompatible::default();
        assert!(inc.first("a"));
        assert!(!inc.first("a"));
        for i in 0..MAX_REPORTED * 2 {
            inc.first(&i.to_string());
        }
        assert!(!inc.first("never"));
    }
}
