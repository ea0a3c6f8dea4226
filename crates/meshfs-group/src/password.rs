//! Where passwords come from: a file, the `MESHFS_PASSWORD` environment variable, or a prompt
//! on the terminal — never a flag value, which `ps` shows to every user of the machine.

use std::io::{self, BufRead, Read, Write};
use std::path::Path;

/// Longest password file read (a password is one short line).
const MAX_FILE: u64 = 4096;
/// The environment variable holding the share password.
pub const ENV: &str = "MESHFS_PASSWORD";

/// The first line of `path`, without its end of line. Empty passwords are refused.
pub fn from_file(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE)
        .read_to_string(&mut text)?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    nonempty(line.to_owned(), &path.display().to_string())
}

/// `MESHFS_PASSWORD`, when set and not empty.
pub fn from_env() -> Option<String> {
    std::env::var(ENV).ok().filter(|p| !p.is_empty())
}

fn nonempty(p: String, what: &str) -> io::Result<String> {
    if p.is_empty() {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("empty password in {what}"),
        ))
    } else if p.contains(['\n', '\0']) {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("password in {what} holds a line break or NUL"),
        ))
    } else {
        Ok(p)
    }
}

/// Ask on the controlling terminal, without echo.
pub fn prompt(question: &str) -> io::Result<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| io::Error::new(e.kind(), format!("no terminal to ask for a password: {e}")))?;
    use std::os::fd::AsRawFd;
    let fd = tty.as_raw_fd();
    // SAFETY: termios calls on a valid descriptor we own, with a zeroed struct filled by
    // tcgetattr before use.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return Err(io::Error::last_os_error());
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        t.c_lflag |= libc::ECHONL;
        libc::tcsetattr(fd, libc::TCSANOW, &t);
        saved
    };
    let mut out = &tty;
    let _ = write!(out, "{question}");
    let _ = out.flush();
    let mut line = String::new();
    let read = io::BufReader::new(&tty).take(MAX_FILE).read_line(&mut line);
    // SAFETY: as above; restores the settings read before.
    unsafe {
        libc::tcsetattr(fd, libc::TCSANOW, &saved);
    }
    read?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    nonempty(line, "the answer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_first_line() {
        let dir = std::env::temp_dir().join(format!("meshfs-pw-{}", std::process::id()));
        std::fs::write(&dir, "s3cret pass\r\nignored\n").unwrap();
        assert_eq!(from_file(&dir).unwrap(), "s3cret pass");
        std::fs::write(&dir, "\n").unwrap();
        assert!(from_file(&dir).is_err());
        std::fs::remove_file(&dir).unwrap();
    }
}
