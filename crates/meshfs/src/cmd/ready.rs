//! A node's stdout before it is ready. Scripts and tests read the readiness line first, then
//! the address lines; but some doors speak as soon as they start (discovery's `--show-peers`
//! line, the directory's `joined` line), and every door is started before the readiness line
//! is printed (issue 20: a door that cannot start must stop the node before it says it
//! serves). What they say meanwhile is held here and printed right after the readiness lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Where a node's doors print their lines; cheap to clone.
#[derive(Clone, Default)]
pub struct Stdout {
    /// Lines waiting for the readiness lines; `None` once those are out (or when nothing waits).
    held: Arc<Mutex<Option<Vec<String>>>>,
}

impl Stdout {
    /// A stdout that holds every line until [`Stdout::ready`].
    pub fn held() -> Stdout {
        Stdout {
            held: Arc::new(Mutex::new(Some(Vec::new()))),
        }
    }

    /// Print `line`, or hold it until the node is ready.
    pub fn line(&self, line: impl Into<String>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_mut() {
            Some(lines) => lines.push(line.into()),
            None => print_line(&line.into()),
        }
    }

    /// Print the readiness lines, then every line held until now; later lines go straight out.
    pub fn ready(&self, lines: &[String]) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for line in lines.iter().chain(held.take().iter().flatten()) {
            print_line(line);
        }
    }
}

/// One line on stdout. A reader that went away must not take the node down with a panic.
fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
