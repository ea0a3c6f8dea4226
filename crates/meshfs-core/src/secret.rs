//! [`Password`]: a password as the program holds it, which never prints itself.
//!
//! Passwords travel from where they are read (a file, the environment, a prompt: the binary's
//! business) to the code that checks or sends them (`access`, a client's `auth`). Holding them
//! in this type rather than a `String` keeps them out of `Debug` output, logs and error
//! messages, and states the rules once: not empty, one line, no NUL (the file-server protocol
//! sends a password as one request line).

use std::fmt;

/// A password: non-empty, without line breaks or NUL. `Debug` shows `Password(***)`; there is
/// no `Display`. Use [`Password::expose`] where the text itself is needed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// Why a text cannot be a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadPassword {
    #[error("empty password")]
    Empty,
    #[error("password holds a line break or NUL")]
    Control,
}

impl Password {
    /// `text` as a password, if it follows the rules.
    pub fn new(text: impl Into<String>) -> Result<Password, BadPassword> {
        let text = text.into();
        if text.is_empty() {
            Err(BadPassword::Empty)
        } else if text.contains(['\n', '\r', '\0']) {
            Err(BadPassword::Control)
        } else {
            Ok(Password(text))
        }
    }

    /// The password's text, for checking or sending it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl std::str::FromStr for Password {
    type Err = BadPassword;

    fn from_str(s: &str) -> Result<Password, BadPassword> {
        Password::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_redaction() {
        let p = Password::new("s3cret pass").unwrap();
        assert_eq!(p.expose(), "s3cret pass");
        assert_eq!(format!("{p:?}"), "Password(***)");
        assert_eq!(format!("{:?}", Some(&p)), "Some(Password(***))");
        assert_eq!(Password::new(""), Err(BadPassword::Empty));
        assert_eq!(Password::new("a\nb"), Err(BadPassword::Control));
        assert_eq!(Password::new("a\rb"), Err(BadPassword::Control));
        assert_eq!(Password::new("a\0b"), Err(BadPassword::Control));
    }
}
