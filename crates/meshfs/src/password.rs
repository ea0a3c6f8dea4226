//! Where passwords come from: a file, an environment variable, or a prompt on the terminal —
//! never a flag value, which `ps` shows to every user of the machine. The libraries only ever
//! see the resulting [`Password`].
//!
//! Two variables, never one: `MESHFS_PASSWORD` protects the share of `meshfs node`, and
//! `MESHFS_CLIENT_PASSWORD` is what client commands prove to protected nodes. Had they been
//! one, exporting a password to fetch a file would silently protect one's own share at the
//! next `meshfs node`.
#![allow(unsafe_code)] // termios calls for the no-echo prompt

use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use meshfs_core::secret::Password;

/// Longest password file (or answer) read: a password is one short line.
const MAX_FILE: u64 = 4096;
/// The environment variable holding the node's share password (`meshfs node`).
pub const ENV: &str = "MESHFS_PASSWORD";
/// The environment variable holding the password client commands prove to nodes.
pub const CLIENT_ENV: &str = "MESHFS_CLIENT_PASSWORD";

/// The first line of `path`, without its end of line. Empty passwords are refused.
pub fn from_file(path: &Path) -> io::Result<Password> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE)
        .read_to_string(&mut text)?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    checked(line, &path.display().to_string())
}

/// The node's share password, `MESHFS_PASSWORD`, when set and not empty.
pub fn from_env() -> io::Result<Option<Password>> {
    from_env_value(std::env::var(ENV).ok(), ENV)
}

/// The client's password, `MESHFS_CLIENT_PASSWORD`, when set and not empty.
pub fn client_from_env() -> io::Result<Option<Password>> {
    from_env_value(std::env::var(CLIENT_ENV).ok(), CLIENT_ENV)
}

/// The rule of [`from_env`] on the value of variable `name`: unset or empty means none.
fn from_env_value(value: Option<String>, name: &str) -> io::Result<Option<Password>> {
    match value.filter(|p| !p.is_empty()) {
        Some(p) => checked(&p, name).map(Some),
        None => Ok(None),
    }
}

fn checked(text: &str, what: &str) -> io::Result<Password> {
    Password::new(text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e} in {what}")))
}

/// Ask on the controlling terminal, without echo.
pub fn prompt(question: &str) -> io::Result<Password> {
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
    let answer = read_answer(io::BufReader::new(&tty));
    // SAFETY: as above; restores the settings read before.
    unsafe {
        libc::tcsetattr(fd, libc::TCSANOW, &saved);
    }
    answer
}

/// One typed line (bounded), without its end of line.
fn read_answer(input: impl BufRead) -> io::Result<Password> {
    let mut line = String::new();
    input.take(MAX_FILE).read_line(&mut line)?;
    checked(line.trim_end_matches(['\r', '\n']), "the answer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret pass\r\nignored\n").unwrap();
        assert_eq!(from_file(&f).unwrap().expose(), "s3cret pass");
        std::fs::write(&f, "\n").unwrap();
        let e = from_file(&f).unwrap_err();
        assert!(e.to_string().contains("empty password"), "{e}");
        std::fs::write(&f, "").unwrap();
        assert!(from_file(&f).is_err());
        assert!(from_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_huge_file_is_read_only_up_to_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "x".repeat(1 << 20)).unwrap();
        assert_eq!(from_file(&f).unwrap().expose().len(), MAX_FILE as usize);
    }

    #[test]
    fn environment_unset_or_empty_is_no_password() {
        assert!(from_env_value(None, ENV).unwrap().is_none());
        assert!(from_env_value(Some(String::new()), ENV).unwrap().is_none());
        let p = from_env_value(Some("pw".into()), ENV).unwrap().unwrap();
        assert_eq!(p.expose(), "pw");
        let e = from_env_value(Some("a\0b".into()), CLIENT_ENV).unwrap_err();
        assert!(e.to_string().contains(CLIENT_ENV), "{e}");
    }

    #[test]
    fn typed_answer_loses_its_end_of_line() {
        assert_eq!(read_answer(&b"pw 1\r\n"[..]).unwrap().expose(), "pw 1");
        assert!(read_answer(&b"\n"[..]).is_err());
        assert!(read_answer(&b""[..]).is_err());
    }
}
